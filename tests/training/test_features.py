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


def test_a_thin_strip_is_cut_to_its_centre_before_the_evaluation_resize():
    """A 1 x 40,000 image (200 bytes as PNG) would resize to 256 x 10,240,000 pixels; cut first, it costs nothing,
    and the crop the models see is the one the full resize gives."""
    from PIL import Image
    from torchvision.transforms import v2

    from core.config import resize_side
    from core.training.features import MAX_ASPECT, crop_extreme_aspect, eval_transform
    rng = np.random.default_rng(0)
    strip = Image.fromarray(rng.integers(0, 255, (20, 1000, 3), dtype=np.uint8))   # 50 : 1
    cut = crop_extreme_aspect(strip)
    assert cut.size == (MAX_ASPECT * 20, 20)
    recipe = v2.Compose([v2.PILToTensor(), v2.Resize(resize_side(64), antialias=True), v2.CenterCrop(64)])
    whole, ours = recipe(strip).int(), recipe(cut).int()   # a strip small enough to resize whole, and its cut
    assert (whole - ours).abs().float().mean() < 2   # the same pixels, up to resampling alignment
    photo = Image.new("RGB", (640, 480))
    assert crop_extreme_aspect(photo) is photo and crop_extreme_aspect(Image.new("RGB", (16, 1))).size == (16, 1)
    assert eval_transform(Preprocessing.standard(224))(Image.new("RGB", (1, 40_000))).shape == (3, 224, 224)
