"""A run in daily use: a killed writer's run lists as stalled with the command that resumes it, and resuming
clears it; `runs` lists and `runs rm` removes only what no live writer uses; scheduler jobs capture the run id,
assemble without training, and refuse to redo a fold by accident (a replaced fold leaves the run stale)."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_folder_dataset

import train_cli
from core.run import lifecycle as run_lifecycle
from core.store.heartbeat import HeartbeatSettings, heartbeat, heartbeat_path, run_status
from core.store.run_store import read_run_entry

REPO = Path(__file__).resolve().parents[2]
TINY = ["--model", "resnet18", "--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8",
        "--train-mode", "head", "--test-size", "0"]


@pytest.fixture(autouse=True)
def no_diagnostics(monkeypatch):
    monkeypatch.setattr(run_lifecycle, "run_diagnostics_step", lambda run_dir: None)


def cli(tmp_path: Path, *args: str) -> int:
    return train_cli.main([*args, "--runs-dir", str(tmp_path / "runs")])


@pytest.fixture(scope="module")
def prepared_once(tmp_path_factory) -> Path:
    """One run made with --prepare-only --print-id (its stdout checked here), copied by each test."""
    root = tmp_path_factory.mktemp("prepared")
    data = make_folder_dataset(root / "data")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli(root, "--data", str(data), *TINY, "--cache-dir", str(root / "cache"), "--prepare-only",
                   "--print-id") == 0
    run_id = out.getvalue().strip()
    assert out.getvalue() == f"{run_id}\n" and (root / "runs" / run_id).is_dir()   # RUN_ID=$(...) gets just it
    assert f"python train_cli.py fold {run_id} K" in err.getvalue()
    return root / "runs" / run_id


@pytest.fixture
def prepared(tmp_path, prepared_once) -> Path:
    run_dir = tmp_path / "runs" / prepared_once.name
    shutil.copytree(prepared_once, run_dir)
    return run_dir


def listed(tmp_path: Path, capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert cli(tmp_path, "runs", "--json") == 0
    return {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}


def test_a_prepared_run_waits_for_its_fold_jobs_and_assemble_only_lists_the_missing_ones(tmp_path, prepared,
                                                                                           capsys):
    assert listed(tmp_path, capsys)[prepared.name]["status"] == "waiting"
    assert cli(tmp_path, "fold", prepared.name, "1") == 0
    assert cli(tmp_path, "--resume", prepared.name, "--assemble-only") == 2
    error = capsys.readouterr().err
    assert f"--assemble-only: fold 0 of 2 not done; run it first: python train_cli.py fold {prepared.name} 0" in error
    assert not (prepared / "folds" / "fold0").exists()        # nothing was trained by the assembling job
    assert cli(tmp_path, "fold", prepared.name, "0") == 0
    assert cli(tmp_path, "--resume", prepared.name, "--assemble-only") == 0
    row = listed(tmp_path, capsys)[prepared.name]
    assert (row["status"], row["folds"], row["stale"]) == ("complete", "2/2", False)


def test_a_killed_fold_job_reads_stalled_until_a_resume_finishes_the_run(tmp_path, prepared, capsys):
    # what `fold RUN 0` leaves when killed with -9: its last heartbeat, older than the threshold
    heartbeat_path(prepared, "fold0").write_text(json.dumps({
        "writer": "fold 0", "time": time.time() - 3600, "host": "node7", "pid": 4242, "phase": "training",
        "progress": {}, "resume": f"python train_cli.py fold {prepared.name} 0"}))
    capsys.readouterr()
    assert cli(tmp_path, "runs") == 0
    text = capsys.readouterr().out
    assert " stalled " in text and "fold 0: training on node7 pid 4242, last sign of life" in text
    assert f"resume with: python train_cli.py fold {prepared.name} 0" in text
    assert cli(tmp_path, "--resume", prepared.name) == 0
    assert listed(tmp_path, capsys)[prepared.name]["status"] == "complete"
    assert not list(prepared.glob("heartbeat*"))               # the resumed run took the killed job's work over


def test_a_done_fold_is_not_redone_without_force_and_a_replaced_one_leaves_the_run_stale(tmp_path, prepared,
                                                                                          capsys):
    assert cli(tmp_path, "--resume", prepared.name) == 0
    assert cli(tmp_path, "fold", prepared.name, "0") == 2
    assert "that fold is already done; add --force" in capsys.readouterr().err
    assert cli(tmp_path, "fold", prepared.name, "0", "--force") == 0
    assert "predictions, metrics and diagnostics are stale" in capsys.readouterr().err
    row = listed(tmp_path, capsys)[prepared.name]
    assert row["stale"] and f"python train_cli.py --resume {prepared.name}" in row["note"]
    assert cli(tmp_path, "--resume", prepared.name) == 0       # a complete but stale run is assembled again
    assert not listed(tmp_path, capsys)[prepared.name]["stale"]


def test_runs_lists_every_run_as_text_and_json(tmp_path, prepared, capsys):
    assert cli(tmp_path, "--resume", prepared.name) == 0
    row = listed(tmp_path, capsys)[prepared.name]
    assert row["mode"] == "head" and row["data"] and row["created"] and row["size_bytes"] > 0
    assert 0 <= row["val_bal_acc"] <= 1 and row["test_bal_acc"] is None   # --test-size 0: no test ensemble
    assert cli(tmp_path, "runs") == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:3] == ["run", "id", "name"] and line.startswith(prepared.name) and " complete " in line


def test_runs_rm_refuses_a_run_whose_writer_is_alive_and_any_path_outside_the_runs_folder(tmp_path, prepared,
                                                                                          capsys):
    with heartbeat(prepared, "explain", "python train_cli.py explain X", name="explain"):
        assert cli(tmp_path, "runs", "rm", prepared.name) == 2
        assert "its writer is alive (explain: " in capsys.readouterr().err
    (tmp_path / "outside").mkdir()
    for hostile in ("../outside", str(tmp_path / "outside"), "runs/.."):
        assert cli(tmp_path, "runs", "rm", hostile) == 2
    assert (tmp_path / "outside").is_dir() and prepared.is_dir()
    assert cli(tmp_path, "runs", "rm", prepared.name) == 0
    assert not prepared.exists() and list((tmp_path / "runs").iterdir()) == []


def test_a_fold_job_killed_with_sigkill_leaves_the_run_stalled_naming_its_fold_command(tmp_path, prepared):
    job = subprocess.Popen([sys.executable, str(REPO / "train_cli.py"), "fold", prepared.name, "0", "--runs-dir",
                            str(prepared.parent)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not heartbeat_path(prepared, "fold0").exists():
            assert time.monotonic() < deadline and job.poll() is None, "the fold job never beat"
            time.sleep(0.05)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    quick = HeartbeatSettings(interval_s=0.05, stall_after_s=0.2)   # the default waits 60 s
    time.sleep(0.3)
    status, live = run_status(read_run_entry(prepared), quick)
    assert status == "stalled" and live.stalled[0].pid == job.pid
    assert live.resume == [f"python train_cli.py fold {prepared.name} 0 --runs-dir {prepared.parent}"]
