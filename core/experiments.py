"""Remedy experiments: a baseline and its remedies as ordinary runs on the same splits, plus an experiment folder
(RUNS_DIR/experiments/EXP_ID/) with the fold-paired effects and the learning curve. See docs/run-format.md.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from . import run_store as store
from .config import RunConfig
from .effects import EffectSettings, effects_table, format_effects
from .executors import FoldExecutor
from .fold_job import pick_device
from .learning_curve import CurveSettings, format_fits, learning_curve
from .remedies import Remedy, default_set, remedy_config, skip_reason
from .run_lifecycle import complete_run, new_run_id, resolve_train_mode, start_run

EXPERIMENT_SCHEMA_VERSION = 1


def shared_splits(run_dir: Path) -> pd.DataFrame:
    """A run's split and fold per image path: what the other runs of its experiment reuse."""
    return pd.read_parquet(Path(run_dir) / "samples.parquet", columns=["path", "split", "fold"])


def new_experiment(runs_dir: Path, kind: str, name: str = "") -> tuple[str, Path]:
    root = store.experiments_root(runs_dir)
    experiment_id = new_run_id(root, f"{kind}-{name}" if name else kind)
    path = root / experiment_id
    path.mkdir(parents=True)
    return experiment_id, path


def planned_remedies(cfg: RunConfig, chosen: list[Remedy] | None) -> tuple[str, list[Remedy], list[dict]]:
    """(training mode, remedies to run, {remedy, reason} skipped) before anything is trained."""
    mode, _ = resolve_train_mode(cfg.train_mode, pick_device())
    if chosen is None:
        runs, skipped = default_set(cfg, mode)
        return mode, runs, skipped
    reasons = {remedy.name: skip_reason(remedy, cfg, mode) for remedy in chosen}
    return (mode, [r for r in chosen if reasons[r.name] is None],
            [{"remedy": name, "reason": reason} for name, reason in reasons.items() if reason])


def _run(cfg: RunConfig, record: dict, executor: FoldExecutor | None, splits: pd.DataFrame | None = None) -> Path:
    started = time.perf_counter()
    return complete_run(start_run(cfg, splits=splits, record=record), started, executor)


def run_remedies(cfg: RunConfig, chosen: list[Remedy] | None = None, executor: FoldExecutor | None = None,
                 curve: CurveSettings | None = None, effect_settings: EffectSettings | None = None,
                 log: Callable[[str], None] = print) -> Path:
    """Train the baseline, each remedy on the baseline's splits, the learning curve; write the experiment folder.

    Every run is complete with diagnostics (the baseline's flag the label errors one remedy drops); one-time
    costs such as UMAP's compilation are paid once, since all runs train in this process."""
    curve, effect_settings = curve or CurveSettings(), effect_settings or EffectSettings()
    mode, remedies, skipped = planned_remedies(cfg, chosen)
    experiment_id, folder = new_experiment(Path(cfg.runs_dir), "remedies", cfg.name)
    document = {"schema_version": EXPERIMENT_SCHEMA_VERSION, "experiment_id": experiment_id, "kind": "remedies",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "running",
                "train_mode": mode, "config": cfg.to_dict(), "baseline": None, "runs": [], "skipped": skipped,
                "effect_settings": effect_settings.to_dict(), "curve_settings": curve.to_dict(), "timings": {}}

    def write() -> None:  # rewritten as each run finishes, so the dashboard shows an experiment in progress
        store.write_json(folder / "experiment.json", document)
    write()
    log(f"experiment {experiment_id}: baseline + {', '.join(r.name for r in remedies) or 'no remedies'}"
        + "".join(f"\n  skipped {s['remedy']}: {s['reason']}" for s in skipped))

    clock = time.perf_counter()
    record = {"kind": "remedies", "id": experiment_id}
    baseline = _run(dataclasses.replace(cfg, name=f"{cfg.name}-baseline" if cfg.name else "baseline"),
                    {"experiment": {**record, "role": "baseline"}}, executor)
    document.update(baseline=baseline.name)
    document["timings"]["baseline"] = round(time.perf_counter() - clock, 2)
    write()
    splits = shared_splits(baseline)

    remedy_runs: dict[str, Path] = {}
    for remedy in remedies:
        clock = time.perf_counter()
        run_splits, dropped = splits, None
        if remedy.drops_label_issues:
            dropped = _flagged_label_errors(baseline)
            if dropped is None or dropped.empty:
                reason = ("the baseline's diagnostics did not run, so no label errors are flagged"
                          if dropped is None else "the baseline's diagnostics flag no likely label errors")
                document["skipped"].append({"remedy": remedy.name, "reason": reason})
                write()
                continue
            store.write_parquet(folder / "dropped_label_errors.parquet", dropped)
            run_splits = splits[~splits.path.isin(dropped.path)]
        entry = {"remedy": remedy.name, "what": remedy.what, "overrides": remedy.overrides, "run_id": None,
                 "status": "running", "error": None}
        if dropped is not None:
            entry["dropped"] = {"file": "dropped_label_errors.parquet", "count": len(dropped)}
        document["runs"].append(entry)
        write()
        try:
            run_dir = _run(remedy_config(cfg, remedy),
                           {"experiment": {**record, "role": "remedy", "remedy": remedy.name,
                                           "splits_from": baseline.name,
                                           "left_out": 0 if dropped is None else len(dropped)}},
                           executor, splits=run_splits)
            remedy_runs[remedy.name] = run_dir
            entry.update(run_id=run_dir.name, status="complete")
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one remedy failing must not cost the others; recorded and reported
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            log(f"remedy {remedy.name} failed: {entry['error']}")
        document["timings"][remedy.name] = round(time.perf_counter() - clock, 2)
        write()

    clock = time.perf_counter()
    predictions, table, fits = learning_curve(baseline, curve, log)
    store.write_parquet(folder / "learning_curve_predictions.parquet", predictions)
    store.write_parquet(folder / "learning_curve.parquet", table)
    store.write_json(folder / "learning_curve_fit.json", {"settings": curve.to_dict(), "fits": fits})
    document["timings"]["learning_curve"] = round(time.perf_counter() - clock, 2)

    summary, per_fold, notes = effects_table(baseline, remedy_runs, effect_settings)
    write_effects(folder, summary, per_fold, notes, effect_settings)
    document["status"] = "complete"
    write()
    log(format_effects(summary, notes))
    log(format_fits(fits))
    return folder


def _flagged_label_errors(baseline: Path) -> pd.DataFrame | None:
    """The baseline's likely label errors (path, label, suggested label, quality); None without diagnostics."""
    path = baseline / "label_issues.parquet"
    if not path.exists():
        return None
    return pd.read_parquet(path, columns=["path", "label", "suggested_label", "quality"])


def write_effects(folder: Path, summary: pd.DataFrame, per_fold: pd.DataFrame, notes: list[dict],
                  settings: EffectSettings) -> None:
    store.write_parquet(folder / "effects.parquet", summary)
    store.write_parquet(folder / "effects_folds.parquet", per_fold)
    store.write_json(folder / "effects.json", {
        "settings": settings.to_dict(), "comparisons": notes,
        "method": "per fold: remedy minus baseline on the validation images both runs evaluate with the same "
                  "label; mean and paired Student-t interval over folds; test ensemble: paired bootstrap over "
                  "test images. An interval containing 0 is reported as 'no measurable effect'.",
        "effects": summary.to_dict(orient="records")})


def recompute_effects(runs_dir: Path, experiment: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """The effects again, from the stored predictions of the experiment's runs."""
    settings = EffectSettings(**experiment["effect_settings"])
    runs = {entry["remedy"]: Path(runs_dir) / entry["run_id"] for entry in experiment["runs"]
            if entry["status"] == "complete"}
    return effects_table(Path(runs_dir) / experiment["baseline"], runs, settings)
