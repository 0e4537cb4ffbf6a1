"""Self-supervised continued pretraining of a fold's backbone: SimCLR or BYOL from the run's pretrained weights,
on that fold's training images (and any unlabelled images given) only, before the head or finetune fit.

lightly's augmentations, projection heads and losses in a plain torch loop. lightly is imported inside the
functions: only a run with `--ssl-method` needs it, so a machine without it still trains every other run.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.config import RunConfig
from core.data.dataset import load_rgb
from core.errors import UserError
from core.training.device import choose_fast_paths
from core.training.features import crop_extreme_aspect, default_workers
from core.training.fit import warmup_cosine
from core.training.preprocessing import Preprocessing
from core.training.progress import bar

LIGHTLY = "lightly==1.6.0"   # the version requirements.txt pins


@dataclass(frozen=True)
class SslRecipe:
    """What the --ssl-* options leave fixed: lightly's defaults for each method's heads and loss."""
    simclr_hidden: int = 2048
    simclr_out: int = 128
    simclr_temperature: float = 0.5            # lightly's NTXentLoss default; suits batches of tens, not thousands
    byol_hidden: int = 4096
    byol_out: int = 256
    byol_momentum: tuple[float, float] = (0.99, 1.0)   # target network's EMA, cosine from/to (Grill et al. 2020)
    head_lr_mult: float = 10.0                 # the projection heads start from random, the backbone does not
    warmup_share: float = 0.1                  # of the steps, linear warm-up before the cosine decay


RECIPE = SslRecipe()


@dataclass
class SslResult:
    """What the step did (fold.json `ssl`)."""
    method: str
    epochs: int
    images: int              # distinct images it trained on
    extra_images: int        # of which unlabelled images beyond the fold's training part
    steps: int
    seconds: float
    images_per_second: float   # images (two augmented views each) through the step per second
    first_loss: float
    last_loss: float

    def to_dict(self) -> dict:
        return asdict(self)


def require_lightly() -> str:
    """lightly's version, or a one-line UserError when it cannot be imported."""
    try:
        import lightly
        import lightly.loss  # noqa: F401  (what the step uses first)
    except ImportError as error:
        raise UserError(f"--ssl-method needs the lightly package ({error}); install it with: "
                        f"pip install {LIGHTLY}") from None
    return lightly.__version__


class UnlabelledImages(Dataset):
    """An image file -> the method's augmented views of it (a list of tensors)."""

    def __init__(self, paths: list[Path], transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        return self.transform(crop_extreme_aspect(load_rgb(self.paths[index])))


def views_transform(method: str, prep: Preprocessing):
    """lightly's two-view augmentation of the method at the run's crop size and normalisation."""
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform

    normalize = {"mean": list(prep.mean), "std": list(prep.std)}
    if method == "simclr":
        return SimCLRTransform(input_size=prep.size, normalize=normalize)
    return BYOLTransform(view_1_transform=BYOLView1Transform(input_size=prep.size, normalize=normalize),
                         view_2_transform=BYOLView2Transform(input_size=prep.size, normalize=normalize))


class SimCLR(nn.Module):
    """Chen et al. 2020: the two views of an image are pulled together, every other image in the batch pushed away."""

    def __init__(self, backbone: nn.Module, feature_dim: int, recipe: SslRecipe):
        super().__init__()
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead

        self.backbone = backbone
        self.projection = SimCLRProjectionHead(feature_dim, recipe.simclr_hidden, recipe.simclr_out)
        self.criterion = NTXentLoss(temperature=recipe.simclr_temperature)

    def heads(self) -> list[nn.Parameter]:
        return list(self.projection.parameters())

    def loss(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.projection(self.backbone(first)), self.projection(self.backbone(second)))

    def after_step(self, progress: float) -> None:
        pass


class BYOL(nn.Module):
    """Grill et al. 2020: the online network predicts a slowly moving copy's projection of the other view; no
    negatives, so it works at the small batches a CPU or a small GPU takes."""

    def __init__(self, backbone: nn.Module, feature_dim: int, recipe: SslRecipe):
        super().__init__()
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        self.backbone = backbone
        self.projection = BYOLProjectionHead(feature_dim, recipe.byol_hidden, recipe.byol_out)
        self.prediction = BYOLPredictionHead(recipe.byol_out, recipe.byol_hidden, recipe.byol_out)
        self.target_backbone = copy.deepcopy(backbone)
        self.target_projection = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.target_backbone)
        deactivate_requires_grad(self.target_projection)
        self.criterion = NegativeCosineSimilarity()
        self.momentum = recipe.byol_momentum

    def heads(self) -> list[nn.Parameter]:
        return list(self.projection.parameters()) + list(self.prediction.parameters())

    def _online(self, images: torch.Tensor) -> torch.Tensor:
        return self.prediction(self.projection(self.backbone(images)))

    def _target(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target_projection(self.target_backbone(images))

    def loss(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.criterion(self._online(first), self._target(second))
                      + self.criterion(self._online(second), self._target(first)))

    def after_step(self, progress: float) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        momentum = cosine_schedule(round(progress * 1000), 1000, *self.momentum)
        update_momentum(self.backbone, self.target_backbone, momentum)
        update_momentum(self.projection, self.target_projection, momentum)


METHODS = {"simclr": SimCLR, "byol": BYOL}


def continue_pretraining(backbone: nn.Module, feature_dim: int, images: list[Path], prep: Preprocessing,
                         cfg: RunConfig, device: torch.device, seed: int, extra_images: int = 0,
                         recipe: SslRecipe = RECIPE) -> SslResult:
    """Train `backbone` in place with `cfg.ssl_method` on `images` for `cfg.ssl_epochs`; leave it in eval mode.

    `images` are all the step sees: the caller passes the fold's training part (plus unlabelled images), never
    its validation or test images. `extra_images` says how many of them are unlabelled, for the record."""
    require_lightly()
    if len(images) < 2:
        raise UserError(f"--ssl-method {cfg.ssl_method}: a fold's training part has {len(images)} image(s); "
                        f"contrastive pretraining needs at least 2")
    batch_size = min(cfg.ssl_batch_size, len(images))
    generator = torch.Generator().manual_seed(seed)
    workers = default_workers() if cfg.num_workers < 0 else cfg.num_workers
    # drop_last: batch norm and the contrastive loss both need more than one image in every batch
    loader = DataLoader(UnlabelledImages(images, views_transform(cfg.ssl_method, prep)), batch_size=batch_size,
                        shuffle=True, drop_last=True, num_workers=workers, generator=generator,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    with torch.random.fork_rng(devices=[]):   # the heads' initialisation: seeded, without moving the caller's draws
        torch.manual_seed(seed)
        method = METHODS[cfg.ssl_method](backbone, feature_dim, recipe).to(device)
    fast = choose_fast_paths(device, "off", cfg.cpu_fast_paths)   # bf16 and channels_last on CUDA
    if fast.channels_last:
        method = method.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([{"params": backbone.parameters(), "lr": cfg.ssl_lr},
                                   {"params": method.heads(), "lr": cfg.ssl_lr * recipe.head_lr_mult}],
                                  weight_decay=cfg.weight_decay)
    total = cfg.ssl_epochs * len(loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(max(1, round(recipe.warmup_share * total)),
                                                                            total))
    losses, step = [], 0
    method.train()
    started = time.perf_counter()
    for epoch in range(cfg.ssl_epochs):
        for first, second in bar(loader, desc=f"{cfg.ssl_method} epoch {epoch + 1}", unit="batch", leave=False):
            first, second = (view.to(device, non_blocking=True) for view in (first, second))
            if fast.channels_last:
                first, second = (view.contiguous(memory_format=torch.channels_last) for view in (first, second))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast.bf16):
                loss = method.loss(first, second)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            method.after_step(step / total)
            losses.append(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    backbone.eval()
    losses = torch.stack(losses).float().cpu().numpy() if losses else np.array([np.nan])
    return SslResult(cfg.ssl_method, cfg.ssl_epochs, len(images), extra_images, step, round(seconds, 2),
                     round(step * batch_size / seconds, 2) if seconds else 0.0, float(losses[0]), float(losses[-1]))
