"""The content-addressed feature cache: what a rerun or a resumed run recomputes."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core import features
from core.hashing import file_sha256


class MeanColour(nn.Module):
    """A stand-in backbone: the mean of each channel, so features are cheap and checkable."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3))


def extract(paths: list[Path], cache: Path, **kwargs) -> tuple[np.ndarray, int]:
    return features.cached_features(MeanColour(), paths, [file_sha256(p) for p in paths], "key", cache, 32, 4,
                                    torch.device("cpu"), num_workers=0, **kwargs)


def test_a_run_killed_during_extraction_recomputes_only_the_images_not_yet_cached(folder_dataset, tmp_path,
                                                                                  monkeypatch):
    paths = sorted(folder_dataset.rglob("*.png"))          # 18 images
    monkeypatch.setattr(features, "FEATURE_CHUNK_BATCHES", 1)  # chunks of one batch ...
    monkeypatch.setattr(features, "inference_batch_size", lambda batch_size, device: 5)  # ... of 5 images
    real_compute, seen = features.compute_features, []

    def killed_in_second_chunk(backbone, loader, device):
        seen.append(len(loader.dataset))
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real_compute(backbone, loader, device)
    monkeypatch.setattr(features, "compute_features", killed_in_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        extract(paths, tmp_path / "cache")

    monkeypatch.setattr(features, "compute_features", real_compute)
    resumed, computed = extract(paths, tmp_path / "cache")
    assert computed == len(paths) - 5                       # the first chunk came from the cache
    fresh, _ = extract(paths, tmp_path / "other-cache")
    np.testing.assert_allclose(resumed, fresh, atol=1e-2)   # cached values are float16
