"""`train_cli.py runs rm`: delete a run folder, never one a writer is working on, never a path outside the runs
folder."""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from core.errors import UserError
from core.store.heartbeat import HeartbeatSettings, liveness
from core.store.run_store import find_run, run_lock


def remove_run(runs_dir: Path, run_id: str, settings: HeartbeatSettings | None = None) -> Path:
    """Remove a listed run; refused while any writer of it (the run, a fold job, explain) beats, on this machine
    or another, or holds its lock here. The folder is renamed to a hidden name first, so readers see the whole
    run or none of it. Returns the removed path."""
    entry = find_run(Path(runs_dir), run_id)   # looked up among listed runs: no path is built from the input
    if entry is None:
        raise UserError(f"runs rm {run_id}: no such run under {runs_dir}; list them with: python train_cli.py runs "
                        f"--runs-dir {runs_dir}")
    live = liveness(entry.path, settings)
    if live.alive:
        beat = live.alive[0]
        raise UserError(f"runs rm {run_id}: its writer is alive ({beat.describe()}); stop it first")
    with run_lock(entry.path):
        doomed = entry.path.parent / f".{entry.path.name}.{secrets.token_hex(8)}.removing"
        entry.path.rename(doomed)
    shutil.rmtree(doomed)
    return entry.path
