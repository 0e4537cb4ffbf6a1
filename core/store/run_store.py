"""The run directory: atomic writers for `core`, safe readers for the dashboard (see docs/run-format.md)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from core.store.safe_write import storage_errors

SCHEMA_VERSION = 2   # run.json; 2: metrics.json stores confusion matrices as their nonzero cells
READABLE_SCHEMA_VERSIONS = (1, 2)   # 1's dense confusion rows are still read (core.evaluate.dense_confusion)
EXPERIMENT_SCHEMA_VERSION = 1   # experiments/EXP_ID/experiment.json, of remedies and of tune alike
RUN_JSON = "run.json"
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EXPERIMENTS_DIR = "experiments"   # RUNS_DIR/experiments/EXP_ID/: results of a group of runs, not a run
# RUNS_DIR/small-classes.csv: every class a refused start found too small for the folds (the latest refusal's)
SMALL_CLASSES_CSV = "small-classes.csv"


# ---------------------------------------------------------------- atomic writes

@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` in one rename.

    The file is created with mode 0o666 less the umask, like any ordinary write (mkstemp's 0600 would hide runs
    and caches from a dashboard running as another account).
    """
    path = Path(path)
    with storage_errors(path):  # a full disk or a refused write: one line naming the path (safe_write.py)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it becomes `path` in one rename, so readers see the
    whole folder or nothing. A folder already at `path` (left by an unfinished older attempt) is replaced; on
    failure the temporary folder is removed."""
    path = Path(path)
    with storage_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        tmp.mkdir()
        try:
            yield tmp
            if path.exists():
                shutil.rmtree(path)
            os.rename(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def remove_stale_temporaries(path: Path) -> None:
    """Delete what atomic_path/atomic_dir attempts for `path` left behind when their process was killed."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Several arrays in one compressed .npz (np.load reads it without pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def update_run_json(run_dir: Path, **changes) -> dict:
    """Read-modify-write of run.json (only the process that owns the run calls this)."""
    info = read_json(Path(run_dir) / RUN_JSON)
    info.update(changes)
    write_json(Path(run_dir) / RUN_JSON, info)
    return info


# run.json's diagnostics_error of a run made without its diagnostics on purpose (tuning trials) begins with this
DIAGNOSTICS_SKIPPED = "not computed yet"


def diagnostics_skipped(info: dict) -> bool:
    """Whether the run's diagnostics were left out by design (not failed): nothing is wrong, they can be computed."""
    return str(info.get("diagnostics_error") or "").startswith(DIAGNOSTICS_SKIPPED)


def record_timing(run_dir: Path, stage: str, seconds: float, add: bool = False) -> None:
    """run.json's `timings[stage]`; add=True accumulates (a resumed run adds each attempt's time)."""
    timings = read_json(Path(run_dir) / RUN_JSON)["timings"]
    timings[stage] = round(seconds + (timings.get(stage, 0.0) if add else 0.0), 2)
    update_run_json(run_dir, timings=timings)


# ---------------------------------------------------------------- one writer per run

LOCK_FILE = ".lock"
LOCK_ATTEMPTS = 20  # each retry means another writer took and released the lock meanwhile


@contextmanager
def run_lock(run_dir: Path, what: str = "run") -> Iterator[None]:
    """Only one process writes a run: it holds an exclusive flock on RUN_ID/.lock, which names its pid.
    `what`: the kind of folder, as a refusal names it (an experiment or a study is locked the same way).

    The kernel drops the lock when its holder dies, so a crashed writer's lock is free without anyone judging
    it stale, and two processes can never both take one over. The holder deletes the file on release, but only
    while it is still the file it locked; a process that opened the old file before the deletion sees that
    the path now names another file (or none) and tries again.
    """
    import fcntl  # POSIX only, and only writers lock: the dashboard imports this module too

    from core.errors import UserError

    path = Path(run_dir) / LOCK_FILE
    for _ in range(LOCK_ATTEMPTS):
        with storage_errors(path):  # a runs folder this user may not write
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _lock_holder(path)
            raise UserError(f"{what} {Path(run_dir).name} is being written by "
                            f"{f'process {holder}' if holder else 'another process'}; "
                            f"wait for it to finish or stop it first") from None
        if _names_file(path, fd):
            break
        os.close(fd)  # released and deleted by its holder between our open and our flock
    else:
        raise UserError(f"{what} {Path(run_dir).name}: could not take its lock file {path}; try again")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        if _names_file(path, fd):
            path.unlink()
        os.close(fd)


def _names_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


def _lock_holder(path: Path) -> str:
    """The pid a lock's holder wrote, or "" (not written yet, or already released)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return ""
    return text if text.isdigit() else ""


# ---------------------------------------------------------------- layout

DYNAMICS_FILE = "dynamics.npz"   # folds/fold{k}/: the training dynamics of fold k's training part


def fold_dir(run_dir: Path, fold: int) -> Path:
    return Path(run_dir) / "folds" / f"fold{fold}"


def embedding_path(run_dir: Path, space: str) -> Path:
    return Path(run_dir) / "embeddings" / f"{space}.npy"


DRIFT_DIR = "drift"   # drift/YYYYMMDDTHHMMSSZ.json: one `train_cli.py drift` result each


def drift_path(run_dir: Path, when: datetime) -> Path:
    return Path(run_dir) / DRIFT_DIR / f"{when.strftime('%Y%m%dT%H%M%SZ')}.json"


def latest_drift(run_dir: Path) -> dict | None:
    """The newest readable drift result of the run, or None when drift was never checked."""
    for path in sorted((Path(run_dir) / DRIFT_DIR).glob("*.json"), reverse=True):
        try:
            return read_json(path)
        except ValueError:   # a damaged file: the one before it
            continue
    return None


POOL_DIR = "pool"   # pool/: unlabelled images added by `train_cli.py pool RUN_ID --add` (docs/run-format.md)
POOL_FILES = {"table": "pool.parquet", "features": "backbone.npy", "probabilities": "probabilities.npy",
              "info": "pool.json", "picks": "picks.parquet"}


def pool_path(run_dir: Path, part: str) -> Path:
    """A file of the run's unlabelled pool: "table", "features", "probabilities", "info" or "picks"."""
    return Path(run_dir) / POOL_DIR / POOL_FILES[part]


@dataclass
class Pool:
    """The run's unlabelled pool as stored: one row per distinct file content (pool_id order), its pretrained
    features in the run's reference space (the rows of embeddings/backbone.npy's space) and the fold ensemble's
    probabilities (columns in run.json `classes` order)."""
    table: pd.DataFrame
    features: np.ndarray        # float32 [n, dim]
    probabilities: np.ndarray   # float32 [n, n_classes]
    info: dict

    @property
    def ids(self) -> np.ndarray:
        return self.table["pool_id"].to_numpy()

    @property
    def paths(self) -> list[str]:
        return self.table["path"].tolist()

    def apart_from_labelled(self) -> np.ndarray:
        """Rows neither identical to nor a near-duplicate of a labelled image of any split: what a fold may
        learn from (pseudo-labels, self-supervision) without a validation or test image coming back through the
        pool."""
        return (self.table["labelled_sample_id"].isna() & self.table["near_labelled_sample_id"].isna()).to_numpy()


def read_pool(run_dir: Path) -> Pool | None:
    """The run's pool, or None when none was added (pool.json is written last: its presence means complete)."""
    if not pool_path(run_dir, "info").exists():
        return None
    return Pool(table=pd.read_parquet(pool_path(run_dir, "table")),
                features=np.load(pool_path(run_dir, "features")).astype(np.float32),
                probabilities=np.load(pool_path(run_dir, "probabilities")).astype(np.float32),
                info=read_json(pool_path(run_dir, "info")))


def read_picks(run_dir: Path) -> pd.DataFrame | None:
    """The last `train_cli.py pool RUN_ID --budget N` ranking, or None."""
    path = pool_path(run_dir, "picks")
    return pd.read_parquet(path) if path.exists() else None


SELF_TRAINING_DIR = "self_training"   # a self-training remedy run's pseudo-labels (docs/run-format.md)
SELF_TRAINING_FILES = {"pseudo_labels": "pseudo_labels.parquet", "per_class": "per_class.parquet",
                       "info": "self_training.json"}


def self_training_path(run_dir: Path, part: str) -> Path:
    """A file of a self-training remedy run's record: "pseudo_labels", "per_class" or "info"."""
    return Path(run_dir) / SELF_TRAINING_DIR / SELF_TRAINING_FILES[part]


def read_self_training(run_dir: Path) -> tuple[pd.DataFrame, dict] | None:
    """(pseudo-labels per fold and class, the record) of a self-training remedy run; None for any other run."""
    if not self_training_path(run_dir, "info").exists():
        return None
    return pd.read_parquet(self_training_path(run_dir, "per_class")), read_json(self_training_path(run_dir, "info"))


# ---------------------------------------------------------------- reading (dashboard side)

@dataclass
class RunEntry:
    run_id: str
    path: Path
    status: str          # running | complete | failed | damaged
    created: str
    error: str | None
    info: dict | None    # parsed run.json, None when damaged


def is_safe_run_id(run_id: str) -> bool:
    return bool(RUN_ID_PATTERN.match(run_id or "")) and ".." not in run_id


def list_runs(runs_dir: Path) -> list[RunEntry]:
    """Every run folder under `runs_dir`, newest first. Damaged runs are listed with their error."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    entries = []
    for child in runs_dir.iterdir():
        if (not child.is_dir() or not is_safe_run_id(child.name) or child.name.startswith(".")
                or child.name == EXPERIMENTS_DIR):
            continue
        entries.append(read_run_entry(child))
    return sorted(entries, key=lambda e: (e.created, e.run_id), reverse=True)


def read_run_entry(run_dir: Path) -> RunEntry:
    run_dir = Path(run_dir)
    try:
        info = read_json(run_dir / RUN_JSON)
        if not isinstance(info, dict):  # `[]` or `null` would break every reader of the list of runs
            raise ValueError(f"a JSON object was expected, not {type(info).__name__}")
        version = info.get("schema_version")
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} is from a newer foldlens (this one reads {SCHEMA_VERSION}); "
                             f"upgrade foldlens to read it")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(f"schema_version {version!r}, this version reads {READABLE_SCHEMA_VERSIONS}")
        return RunEntry(run_dir.name, run_dir, info["status"], info.get("created", ""), info.get("error"), info)
    except FileNotFoundError:
        return RunEntry(run_dir.name, run_dir, "damaged", "", "run.json is missing", None)
    except (ValueError, KeyError, TypeError) as exc:
        return RunEntry(run_dir.name, run_dir, "damaged", "", f"run.json is unreadable: {exc}", None)


def find_run(runs_dir: Path, run_id: str) -> RunEntry | None:
    """Look a run id up among the listed runs only: never builds a path from untrusted input."""
    return next((entry for entry in list_runs(runs_dir) if entry.run_id == run_id), None)


def require_run(runs_dir: Path, run_id: str) -> RunEntry:
    """A listed, readable run, or a UserError saying there is none (for commands given a run id)."""
    from core.errors import UserError

    entry = find_run(Path(runs_dir), run_id)
    if entry is None or entry.info is None:
        raise UserError(f"run {run_id}: no such run under {runs_dir}{'' if entry is None else f' ({entry.error})'}; "
                        f"list them with: ls {runs_dir}")
    from core.store.run_check import check_run_files
    check_run_files(entry.path)  # a damaged file refused here, in one line, not deep inside the command
    return entry


def run_signature(run_dir: Path) -> tuple:
    """Changes whenever any file of the run changes: a cache key for readers."""
    run_dir = Path(run_dir)
    stats = []
    for name in (RUN_JSON, "samples.parquet", "predictions.parquet", "history.parquet", "metrics.json",
                 "findings.json", "diagnostics.json", "umap.parquet", DRIFT_DIR, POOL_DIR):   # a folder: its mtime
        path = run_dir / name
        stats.append(path.stat().st_mtime_ns if path.exists() else 0)
    return tuple(stats)


def read_table(run_dir: Path, name: str) -> pd.DataFrame | None:
    """A parquet file of the run, or None when it is not (yet) there."""
    path = Path(run_dir) / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def read_optional_json(run_dir: Path, name: str):
    path = Path(run_dir) / f"{name}.json"
    return read_json(path) if path.exists() else None


def read_embedding(run_dir: Path, space: str) -> np.ndarray | None:
    path = embedding_path(run_dir, space)
    return np.load(path) if path.exists() else None


# ---------------------------------------------------------------- experiments (groups of runs)

def experiments_root(runs_dir: Path) -> Path:
    return Path(runs_dir) / EXPERIMENTS_DIR


def list_experiments(runs_dir: Path) -> list[dict]:
    """experiment.json of every experiment under RUNS_DIR/experiments, newest first (unreadable ones skipped)."""
    root = experiments_root(runs_dir)
    found = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        path = child / "experiment.json"
        if child.is_dir() and is_safe_run_id(child.name) and path.is_file():
            try:
                found.append({**read_json(path), "path": str(child)})
            except ValueError:
                continue
    return sorted(found, key=lambda e: (e.get("created", ""), e.get("experiment_id", "")), reverse=True)


def find_experiment(runs_dir: Path, experiment_id: str) -> dict | None:
    """Looked up among the listed experiments only: never builds a path from untrusted input."""
    return next((e for e in list_experiments(runs_dir) if e.get("experiment_id") == experiment_id), None)
