"""What a fold job reads of a run: run.json, the settings recorded in it, samples.parquet, and from them the
image paths and one fold's parts. Nothing else travels to the job, so it runs wherever the folder is readable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.store import run_store as store


def load_run_inputs(run_dir: Path) -> tuple[dict, RunConfig, pd.DataFrame]:
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    return info, RunConfig.from_dict(info["config"]), pd.read_parquet(Path(run_dir) / "samples.parquet")


def image_paths(info: dict, samples: pd.DataFrame) -> list[Path]:
    root = Path(info["dataset"]["root"])
    return [root / p for p in samples.path]


def shared_backbone(info: dict) -> bool:
    """Whether every fold model is a head on the run's one pretrained backbone (head mode), rather than a whole
    network of its own (finetune mode, or head mode after `--ssl-method` adapted each fold's backbone)."""
    return info.get("train_mode") == "head" and not info.get("config", {}).get("ssl_method")


def fold_parts(samples: pd.DataFrame, fold: int) -> dict[str, np.ndarray]:
    """Sample indices per role for one fold."""
    in_cv = (samples.split == "cv").to_numpy()
    fold_of = samples.fold.fillna(-1).to_numpy()
    return {"train": np.flatnonzero(in_cv & (fold_of != fold)), "val": np.flatnonzero(fold_of == fold),
            "test": np.flatnonzero(~in_cv)}


def unlabelled_images(run_dir: Path, info: dict) -> list[Path]:
    """The unlabelled pool images a fold's self-supervised step learns from besides its training part: the
    run's own pool, else the pool of the baseline its remedy experiment shares splits with (`remedies
    --unlabelled`); never one identical to or a near-duplicate of a labelled image (it may be a validation or
    test image). Empty without a pool."""
    baseline = info.get("experiment", {}).get("splits_from")
    for source in [Path(run_dir)] + ([Path(run_dir).parent / baseline] if baseline else []):
        if store.pool_path(source, "info").exists():
            pool = store.read_pool(source)
            return [Path(path) for path, apart in zip(pool.paths, pool.apart_from_labelled()) if apart]
    return []
