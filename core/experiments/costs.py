"""What each run of an experiment cost: the network's size and the time its folds took, read from the runs
(run.json `parameters`, `preprocessing`, `timings`; folds/fold*/fold.json `seconds`), so "is the bigger backbone
worth it?" has a price beside its effect."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.store import run_store as store
from core.training.run_inputs import shared_backbone

COLUMNS = ["remedy", "model", "image_size", "train_mode", "parameters", "trained_parameters", "folds",
           "seconds_per_fold", "features_seconds"]


def run_cost(run_dir: Path) -> dict:
    """One run's network and time: parameters (all, and those its training updates), mean seconds per finished
    fold, and the one-time seconds of its pretrained features (what a head-mode fold builds on)."""
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    seconds = [store.read_json(path)["seconds"] for path in sorted(Path(run_dir).glob("folds/fold*/fold.json"))]
    counts = info.get("parameters") or {}    # runs from before it was recorded: unknown
    total = counts.get("backbone", 0) + counts.get("head", 0) if counts else None
    trained = counts.get("head") if shared_backbone(info) else total   # --ssl-method trains the backbone too
    size = (info.get("preprocessing") or {}).get("size", info["config"]["image_size"])
    return {"model": info["model"]["name"], "image_size": int(size), "train_mode": info.get("train_mode"),
            "parameters": total, "trained_parameters": trained, "folds": len(seconds),
            "seconds_per_fold": float(np.mean(seconds)) if seconds else np.nan,
            "features_seconds": info.get("timings", {}).get("features", np.nan)}


def cost_table(baseline_dir: Path, remedy_runs: dict[str, Path]) -> pd.DataFrame:
    """The baseline's cost, then each remedy's, one row each."""
    rows = [{"remedy": "baseline", **run_cost(baseline_dir)}]
    rows += [{"remedy": remedy, **run_cost(run_dir)} for remedy, run_dir in remedy_runs.items()]
    return pd.DataFrame(rows, columns=COLUMNS)


def millions(count: float | None) -> str:
    return "-" if count is None or count != count else f"{count / 1e6:.1f} M"


def format_costs(table: pd.DataFrame) -> str:
    """The printed cost table: what each run's network is and what a fold of it took."""
    lines = ["cost per run (parameters: all / trained; seconds: mean per fold, and pretrained features once):",
             f"  {'remedy':<28} {'model':<20} {'px':>4} {'params':>9} {'trained':>9} {'s/fold':>7} {'features s':>10}"]
    for row in table.itertuples():
        per_fold = "-" if np.isnan(row.seconds_per_fold) else f"{row.seconds_per_fold:.1f}"
        features = "-" if row.features_seconds != row.features_seconds else f"{row.features_seconds:.1f}"
        lines.append(f"  {row.remedy:<28} {row.model:<20} {row.image_size:>4} {millions(row.parameters):>9} "
                     f"{millions(row.trained_parameters):>9} {per_fold:>7} {features:>10}")
    return "\n".join(lines)
