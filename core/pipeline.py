"""A run from start to finish: scan, split, backbone features, one self-contained job per fold, assemble.

Each fold job reads only run.json, samples.parquet and embeddings/backbone.npy and writes only
folds/fold{k}/ (and embeddings/fold{k}.npy), so folds can run anywhere and a crashed run resumes
fold by fold.
"""
from __future__ import annotations

import platform
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from . import run_store as store
from .cleaning import manifest_origin
from .config import RunConfig
from .data import scan_dataset
from .errors import UserError
from .evaluate import compute_metrics, ensemble_table, prediction_table
from .features import (cached_features, compute_features, eval_transform, feature_cache_key, image_loader,
                       inference_batch_size, train_transform)
from .gpu_input import ResidentBatches, fits_on_device, resident_images
from .models import (Architecture, Classifier, build_classifier, check_model_name, classifier_from_network,
                     imagenet_network, rebuild_classifier)
from .splits import assign_splits, check_split_settings
from .train import balanced_sampler, fit, wants_compile
from .weights import file_sha256

log = tqdm.write  # prints above progress bars


# ---------------------------------------------------------------- environment

def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def resolve_train_mode(requested: str, device: torch.device) -> tuple[str, str]:
    if requested not in ("auto", "head", "finetune"):
        raise UserError(f"--train-mode {requested}: choose head, finetune or auto")
    if requested != "auto":
        return requested, f"--train-mode {requested} was asked for"
    if device.type == "cuda":
        return "finetune", "auto: CUDA is available, so all layers are fine-tuned"
    return "head", "auto: no CUDA device, so the backbone is frozen and only the head is trained on cached features"


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


def validate_config(cfg: RunConfig) -> None:
    """Checks that need no data, so a typo fails before the scan."""
    check_model_name(cfg.model)
    check_split_settings(cfg.folds, cfg.test_size)
    for name, value, allowed in (("--balance", cfg.balance, ("none", "weights", "sampler")),
                                 ("--compile", cfg.compile, ("auto", "on", "off")),
                                 ("--image-input", cfg.image_input, ("auto", "resident", "loader"))):
        if value not in allowed:
            raise UserError(f"{name} {value}: choose one of {', '.join(allowed)}")
    for name, value in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size), ("--image-size", cfg.image_size)):
        if value < 1:
            raise UserError(f"{name} {value}: must be a positive whole number")
    if cfg.image_size < 16:
        raise UserError(f"--image-size {cfg.image_size}: at least 16 pixels")
    if not cfg.lr > 0:
        raise UserError(f"--lr {cfg.lr}: must be positive")
    for name, value in (("--weight-decay", cfg.weight_decay), ("--warmup-epochs", cfg.warmup_epochs),
                        ("--backbone-lr-mult", cfg.backbone_lr_mult)):
        if value < 0:
            raise UserError(f"{name} {value}: must not be negative")
    if cfg.patience < 1:
        raise UserError(f"--patience {cfg.patience}: must be at least 1 epoch")
    if not 0 <= cfg.label_smoothing < 1:
        raise UserError(f"--label-smoothing {cfg.label_smoothing}: must be in [0, 1)")


# ---------------------------------------------------------------- start

def start_run(cfg: RunConfig) -> Path:
    """Everything that can reject the input happens before the run folder exists."""
    validate_config(cfg)
    started = time.perf_counter()
    dataset = scan_dataset(cfg.data)
    samples = dataset.samples
    use_groups = dataset.has_groups and cfg.use_groups
    groups = samples.group if use_groups else None
    split, fold = assign_splits(samples.label, groups, cfg.folds, cfg.test_size, cfg.seed)
    scan_seconds = time.perf_counter() - started
    log(f"data: {len(samples)} images in {len(dataset.classes)} classes from {dataset.root}"
        f"{f', {len(dataset.skipped)} skipped' if dataset.skipped else ''}"
        f"{'; splits grouped by the group column' if use_groups else ''}")

    device = pick_device()
    mode, reason = resolve_train_mode(cfg.train_mode, device)
    log(f"mode: {mode} ({reason})")
    torch.manual_seed(cfg.seed)
    _, arch, weights = build_classifier(cfg.model, len(dataset.classes), cfg.weights, log=log)

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
                    "test_share": round(float((split == "test").mean()), 4),
                    "derived_from": manifest_origin(dataset.manifest)},
        "classes": dataset.classes, "class_counts": samples.label.value_counts().reindex(dataset.classes).to_dict(),
        "device": describe_device(device), "train_mode": mode, "train_mode_reason": reason,
        "model": arch.to_dict(), "weights": weights.record(cfg.weights), "spaces": [], "folds_done": [],
        "timings": {"scan": round(scan_seconds, 2)}, "versions": library_versions(), "skipped": dataset.skipped})
    log(f"run: {run_dir}")
    return run_dir


def backbone_network(info: dict) -> Classifier:
    """The run's pretrained network rebuilt from what run.json recorded: architecture and weights file.

    Fold jobs and resumed runs load the recorded file (checked by sha256), never a fresh lookup by name,
    so a cache that changed since the run started cannot swap the weights under it.
    """
    arch = Architecture.from_dict(info["model"])
    network = imagenet_network(arch.name, arch.stride_on_1x1)
    weights = info["weights"]
    if weights["path"]:
        path = Path(weights["path"])
        if not path.is_file() or file_sha256(path) != weights["sha256"]:
            raise UserError(f"run {info['run_id']}: its weights file {path} is missing or changed since the run "
                            f"started (sha256 {weights['sha256'][:12]}…); start a new run")
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    classifier, _ = classifier_from_network(network, arch.name, len(info["classes"]), arch.stride_on_1x1)
    return classifier


def ensure_backbone_embeddings(run_dir: Path) -> np.ndarray:
    """embeddings/backbone.npy: pretrained features of every sample (from the content-addressed cache)."""
    path = store.embedding_path(run_dir, "backbone")
    if path.exists():
        return np.load(path).astype(np.float32)
    info, cfg, samples = load_run_inputs(run_dir)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)  # `--weights none`: the same random backbone on a resume
    classifier = backbone_network(info)
    weights_sha = info["weights"]["sha256"]
    key = feature_cache_key(info["model"], weights_sha, cfg.image_size) if weights_sha else None
    features, computed = cached_features(classifier.backbone, image_paths(info, samples), list(samples.sha256), key,
                                         Path(cfg.cache_dir), cfg.image_size, max(cfg.batch_size, 64), pick_device(),
                                         cfg.num_workers)
    log(f"features: {computed} computed, {len(samples) - computed} from cache ({time.perf_counter() - started:.1f} s)")
    store.write_array(path, features.astype(np.float16))
    store.update_run_json(run_dir, spaces=["backbone"])
    _record_timing(run_dir, "features", time.perf_counter() - started)
    return features


# ---------------------------------------------------------------- one fold

def load_run_inputs(run_dir: Path) -> tuple[dict, RunConfig, pd.DataFrame]:
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    return info, RunConfig.from_dict(info["config"]), pd.read_parquet(Path(run_dir) / "samples.parquet")


def image_paths(info: dict, samples: pd.DataFrame) -> list[Path]:
    root = Path(info["dataset"]["root"])
    return [root / p for p in samples.path]


def fold_parts(samples: pd.DataFrame, fold: int) -> dict[str, np.ndarray]:
    """Sample indices per role for one fold."""
    in_cv = (samples.split == "cv").to_numpy()
    fold_of = samples.fold.fillna(-1).to_numpy()
    return {"train": np.flatnonzero(in_cv & (fold_of != fold)), "val": np.flatnonzero(fold_of == fold),
            "test": np.flatnonzero(~in_cv)}


def _train_loader(inputs, labels: np.ndarray, cfg: RunConfig, generator: torch.Generator, make_loader) -> DataLoader:
    sampler = balanced_sampler(labels, generator) if cfg.balance == "sampler" else None
    return make_loader(inputs, labels, shuffle=sampler is None, sampler=sampler)


def _fit_head(features: np.ndarray, labels: np.ndarray, parts: dict, cfg: RunConfig, device: torch.device,
              fold: int, num_classes: int):
    """Head mode: a linear layer on frozen backbone features."""
    generator = torch.Generator().manual_seed(cfg.seed + fold)
    head = nn.Linear(features.shape[1], num_classes)
    x = torch.from_numpy(features)
    y = torch.from_numpy(np.ascontiguousarray(labels).copy())

    def loader(index, _labels, shuffle=False, sampler=None):
        return DataLoader(TensorDataset(x[index], y[index]), batch_size=cfg.batch_size, shuffle=shuffle,
                          sampler=sampler, generator=generator)
    result = fit(head.to(device), [{"params": head.parameters(), "lr": cfg.lr}],
                 _train_loader(parts["train"], labels[parts["train"]], cfg, generator, loader),
                 loader(parts["val"], None), labels[parts["train"]], num_classes, cfg, device, desc=f"fold {fold}",
                 batch_progress=False)  # a head epoch takes milliseconds: a bar per epoch would only flicker
    with torch.inference_mode():
        probs = torch.softmax(head.eval()(x.to(device)).float(), 1).cpu().numpy()
    return result, probs, None, {"head": result.best_state}


def _fit_finetune(info: dict, samples: pd.DataFrame, labels: np.ndarray, parts: dict, cfg: RunConfig,
                  device: torch.device, fold: int, num_classes: int):
    """Finetune mode: all layers, the backbone at a lower learning rate than the new head.

    Images are decoded once into device memory and augmented there when they fit (image_input auto: on CUDA
    with room to spare), else read by DataLoader workers; resident/loader force one path, on any device.
    """
    generator = torch.Generator().manual_seed(cfg.seed + fold)
    model = backbone_network(info).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True  # fixed input shapes: find the fastest convolutions once
    paths = image_paths(info, samples)
    resident = (fits_on_device(len(paths), cfg.image_size, device) if cfg.image_input == "auto"
                else cfg.image_input == "resident")
    images = resident_images(paths, list(samples.sha256), cfg.image_size, device) if resident else None

    def loader(index, _labels=None, shuffle=False, sampler=None, train=True):
        batch_size = cfg.batch_size if train else inference_batch_size(cfg.batch_size, device)
        drop_last = train and len(index) > batch_size  # batch norm cannot train on a last batch of one image
        if images is not None:
            return ResidentBatches(images, labels, index, cfg.image_size, batch_size, train=train, sampler=sampler,
                                   generator=generator, drop_last=drop_last)
        transform = train_transform(cfg.image_size) if train else eval_transform(cfg.image_size)
        return image_loader([paths[i] for i in index], labels[index], transform, batch_size, shuffle=shuffle,
                            sampler=sampler, num_workers=cfg.num_workers, generator=generator, drop_last=drop_last)
    groups = [{"params": model.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_mult},
              {"params": model.head.parameters(), "lr": cfg.lr}]
    train_batches = _train_loader(parts["train"], labels[parts["train"]], cfg, generator, loader)
    compile_model = wants_compile(cfg.compile, device, cfg.epochs * len(train_batches) * cfg.batch_size)
    source = "images decoded once into device memory" if images is not None else "images read through a DataLoader"
    log(f"fold {fold}: {source}{', network compiled' if compile_model else ''}")
    result = fit(model, groups, train_batches, loader(parts["val"], train=False), labels[parts["train"]],
                 num_classes, cfg, device, desc=f"fold {fold}", compile_model=compile_model)
    embedding = compute_features(model.backbone, loader(np.arange(len(paths)), train=False), device)
    with torch.inference_mode():
        probs = torch.softmax(model.head(torch.from_numpy(embedding).to(device)).float(), 1).cpu().numpy()
    return result, probs, embedding, {"model": result.best_state}


def run_fold(run_dir: Path, fold: int) -> dict:
    """The fold job: run.json + samples.parquet + fold index in, folds/fold{k}/ out."""
    run_dir = Path(run_dir)
    started = time.perf_counter()
    info, cfg, samples = load_run_inputs(run_dir)
    classes, device = info["classes"], pick_device()
    labels = samples.label_index.to_numpy()
    parts = fold_parts(samples, fold)
    torch.manual_seed(cfg.seed + fold)
    if info["train_mode"] == "head":
        features = ensure_backbone_embeddings(run_dir)
        result, probs, embedding, checkpoint = _fit_head(features, labels, parts, cfg, device, fold, len(classes))
    else:
        result, probs, embedding, checkpoint = _fit_finetune(info, samples, labels, parts, cfg, device, fold,
                                                             len(classes))
    out = store.fold_dir(run_dir, fold)
    predictions = pd.concat([prediction_table(index, labels[index], probs[index], f"fold{fold}", fold, role, classes)
                             for role, index in parts.items() if len(index)], ignore_index=True)
    history = pd.DataFrame(result.history).assign(fold=fold)
    history["is_best"] = history.epoch == result.best_epoch
    store.write_parquet(out / "predictions.parquet", predictions)
    store.write_parquet(out / "history.parquet", history[["fold", "epoch", "phase", "loss", "accuracy",
                                                          "balanced_accuracy", "lr", "is_best"]])
    if embedding is not None:
        store.write_array(store.embedding_path(run_dir, f"fold{fold}"), embedding.astype(np.float16))
    with store.atomic_path(out / "model.pt") as tmp:
        torch.save(checkpoint, tmp)
    summary = {"fold": fold, "status": "complete", "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "stopped_early": result.stopped_early, "seconds": round(time.perf_counter() - started, 2)}
    store.write_json(out / "fold.json", summary)
    return summary


def load_fold_model(run_dir: Path, fold: int) -> nn.Module:
    """Rebuild fold k's best network from its checkpoint (same architecture as recorded)."""
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    checkpoint = torch.load(store.fold_dir(run_dir, fold) / "model.pt", map_location="cpu", weights_only=True)
    arch = Architecture.from_dict(info["model"])
    if "head" in checkpoint:
        head = nn.Linear(arch.feature_dim, len(info["classes"]))
        head.load_state_dict(checkpoint["head"])
        return head
    model = rebuild_classifier(arch, len(info["classes"]))
    model.load_state_dict(checkpoint["model"])
    return model


# ---------------------------------------------------------------- assemble

def done_folds(run_dir: Path, n_folds: int) -> list[int]:
    return [k for k in range(n_folds) if (store.fold_dir(run_dir, k) / "fold.json").exists()]


def assemble(run_dir: Path) -> dict:
    """Top-level history, predictions (+ test ensemble) and metrics from the finished folds."""
    info, cfg, _ = load_run_inputs(run_dir)
    finished = done_folds(run_dir, cfg.folds)
    predictions = pd.concat([pd.read_parquet(store.fold_dir(run_dir, k) / "predictions.parquet") for k in finished],
                            ignore_index=True)
    predictions = pd.concat([predictions, ensemble_table(predictions, info["classes"])], ignore_index=True)
    history = pd.concat([pd.read_parquet(store.fold_dir(run_dir, k) / "history.parquet") for k in finished],
                        ignore_index=True)
    metrics = compute_metrics(predictions, info["classes"])
    store.write_parquet(run_dir / "predictions.parquet", predictions)
    store.write_parquet(run_dir / "history.parquet", history)
    store.write_json(run_dir / "metrics.json", metrics)
    spaces = ["backbone"] + [f"fold{k}" for k in finished if store.embedding_path(run_dir, f"fold{k}").exists()]
    store.update_run_json(run_dir, folds_done=finished, spaces=spaces)
    return metrics


def _record_timing(run_dir: Path, stage: str, seconds: float, add: bool = False) -> None:
    timings = store.read_json(run_dir / store.RUN_JSON)["timings"]
    timings[stage] = round(seconds + (timings.get(stage, 0.0) if add else 0.0), 2)
    store.update_run_json(run_dir, timings=timings)


def run_diagnostics_step(run_dir: Path) -> str | None:
    """Diagnostics never cost the trained folds: a failure is recorded (and returned), the run still completes."""
    started = time.perf_counter()
    error = None
    try:
        from .diagnostics import run_diagnostics
        run_diagnostics(run_dir, log=log)
    except Exception as exc:  # recorded, shown by the dashboard, recomputable with `diagnose`
        error = f"{type(exc).__name__}: {exc}"
        log(f"diagnostics failed: {error} (rerun with: python train_cli.py diagnose {run_dir.name})")
    store.update_run_json(run_dir, diagnostics_error=error)
    _record_timing(run_dir, "diagnostics", time.perf_counter() - started)
    return error


def complete_run(run_dir: Path, started: float) -> Path:
    """Run every fold not yet done, assemble, diagnose; record failure in run.json and re-raise."""
    run_dir = Path(run_dir)
    with store.run_lock(run_dir):
        store.update_run_json(run_dir, status="running", error=None)
        try:
            _, cfg, _ = load_run_inputs(run_dir)
            ensure_backbone_embeddings(run_dir)  # the head's inputs, and the reference space in every mode
            todo = [k for k in range(cfg.folds) if k not in done_folds(run_dir, cfg.folds)]
            for k in tqdm(todo, desc="folds", unit="fold"):
                summary = run_fold(run_dir, k)
                _record_timing(run_dir, f"fold{k}", summary["seconds"])
                log(f"fold {k}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
                    f"({summary['seconds']:.1f} s)")
                assemble_started = time.perf_counter()
                assemble(run_dir)  # after every fold, so the dashboard shows a run in progress
                _record_timing(run_dir, "evaluate", time.perf_counter() - assemble_started, add=True)
            if not todo:
                assemble(run_dir)
            run_diagnostics_step(run_dir)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            resume_hint = f"finish it with: python train_cli.py --resume {run_dir.name}"
            store.update_run_json(run_dir, status="failed", error=f"{reason} ({resume_hint})")
            log(f"run {run_dir.name} failed: {reason}; {resume_hint}")
            raise
        # A resumed run's total adds this process's wall time to what earlier attempts recorded.
        _record_timing(run_dir, "total", time.perf_counter() - started, add=True)
        store.update_run_json(run_dir, status="complete", error=None)
    return run_dir


def train(cfg: RunConfig) -> Path:
    started = time.perf_counter()
    return complete_run(start_run(cfg), started)


def resume(runs_dir: str | Path, run_id: str) -> Path:
    entry = store.find_run(Path(runs_dir), run_id)
    if entry is None or entry.info is None:
        raise UserError(f"--resume {run_id}: no such run under {runs_dir}"
                        f"{'' if entry is None else f' ({entry.error})'}; list them with: ls {runs_dir}")
    if entry.status == "complete":
        raise UserError(f"--resume {run_id}: that run is already complete; start a new one instead")
    return complete_run(entry.path, time.perf_counter())
