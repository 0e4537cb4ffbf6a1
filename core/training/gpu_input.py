"""Device-resident input: decode every image once into a uint8 tensor, then crop and augment whole batches on
the device, so a GPU is never waiting on PIL.

The cache holds each image resized so its short side is the recipe's resize side (core.training.preprocessing)
and centre-cropped to that square. Evaluation takes the centre crop of the recipe's size of it (the same pixels
as `features.eval_transform`);
training applies the augmentation families of `features.train_transform` with per-sample random parameters:
random-resized crop (drawn as torchvision draws it, one batched roi_align), horizontal flip, rotation with white
fill, brightness/contrast/saturation jitter (in this fixed order; torchvision shuffles it), then the recipe's
normalisation, with the strengths of `config.Augmentation`.

Two differences from the PIL path remain by design: crops come from the cached centre square, so the edges of a
non-square image beyond it are never trained on (evaluation never sees them either), and from its resolution,
so an image larger than the cache side is cropped from a downscaled copy.
"""
from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align
from torchvision.transforms.v2 import functional as TF

from core.config import Augmentation
from core.data.dataset import load_rgb
from core.training.preprocessing import Preprocessing, normalise

RESIDENT_MEMORY_SHARE = 0.3  # of free GPU memory; the rest is for the network, its activations and the optimiser

def cache_bytes(n_images: int, prep: Preprocessing) -> int:
    return n_images * 3 * prep.resize ** 2


def fits_on_device(n_images: int, prep: Preprocessing, device: torch.device) -> bool:
    """Resident input is chosen on CUDA when the uint8 cache takes a modest share of the free memory."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return cache_bytes(n_images, prep) <= RESIDENT_MEMORY_SHARE * free


def _decode_square(path: Path, prep: Preprocessing) -> torch.Tensor:
    image = TF.pil_to_tensor(load_rgb(path))
    return TF.center_crop(TF.resize(image, prep.resize, interpolation=prep.mode, antialias=True), prep.resize)


def decode_images(paths: list[Path], prep: Preprocessing, device: torch.device) -> torch.Tensor:
    """uint8 N x 3 x S x S on `device`, S = prep.resize; decoded by threads (PIL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        images = torch.stack(list(pool.map(lambda p: _decode_square(p, prep), paths)))
    return images.to(device)


@functools.lru_cache(maxsize=1)
def _decoded_once(paths: tuple[Path, ...], shas: tuple[str, ...], prep: Preprocessing,
                  device: torch.device) -> torch.Tensor:
    return decode_images(list(paths), prep, device)


def resident_images(paths: list[Path], shas: list[str], prep: Preprocessing, device: torch.device) -> torch.Tensor:
    """decode_images, kept for the next call with the same files (the other folds of a run decode nothing)."""
    return _decoded_once(tuple(paths), tuple(shas), prep, device)


def _normalise(images: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """float [0, 1] -> normalised as the recipe says, channels_last on CUDA (the layout the network runs in)."""
    images = normalise(images, prep)
    return images.contiguous(memory_format=torch.channels_last) if images.is_cuda else images


def eval_batch(images: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Centre crop of the cached squares, normalised."""
    top = (images.shape[-1] - prep.size) // 2
    crop = images[..., top:top + prep.size, top:top + prep.size]
    return _normalise(crop.float() / 255, prep)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) * (high - low) + low


def _crop_boxes(n: int, side: int, aug: Augmentation, generator: torch.Generator, tries: int = 10) -> torch.Tensor:
    """Per-sample boxes (x1, y1, x2, y2) drawn as torchvision's RandomResizedCrop draws them: area share in
    crop_scale, log-uniform aspect in crop_ratio, the first of `tries` draws that fits, else the whole image."""
    area = _uniform(n * tries, *aug.crop_scale, generator).view(n, tries) * side * side
    log_ratio = _uniform(n * tries, math.log(aug.crop_ratio[0]), math.log(aug.crop_ratio[1]), generator)
    ratio = torch.exp(log_ratio).view(n, tries)
    w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
    fits = (w <= side) & (h <= side)
    first = fits.int().argmax(1, keepdim=True)  # the first fitting draw (0 where none fits: replaced below)
    w, h = (torch.where(fits.any(1), v.gather(1, first).squeeze(1), torch.full_like(v[:, 0], side)) for v in (w, h))
    x1 = torch.rand(n, generator=generator, device=generator.device) * (side - w)
    y1 = torch.rand(n, generator=generator, device=generator.device) * (side - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1)


def _rotate_white(images: torch.Tensor, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre; grid_sample pads with 0, so rotating 1 - x fills with white."""
    angle = torch.deg2rad(_uniform(len(images), -max_degrees, max_degrees, generator))
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return 1 - F.grid_sample(1 - images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _grey(images: torch.Tensor) -> torch.Tensor:
    r, g, b = images.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _jitter(images: torch.Tensor, jitter: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation as torchvision defines them, one factor per sample each."""
    n = len(images)
    brightness, contrast, saturation = (_uniform(n, 1 - jitter, 1 + jitter, generator).view(n, 1, 1, 1)
                                        for _ in range(3))
    images = (images * brightness).clamp(0, 1)
    mean = _grey(images).mean((2, 3), keepdim=True)
    images = (contrast * images + (1 - contrast) * mean).clamp(0, 1)
    return (saturation * images + (1 - saturation) * _grey(images)).clamp(0, 1)


def train_batch(images: torch.Tensor, prep: Preprocessing, generator: torch.Generator,
                aug: Augmentation = Augmentation()) -> torch.Tensor:
    """Random-resized crop, flip, rotation, colour jitter and normalisation of a uint8 batch, on its device."""
    n, side = len(images), images.shape[-1]
    boxes = torch.cat([torch.arange(n, device=images.device, dtype=torch.float32).unsqueeze(1),
                       _crop_boxes(n, side, aug, generator)], 1)
    crops = roi_align(images.float() / 255, boxes, prep.size, sampling_ratio=2, aligned=True)
    flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
    crops = torch.where(flip.view(n, 1, 1, 1), crops.flip(-1), crops)
    return _normalise(_jitter(_rotate_white(crops, aug.max_degrees, generator), aug.jitter, generator), prep)


class ResidentBatches:
    """(inputs, targets) batches of resident images `index`: a drop-in for the DataLoader that `fit` iterates.

    train=True draws a new order (or sampler draw) and new augmentations every pass; train=False yields the
    centre crops in order. With `positions`, batches are (inputs, targets, positions within `index`), for the
    training dynamics. `labels` and `images` cover the whole dataset, so folds share one cache.
    """

    def __init__(self, images: torch.Tensor, labels: np.ndarray, index: np.ndarray, prep: Preprocessing,
                 batch_size: int, train: bool = False, sampler=None, generator: torch.Generator | None = None,
                 drop_last: bool = False, augmentation: Augmentation = Augmentation(), positions: bool = False):
        self.images, self.prep, self.batch_size = images, prep, batch_size
        self.positions = positions
        self.augmentation = augmentation
        self.labels = torch.tensor(np.asarray(labels), dtype=torch.long, device=images.device)
        self.index = torch.tensor(np.asarray(index), dtype=torch.long, device=images.device)
        self.train, self.sampler, self.drop_last = train, sampler, drop_last
        self.generator = generator or torch.Generator()
        if train:  # augmentation randomness lives on the images' device, seeded from the (CPU) order generator
            seed = int(torch.randint(2 ** 62, (1,), generator=self.generator))
            self.device_generator = torch.Generator(images.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.index)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> torch.Tensor:
        """Positions within `index` for one pass."""
        if self.sampler is not None:
            return torch.as_tensor(list(self.sampler), dtype=torch.long)
        if self.train:
            return torch.randperm(len(self.index), generator=self.generator)
        return torch.arange(len(self.index))

    def __iter__(self):
        positions = self._order().to(self.images.device)
        order = self.index[positions]
        for b in range(len(self)):
            batch = slice(b * self.batch_size, (b + 1) * self.batch_size)
            chosen = order[batch]
            images = self.images[chosen]
            inputs = (train_batch(images, self.prep, self.device_generator, self.augmentation) if self.train
                      else eval_batch(images, self.prep))
            yield (inputs, self.labels[chosen], positions[batch]) if self.positions else (inputs, self.labels[chosen])
