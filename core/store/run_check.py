"""Whether a run's files can be read, checked cheaply before anything uses them: each parquet file's footer, each
JSON file as an object, each embedding's header and shape. A damaged run is then refused in one line that names
the file (commands: exit 2; the dashboard: that run's error, every other run still works) instead of failing
somewhere inside a page or a computation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.errors import UserError


class DamagedRunError(UserError):
    """A file of a run cannot be read: truncated, not JSON, an array of the wrong shape."""


def damaged(path: Path, run_dir: Path, why: str) -> DamagedRunError:
    why = " ".join(why.split())[:200]  # one line, whatever the library's message was
    run_id = Path(run_dir).name
    return DamagedRunError(f"run {run_id} is damaged: {path} cannot be read ({why}); restore the file, or move "
                           f"the run out of the runs folder (a diagnostics file: python train_cli.py diagnose "
                           f"{run_id} after removing it)")


def check_run_files(run_dir: Path) -> None:
    """Raise DamagedRunError for the first file of `run_dir` that cannot be read; files not there yet are fine."""
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    rows = None
    tables = sorted(run_dir.glob("*.parquet")) + sorted(run_dir.glob("folds/fold*/*.parquet"))
    for path in tables:
        try:
            count = pq.read_metadata(path).num_rows
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise damaged(path, run_dir, f"{type(exc).__name__}: {exc}") from exc
        rows = count if path.name == "samples.parquet" and path.parent == run_dir else rows
    for path in sorted(run_dir.glob("*.json")) + sorted(run_dir.glob("folds/fold*/*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise damaged(path, run_dir, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(document, dict):
            raise damaged(path, run_dir, f"a JSON object was expected, not {type(document).__name__}")
    for path in sorted(run_dir.glob("embeddings/*.npy")):
        check_embedding(path, run_dir, rows)


def check_embedding(path: Path, run_dir: Path, rows: int | None) -> None:
    """An embedding is a 2-D array with one row per sample, and as long on disk as its header says."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(path, run_dir, f"{type(exc).__name__}: {exc}") from exc
    if array.ndim != 2 or (rows is not None and array.shape[0] != rows):
        raise damaged(path, run_dir, f"shape {tuple(array.shape)}, expected ({rows if rows is not None else 'n'}"
                                     f", dim): one row per sample")
