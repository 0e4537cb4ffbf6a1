"""How images become a network's input: the centre-crop size, the side they are resized to first, the
normalisation and the resampling filter.

`standard` (the default) is one recipe for every network: resize to size / 0.875, ImageNet mean and std,
bilinear. `model` takes the recipe of the network's own torchvision ImageNet weights (`weights.transforms()`):
EfficientNet-V2-S resizes without a crop margin, ConvNeXt resizes to 236/224 of the crop, EfficientNet-B0 and
Swin resample bicubically. Either way the crop is `--image-size`, except for a network built for one input size
(ViT), which refuses any other. A run records the recipe it resolved (run.json `preprocessing`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torchvision

from core.config import RunConfig, resize_side
from core.errors import UserError
from core.training.models import shape_network

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    size: int                                   # the square centre crop the network sees
    resize: int                                 # the short side images are resized to before the crop
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"             # torchvision InterpolationMode value

    @classmethod
    def standard(cls, size: int) -> "Preprocessing":
        return cls(size, resize_side(size))

    @property
    def mode(self) -> torchvision.transforms.InterpolationMode:
        return torchvision.transforms.InterpolationMode(self.interpolation)

    def cache_tag(self) -> str:
        """What the features depend on; the standard recipe keeps the tag of features cached before recipes."""
        tag = f"eval:resize{self.resize}crop{self.size}"
        if (self.mean, self.std, self.interpolation) != (IMAGENET_MEAN, IMAGENET_STD, "bilinear"):
            tag += f"|mean{list(self.mean)}|std{list(self.std)}|{self.interpolation}"
        return tag

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(int(values["size"]), int(values["resize"]), tuple(values["mean"]), tuple(values["std"]),
                   values["interpolation"])


def own_transforms(model_name: str):
    """torchvision's evaluation transform for the model's default ImageNet weights (crop, resize, mean, std)."""
    return torchvision.models.get_model_weights(model_name).DEFAULT.transforms()


def own_input_size(model_name: str) -> int:
    """The crop size the model's ImageNet weights were evaluated at (384 for EfficientNet-V2-S, 224 for most)."""
    return int(own_transforms(model_name).crop_size[0])


def fixed_input_size(model_name: str) -> int | None:
    """The one input size a network accepts (ViT's patch grid is built for it), or None when any size works."""
    size = getattr(shape_network(model_name), "image_size", None)
    return int(size) if size else None


def model_preprocessing(model_name: str, size: int) -> Preprocessing:
    """The model's own recipe at crop `size`: its resize margin scaled to that size, its mean, std and filter."""
    own = own_transforms(model_name)
    ratio = own.resize_size[0] / own.crop_size[0]
    return Preprocessing(size, round(size * ratio), tuple(float(v) for v in own.mean),
                         tuple(float(v) for v in own.std), own.interpolation.value)


def run_preprocessing(cfg: RunConfig) -> Preprocessing:
    """The recipe of a run with these settings; a UserError before anything starts when the size cannot work."""
    fixed = fixed_input_size(cfg.model)
    if fixed is not None and cfg.image_size != fixed:
        raise UserError(f"--image-size {cfg.image_size}: {cfg.model} takes only {fixed}-pixel inputs; "
                        f"pass --image-size {fixed}")
    if cfg.preprocessing == "model":
        return model_preprocessing(cfg.model, cfg.image_size)
    return Preprocessing.standard(cfg.image_size)


def recorded_preprocessing(info: dict) -> Preprocessing:
    """A run's recipe as run.json recorded it (runs from before recipes: the standard one at their size)."""
    if info.get("preprocessing"):
        return Preprocessing.from_dict(info["preprocessing"])
    return Preprocessing.standard(int(info["config"]["image_size"]))


def normalise(images: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """float [0, 1] N x 3 x H x W -> normalised with the recipe's mean and std."""
    mean = images.new_tensor(prep.mean).view(1, 3, 1, 1)
    std = images.new_tensor(prep.std).view(1, 3, 1, 1)
    return (images - mean) / std
