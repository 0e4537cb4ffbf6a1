"""The run's reference space: pooled features of the pretrained backbone for every sample
(embeddings/backbone.npy), computed once through the content-addressed feature cache."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from core.config import RunConfig
from core.store import run_store as store
from core.training.device import pick_device
from core.training.features import cached_features, feature_cache_key
from core.training.run_inputs import image_paths, load_run_inputs
from core.training.weights import recorded_backbone

log = tqdm.write  # prints above progress bars


def pretrained_features(backbone: nn.Module, arch_record: dict, weights_sha256: str | None, cfg: RunConfig,
                        paths: list[Path], shas: list[str]) -> np.ndarray:
    """Pooled features of the pretrained backbone for these images, through the content-addressed cache."""
    started = time.perf_counter()
    key = feature_cache_key(arch_record, weights_sha256, cfg.image_size) if weights_sha256 else None
    features, computed = cached_features(backbone, paths, shas, key, Path(cfg.cache_dir), cfg.image_size,
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
                                   cfg, image_paths(info, samples), list(samples.sha256))
    store_backbone_embeddings(run_dir, features, time.perf_counter() - started)
    return features
