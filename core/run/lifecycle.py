"""A run's lifecycle: start it (scan, split, run.json), complete it fold by fold, assemble, diagnose, resume.

Everything that can reject the input happens before the run folder exists; after that, a failure is recorded
in run.json and `--resume` finishes the run.
"""
from __future__ import annotations

import dataclasses
import platform
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from core.config import RunConfig
from core.data.cleaning import manifest_origin
from core.data.dataset import label_conflicts, scan_dataset
from core.data.splits import assign_splits, share_warning
from core.errors import UserError
from core.evaluate import compute_metrics, ensemble_table
from core.run.execution import FoldExecutor
from core.run.executors import LocalExecutor
from core.run.small_classes import describe as describe_dropped
from core.run.small_classes import trainable_classes
from core.run.source_splits import describe as describe_splits
from core.run.source_splits import shared_record, source_splits
from core.run.split_units import describe as describe_units
from core.run.split_units import split_units
from core.store import run_store as store
from core.store.freshness import replaced_folds
from core.store.hashing import changed_files
from core.store.heartbeat import clear_stalled, heartbeat
from core.training.backbone_space import (
    EMBEDDER,
    embedder_record,
    ensure_backbone_embeddings,
    ensure_embedder_embeddings,
    pretrained_features,
    store_backbone_embeddings,
)
from core.training.device import describe_device, fold_threads, pick_device, resolve_train_mode
from core.training.fold_job import done_folds
from core.training.models import parameter_count
from core.training.preprocessing import Preprocessing, run_preprocessing
from core.training.run_inputs import image_paths, load_run_inputs
from core.training.self_supervised import require_lightly
from core.training.weights import build_classifier

log = tqdm.write  # prints above progress bars


def library_versions() -> dict:
    import PIL
    import sklearn
    import torchvision
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
            "pillow": PIL.__version__}


def new_run_id(runs_dir: Path, name: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    # Only what run_store.is_safe_run_id accepts, so the dashboard, --resume and diagnose can find it.
    clean = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", name)).strip("-.")[:60]
    base = f"{stamp}-{clean}" if clean else stamp
    run_id, n = base, 2
    while (runs_dir / run_id).exists():
        run_id, n = f"{base}-{n}", n + 1
    return run_id


# ---------------------------------------------------------------- start

def apply_splits(samples: pd.DataFrame, splits: pd.DataFrame, folds: int) -> tuple[pd.DataFrame, np.ndarray,
                                                                                   np.ndarray]:
    """Keep the samples listed in `splits` (path, split, fold: another run's samples.parquet, possibly
    filtered) with that run's split and fold, so runs of one experiment share their splits exactly."""
    given = splits.set_index("path")
    missing = given.index.difference(samples.path)
    if len(missing):
        raise UserError(f"{len(missing)} images of the shared splits are no longer in the data (e.g. {missing[0]}); "
                        f"the data changed since the reference run: start a new experiment")
    if given.fold.max() >= folds:
        raise UserError(f"--folds {folds}: the shared splits have {int(given.fold.max()) + 1} folds; use that many")
    kept = samples[samples.path.isin(given.index)].reset_index(drop=True)
    rows = given.loc[kept.path]
    return kept, rows.split.to_numpy(dtype=object), rows.fold.fillna(-1).to_numpy(dtype=np.int64)


def plan_units(cfg: RunConfig, samples: pd.DataFrame, use_groups: bool, backbone: torch.nn.Module, arch: dict,
               weights_sha256: str | None, prep: Preprocessing, image_root: Path):
    """The units a split moves whole (groups, identical files, near-duplicates when asked).
    Returns (units, pretrained features or None, seconds spent on them)."""
    units = split_units(samples, use_groups, "off" if cfg.dedup_groups == "off" else "exact")
    features, features_seconds = None, 0.0
    if cfg.dedup_groups == "near":   # the splits need the pretrained features: compute (or read) them first
        features_started = time.perf_counter()
        features = pretrained_features(backbone, arch, weights_sha256, prep, cfg,
                                       [image_root / p for p in samples.path], list(samples.sha256))
        features_seconds = time.perf_counter() - features_started
        # float16 as stored in the run, so the diagnostics find exactly the pairs the splits joined
        units = split_units(samples, use_groups, "near", features.astype(np.float16))
    return units, features, features_seconds


def draw_splits(cfg: RunConfig, samples: pd.DataFrame, root: Path, unit: np.ndarray,
                origin: dict | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Split and fold per sample from the images' content and the seed, keeping the source run's for the images
    a cleaned manifest (`origin`: its dataset.derived_from) shares with it; and run.json's dataset.splits_from."""
    source = source_splits(cfg, samples, root, origin)
    split, fold = assign_splits(samples.label, unit, cfg.folds, cfg.test_size, cfg.seed, content=samples.sha256,
                                keep=source.keep, repeat=cfg.repeat)
    if source.keep is not None:   # count what was kept: a unit joining images the source split apart keeps one side
        reused = int(((split == source.keep[0]) & (fold == source.keep[1])).sum())
        source.record.update(reused=reused, new=len(samples) - reused)
    log(describe_splits(source.record))
    if source.warning:
        log(f"warning: {source.warning}")
    return split, fold, source.record


def reference_splits(cfg: RunConfig) -> pd.DataFrame:
    """path, split, fold as start_run(cfg) would draw them, without starting a run (a study's fixed splits)."""
    cfg.validate()
    dataset = scan_dataset(cfg.data)
    use_groups = dataset.has_groups and cfg.use_groups
    dataset, _ = trainable_classes(cfg, dataset, use_groups)
    torch.manual_seed(cfg.seed)
    classifier, arch, weights = build_classifier(cfg.model, len(dataset.classes), cfg.weights, log=log)
    units, *_ = plan_units(cfg, dataset.samples, use_groups, classifier.backbone, arch.to_dict(), weights.sha256,
                           run_preprocessing(cfg), dataset.root)
    split, fold, _ = draw_splits(cfg, dataset.samples, dataset.root, units.unit, manifest_origin(dataset.manifest))
    return pd.DataFrame({"path": dataset.samples.path, "split": split,
                         "fold": pd.array(np.where(fold >= 0, fold, None), dtype="Int64")})


def start_run(cfg: RunConfig, splits: pd.DataFrame | None = None, record: dict | None = None) -> Path:
    """Everything that can reject the input happens before the run folder exists.

    splits: use these (path, split, fold) instead of drawing new ones; samples not listed are left out.
    record: extra keys for run.json (e.g. the experiment a run belongs to)."""
    cfg.validate()
    ssl_library = {"lightly": require_lightly()} if cfg.ssl_method else {}   # before any work, as bad input
    prep = run_preprocessing(cfg)
    started = time.perf_counter()
    dataset = scan_dataset(cfg.data)
    use_groups = dataset.has_groups and cfg.use_groups
    dropped = []
    if splits is None or cfg.drop_small_classes:   # given splits were drawn from these settings: they fit
        dataset, dropped = trainable_classes(cfg, dataset, use_groups)
    samples = dataset.samples
    if splits is not None:
        samples, given_split, given_fold = apply_splits(samples, splits, cfg.folds)
    scan_seconds = time.perf_counter() - started
    # what the user gave (a manifest's images may live anywhere: a cleaned one lists them by absolute path)
    source = cfg.data if dataset.manifest is None else f"{cfg.data} (images under {dataset.root})"
    log(f"data: {len(samples)} images in {len(dataset.classes)} classes from {source}"
        f"{f', {len(dataset.skipped)} skipped' if dataset.skipped else ''}"
        f"{'; splits grouped by the group column' if use_groups else ''}")
    if dropped:
        log(describe_dropped(dropped))

    device = pick_device()
    mode, reason = resolve_train_mode(cfg.train_mode, device)
    log(f"mode: {mode} ({reason})")
    # Fixed here and recorded: a fold's numbers depend on the thread count, which Ray sets per task.
    cfg = dataclasses.replace(cfg, threads=fold_threads(cfg.threads, mode, bool(cfg.ssl_method)))
    torch.manual_seed(cfg.seed)
    classifier, arch, weights = build_classifier(cfg.model, len(dataset.classes), cfg.weights, log=log)
    embedder = embedder_record(cfg.embedder, log) if cfg.embedder else None
    units, features, features_seconds = plan_units(cfg, samples, use_groups, classifier.backbone, arch.to_dict(),
                                                   weights.sha256, prep, dataset.root)
    origin = manifest_origin(dataset.manifest)
    if splits is None:   # from content; a cleaned manifest's images keep the splits of the run it was cleaned from
        split, fold, splits_from = draw_splits(cfg, samples, dataset.root, units.unit, origin)
    else:   # the units are still recorded; the splits are the shared ones
        split, fold = given_split, given_fold
        splits_from = shared_record(len(samples), (record or {}).get("experiment", {}).get("splits_from"))
        log(f"splits: shared, {len(samples)} of the reference's {len(splits)} images")
    test_share = float((split == "test").mean())
    # kept splits (given, or a cleaned manifest's source's) hold out what they held out, less what was dropped
    split_warning = (share_warning(cfg.test_size, test_share) if cfg.test_size > 0 and splits_from["method"] ==
                     "content" else None)
    log(describe_units(units.summary))
    if split_warning:
        log(f"warning: {split_warning}")
    conflicts = label_conflicts(samples)
    if conflicts:   # trained anyway; the diagnostics list them all in a finding
        first = conflicts[0]
        log(f"warning: {len(conflicts)} identical file(s) carry different labels, e.g. the same image is labelled "
            f"{' and '.join(first['labels'])} ({', '.join(first['paths'])})")
    runs_dir = Path(cfg.runs_dir)
    run_id = new_run_id(runs_dir, cfg.name)
    run_dir = runs_dir / run_id
    run_dir.mkdir(parents=True)
    class_index = {name: i for i, name in enumerate(dataset.classes)}
    table = pd.DataFrame({
        "sample_id": np.arange(len(samples), dtype=np.int64), "path": samples.path, "label": samples.label,
        "label_index": samples.label.map(class_index).astype(np.int64), "group": samples.group.astype("string"),
        "split": split, "fold": pd.array(np.where(fold >= 0, fold, None), dtype="Int64"),
        "width": samples.width.astype(np.int64), "height": samples.height.astype(np.int64), "sha256": samples.sha256})
    store.write_parquet(run_dir / "samples.parquet", table)
    store.write_json(run_dir / store.RUN_JSON, {
        "schema_version": store.SCHEMA_VERSION, "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running", "error": None, "config": cfg.to_dict(),
        "dataset": {"root": str(dataset.root), "manifest": dataset.manifest, "n_images": len(samples),
                    "n_skipped": len(dataset.skipped), "has_groups": dataset.has_groups, "groups_used": use_groups,
                    "test_share": round(test_share, 4), "split_warning": split_warning,
                    "split_units": units.summary, "derived_from": origin, "splits_from": splits_from,
                    "dropped_classes": dropped},
        "classes": dataset.classes, "class_counts": samples.label.value_counts().reindex(dataset.classes).to_dict(),
        "superclasses": dataset.superclasses,
        "device": describe_device(device), "train_mode": mode, "train_mode_reason": reason,
        "model": arch.to_dict(), "weights": weights.record(cfg.weights), "preprocessing": prep.to_dict(),
        "parameters": {"backbone": parameter_count(classifier.backbone), "head": parameter_count(classifier.head)},
        "embedder": embedder, "spaces": [], "folds_done": [],
        "timings": {"scan": round(scan_seconds, 2)}, "versions": {**library_versions(), **ssl_library}, "skipped": dataset.skipped,
        **(record or {})})
    if features is not None:
        store_backbone_embeddings(run_dir, features, features_seconds)
    log(f"run: {run_dir}")
    return run_dir


# ---------------------------------------------------------------- assemble, diagnose, complete

def assemble(run_dir: Path) -> dict:
    """Top-level history, predictions (+ test ensemble) and metrics from the finished folds."""
    info, cfg, _ = load_run_inputs(run_dir)
    finished = done_folds(run_dir, cfg.folds)
    predictions = pd.concat([pd.read_parquet(store.fold_dir(run_dir, k) / "predictions.parquet") for k in finished],
                            ignore_index=True)
    predictions = pd.concat([predictions, ensemble_table(predictions, info["classes"])], ignore_index=True)
    history = pd.concat([pd.read_parquet(store.fold_dir(run_dir, k) / "history.parquet") for k in finished],
                        ignore_index=True)
    metrics = compute_metrics(predictions, info["classes"], info.get("superclasses"))
    store.write_parquet(run_dir / "predictions.parquet", predictions)
    store.write_parquet(run_dir / "history.parquet", history)
    store.write_json(run_dir / "metrics.json", metrics)
    spaces = ["backbone"] + [name for name in [EMBEDDER] + [f"fold{k}" for k in finished]
                             if store.embedding_path(run_dir, name).exists()]
    # metrics.json is now in this version's form, whichever version started the run (a resumed older run)
    store.update_run_json(run_dir, folds_done=finished, spaces=spaces, schema_version=store.SCHEMA_VERSION)
    return metrics


def run_diagnostics_step(run_dir: Path) -> str | None:
    """Diagnostics never cost the trained folds: a failure is recorded (and returned), the run still completes."""
    started = time.perf_counter()
    error = None
    try:
        from core.analysis.diagnostics import run_diagnostics
        run_diagnostics(run_dir, log=log)
    except Exception as exc:  # recorded, shown by the dashboard, recomputable with `diagnose`
        error = f"{type(exc).__name__}: {exc}"
        log(f"diagnostics failed: {error} (rerun with: python train_cli.py diagnose {run_dir.name})")
    store.update_run_json(run_dir, diagnostics_error=error)
    store.record_timing(run_dir, "diagnostics", time.perf_counter() - started)
    return error


class StopRun(Exception):
    """Raised by an on_fold callback to end a run early on purpose (a pruned tuning trial): run.json gets
    `status` and the message as `error`, and the exception reaches the caller."""
    status = "stopped"


def complete_run(run_dir: Path, started: float, executor: FoldExecutor | None = None,
                 on_fold: Callable[[dict, dict], None] | None = None, diagnose: bool = True) -> Path:
    """Run every fold not yet done through `executor` (default: in this process), assemble after each,
    diagnose; record failure in run.json and re-raise. on_fold(summary, metrics) is called after each fold.
    diagnose=False leaves diagnostics for `train_cli.py diagnose` (run.json's diagnostics_error says so)."""
    run_dir = Path(run_dir)
    executor = executor or LocalExecutor()
    with store.run_lock(run_dir), heartbeat(run_dir, "run", resume_command(run_dir)) as beat:
        clear_stalled(run_dir)   # what killed writers of this run left: this process takes over their work
        store.update_run_json(run_dir, status="running", error=None, execution=executor.describe())
        try:
            _, cfg, _ = load_run_inputs(run_dir)
            beat.update("backbone features")
            ensure_backbone_embeddings(run_dir)  # the head's inputs, and the reference space in every mode
            ensure_embedder_embeddings(run_dir)  # the diagnostics' second space, with --embedder
            todo = [k for k in range(cfg.folds) if k not in done_folds(run_dir, cfg.folds)]
            beat.update("folds", cfg.folds - len(todo), cfg.folds)
            for summary in tqdm(executor.run_folds(run_dir, todo), total=len(todo), desc="folds", unit="fold"):
                k = summary["fold"]
                beat.update("folds", len(done_folds(run_dir, cfg.folds)), cfg.folds)
                store.record_timing(run_dir, f"fold{k}", summary["seconds"])
                log(f"fold {k}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
                    f"({summary['seconds']:.1f} s)")
                assemble_started = time.perf_counter()
                metrics = assemble(run_dir)  # after every fold, so the dashboard shows a run in progress
                store.record_timing(run_dir, "evaluate", time.perf_counter() - assemble_started, add=True)
                if on_fold is not None:
                    on_fold(summary, metrics)
            if not todo:
                assemble(run_dir)
            beat.update("diagnostics")
            if diagnose:
                run_diagnostics_step(run_dir)
            else:
                store.update_run_json(run_dir, diagnostics_error=f"{store.DIAGNOSTICS_SKIPPED}; compute them with: "
                                                                 f"python train_cli.py diagnose {run_dir.name}")
        except StopRun as stop:
            store.update_run_json(run_dir, status=stop.status, error=str(stop))
            log(f"run {run_dir.name} {stop.status}: {stop}")
            raise
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            resume_hint = f"finish it with: {resume_command(run_dir)}"
            log(f"run {run_dir.name} failed: {reason}; {resume_hint}")  # first: on a full disk the next line fails
            store.update_run_json(run_dir, status="failed", error=f"{reason} ({resume_hint})")
            raise
        # A resumed run's total adds this process's wall time to what earlier attempts recorded.
        store.record_timing(run_dir, "total", time.perf_counter() - started, add=True)
        store.update_run_json(run_dir, status="complete", error=None)
    return run_dir


def run_new(cfg: RunConfig, executor: FoldExecutor | None = None) -> Path:
    """A new run from start to end: scan, splits, every fold, assembly and diagnostics; returns its folder."""
    started = time.perf_counter()
    return complete_run(start_run(cfg), started, executor)


def prepare(cfg: RunConfig) -> Path:
    """Start a run and compute what its fold jobs read, without running a fold: for `train_cli.py fold` jobs
    sent to a cluster's scheduler; `--resume` then assembles (and runs any fold still missing)."""
    run_dir = start_run(cfg)
    with store.run_lock(run_dir), heartbeat(run_dir, "prepare", resume_command(run_dir)) as beat:
        beat.update("backbone features")
        ensure_backbone_embeddings(run_dir)
        ensure_embedder_embeddings(run_dir)
        # run.json's status stays `running`: readers show it `waiting` for its fold jobs, not stalled
        store.update_run_json(run_dir, prepared_for_fold_jobs=True)
    return run_dir


def resume_command(run_dir: Path) -> str:
    """The command that finishes a run left unfinished (--runs-dir only when it is not the default)."""
    runs_dir = Path(run_dir).parent
    where = "" if runs_dir == Path(RunConfig().runs_dir) else f" --runs-dir {runs_dir}"
    return f"python train_cli.py --resume {Path(run_dir).name}{where}"


def resume(runs_dir: str | Path, run_id: str, executor: FoldExecutor | None = None,
           assemble_only: bool = False) -> Path:
    """Finish a run: its missing folds, assembly and diagnostics; a complete run whose folds were replaced since
    it was assembled is assembled and diagnosed again. assemble_only: refuse, listing them, when folds are
    missing (a job without a GPU that must not train them)."""
    entry = store.require_run(runs_dir, run_id)
    n_folds = entry.info["config"]["folds"]
    if entry.status == "complete" and not replaced_folds(entry.path, n_folds):
        raise UserError(f"--resume {run_id}: that run is already complete; start a new one instead")
    if assemble_only:
        missing = [k for k in range(n_folds) if k not in done_folds(entry.path, n_folds)]
        if missing:
            runs = "" if Path(runs_dir) == Path(RunConfig().runs_dir) else f" --runs-dir {runs_dir}"
            raise UserError(f"--resume {run_id} --assemble-only: fold{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(map(str, missing))} of {n_folds} not done; run "
                            f"{'them' if len(missing) > 1 else 'it'} first: python train_cli.py fold {run_id} "
                            f"{missing[0]}{runs}{' (and so on)' if len(missing) > 1 else ''}")
    started = time.perf_counter()
    check_images_unchanged(entry.path)
    return complete_run(entry.path, started, executor)


def check_images_unchanged(run_dir: Path) -> None:
    """The missing folds must train on the bytes the finished ones did, and features computed now must not be
    cached under a hash of other bytes: every image is checked against the sha256 recorded at scan time."""
    started = time.perf_counter()
    info, _, samples = load_run_inputs(run_dir)
    changed = changed_files(image_paths(info, samples), list(samples.sha256))
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        state = "is missing" if not changed[0].exists() else "has changed"
        raise UserError(f"--resume {run_dir.name}: {changed[0]} {state} since the run scanned it{more}; restore "
                        f"it, or start a new run on the changed data")
    log(f"images: all {len(samples)} match the sha256 recorded at scan time ({time.perf_counter() - started:.1f} s)")
