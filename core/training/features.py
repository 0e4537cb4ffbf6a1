"""Image transforms and pooled backbone features, with a content-addressed on-disk cache.

A cached feature is keyed by the image bytes (sha256), the weights (sha256 + architecture) and the
eval transform, so a rerun or another configuration on the same data does no backbone work.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from core.config import Augmentation
from core.data.dataset import load_rgb
from core.store.cache_store import touch
from core.store.run_store import write_array
from core.training.device import FastPaths, choose_fast_paths
from core.training.preprocessing import Preprocessing
from core.training.progress import bar


MAX_ASPECT = 16   # long side / short side kept before the evaluation resize (see `crop_extreme_aspect`)


def crop_extreme_aspect(image: Image.Image) -> Image.Image:
    """The centre of an image whose long side is more than MAX_ASPECT times its short side, cut to that ratio.
    Resizing the short side first would otherwise blow a thin strip up: a 100-byte 1 x 40,000 PNG (under any pixel
    limit) would become 256 x 10,240,000 pixels, about 8 GB, of which the centre crop keeps 224 x 224. The crop
    keeps far more than that centre, and images up to MAX_ASPECT are untouched."""
    short, long = sorted(image.size)
    if long <= MAX_ASPECT * short:
        return image
    keep = MAX_ASPECT * short
    if image.width > image.height:
        left = (image.width - keep) // 2
        return image.crop((left, 0, left + keep, image.height))
    top = (image.height - keep) // 2
    return image.crop((0, top, image.width, top + keep))


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """Resize the short side to prep.resize and centre-crop prep.size: torchvision's ImageNet evaluation recipe
    (after `crop_extreme_aspect`)."""
    return v2.Compose([crop_extreme_aspect, v2.PILToTensor(),
                       v2.Resize(prep.resize, interpolation=prep.mode, antialias=True),
                       v2.CenterCrop(prep.size), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(prep.mean, prep.std)])


def train_transform(prep: Preprocessing, augmentation: Augmentation = Augmentation()) -> v2.Compose:
    aug = augmentation
    return v2.Compose([v2.PILToTensor(),
                       v2.RandomResizedCrop(prep.size, scale=aug.crop_scale, ratio=aug.crop_ratio,
                                            interpolation=prep.mode, antialias=True),
                       v2.RandomHorizontalFlip(),
                       v2.RandomRotation(aug.max_degrees, interpolation=v2.InterpolationMode.BILINEAR, fill=255),
                       v2.ToDtype(torch.float32, scale=True),  # jitter on uint8 would truncate: images darken
                       v2.ColorJitter(brightness=aug.jitter, contrast=aug.jitter, saturation=aug.jitter),
                       v2.Normalize(prep.mean, prep.std)])


class ImageFiles(Dataset):
    """(image tensor, label) pairs read from disk through a transform; with `positions`, (image, label, index)
    so a training pass can record each image's dynamics."""

    def __init__(self, paths: list[Path], labels: np.ndarray, transform, positions: bool = False):
        self.paths, self.labels, self.transform, self.positions = paths, labels, transform, positions

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        item = self.transform(load_rgb(self.paths[index])), int(self.labels[index])
        return (*item, index) if self.positions else item


def default_workers() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1)) if torch.cuda.is_available() else 0


def image_loader(paths: list[Path], labels: np.ndarray, transform, batch_size: int, shuffle: bool = False,
                 sampler=None, num_workers: int = -1, generator=None, drop_last: bool = False,
                 positions: bool = False) -> DataLoader:
    workers = default_workers() if num_workers < 0 else num_workers
    return DataLoader(ImageFiles(paths, labels, transform, positions), batch_size=batch_size, shuffle=shuffle,
                      sampler=sampler, num_workers=workers, pin_memory=torch.cuda.is_available(),
                      persistent_workers=workers > 0, generator=generator, drop_last=drop_last)


CUDA_INFERENCE_BATCH = 512  # bf16 ResNet-50 inference is near its peak from here on an H100 (notes: 13k img/s)


def inference_batch_size(batch_size: int, device: torch.device) -> int:
    """Inference has no gradients to hold, so it runs in larger batches than training."""
    return max(batch_size, CUDA_INFERENCE_BATCH if device.type == "cuda" else 64)


@torch.inference_mode()
def feature_batches(backbone: nn.Module, loader: Iterable, device: torch.device,
                    fast: FastPaths | None = None) -> Iterator[np.ndarray]:
    """Pooled features of each batch the loader yields, in order (bf16 autocast and channels_last on CUDA, or
    as `fast` says)."""
    fast = fast or choose_fast_paths(device, compile_setting="off")
    backbone.eval().to(device)
    if fast.channels_last:
        backbone.to(memory_format=torch.channels_last)
    for images, _ in bar(loader, desc="features", unit="batch", leave=False):
        images = images.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast.bf16):
            pooled = backbone(images).float()
        yield pooled.cpu().numpy()   # outside autocast: it must not stay on in the caller's code between batches


def compute_features(backbone: nn.Module, loader: Iterable, device: torch.device,
                     fast: FastPaths | None = None) -> np.ndarray:
    """Pooled features of every image the loader yields, in order."""
    return np.concatenate(list(feature_batches(backbone, loader, device, fast)))


def feature_cache_key(arch_record: dict, weights_sha256: str, prep: Preprocessing) -> str:
    description = f"{sorted(arch_record.items())}|{weights_sha256}|{prep.cache_tag()}"
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def module_sha256(module: nn.Module) -> str:
    """A hash of a network's weights as they are in memory (names, dtypes, shapes and bytes): the cache key's
    weights part for a backbone no file holds, such as one a fold adapted by self-supervised pretraining, so its
    features never share entries with the pretrained backbone's."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_entry(path: Path) -> np.ndarray:
    touch(path)   # its last use, for `cache prune`
    return np.load(path).astype(np.float32)


def cached_features(backbone: nn.Module, paths: list[Path], shas: list[str], cache_key: str | None,
                    cache_dir: Path, prep: Preprocessing, batch_size: int, device: torch.device,
                    num_workers: int = -1) -> tuple[np.ndarray, int]:
    """Features for every image, computing only those not cached. Returns (features, n_computed).

    Computed features are written to the cache batch by batch, so a run killed during extraction resumes
    with only the images not yet done: it loses at most one batch. `cache_key` None (random weights) disables
    the cache: such features are not worth keeping.
    """
    folder = Path(cache_dir) / "features" / cache_key if cache_key else None
    files = [folder / sha[:2] / f"{sha}.npy" for sha in shas] if folder else [None] * len(paths)
    missing = [i for i, f in enumerate(files) if f is None or not f.exists()]
    computed = {}
    if missing:
        loader = image_loader([paths[i] for i in missing], np.zeros(len(missing), dtype=np.int64),
                              eval_transform(prep), inference_batch_size(batch_size, device),
                              num_workers=num_workers)
        for batch in feature_batches(backbone, loader, device):
            for i, vector in zip(missing[len(computed):], batch):
                computed[i] = vector
                if files[i] is not None:
                    write_array(files[i], vector.astype(np.float16))
    features = np.stack([computed[i] if i in computed else _read_entry(files[i]) for i in range(len(paths))])
    return features.astype(np.float32), len(missing)
