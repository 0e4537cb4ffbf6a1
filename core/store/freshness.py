"""Whether a complete run's assembled results (predictions, metrics, diagnostics) still match its folds: a fold
replaced afterwards (`train_cli.py fold RUN K --force`) is newer than them. Derived from the files' times at read
time, so neither the fold job nor a reader rewrites run.json."""
from __future__ import annotations

from pathlib import Path

from core.store.run_store import fold_dir


def replaced_folds(run_dir: Path, n_folds: int) -> list[int]:
    """Folds finished after the run's predictions were assembled (none while the run has not assembled any)."""
    assembled = Path(run_dir) / "predictions.parquet"
    if not assembled.exists():
        return []
    since = assembled.stat().st_mtime_ns
    return [k for k in range(n_folds)
            if (fold_dir(run_dir, k) / "fold.json").exists()
            and (fold_dir(run_dir, k) / "fold.json").stat().st_mtime_ns > since]


def stale_note(run_id: str, folds: list[int]) -> str:
    """What a reader says about a run whose folds were replaced after it was assembled."""
    which = ", ".join(str(k) for k in folds)
    return (f"fold{'s' if len(folds) > 1 else ''} {which} replaced after the run was assembled: its predictions, "
            f"metrics and diagnostics are stale; update them with: python train_cli.py --resume {run_id}")
