"""Fold jobs on their own, without Ray: a fold folder appears whole or not at all, a repeated job is harmless,
and a run can be prepared, its folds run as separate `train_cli.py fold` commands, then finished by --resume."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import train_cli
from core.run import lifecycle as run_lifecycle
from core.store import run_store
from core.training import fold_job

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8",
        "--train-mode", "head"]


@pytest.fixture
def no_diagnostics(monkeypatch):
    monkeypatch.setattr(run_lifecycle, "run_diagnostics_step", lambda run_dir: None)


def cli(tmp_path: Path, *args: str) -> int:
    return train_cli.main([*args, "--runs-dir", str(tmp_path / "runs")])


def prepared_run(tmp_path: Path, data: Path, capsys) -> Path:
    assert cli(tmp_path, "--data", str(data), *TINY, "--cache-dir", str(tmp_path / "cache"), "--prepare-only") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"python train_cli.py fold {run_dir.name} K" in capsys.readouterr().out
    return run_dir


def test_fold_jobs_run_as_separate_commands_give_the_same_run(tmp_path, folder_dataset, capsys, no_diagnostics):
    run_dir = prepared_run(tmp_path, folder_dataset, capsys)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "running" and info["folds_done"] == [] and info["config"]["threads"] > 0
    assert run_store.embedding_path(run_dir, "backbone").exists()
    for k in (1, 0):
        assert cli(tmp_path, "fold", run_dir.name, str(k)) == 0
    assert f"fold 0 of {run_dir.name}: best epoch" in capsys.readouterr().out
    assert cli(tmp_path, "--resume", run_dir.name) == 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"

    reference = tmp_path / "reference"
    assert train_cli.main(["--data", str(folder_dataset), *TINY, "--cache-dir", str(tmp_path / "cache"),
                           "--runs-dir", str(reference)]) == 0
    (reference_run,) = reference.iterdir()
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "predictions.parquet"),
                                  pd.read_parquet(reference_run / "predictions.parquet"))


def test_a_fold_job_run_again_leaves_the_done_fold_as_it_is(tmp_path, folder_dataset, capsys):
    run_dir = prepared_run(tmp_path, folder_dataset, capsys)
    first = fold_job.run_fold(run_dir, 0)
    written = (run_dir / "folds" / "fold0" / "fold.json").stat().st_mtime_ns
    assert fold_job.run_fold(run_dir, 0) == first
    assert (run_dir / "folds" / "fold0" / "fold.json").stat().st_mtime_ns == written


def test_a_fold_job_that_fails_while_writing_leaves_no_fold_folder(tmp_path, folder_dataset, capsys, monkeypatch):
    run_dir = prepared_run(tmp_path, folder_dataset, capsys)

    def full_disk(obj, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(fold_job.torch, "save", full_disk)
    assert cli(tmp_path, "fold", run_dir.name, "0") == 2   # a full disk is the user's to fix: one line, as bad input
    assert "no space left writing" in capsys.readouterr().err
    assert list((run_dir / "folds").iterdir()) == []  # neither folds/fold0 nor a temporary folder


@pytest.mark.parametrize("args, message", [
    (["fold", "missing-run", "0"], "no such run"),
    (["--gpus-per-fold", "1"], "--gpus-per-fold 1.0: only used with --executor ray"),
    (["--prepare-only", "--executor", "ray"], "--prepare-only creates a new run and runs no fold"),
])
def test_bad_execution_options_are_one_line_errors(tmp_path, capsys, args, message):
    assert cli(tmp_path, *args) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error


def test_a_fold_index_outside_the_run_is_refused(tmp_path, folder_dataset, capsys):
    run_dir = prepared_run(tmp_path, folder_dataset, capsys)
    assert cli(tmp_path, "fold", run_dir.name, "2") == 2
    assert f"fold {run_dir.name} 2: that run has folds 0 to 1" in capsys.readouterr().err
