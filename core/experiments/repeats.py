"""Repeated k-fold (`--repeats R`): the same run R times with the folds drawn anew each time (`config.repeat`
0..R-1) and the same test split, and the spread of the scores over the repeats: on a small dataset one draw of
the folds is one sample of many, and the spread says how far its numbers may move. See docs/run-format.md.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from core.config import RunConfig
from core.errors import UserError
from core.experiments.remedy_runs import new_experiment
from core.run.execution import FoldExecutor
from core.run.lifecycle import complete_run, start_run
from core.store import run_store as store
from core.store.run_store import EXPERIMENT_SCHEMA_VERSION

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")


def repeat_scores(metrics_by_repeat: dict[int, dict]) -> pd.DataFrame:
    """One row per repeat: the pooled out-of-fold validation scores and the test ensemble's (NaN without a
    test split), from each repeat's metrics.json."""
    rows = []
    for repeat, metrics in metrics_by_repeat.items():
        row = {"repeat": repeat}
        for role, scores in (("val", metrics["oof"]["val"]), ("test", metrics.get("ensemble", {}).get("test", {}))):
            row.update({f"{role} {key}": scores.get(key, float("nan")) for key in SCORES})
        rows.append(row)
    return pd.DataFrame(rows)


def spread(scores: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per score: mean, std (sample, ddof 1), min and max over the repeats."""
    columns = scores.drop(columns="repeat")
    return {column: {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "min": float(values.min()),
                     "max": float(values.max())} for column, values in columns.items()}


def format_spread(summary: dict[str, dict[str, float]], repeats: int) -> str:
    lines = [f"spread over {repeats} repeats of the folds (mean ± std, min–max):"]
    lines += [f"  {name:<24} {100 * s['mean']:5.1f}% ± {100 * s['std']:4.1f}  ({100 * s['min']:.1f}–"
              f"{100 * s['max']:.1f}%)" for name, s in summary.items() if s["mean"] == s["mean"]]
    return "\n".join(lines)


def run_repeats(cfg: RunConfig, repeats: int, executor: FoldExecutor | None = None,
                log: Callable[[str], None] = print) -> Path:
    """Train `repeats` runs of `cfg`, repeat 0..R-1, one after another; write the experiment folder with each
    repeat's scores and their spread. A failed repeat stops the experiment (recorded in experiment.json)."""
    if repeats < 2:
        raise UserError(f"--repeats {repeats}: give 2 or more (1 is an ordinary run)")
    experiment_id, folder = new_experiment(Path(cfg.runs_dir), "repeats", cfg.name)
    document = {"schema_version": EXPERIMENT_SCHEMA_VERSION, "experiment_id": experiment_id, "kind": "repeats",
                "created": datetime.now(UTC).isoformat(timespec="seconds"), "status": "running",
                "error": None, "config": cfg.to_dict(), "repeats": repeats, "runs": [], "spread": None,
                "timings": {}}

    def write() -> None:
        store.write_json(folder / "experiment.json", document)

    write()
    log(f"experiment {experiment_id}: {repeats} repeats of the folds, one test split")
    metrics: dict[int, dict] = {}
    try:
        for repeat in range(repeats):
            started = time.perf_counter()
            name = f"{cfg.name}-repeat{repeat}" if cfg.name else f"repeat{repeat}"
            run_dir = start_run(dataclasses.replace(cfg, repeat=repeat, name=name), record={"experiment": {
                "kind": "repeats", "id": experiment_id, "role": "repeat", "repeat": repeat}})
            document["runs"].append({"repeat": repeat, "run_id": run_dir.name, "status": "running"})
            write()
            complete_run(run_dir, started, executor)
            document["runs"][-1]["status"] = "complete"
            document["timings"][f"repeat{repeat}"] = round(time.perf_counter() - started, 2)
            metrics[repeat] = store.read_json(run_dir / "metrics.json")
            write()
    except BaseException as exc:
        document.update(status="failed", error="interrupted" if isinstance(exc, KeyboardInterrupt)
                        else f"{type(exc).__name__}: {exc}")
        if document["runs"] and document["runs"][-1]["status"] == "running":
            document["runs"][-1]["status"] = "failed"
        write()
        raise
    scores = repeat_scores(metrics)
    store.write_parquet(folder / "repeats.parquet", scores)
    document.update(status="complete", spread=spread(scores))
    write()
    log(format_spread(document["spread"], repeats))
    return folder
