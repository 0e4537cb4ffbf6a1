"""The thread count every fold job uses: given, or chosen when the run starts and recorded in run.json."""
from __future__ import annotations

import json

import pytest
import torch

import train_cli
from core.run_lifecycle import fold_threads

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
