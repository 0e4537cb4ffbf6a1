"""What the dashboard says about a run nobody is writing any more: a run whose writer was killed shows `stalled`
with its last sign of life and the command that resumes it; a live one still reads as training; a complete run
with a fold replaced after assembly says its results are stale."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from dashboard_fixtures import open_page

from core.store import run_store
from core.store.heartbeat import heartbeat_path
from core.testing.synthetic import make_synthetic_run

KILLED, LIVE, REPLACED = "20250105-000000-killed", "20250104-000000-live", "20250103-000000-replaced"


def beat(run: Path, age_s: float) -> None:
    heartbeat_path(run).write_text(json.dumps({
        "writer": "run", "time": time.time() - age_s, "host": "gpu7", "pid": 4242, "phase": "folds",
        "progress": {"done": 1, "total": 3}, "resume": f"python train_cli.py --resume {run.name}"}))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("liveness") / "runs"
    beat(make_synthetic_run(runs, KILLED, 60, 3, 3, 16, seed=5, status="running", diagnostics=False), 3600)
    make_synthetic_run(runs, LIVE, 60, 3, 3, 16, seed=6, status="running", diagnostics=False)
    replaced = make_synthetic_run(runs, REPLACED, 60, 3, 3, 16, seed=7, diagnostics=False)
    fold_json = run_store.fold_dir(replaced, 1) / "fold.json"
    fold_json.parent.mkdir(parents=True, exist_ok=True)
    fold_json.write_text("{}")                 # `fold RUN 1 --force` finished after the run was assembled
    later = (replaced / "predictions.parquet").stat().st_mtime + 5
    os.utime(fold_json, (later, later))
    return runs


@pytest.fixture(autouse=True)
def env(runs, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))


def test_a_killed_run_shows_stalled_with_its_last_sign_of_life_and_the_resume_command():
    app = open_page(None, run=KILLED)
    [warning] = [w.body for w in app.warning if "stalled" in w.body]
    assert "run: folds 1 of 3 on gpu7 pid 4242, last sign of life" in warning
    assert f"python train_cli.py --resume {KILLED}" in warning
    assert "stalled" in app.sidebar.caption[0].value


def test_a_run_whose_writer_beats_still_reads_as_training(runs):
    beat(runs / LIVE, 1)
    app = open_page(None, run=LIVE)
    assert any("is still training" in i.body for i in app.info) and not app.warning


def test_a_complete_run_with_a_replaced_fold_says_its_results_are_stale():
    app = open_page(None, run=REPLACED)
    assert any("fold 1 replaced after the run was assembled" in w.body and f"--resume {REPLACED}" in w.body
               for w in app.warning)
