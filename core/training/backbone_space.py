"""The run's reference spaces: pooled features of the pretrained backbone for every sample
(embeddings/backbone.npy) and, with `--embedder MODEL`, of a second pretrained network (embeddings/embedder.npy),
each computed once through the content-addressed feature cache."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from core.config import RunConfig
from core.errors import UserError
from core.store import run_store as store
from core.training.device import pick_device
from core.training.features import cached_features, feature_cache_key
from core.training.preprocessing import Preprocessing, model_preprocessing, own_input_size, recorded_preprocessing
from core.training.run_inputs import image_paths, load_run_inputs
from core.training.weights import build_classifier, recorded_backbone, recorded_embedder

log = tqdm.write  # prints above progress bars
EMBEDDER = "embedder"   # the space's name (embeddings/embedder.npy, run.json `spaces`)


def pretrained_features(backbone: nn.Module, arch_record: dict, weights_sha256: str | None, prep: Preprocessing,
                        cfg: RunConfig, paths: list[Path], shas: list[str]) -> np.ndarray:
    """Pooled features of the pretrained backbone for these images, through the content-addressed cache."""
    started = time.perf_counter()
    key = feature_cache_key(arch_record, weights_sha256, prep) if weights_sha256 else None
    features, computed = cached_features(backbone, paths, shas, key, Path(cfg.cache_dir), prep,
                                         max(cfg.batch_size, 64), pick_device(), cfg.num_workers)
    log(f"features: {computed} computed, {len(paths) - computed} from cache ({time.perf_counter() - started:.1f} s)")
    return features


def store_backbone_embeddings(run_dir: Path, features: np.ndarray, seconds: float) -> None:
    store.write_array(store.embedding_path(run_dir, "backbone"), features.astype(np.float16))
    store.update_run_json(run_dir, spaces=["backbone"])
    store.record_timing(run_dir, "features", seconds)


def ensure_backbone_embeddings(run_dir: Path) -> np.ndarray:
    """embeddings/backbone.npy: pretrained features of every sample (from the content-addressed cache)."""
    path = store.embedding_path(run_dir, "backbone")
    if path.exists():
        return np.load(path).astype(np.float32)
    info, cfg, samples = load_run_inputs(run_dir)
    started = time.perf_counter()
    features = pretrained_features(recorded_backbone(info), info["model"], info["weights"]["sha256"],
                                   recorded_preprocessing(info), cfg, image_paths(info, samples), list(samples.sha256))
    store_backbone_embeddings(run_dir, features, time.perf_counter() - started)
    return features


def embedder_record(model_name: str, log=log) -> dict:
    """run.json's `embedder`: the network, its ImageNet weights file and its own preprocessing at its own size.
    Resolved when the run starts, so weights that cannot be had stop it before anything is written."""
    try:   # the same resolution as --weights imagenet
        _, arch, weights = build_classifier(model_name, 1, "imagenet", log=log)
    except UserError as error:
        raise UserError(f"--embedder {model_name}: {error}") from None
    prep = model_preprocessing(model_name, own_input_size(model_name))
    return {"model": arch.to_dict(), "weights": weights.record("imagenet"), "preprocessing": prep.to_dict()}


def ensure_embedder_embeddings(run_dir: Path) -> np.ndarray | None:
    """embeddings/embedder.npy when the run has an `--embedder` (None otherwise), named in run.json `spaces`."""
    info, cfg, samples = load_run_inputs(run_dir)
    record = info.get("embedder")
    if not record:
        return None
    path = store.embedding_path(run_dir, EMBEDDER)
    if path.exists():
        features = np.load(path).astype(np.float32)
    else:
        started = time.perf_counter()
        features = pretrained_features(recorded_embedder(info), record["model"], record["weights"]["sha256"],
                                       Preprocessing.from_dict(record["preprocessing"]), cfg,
                                       image_paths(info, samples), list(samples.sha256))
        store.write_array(path, features.astype(np.float16))
        store.record_timing(run_dir, "embedder_features", time.perf_counter() - started)
    spaces = list(store.read_json(Path(run_dir) / store.RUN_JSON).get("spaces") or ["backbone"])
    if EMBEDDER not in spaces:
        store.update_run_json(run_dir, spaces=[spaces[0], EMBEDDER, *spaces[1:]])
    return features
