"""Stand-in ImageNet weights for machines without internet: a random network placed where `--weights imagenet`
looks for torchvision's file, as a user copies the real one there offline.

Batch-norm statistics are calibrated on random images first: with the initial ones (mean 0, variance 1) some
networks (MobileNet-V3, ShuffleNet) shrink every input to ~1e-9 at the pooled features, which float16 stores as
0, so every image would look the same. Calibrated, features vary between images as pretrained ones do.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.training.models import imagenet_network
from core.training.weights import imagenet_file


def place_stand_in_weights(model: str, seed: int = 0, side: int = 64) -> Path:
    """Write a calibrated random state_dict of `model` at `imagenet_file(model)` (under $TORCH_HOME); its path."""
    torch.manual_seed(seed)
    network = imagenet_network(model, False)
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None   # a plain average over the calibration batches
    network.train()
    with torch.no_grad():
        for _ in range(2):
            network(torch.rand(8, 3, side, side))
    path = imagenet_file(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path)
    return path
