"""The content-addressed feature cache: what a rerun or a resumed run recomputes."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.store.hashing import file_sha256
from core.training import features
from core.training.preprocessing import Preprocessing


class MeanColour(nn.Module):
    """A stand-in backbone: the mean of each channel, so features are cheap and checkable."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3))


class KilledOnBatch(MeanColour):
    """MeanColour that dies (like a run killed by the user) when asked for its `batch`-th batch."""

    def __init__(self, batch: int):
        super().__init__()
        self.batch, self.calls = batch, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.batch:
            raise KeyboardInterrupt
        return super().forward(images)


def extract(paths: list[Path], cache: Path, backbone: nn.Module = MeanColour()) -> tuple[np.ndarray, int]:
    return features.cached_features(backbone, paths, [file_sha256(p) for p in paths], "key", cache,
                                    Preprocessing.standard(32), 4,
                                    torch.device("cpu"), num_workers=0)


def test_a_run_killed_during_extraction_recomputes_only_the_images_not_yet_cached(folder_dataset, tmp_path,
                                                                                  monkeypatch):
    paths = sorted(folder_dataset.rglob("*.png"))          # 18 images
    monkeypatch.setattr(features, "inference_batch_size", lambda batch_size, device: 5)  # batches of 5 images
    with pytest.raises(KeyboardInterrupt):
        extract(paths, tmp_path / "cache", KilledOnBatch(3))

    resumed, computed = extract(paths, tmp_path / "cache")
    assert computed == len(paths) - 2 * 5                   # the two batches done before the kill came from the cache
    fresh, _ = extract(paths, tmp_path / "other-cache")
    np.testing.assert_allclose(resumed, fresh, atol=1e-2)   # cached values are float16


def test_features_come_back_in_the_order_of_the_paths_whatever_was_cached(folder_dataset, tmp_path, monkeypatch):
    paths = sorted(folder_dataset.rglob("*.png"))
    monkeypatch.setattr(features, "inference_batch_size", lambda batch_size, device: 4)
    extract(paths[::3], tmp_path / "cache")                 # every third image cached beforehand
    mixed, computed = extract(paths, tmp_path / "cache")
    assert computed == len(paths) - len(paths[::3])
    fresh, _ = extract(paths, tmp_path / "other-cache")
    np.testing.assert_allclose(mixed, fresh, atol=1e-2)


def test_a_full_disk_during_extraction_keeps_the_whole_features_and_recomputes_only_the_rest(folder_dataset,
                                                                                             tmp_path, monkeypatch):
    """Cached features are written one file each: the disk filling up at the third keeps two whole files, names
    the third in one StorageError, and the rerun with space computes only what is missing."""
    from storage_faults import Faults, leftovers

    from core.store.safe_write import StorageError
    paths = sorted(folder_dataset.rglob("*.png"))[:5]
    faults = Faults(monkeypatch)
    written: list[Path] = []

    def third_write(path: Path) -> bool:
        if len(written) == 2:
            return True
        written.append(path)
        return False
    faults.fill_at(third_write)
    with pytest.raises(StorageError, match=r"^no space left writing .*/features/key/.*\.npy \("):
        extract(paths, tmp_path / "cache")
    files = sorted((tmp_path / "cache").rglob("*.npy"))
    assert files == sorted(written) and all(np.load(f).shape == (3,) for f in files)
    assert not leftovers(tmp_path / "cache")
    faults.free()
    values, computed = extract(paths, tmp_path / "cache")
    assert computed == 3 and values.shape == (5, 3)
