"""The fold job: a run directory and a fold index in, folds/fold{k}/ (and embeddings/fold{k}.npy) out.

It reads only run.json, samples.parquet and embeddings/backbone.npy, so a fold can run in this process, in a
Ray worker or as its own command on a cluster node, and a crashed run resumes fold by fold.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from core.config import RunConfig
from core.evaluate import prediction_table
from core.store import run_store as store
from core.training.backbone_space import ensure_backbone_embeddings
from core.training.device import choose_fast_paths, pick_device
from core.training.features import (cached_features, compute_features, eval_transform, feature_cache_key, image_loader,
                                    inference_batch_size, module_sha256, train_transform)
from core.training.dynamics import DynamicsRecorder
from core.training.fit import balanced_sampler, fit
from core.training.gpu_input import ResidentBatches, fits_on_device, resident_images
from core.training.logit_adjust import adjust_head, log_prior, posthoc_offset
from core.training.models import Architecture, Classifier, rebuild_classifier
from core.training.preprocessing import recorded_preprocessing
from core.training.run_inputs import fold_parts, image_paths, load_run_inputs, unlabelled_images
from core.training.self_supervised import continue_pretraining
from core.training.weights import recorded_classifier

log = tqdm.write  # prints above progress bars


# ---------------------------------------------------------------- inputs



def _train_loader(inputs, labels: np.ndarray, cfg: RunConfig, generator: torch.Generator,
                  make_loader) -> DataLoader:
    """Batches of (inputs, targets, positions within the training part), for the training dynamics."""
    sampler = balanced_sampler(labels, generator) if cfg.balance == "sampler" else None
    return make_loader(inputs, labels, shuffle=sampler is None, sampler=sampler, positions=True)


def _adjust_posthoc(model: nn.Module, head: nn.Linear, train_labels: np.ndarray, cfg: RunConfig, num_classes: int,
                    checkpoint: dict, key: str) -> dict:
    """Post hoc logit adjustment (cfg.logit_adjust_posthoc) folded into the trained head's bias, and the
    checkpoint that saves it; the checkpoint unchanged when it is off."""
    if not cfg.logit_adjust_posthoc:
        return checkpoint
    adjust_head(head, posthoc_offset(log_prior(train_labels, num_classes), cfg.logit_adjust_posthoc))
    return {key: {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}}


def _head_fit(features: np.ndarray, labels: np.ndarray, parts: dict, cfg: RunConfig, device: torch.device,
              fold: int, num_classes: int, desc: str):
    """A linear layer on frozen backbone features, its training dynamics recorded. Returns (head, fit result)."""
    generator = torch.Generator().manual_seed(cfg.seed + fold)
    head = nn.Linear(features.shape[1], num_classes)
    x = torch.from_numpy(features)
    y = torch.from_numpy(np.ascontiguousarray(labels).copy())

    def loader(index, _labels, shuffle=False, sampler=None, positions=False):
        tensors = (x[index], y[index]) + ((torch.arange(len(index)),) if positions else ())
        return DataLoader(TensorDataset(*tensors), batch_size=cfg.batch_size, shuffle=shuffle,
                          sampler=sampler, generator=generator)
    result = fit(head.to(device), [{"params": head.parameters(), "lr": cfg.lr}],
                 _train_loader(parts["train"], labels[parts["train"]], cfg, generator, loader),
                 loader(parts["val"], None), labels[parts["train"]], num_classes, cfg, device, desc=desc,
                 batch_progress=False,  # a head epoch takes milliseconds: a bar per epoch would only flicker
                 dynamics=DynamicsRecorder(len(parts["train"])))
    return head, result


def threshold_aum(features: np.ndarray, labels: np.ndarray, parts: dict, cfg: RunConfig, device: torch.device,
                  fold: int, num_classes: int) -> np.ndarray:
    """AUM of threshold samples (Pleiss et al., 2020): the head trained once more with 1/(C+1) of the training
    part moved to an extra, fake class C. Those labels are wrong by construction, so their AUM shows where a
    mislabelled image's AUM lies; the diagnostics take a high percentile of it as the AUM threshold."""
    train = parts["train"]
    rng = np.random.default_rng(cfg.seed + fold)
    chosen = np.sort(rng.choice(len(train), size=len(train) // (num_classes + 1), replace=False))
    fake = labels.copy()
    fake[train[chosen]] = num_classes
    with warnings.catch_warnings():  # the validation part never holds the fake class: sklearn says so each epoch
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true", category=UserWarning)
        _, result = _head_fit(features, fake, parts, cfg, device, fold, num_classes + 1, f"fold {fold} AUM")
    margins = result.dynamics["margin"][:, chosen].astype(np.float32)
    # a sample with no epoch recorded (a trial pruned before its first) has no AUM: NaN, not a warning
    recorded = ~np.isnan(margins).all(axis=0) if len(margins) else np.zeros(len(chosen), dtype=bool)
    aum = np.full(len(chosen), np.nan, dtype=np.float32)
    aum[recorded] = np.nanmean(margins[:, recorded], axis=0)
    return aum.astype(np.float16)


def _fit_head(features: np.ndarray, labels: np.ndarray, parts: dict, cfg: RunConfig, device: torch.device,
              fold: int, num_classes: int):
    """Head mode: a linear layer on frozen backbone features (on one CPU thread by default: fold_threads), and
    the threshold samples' AUM (a second head: cheap on cached features)."""
    head, result = _head_fit(features, labels, parts, cfg, device, fold, num_classes, f"fold {fold}")
    checkpoint = _adjust_posthoc(head, head, labels[parts["train"]], cfg, num_classes, {"head": result.best_state},
                                 "head")
    with torch.inference_mode():
        probs = torch.softmax(head.eval()(torch.from_numpy(features).to(device)).float(), 1).cpu().numpy()
    result.dynamics["threshold_aum"] = threshold_aum(features, labels, parts, cfg, device, fold, num_classes)
    return result, probs, None, checkpoint


def _fit_finetune(info: dict, samples: pd.DataFrame, labels: np.ndarray, parts: dict, cfg: RunConfig,
                  device: torch.device, fold: int, num_classes: int, model: Classifier | None = None):
    """Finetune mode: all layers, the backbone at a lower learning rate than the new head; from `model` when
    given (the self-supervised step's), else the run's pretrained network.

    Images are decoded once into device memory and augmented there when they fit (image_input auto: on CUDA
    with room to spare), else read by DataLoader workers; resident/loader force one path, on any device.
    """
    generator = torch.Generator().manual_seed(cfg.seed + fold)
    model = (model or recorded_classifier(info)).to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: find the fastest convolutions once
    paths, prep = image_paths(info, samples), recorded_preprocessing(info)
    resident = (fits_on_device(len(paths), prep, device) if cfg.image_input == "auto"
                else cfg.image_input == "resident")
    images = resident_images(paths, list(samples.sha256), prep, device) if resident else None

    def loader(index, _labels=None, shuffle=False, sampler=None, train=True, positions=False):
        batch_size = cfg.batch_size if train else inference_batch_size(cfg.batch_size, device)
        drop_last = train and len(index) > batch_size  # batch norm cannot train on a last batch of one image
        if images is not None:
            return ResidentBatches(images, labels, index, prep, batch_size, train=train, sampler=sampler,
                                   generator=generator, drop_last=drop_last, augmentation=cfg.augmentation,
                                   positions=positions)
        transform = train_transform(prep, cfg.augmentation) if train else eval_transform(prep)
        return image_loader([paths[i] for i in index], labels[index], transform, batch_size, shuffle=shuffle,
                            sampler=sampler, num_workers=cfg.num_workers, generator=generator, drop_last=drop_last,
                            positions=positions)
    groups = [{"params": model.backbone.parameters(), "lr": cfg.lr * cfg.backbone_lr_mult},
              {"params": model.head.parameters(), "lr": cfg.lr}]
    train_batches = _train_loader(parts["train"], labels[parts["train"]], cfg, generator, loader)
    fast = choose_fast_paths(device, cfg.compile, cfg.cpu_fast_paths, cfg.epochs * len(train_batches) * cfg.batch_size)
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    source = "images decoded once into device memory" if images is not None else "images read through a DataLoader"
    log(f"fold {fold}: " + ", ".join(filter(None, [source, fast.describe()])))
    result = fit(model, groups, train_batches, loader(parts["val"], train=False), labels[parts["train"]],
                 num_classes, cfg, device, desc=f"fold {fold}", fast=fast,
                 dynamics=DynamicsRecorder(len(parts["train"])))
    # no threshold samples here: a second fine-tuning per fold would double the run (see docs/run-format.md)
    result.dynamics["threshold_aum"] = np.empty(0, np.float16)
    checkpoint = _adjust_posthoc(model, model.head, labels[parts["train"]], cfg, num_classes,
                                 {"model": result.best_state}, "model")
    embedding = compute_features(model.backbone, loader(np.arange(len(paths)), train=False), device, fast)
    with torch.inference_mode():
        probs = torch.softmax(model.head(torch.from_numpy(embedding).to(device)).float(), 1).cpu().numpy()
    return result, probs, embedding, checkpoint


def _adapted_classifier(info: dict, cfg: RunConfig, samples: pd.DataFrame, parts: dict, device: torch.device,
                        fold: int, extra_images: list[Path]) -> tuple[Classifier, dict]:
    """The run's pretrained network after `cfg.ssl_method` continued pretraining its backbone on the images of
    parts["train"] and `extra_images`, nothing else; and the step's record (fold.json `ssl`)."""
    model = recorded_classifier(info)
    paths = image_paths(info, samples)
    images = [paths[i] for i in parts["train"]] + list(extra_images)
    step = continue_pretraining(model.backbone.to(device), int(info["model"]["feature_dim"]), images,
                                recorded_preprocessing(info), cfg, device, cfg.seed + fold, len(extra_images))
    log(f"fold {fold}: {step.method} on {step.images} images, {step.epochs} epochs, "
        f"{step.images_per_second:.1f} images/s, loss {step.first_loss:.3f} -> {step.last_loss:.3f}")
    return model, step.to_dict()


def _fit_adapted_head(model: Classifier, info: dict, cfg: RunConfig, samples: pd.DataFrame, labels: np.ndarray,
                      parts: dict, device: torch.device, fold: int, num_classes: int):
    """Head mode after the self-supervised step: a head on the adapted backbone's features of every sample,
    cached under that backbone's own weights hash (never the pretrained backbone's entries). The checkpoint is
    the whole network (adapted backbone + head), the features the fold's embedding."""
    prep = recorded_preprocessing(info)
    key = feature_cache_key(info["model"], module_sha256(model.backbone), prep)
    features, _ = cached_features(model.backbone, image_paths(info, samples), list(samples.sha256), key,
                                  Path(cfg.cache_dir), prep, max(cfg.batch_size, 64), device, cfg.num_workers)
    features = features.astype(np.float16).astype(np.float32)   # as cached: a rerun from the cache fits the same head
    result, probs, _, checkpoint = _fit_head(features, labels, parts, cfg, device, fold, num_classes)
    model.head.load_state_dict(checkpoint["head"])
    return result, probs, features, {"model": {name: value.detach().cpu().clone()
                                               for name, value in model.state_dict().items()}}


@dataclass(frozen=True)
class ExtraTraining:
    """Images outside the run added to one fold's training part only (self-training's pseudo-labelled pool):
    their backbone features, in the run's reference space, and their labels (class indices)."""
    features: np.ndarray
    labels: np.ndarray


def _with_extra(features: np.ndarray, labels: np.ndarray, parts: dict, extra: ExtraTraining):
    """Features, labels and parts with `extra` appended after the run's samples, in the training part only."""
    n = len(labels)
    return (np.concatenate([features, extra.features.astype(features.dtype)]),
            np.concatenate([labels, extra.labels.astype(labels.dtype)]),
            {**parts, "train": np.concatenate([parts["train"], n + np.arange(len(extra.labels))])})


def fit_parts(run_dir: Path, fold: int, parts: dict[str, np.ndarray], extra: ExtraTraining | None = None,
              extra_images: list[Path] = ()):
    """Train fold `fold`'s model on parts["train"] (plus `extra`, head mode only), early-stopping on
    parts["val"], in the run's mode.
    Returns (fit result, probabilities of every sample, the fold network's embedding or None, checkpoint); with
    `extra`, the probabilities and training dynamics cover the run's samples only.

    With `--ssl-method` the backbone first continues pretraining, self-supervised, on the images of
    parts["train"] and `extra_images` (unlabelled images; by default the pool's, `run_inputs.unlabelled_images`;
    never validation or test ones); the result's `ssl` records the step."""
    info, cfg, samples = load_run_inputs(run_dir)
    # Ray and job schedulers set OMP_NUM_THREADS per task, and a process that ran a fold keeps its count (the
    # learning curve fits in the experiment's process): the result must depend on neither.
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    classes, device = info["classes"], pick_device()
    labels = samples.label_index.to_numpy()
    torch.manual_seed(cfg.seed + fold)
    if cfg.ssl_method:
        if extra is not None:
            raise ValueError("extra labelled training images are not combined with --ssl-method")
        images = list(extra_images) or unlabelled_images(run_dir, info)
        model, record = _adapted_classifier(info, cfg, samples, parts, device, fold, images)
        if info["train_mode"] == "head":
            fitted = _fit_adapted_head(model, info, cfg, samples, labels, parts, device, fold, len(classes))
        else:
            fitted = _fit_finetune(info, samples, labels, parts, cfg, device, fold, len(classes), model)
        fitted[0].ssl = record
        return fitted
    if info["train_mode"] == "head":
        features = ensure_backbone_embeddings(run_dir)
        if extra is None:
            return _fit_head(features, labels, parts, cfg, device, fold, len(classes))
        n, n_train = len(labels), len(parts["train"])
        result, probs, embedding, checkpoint = _fit_head(*_with_extra(features, labels, parts, extra), cfg, device,
                                                         fold, len(classes))
        result.dynamics.update({key: value[:, :n_train] for key, value in result.dynamics.items()
                                if value.ndim == 2})
        return result, probs[:n], embedding, checkpoint
    if extra is not None:
        raise ValueError("extra training images need head mode (they come as backbone features)")
    return _fit_finetune(info, samples, labels, parts, cfg, device, fold, len(classes))


def run_fold(run_dir: Path, fold: int, replace: bool = False, extra: ExtraTraining | None = None) -> dict:
    """The fold job: run.json + samples.parquet + fold index in, folds/fold{k}/ out.

    Idempotent, so a scheduler may run it again after a crash: folds/fold{k}/ appears in one rename when the
    job ends (written under a temporary name until then), and a fold already done is returned as it is, unless
    `replace` (then the new folder replaces it in the same rename).
    """
    run_dir = Path(run_dir)
    out = store.fold_dir(run_dir, fold)
    if (out / "fold.json").exists() and not replace:
        return store.read_json(out / "fold.json")
    started = time.perf_counter()
    info, _, samples = load_run_inputs(run_dir)
    store.remove_stale_temporaries(out)  # what a killed earlier attempt of this fold left
    classes = info["classes"]
    labels = samples.label_index.to_numpy()
    parts = fold_parts(samples, fold)
    result, probs, embedding, checkpoint = fit_parts(run_dir, fold, parts, extra)
    predictions = pd.concat([prediction_table(index, labels[index], probs[index], f"fold{fold}", fold, role, classes)
                             for role, index in parts.items() if len(index)], ignore_index=True)
    history = pd.DataFrame(result.history).assign(fold=fold)
    history["is_best"] = history.epoch == result.best_epoch
    summary = {"fold": fold, "status": "complete", "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
               "stopped_early": result.stopped_early, **({"ssl": result.ssl} if result.ssl else {})}
    if extra is not None:
        summary["extra_training_images"] = len(extra.labels)
    with store.atomic_dir(out) as tmp:
        store.write_parquet(tmp / "predictions.parquet", predictions)
        store.write_parquet(tmp / "history.parquet", history[["fold", "epoch", "phase", "loss", "accuracy",
                                                              "balanced_accuracy", "lr", "is_best"]])
        torch.save(checkpoint, tmp / "model.pt")
        store.write_npz(tmp / store.DYNAMICS_FILE, sample_id=samples.sample_id.to_numpy()[parts["train"]],
                        **result.dynamics)
        if embedding is not None:  # in place before the fold folder appears: a done fold always has it
            store.write_array(store.embedding_path(run_dir, f"fold{fold}"), embedding.astype(np.float16))
        summary["seconds"] = round(time.perf_counter() - started, 2)
        store.write_json(tmp / "fold.json", summary)
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


def done_folds(run_dir: Path, n_folds: int) -> list[int]:
    return [k for k in range(n_folds) if (store.fold_dir(run_dir, k) / "fold.json").exists()]


# ---------------------------------------------------------------- the run's reference space



