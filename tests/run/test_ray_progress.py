"""A fold job as a Ray task runs it shows no progress bars: its output reaches the driver's log as lines, and
the driver prints the one line per fold. Run here through the same function the Ray workers run."""
from __future__ import annotations

import pytest

import train_cli
from core.run.ray_executor import fold_task
from core.training import fold_job
from core.training.progress import PROGRESS_ENV

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "3", "--batch-size", "4",
        "--train-mode", "head"]


@pytest.fixture
def prepared(tmp_path, folder_dataset):
    assert train_cli.main(["--data", str(folder_dataset), *TINY, "--prepare-only", "--cache-dir",
                           str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir


def test_a_fold_task_writes_no_carriage_return_bars(prepared, capfd, monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "bars")  # restored after the test; fold_task sets it as a worker would
    capfd.readouterr()
    summary = fold_task(fold_job.run_fold, str(prepared), 0)
    out, err = capfd.readouterr()
    assert summary["fold"] == 0 and summary["epochs_run"] == 3
    assert "\r" not in out + err and "epoch/s" not in out + err


def test_the_same_fold_job_outside_a_task_shows_its_epoch_bar(prepared, capfd, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    capfd.readouterr()
    fold_job.run_fold(prepared, 1)
    assert "\r" in capfd.readouterr().err
