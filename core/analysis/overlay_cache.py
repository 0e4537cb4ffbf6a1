"""Where a class activation map's overlay lives in the content-addressed cache and whether the checkpoints behind
it exist: all a gallery needs to show maps computed before, without importing torch (core.analysis.explain
computes them).

An overlay is keyed by the image bytes, the fold weights and the class, so it is computed once and never written
into a run.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.config import RunConfig, default_cache_dir
from core.store import run_store
from core.store.cache_store import touch
from core.store.hashing import memoised_file_sha256

ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class MapRequest:
    """The map of class `class_index` for sample `sample_id` from `model` ("fold{k}" or "ensemble")."""
    sample_id: int
    model: str
    class_index: int


class OverlayCache:
    """One run's overlays in `cache_dir`/gradcam: which can exist, and the file each one is (or will be) in."""

    def __init__(self, run_dir: Path, cache_dir: str | Path | None = None):
        self.run_dir = Path(run_dir)
        self.info = run_store.read_json(self.run_dir / run_store.RUN_JSON)
        self.samples = pd.read_parquet(self.run_dir / "samples.parquet").set_index("sample_id")
        self.config = RunConfig.from_dict(self.info["config"])
        self.cache = Path(cache_dir or default_cache_dir()) / "gradcam"
        self.side = int(self.config.image_size)
        self._model_keys: dict[str, str] = {}

    def folds(self, model: str) -> list[int]:
        """The fold models behind a prediction model name."""
        if model == ENSEMBLE:
            return list(self.info.get("folds_done", []))
        return [int(model.removeprefix("fold"))]

    def available(self, model: str) -> bool:
        """Whether the checkpoints behind `model` are there (runs made by other tools may lack them)."""
        folds = self.folds(model)
        return bool(folds) and all((run_store.fold_dir(self.run_dir, k) / "model.pt").is_file() for k in folds)

    def _model_key(self, model: str) -> str:
        if model not in self._model_keys:
            weights = self.info.get("weights") or {}
            parts = [str(self.info.get("model")), str(weights.get("sha256")), str(self.config.seed), self.side,
                     *(memoised_file_sha256(run_store.fold_dir(self.run_dir, k) / "model.pt")
                       for k in self.folds(model))]
            self._model_keys[model] = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
        return self._model_keys[model]

    def path(self, request: MapRequest) -> Path:
        """Where the overlay of `request` is (or will be) cached."""
        image_sha = self.samples.at[request.sample_id, "sha256"]
        key = hashlib.sha256(f"{image_sha}|{self._model_key(request.model)}|{request.class_index}".encode())
        digest = key.hexdigest()
        path = self.cache / digest[:2] / f"{digest}.png"
        touch(path)   # its last use, for `cache prune` (nothing when it is not there yet)
        return path
