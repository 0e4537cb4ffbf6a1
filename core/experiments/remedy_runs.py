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

from core.config import RunConfig
from core.data.cleaning import suspected_label_errors
from core.errors import UserError
from core.experiments.costs import cost_table, format_costs
from core.experiments.effects import EffectSettings, effects_table, format_effects
from core.experiments.learning_curve import CurveSettings, format_fits, learning_curve
from core.experiments.posthoc import derive_posthoc_folds
from core.experiments.remedies import Remedy, default_set, remedy_config, remedy_named, remedy_overrides, skip_reason
from core.experiments.self_training import derive_self_training_folds, format_pseudo_labels, no_pool_reason
from core.run.execution import FoldExecutor
from core.run.lifecycle import complete_run, new_run_id, resume, start_run
from core.store import run_store as store
from core.store.heartbeat import clear_stalled, heartbeat
from core.store.run_store import EXPERIMENT_SCHEMA_VERSION
from core.training.device import pick_device, resolve_train_mode


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


def run_remedies(cfg: RunConfig, chosen: list[Remedy] | None = None, executor: FoldExecutor | None = None,
                 curve: CurveSettings | None = None, effect_settings: EffectSettings | None = None,
                 log: Callable[[str], None] = print, add_pool: Callable[[Path], None] | None = None) -> Path:
    """Train the baseline, each remedy on the baseline's splits, the learning curve; write the experiment folder.

    Every run is complete with diagnostics (the baseline's flag the label errors one remedy drops); one-time
    costs such as UMAP's compilation are paid once, since all runs train in this process. `add_pool(baseline)`,
    when given, adds the baseline's unlabelled pool once it is trained (`remedies --unlabelled`): self-training
    pseudo-labels it and the ssl-* remedies learn from it too."""
    curve, effect_settings = curve or CurveSettings(), effect_settings or EffectSettings()
    mode, remedies, skipped = planned_remedies(cfg, chosen)
    experiment_id, folder = new_experiment(Path(cfg.runs_dir), "remedies", cfg.name)
    document = {"schema_version": EXPERIMENT_SCHEMA_VERSION, "experiment_id": experiment_id, "kind": "remedies",
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "running",
                "error": None, "train_mode": mode, "config": cfg.to_dict(), "planned": [r.name for r in remedies],
                "baseline": None, "runs": [], "skipped": skipped, "effect_settings": effect_settings.to_dict(),
                "curve_settings": curve.to_dict(), "timings": {}}
    store.write_json(folder / "experiment.json", document)
    log(f"experiment {experiment_id}: baseline + {', '.join(r.name for r in remedies) or 'no remedies'}"
        + "".join(f"\n  skipped {s['remedy']}: {s['reason']}" for s in skipped))
    return _carry_out(folder, document, cfg, executor, log, add_pool)


def resume_command(document: dict, runs_dir: str | Path) -> str:
    """The command that finishes an interrupted experiment, or retries the remedies that failed in it."""
    return f"python train_cli.py remedies --resume {document['experiment_id']} --runs-dir {runs_dir}"


def resume_remedies(runs_dir: Path, experiment_id: str, executor: FoldExecutor | None = None,
                    log: Callable[[str], None] = print, add_pool: Callable[[Path], None] | None = None) -> Path:
    """Finish an interrupted remedies experiment with the settings it was started with, or retry the remedies
    that failed in a complete one: its complete runs are kept, a run it left unfinished gets its missing folds,
    the remedies it had not reached are trained, and the learning curve (unless done) and the effects are
    computed."""
    document = store.find_experiment(Path(runs_dir), experiment_id)
    if document is None or document.get("kind") != "remedies":
        raise UserError(f"remedies --resume {experiment_id}: no remedies experiment of that name under "
                        f"{store.experiments_root(runs_dir)}; list them with: ls {store.experiments_root(runs_dir)}")
    if (document["status"] == "complete" and all(entry["status"] == "complete" for entry in document["runs"])
            and not _pool_can_come(document, Path(runs_dir), add_pool is not None)):
        raise UserError(f"remedies --resume {experiment_id}: that experiment is already complete; start a new one")
    if "planned" not in document:
        raise UserError(f"remedies --resume {experiment_id}: written by an older foldlens that did not record its "
                        "planned remedies, so it cannot be resumed; start a new one")
    folder = Path(document.pop("path"))
    # The mode it resolved when it started: `auto` may pick another here (a CUDA machine), and a remedy is only
    # comparable to a baseline trained the same way.
    cfg = dataclasses.replace(RunConfig.from_dict(document["config"]), runs_dir=str(runs_dir),
                              train_mode=document["train_mode"])
    log(f"experiment {experiment_id}: resuming baseline + {', '.join(document['planned']) or 'no remedies'}")
    return _carry_out(folder, document, cfg, executor, log, add_pool)


def _pool_can_come(document: dict, runs_dir: Path, adding: bool) -> bool:
    """Whether a remedy skipped for want of the baseline's pool can run now (a pool was added since, or is being
    added: `adding`)."""
    waiting = {s["remedy"] for s in document["skipped"]} & set(document.get("planned", []))
    return (any(remedy_named(name).uses_pool for name in waiting) and document["baseline"] is not None
            and (adding or store.pool_path(runs_dir / document["baseline"], "info").exists()))


def _carry_out(folder: Path, document: dict, cfg: RunConfig, executor: FoldExecutor | None,
               log: Callable[[str], None], add_pool: Callable[[Path], None] | None) -> Path:
    """Every step of the experiment not done yet, recording each run's id as it starts (so an interruption can
    be resumed) and the experiment's status; one process at a time (a lock on the folder)."""
    def write() -> None:  # rewritten as each run starts and finishes, so the dashboard shows it in progress
        store.write_json(folder / "experiment.json", document)

    with store.run_lock(folder, "experiment"), heartbeat(folder, "remedies", resume_command(document, cfg.runs_dir)):
        clear_stalled(folder)
        document.update(status="running", error=None)
        write()
        try:
            _train_runs(folder, document, cfg, executor, write, log, add_pool)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            hint = resume_command(document, cfg.runs_dir)
            document.update(status="failed", error=f"{reason} (finish it with: {hint})")
            write()
            log(f"experiment {document['experiment_id']} {reason}; finish it with: {hint}")
            raise
        document["status"] = "complete"
        write()
    return folder


def _train_runs(folder: Path, document: dict, cfg: RunConfig, executor: FoldExecutor | None,
                write: Callable[[], None], log: Callable[[str], None],
                add_pool: Callable[[Path], None] | None) -> None:
    runs_dir = Path(cfg.runs_dir)
    record = {"kind": "remedies", "id": document["experiment_id"]}

    def finished(run_id: str | None, start: Callable[[], Path], on_start: Callable[[Path], None],
                 before_folds: Callable[[Path], object] = lambda run_dir: None) -> tuple[Path, bool]:
        """(the run `run_id`, completed if it is not, or a new run from `start` when there is none to resume;
        whether any of it was trained now). `on_start` records a new run's id before it trains; `before_folds`
        may write folds that then need no training."""
        entry = store.find_run(runs_dir, run_id) if run_id else None
        if entry is not None and entry.status == "complete":
            return entry.path, False
        if entry is not None and entry.info is not None:
            log(f"resuming run {run_id}")
            before_folds(entry.path)
            return resume(runs_dir, run_id, executor), True
        run_dir = start()
        on_start(run_dir)
        before_folds(run_dir)
        return complete_run(run_dir, time.perf_counter(), executor), True

    def record_baseline(run_dir: Path) -> None:
        document["baseline"] = run_dir.name
        write()

    clock = time.perf_counter()
    baseline, trained = finished(document["baseline"], lambda: start_run(
        dataclasses.replace(cfg, name=f"{cfg.name}-baseline" if cfg.name else "baseline"),
        record={"experiment": {**record, "role": "baseline"}}), record_baseline)
    if trained:
        _add_timing(document, "baseline", clock)
        write()
    if add_pool is not None and not store.pool_path(baseline, "info").exists():
        add_pool(baseline)
    splits = shared_splits(baseline)

    remedy_runs: dict[str, Path] = {}
    for remedy in map(remedy_named, document["planned"]):
        entry = next((e for e in document["runs"] if e["remedy"] == remedy.name), None)
        if entry is not None and entry["status"] == "complete":   # kept from before an interruption
            remedy_runs[remedy.name] = runs_dir / entry["run_id"]
            continue
        clock = time.perf_counter()
        run_splits, dropped = splits, None
        if remedy.drops_label_issues:
            dropped = _flagged_label_errors(baseline)
            if dropped is None or dropped.empty:
                reason = ("the baseline's diagnostics did not run, so no label errors are flagged"
                          if dropped is None else "the baseline's diagnostics flag no likely label errors")
                if all(s["remedy"] != remedy.name for s in document["skipped"]):
                    document["skipped"].append({"remedy": remedy.name, "reason": reason})
                    write()
                continue
            store.write_parquet(folder / "dropped_label_errors.parquet", dropped)
            run_splits = splits[~splits.path.isin(dropped.path)]
        if remedy.uses_pool:
            if not store.pool_path(baseline, "info").exists():
                if all(s["remedy"] != remedy.name for s in document["skipped"]):
                    document["skipped"].append({"remedy": remedy.name, "reason": no_pool_reason(baseline)})
                    write()
                continue
            document["skipped"] = [s for s in document["skipped"] if s["remedy"] != remedy.name]   # a pool came
        if entry is None:
            entry = {"remedy": remedy.name, "what": remedy.what, "overrides": remedy_overrides(remedy), "run_id": None}
            document["runs"].append(entry)
        entry.update(status="running", error=None)
        if dropped is not None:
            entry["dropped"] = {"file": "dropped_label_errors.parquet", "count": len(dropped)}
        write()

        def record_remedy(run_dir: Path, entry: dict = entry) -> None:
            entry["run_id"] = run_dir.name
            write()
        try:
            run_dir, _ = finished(entry["run_id"], lambda: start_run(
                remedy_config(cfg, remedy), splits=run_splits,
                record={"experiment": {**record, "role": "remedy", "remedy": remedy.name,
                                       "splits_from": baseline.name,
                                       "left_out": 0 if dropped is None else len(dropped)}}), record_remedy,
                before_folds=lambda run_dir: _derive_folds(remedy, baseline, run_dir))
            remedy_runs[remedy.name] = run_dir
            pseudo = store.read_self_training(run_dir)
            if pseudo is not None:
                log(format_pseudo_labels(pseudo[0]))
            entry.update(run_id=run_dir.name, status="complete")
        except KeyboardInterrupt:
            entry.update(status="failed", error="interrupted")
            raise
        except Exception as exc:  # one remedy failing must not cost the others; recorded and reported
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            log(f"remedy {remedy.name} failed: {entry['error']}; the others go on (retry it with: "
                f"{resume_command(document, cfg.runs_dir)})")
        _add_timing(document, remedy.name, clock)
        write()

    curve = CurveSettings(**document["curve_settings"])
    if (folder / "learning_curve_fit.json").exists():  # done before the interruption: same runs, same settings
        fits = store.read_json(folder / "learning_curve_fit.json")["fits"]
    else:
        clock = time.perf_counter()
        predictions, table, fits = learning_curve(baseline, curve, log)
        store.write_parquet(folder / "learning_curve_predictions.parquet", predictions)
        store.write_parquet(folder / "learning_curve.parquet", table)
        store.write_json(folder / "learning_curve_fit.json", {"settings": curve.to_dict(), "fits": fits})
        _add_timing(document, "learning_curve", clock)

    effect_settings = EffectSettings(**document["effect_settings"])
    summary, per_fold, notes = effects_table(baseline, remedy_runs, effect_settings)
    write_effects(folder, summary, per_fold, notes, effect_settings)
    costs = cost_table(baseline, remedy_runs)
    store.write_parquet(folder / "costs.parquet", costs)
    log(format_effects(summary, notes))
    log(format_costs(costs))
    log(format_fits(fits))


def _derive_folds(remedy: Remedy, baseline: Path, run_dir: Path) -> None:
    """The folds a remedy derives from the baseline's instead of training them the ordinary way (none for most)."""
    if remedy.posthoc:
        derive_posthoc_folds(baseline, run_dir)
    elif remedy.uses_pool:
        derive_self_training_folds(baseline, run_dir)


def _add_timing(document: dict, step: str, since: float) -> None:
    """Seconds of `step` since `since`, added to what earlier attempts of the experiment spent on it."""
    timings = document["timings"]
    timings[step] = round(timings.get(step, 0) + time.perf_counter() - since, 2)


def _flagged_label_errors(baseline: Path) -> pd.DataFrame | None:
    """The baseline's likely label errors, those its detectors agree on (path, label, suggested label, quality);
    None without diagnostics."""
    path = baseline / "label_issues.parquet"
    if not path.exists():
        return None
    return suspected_label_errors(pd.read_parquet(path))[["path", "label", "suggested_label", "quality"]]


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
