"""The Keras -> torchvision folding math, checked on tiny synthetic tensors (no download)."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from torch import nn

from core.training.keras_convert import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    KERAS_BN_EPS,
    conv_bn_state,
    keras_resnet50_state_dict,
    read_tfjs_weights,
    resnet50_layer_names,
)
from core.training.models import imagenet_network


def keras_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, pad: int) -> np.ndarray:
    """NHWC x HWIO, stride 1, zero padding `pad`, plus bias: Keras Conv2D written out."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kh, kw = kernel.shape[:2]
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], height, width, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwi,io->nhwo", x[:, i:i + height, j:j + width], kernel[i, j])
    return out + bias


def keras_bn(x: np.ndarray, tensors: dict, name: str) -> np.ndarray:
    t = {p: tensors[f"{name}/{p}"] for p in ("gamma", "beta", "moving_mean", "moving_variance")}
    return t["gamma"] * (x - t["moving_mean"]) / np.sqrt(t["moving_variance"] + KERAS_BN_EPS) + t["beta"]


def random_conv_bn(rng, tensors: dict, conv: str, bn: str, k: int, c_in: int, c_out: int, scale: float) -> None:
    tensors[f"{conv}/kernel"] = (rng.standard_normal((k, k, c_in, c_out)) * scale).astype(np.float32)
    tensors[f"{conv}/bias"] = rng.standard_normal(c_out).astype(np.float32)
    tensors[f"{bn}/gamma"] = rng.uniform(0.5, 1.5, c_out).astype(np.float32)
    tensors[f"{bn}/beta"] = rng.standard_normal(c_out).astype(np.float32)
    tensors[f"{bn}/moving_mean"] = rng.standard_normal(c_out).astype(np.float32)
    tensors[f"{bn}/moving_variance"] = rng.uniform(0.5, 2.0, c_out).astype(np.float32)


def test_folded_network_matches_keras_forward_pass():
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    random_conv_bn(rng, tensors, "conv1", "bn_conv1", 3, 3, 4, scale=0.01)      # sees caffe input 0..255
    random_conv_bn(rng, tensors, "res2a_branch2a", "bn2a_branch2a", 3, 4, 5, scale=0.3)
    image = rng.uniform(0, 1, (2, 9, 9, 3))                                      # NHWC RGB in 0..1

    # Keras: caffe preprocessing, unpadded first conv, then a 'same' conv; each with bias, BN eps 1e-3, relu
    caffe = image[..., ::-1] * 255.0 - np.array(CAFFE_MEAN_BGR)
    hidden = np.maximum(keras_bn(keras_conv(caffe, tensors["conv1/kernel"], tensors["conv1/bias"], 0),
                                 tensors, "bn_conv1"), 0)
    expected = np.maximum(keras_bn(keras_conv(hidden, tensors["res2a_branch2a/kernel"],
                                              tensors["res2a_branch2a/bias"], 1), tensors, "bn2a_branch2a"), 0)

    # torchvision style: bias-free convs, BN eps 1e-5, ImageNet-normalised RGB input
    network = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.Conv2d(4, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU())
    state = conv_bn_state(tensors, "conv1", "bn_conv1", "0", "1", caffe_input=True)
    state |= conv_bn_state(tensors, "res2a_branch2a", "bn2a_branch2a", "3", "4")
    network.load_state_dict(state, strict=True)
    network.eval()
    normalised = (image - np.array(IMAGENET_MEAN_RGB)) / np.array(IMAGENET_STD_RGB)
    with torch.no_grad():
        actual = network(torch.from_numpy(normalised).permute(0, 3, 1, 2).float()).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)


def test_resnet50_mapping_covers_every_tensor_with_the_right_layout():
    torch_state = imagenet_network("resnet50", stride_on_1x1=True).state_dict()
    rng = np.random.default_rng(1)
    tensors = {}
    for keras_conv_name, keras_bn_name, torch_conv, _ in resnet50_layer_names():
        out_c, in_c, k, _ = torch_state[f"{torch_conv}.weight"].shape
        random_conv_bn(rng, tensors, keras_conv_name, keras_bn_name, k, in_c, out_c, scale=0.1)
    tensors["fc1000/kernel"] = rng.standard_normal((2048, 1000)).astype(np.float32)
    tensors["fc1000/bias"] = rng.standard_normal(1000).astype(np.float32)

    state = keras_resnet50_state_dict(tensors)
    imagenet_network("resnet50", stride_on_1x1=True).load_state_dict(state, strict=True)
    assert torch.equal(state["layer3.0.conv2.weight"],
                       torch.from_numpy(tensors["res4a_branch2b/kernel"]).permute(3, 2, 0, 1))
    assert torch.equal(state["fc.weight"], torch.from_numpy(tensors["fc1000/kernel"]).T)
    with pytest.raises(ValueError, match="unexpected Keras tensors"):
        keras_resnet50_state_dict(tensors | {"extra/kernel": tensors["fc1000/bias"]})


def test_read_tfjs_weights_follows_manifest_order_across_shards(tmp_path):
    values = np.arange(10, dtype="<f4")
    manifest = [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                 "weights": [{"name": "a/kernel", "shape": [2, 3], "dtype": "float32"},
                             {"name": "b/bias", "shape": [4], "dtype": "float32"}]}]
    files = {"package/M/model.json": json.dumps({"weightsManifest": manifest}).encode(),
             "package/M/group1-shard2of2.bin": values[7:].tobytes(),   # stored out of order, shards split a tensor
             "package/M/group1-shard1of2.bin": values[:7].tobytes()}
    tarball = tmp_path / "m.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    tensors = read_tfjs_weights(tarball, "package/M/model.json")
    np.testing.assert_array_equal(tensors["a/kernel"], values[:6].reshape(2, 3))
    np.testing.assert_array_equal(tensors["b/bias"], values[6:])
