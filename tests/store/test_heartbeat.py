"""Heartbeats: a writer's file is refreshed while it works and removed when it ends; a writer killed with SIGKILL
leaves it behind, and readers then show it stalled with its last sign of life and the command that resumes it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.store.heartbeat import (
    HeartbeatSettings,
    clear_stalled,
    derived_status,
    heartbeat,
    heartbeat_path,
    liveness,
    read_beats,
    run_status,
)
from core.store.run_store import read_run_entry, write_json

FAST = HeartbeatSettings(interval_s=0.05, stall_after_s=0.5)
REPO = Path(__file__).resolve().parents[2]


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.02)


def test_a_heartbeat_is_written_refreshed_and_removed_when_the_writer_ends(tmp_path):
    with heartbeat(tmp_path, "run", "python train_cli.py --resume R", settings=FAST) as beat:
        (first,) = read_beats(tmp_path)
        assert (first.writer, first.pid, first.phase, first.resume) == ("run", os.getpid(), "starting",
                                                                        "python train_cli.py --resume R")
        wait_for(lambda: read_beats(tmp_path)[0].time > first.time)          # the thread rewrites it
        beat.update("folds", 2, 5)
        (now,) = read_beats(tmp_path)
        assert (now.phase, now.progress) == ("folds", {"done": 2, "total": 5})
        assert liveness(tmp_path, FAST).state == "alive"
        assert not list(tmp_path.glob(".*.tmp"))                             # written atomically
    assert not heartbeat_path(tmp_path).exists() and liveness(tmp_path, FAST).state == "none"


def test_a_writer_that_fails_removes_its_heartbeat_too(tmp_path):
    try:
        with heartbeat(tmp_path, "run", "resume", settings=FAST):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert liveness(tmp_path, FAST).state == "none"   # its failure is recorded elsewhere (run.json), not as a stall


def test_a_writer_killed_with_sigkill_reads_stalled_after_the_threshold(tmp_path):
    writer = ("import sys, time\nfrom core.store.heartbeat import HeartbeatSettings, heartbeat\n"
              "with heartbeat(sys.argv[1], 'fold 1', 'python train_cli.py fold R 1', name='fold1', "
              "settings=HeartbeatSettings(0.05, 0.5)) as beat:\n"
              "    beat.update('training', 3, 10)\n    time.sleep(600)\n")
    process = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path)], cwd=REPO)
    try:
        wait_for(lambda: any(b.phase == "training" for b in read_beats(tmp_path)))
        assert liveness(tmp_path, FAST).state == "alive"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (last,) = read_beats(tmp_path)
    wait_for(lambda: liveness(tmp_path, FAST).state == "stalled")
    live = liveness(tmp_path, FAST)
    assert read_beats(tmp_path)[0].time == last.time                  # nobody beats any more
    assert live.resume == ["python train_cli.py fold R 1"] and live.stalled[0].pid == process.pid
    assert "fold 1: training 3 of 10 on " in live.stalled[0].describe()
    clear_stalled(tmp_path, FAST)
    assert liveness(tmp_path, FAST).state == "none"


def test_an_unreadable_heartbeat_is_skipped_not_fatal(tmp_path):
    heartbeat_path(tmp_path, "fold0").write_text("{not json")
    assert liveness(tmp_path).state == "none"


def recorded_run(folder: Path, status: str, **extra) -> Path:
    folder.mkdir(parents=True)
    write_json(folder / "run.json", {"schema_version": 1, "run_id": folder.name, "status": status,
                                     "created": "2026-01-01T00:00:00+00:00", **extra})
    return folder


def old_heartbeat(folder: Path, age_s: float, name: str = "") -> None:
    heartbeat_path(folder, name).write_text(json.dumps({"writer": "run", "time": time.time() - age_s, "host": "h",
                                                        "pid": 1, "phase": "folds", "resume": "python x"}))


def test_a_running_run_reads_stalled_waiting_or_running_from_its_heartbeats(tmp_path):
    settings = HeartbeatSettings(interval_s=1, stall_after_s=60)
    killed = recorded_run(tmp_path / "killed", "running")
    old_heartbeat(killed, 120)
    assert run_status(read_run_entry(killed), settings)[0] == "stalled"
    beating = recorded_run(tmp_path / "beating", "running")
    old_heartbeat(beating, 1)
    assert run_status(read_run_entry(beating), settings)[0] == "running"
    # no heartbeat at all: a run written before heartbeats existed and killed, or one prepared for fold jobs
    silent = recorded_run(tmp_path / "silent", "running")
    os.utime(silent / "run.json", (time.time() - 120,) * 2)
    assert run_status(read_run_entry(silent), settings)[0] == "stalled"
    assert run_status(read_run_entry(silent), settings, now=time.time() - 100)[0] == "running"
    prepared = recorded_run(tmp_path / "prepared", "running", prepared_for_fold_jobs=True)
    os.utime(prepared / "run.json", (time.time() - 120,) * 2)
    assert run_status(read_run_entry(prepared), settings)[0] == "waiting"
    done = recorded_run(tmp_path / "done", "complete")
    old_heartbeat(done, 120, "explain")
    assert run_status(read_run_entry(done), settings)[0] == "complete"   # recorded end states stand
    assert json.loads((killed / "run.json").read_text())["status"] == "running"   # readers never rewrite it


def test_an_experiment_whose_driver_was_killed_reads_stalled_with_its_resume_command(tmp_path):
    folder = tmp_path / "experiments" / "remedies-x"
    folder.mkdir(parents=True)
    write_json(folder / "experiment.json", {"experiment_id": "remedies-x", "status": "running"})
    heartbeat_path(folder).write_text(json.dumps({
        "writer": "remedies", "time": time.time() - 600, "host": "h", "pid": 7, "phase": "starting",
        "resume": "python train_cli.py remedies --resume remedies-x --runs-dir runs"}))
    status, live = derived_status("running", folder, folder / "experiment.json")
    assert status == "stalled" and live.resume == ["python train_cli.py remedies --resume remedies-x --runs-dir runs"]
    assert derived_status("complete", folder, folder / "experiment.json")[0] == "complete"
