"""The run directory's writers: files readable like any ordinary file, and one writer per run at a time."""
from __future__ import annotations

import functools
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.store import run_store

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- modes

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_run_files_honour_the_umask_like_any_ordinary_write(tmp_path, umask_022):
    """A dashboard running as another account must be able to read what training wrote (mkstemp gave 0600)."""
    run_store.write_json(tmp_path / "run.json", {"status": "running"})
    run_store.write_parquet(tmp_path / "samples.parquet", pd.DataFrame({"sample_id": [0, 1]}))
    run_store.write_array(tmp_path / "embeddings" / "backbone.npy", np.zeros((2, 3), np.float16))
    with run_store.atomic_path(tmp_path / "folds" / "fold0" / "model.pt") as tmp:
        tmp.write_bytes(b"weights")
    written = [tmp_path / "run.json", tmp_path / "samples.parquet", tmp_path / "embeddings" / "backbone.npy",
               tmp_path / "folds" / "fold0" / "model.pt"]
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in written} == {
        path.name: "0o644" for path in written}
    os.umask(0o077)  # a user who wants private files gets them
    run_store.write_json(tmp_path / "private.json", {})
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------- the run lock

HOLD = """
import sys
from core.store import run_store
with run_store.run_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process that holds the run's lock until its stdin is closed (or it is killed)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_locked_by_a_live_process_is_refused_naming_it_and_free_once_it_finishes(tmp_path):
    holder = hold_lock(tmp_path)
    with pytest.raises(UserError, match=f"being written by process {holder.pid}; wait for it"):
        with run_store.run_lock(tmp_path):
            pass
    holder.communicate("\n", timeout=30)
    assert not (tmp_path / run_store.LOCK_FILE).exists()
    with run_store.run_lock(tmp_path):
        assert (tmp_path / run_store.LOCK_FILE).read_text() == str(os.getpid())
    assert not (tmp_path / run_store.LOCK_FILE).exists()


def test_the_lock_of_a_killed_writer_and_a_stale_lock_file_are_taken_over(tmp_path):
    holder = hold_lock(tmp_path)
    holder.kill()
    holder.wait(timeout=30)
    assert (tmp_path / run_store.LOCK_FILE).exists()  # killed: it could not clean up
    with run_store.run_lock(tmp_path):
        assert (tmp_path / run_store.LOCK_FILE).read_text() == str(os.getpid())
    (tmp_path / run_store.LOCK_FILE).write_text(str(holder.pid))  # what an older version left behind
    with run_store.run_lock(tmp_path):
        pass


def test_releasing_never_deletes_a_lock_file_that_is_not_the_one_taken(tmp_path):
    lock = tmp_path / run_store.LOCK_FILE
    with run_store.run_lock(tmp_path):
        replacement = tmp_path / "other"
        replacement.write_text("12345")
        os.replace(replacement, lock)  # e.g. another process that (wrongly) thought the lock stale
    assert lock.read_text() == "12345"


def _contend(run_dir: Path, rounds: int, start, done, inside, overlaps, taken) -> None:
    """One of two processes that both try to take a stale lock at the same moment, `rounds` times."""
    for _ in range(rounds):
        start.wait(timeout=60)
        try:
            with run_store.run_lock(run_dir):
                with inside.get_lock():
                    inside.value += 1
                    overlaps.value += inside.value > 1
                    taken.value += 1
                time.sleep(0.01)
                with inside.get_lock():
                    inside.value -= 1
        except UserError:
            pass
        done.wait(timeout=60)


def _plant_stale_lock(path: Path, dead_pid: int) -> None:
    path.write_text(str(dead_pid))


def test_two_processes_taking_over_a_stale_lock_at_once_never_both_hold_it(tmp_path):
    """Before each round a crashed writer's lock file is planted; both processes then try to take the run."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    # fork, not spawn: spawn re-runs __main__, which an earlier AppTest in the session leaves as a dashboard page
    context = multiprocessing.get_context("fork")
    rounds = 40
    start = context.Barrier(2, action=functools.partial(_plant_stale_lock, tmp_path / run_store.LOCK_FILE, dead.pid))
    done = context.Barrier(2)
    inside, overlaps, taken = context.Value("i", 0), context.Value("i", 0), context.Value("i", 0)
    workers = [context.Process(target=_contend, args=(tmp_path, rounds, start, done, inside, overlaps, taken))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert overlaps.value == 0
    assert taken.value >= rounds  # the stale lock never blocks: someone takes the run every round


def test_several_arrays_go_into_one_npz_atomically_and_read_back_without_pickle(tmp_path: Path) -> None:
    from core.store.run_store import write_npz
    path = tmp_path / "fold0" / "dynamics.npz"
    write_npz(path, sample_id=np.arange(3), prob=np.full((2, 3), 0.5, np.float16))
    with np.load(path, allow_pickle=False) as saved:
        assert saved["sample_id"].tolist() == [0, 1, 2] and saved["prob"].dtype == np.float16
    assert [p.name for p in path.parent.iterdir()] == ["dynamics.npz"]   # no temporary file left behind
