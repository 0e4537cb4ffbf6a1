"""The network: a torchvision classification backbone whose last linear layer is swapped for a new head."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchvision
from torch import nn

from core.errors import UserError


@dataclass
class Architecture:
    """Everything needed to rebuild a fold checkpoint's network (recorded in run.json as `model`)."""
    name: str
    feature_dim: int
    stride_on_1x1: bool = False  # Keras "v1" ResNet-50 downsamples on the first 1x1 conv of a stage

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Architecture":
        return cls(**values)


class Classifier(nn.Module):
    """backbone: normalised images -> pooled features; head: features -> class logits."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise UserError(f"Model '{type(model).__name__}' has no final linear layer to replace with a new head.")
    return last


def _replace_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def use_stride_on_1x1(resnet: nn.Module) -> None:
    """Move each stage's downsampling stride from the 3x3 conv (torchvision v1.5) to the first 1x1 (v1)."""
    for layer in (resnet.layer2, resnet.layer3, resnet.layer4):
        layer[0].conv1.stride = (2, 2)
        layer[0].conv2.stride = (1, 1)


def imagenet_network(arch_name: str, stride_on_1x1: bool) -> nn.Module:
    """The plain torchvision network with its 1000-class layer, randomly initialised."""
    network = torchvision.models.get_model(arch_name, weights=None)
    if stride_on_1x1:
        use_stride_on_1x1(network)
    return network


def shape_network(arch_name: str) -> nn.Module:
    """The network with its shapes and attributes but no memory (meta device); built on the CPU for the few
    torchvision builders that compute with tensors while building (RegNet)."""
    try:
        with torch.device("meta"):
            return torchvision.models.get_model(arch_name, weights=None)
    except NotImplementedError:
        return torchvision.models.get_model(arch_name, weights=None)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classifier_from_network(network: nn.Module, arch_name: str, num_classes: int,
                            stride_on_1x1: bool) -> tuple[Classifier, Architecture]:
    """Cut the network's last linear layer off and put a fresh `num_classes` head in its place."""
    last_name, last = _last_linear(network)
    _replace_module(network, last_name, nn.Identity())
    arch = Architecture(name=arch_name, feature_dim=last.in_features, stride_on_1x1=stride_on_1x1)
    return Classifier(network, last.in_features, num_classes), arch


def rebuild_classifier(arch: Architecture, num_classes: int) -> Classifier:
    """Same architecture as a recorded run, random weights: load a fold checkpoint into it."""
    classifier, _ = classifier_from_network(imagenet_network(arch.name, arch.stride_on_1x1),
                                            arch.name, num_classes, arch.stride_on_1x1)
    return classifier
