"""Tiny trained runs (random weights, 32-pixel inputs) with real fold checkpoints, for the class-activation-map
tests and the dashboard pages that show the maps."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_csv_dataset

import train_cli

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8"]


def train_tiny(runs_dir: Path, data: Path, mode: str) -> Path:
    assert train_cli.main(["--data", str(data), "--runs-dir", str(runs_dir), "--train-mode", mode,
                           "--name", mode, *TINY]) == 0
    return next(runs_dir.glob(f"*-{mode}"))


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"head": run dir, "finetune": run dir}, both in one runs folder."""
    root = tmp_path_factory.mktemp("explain")
    data = make_csv_dataset(root / "data")
    return {mode: train_tiny(root / "runs", data, mode) for mode in ("head", "finetune")}
