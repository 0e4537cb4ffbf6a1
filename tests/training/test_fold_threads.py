"""The thread count every fold job uses: given, or chosen when the run starts and recorded in run.json."""
from __future__ import annotations

import json

import pytest
import torch

import train_cli
from core.training.device import fold_threads

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8"]


def test_a_head_fold_runs_on_one_thread_and_a_finetune_fold_on_torchs_default():
    assert fold_threads(0, "head") == 1
    assert fold_threads(0, "finetune") == torch.get_num_threads()


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_a_thread_count_given_is_kept(mode):
    assert fold_threads(3, mode) == 3


@pytest.mark.parametrize("given, recorded", [([], 1), (["--threads", "2"], 2)])
def test_a_prepared_head_run_records_the_count_its_folds_will_use(tmp_path, folder_dataset, given, recorded):
    assert train_cli.main(["--data", str(folder_dataset), *TINY, "--train-mode", "head", *given, "--prepare-only",
                           "--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["config"]["threads"] == recorded


def test_a_fit_outside_a_fold_job_uses_the_runs_thread_count_whatever_this_process_set(tmp_path, folder_dataset):
    """The learning curve refits folds in the experiment's process: after a resume that trained nothing there,
    or with folds trained by Ray, it must still fit on the count the run recorded, or its numbers differ."""
    from core.training.fold_job import fit_parts, fold_parts, load_run_inputs
    assert train_cli.main(["--data", str(folder_dataset), *TINY, "--train-mode", "head", "--prepare-only",
                           "--cache-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    _, cfg, samples = load_run_inputs(run_dir)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        fit_parts(run_dir, 0, fold_parts(samples, 0))
        assert torch.get_num_threads() == cfg.threads == 1
    finally:
        torch.set_num_threads(before)
