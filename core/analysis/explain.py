"""Class activation maps: where in an image the model that predicted it found the evidence for a class.

Finetune runs: Grad-CAM (the grad-cam package) on the fold network's last convolutional stage. Head runs: the
classic CAM, exact for a linear head on global-average-pooled features and written directly: the head's
weights times the final feature map, whose spatial mean plus the bias is the logit itself. (Grad-CAM's channel
weights reduce to the same head weights there, so both modes show the same kind of map: ReLU, then scaled to
0–1.) The test-set ensemble's map is the mean of its fold models' maps (head mode: the map of the mean head).

Overlays are small PNGs in the content-addressed cache (`cache_dir`/gradcam, see core.analysis.overlay_cache), keyed by
the image bytes, the fold weights and the class, so they are computed once and never written into a run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

from core.analysis.overlay_cache import ENSEMBLE, MapRequest, OverlayCache
from core.data.dataset import load_rgb
from core.errors import UserError
from core.store import run_store
from core.store.heartbeat import heartbeat
from core.training.device import pick_device
from core.training.fold_job import load_fold_model
from core.training.models import Classifier
from core.training.preprocessing import normalise, recorded_preprocessing
from core.training.run_inputs import shared_backbone
from core.training.weights import recorded_backbone

OVERLAY_SIDE = 192        # the gallery's thumbnail size


def last_conv_stage(backbone: nn.Module) -> nn.Module:
    """The last top-level block that contains a convolution (ResNet: layer4): Grad-CAM's usual target."""
    stages = [module for module in backbone.children() if any(isinstance(m, nn.Conv2d) for m in module.modules())]
    if not stages:
        raise UserError(f"{type(backbone).__name__} has no convolutional stage to explain")
    return stages[-1]


def feature_maps(backbone: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(final stage's feature map [B, C, h, w], pooled features [B, C]) of one forward pass."""
    captured = {}
    handle = last_conv_stage(backbone).register_forward_hook(lambda _m, _i, output: captured.update(map=output))
    try:
        pooled = backbone(images)
    finally:
        handle.remove()
    return captured["map"], pooled


def head_cam(feature_map: torch.Tensor, head: nn.Linear) -> torch.Tensor:
    """Class activation maps [B, n_classes, h, w] for a linear head on average-pooled features: each
    position's contribution to each logit (their spatial mean plus the bias is the logit)."""
    return torch.einsum("bchw,kc->bkhw", feature_map, head.weight)


def _scaled(maps: torch.Tensor, side: int) -> np.ndarray:
    """ReLU, upsample to the input size and scale each map to 0–1 (as grad-cam does)."""
    maps = F.interpolate(maps.clamp(min=0)[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return ((maps - low) / (high - low).clamp(min=1e-7)).cpu().numpy()


def grad_cam(network: Classifier, images: torch.Tensor, classes: list[int]) -> np.ndarray:
    """Grad-CAM maps [B, side, side] (0–1) of one class per image, on the backbone's last conv stage."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with GradCAM(model=network, target_layers=[last_conv_stage(network.backbone)]) as cam:
        return cam(input_tensor=images, targets=[ClassifierOutputTarget(c) for c in classes])


def overlay(crop: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The heat map over the image (the model's centre crop), OVERLAY_SIDE pixels square."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    picture = Image.fromarray(show_cam_on_image(crop.astype(np.float32) / 255.0, mask, use_rgb=True))
    picture.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE))
    return picture


class Explainer(OverlayCache):
    """The fold models of one run, loaded when first needed, turning map requests into cached overlay PNGs."""

    def __init__(self, run_dir: Path, cache_dir: str | Path | None = None, device: torch.device | None = None,
                 batch_size: int = 16):
        super().__init__(run_dir, cache_dir)
        self.device = device or pick_device()
        self.batch_size = batch_size
        self.head_mode = shared_backbone(self.info)   # heads on one backbone, not whole fold networks
        self.prep = recorded_preprocessing(self.info)
        self.geometry = v2.Compose([v2.PILToTensor(),   # core.training.features.eval_transform's geometry
                                    v2.Resize(self.prep.resize, interpolation=self.prep.mode, antialias=True),
                                    v2.CenterCrop(self.prep.size)])
        self._backbone: nn.Module | None = None
        self.computed = 0   # overlays made by the last `overlays` call

    # ------------------------------------------------------------ computing

    def overlays(self, requests: Iterable[MapRequest], log: Callable[[str], None] = lambda _: None) -> dict:
        """Make every missing overlay; returns {request: path} for all requests and counts what it computed."""
        requests = list(dict.fromkeys(requests))
        paths = {request: self.path(request) for request in requests}
        missing = [r for r in requests if not paths[r].exists()]
        for model in sorted({r.model for r in missing}):
            if not self.available(model):
                raise UserError(f"run {self.run_dir.name}: {model} has no checkpoint "
                                f"(folds/fold*/model.pt), so its maps cannot be computed")
            todo = [r for r in missing if r.model == model]
            started = time.perf_counter()
            self._compute(model, todo, paths)
            log(f"explain: {model}: {len(todo)} maps in {time.perf_counter() - started:.1f} s")
        self.computed = len(missing)
        return paths

    def _images(self, sample_ids: list[int]) -> tuple[torch.Tensor, np.ndarray]:
        """(normalised model inputs, uint8 HWC centre crops) of samples, decoded as training decodes them."""
        root = Path(self.info["dataset"]["root"])
        crops = torch.stack([self.geometry(load_rgb(root / self.samples.at[i, "path"])) for i in sample_ids])
        inputs = normalise(crops.float() / 255.0, self.prep)
        return inputs, crops.permute(0, 2, 3, 1).numpy()

    def _networks(self, model: str) -> list[Classifier]:
        """The fold networks behind `model`, in eval mode on the device. Head mode: the one pretrained backbone
        with the fold's head (the ensemble: the mean head)."""
        if not self.head_mode:
            return [load_fold_model(self.run_dir, k).eval().to(self.device) for k in self.folds(model)]
        if self._backbone is None:
            self._backbone = recorded_backbone(self.info).eval().to(self.device)
            self._backbone.to(memory_format=torch.channels_last)   # about a quarter faster on CPU and GPU
        heads = [load_fold_model(self.run_dir, k) for k in self.folds(model)]
        network = Classifier(self._backbone, heads[0].in_features, heads[0].out_features)
        # the mean head: its logits are the mean of the fold heads' logits
        network.head.load_state_dict({name: torch.stack([h.state_dict()[name] for h in heads]).mean(0)
                                      for name in ("weight", "bias")})
        return [network.eval().to(self.device)]

    def _compute(self, model: str, todo: list[MapRequest], paths: dict) -> None:
        networks = self._networks(model)
        ids = list(dict.fromkeys(r.sample_id for r in todo))
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            inputs, crops = self._images(batch)
            inputs = inputs.to(self.device)
            in_batch = set(batch)
            wanted = [r for r in todo if r.sample_id in in_batch]
            rows = [batch.index(r.sample_id) for r in wanted]
            classes = [r.class_index for r in wanted]
            if self.head_mode:
                with torch.inference_mode():
                    feature_map, _ = feature_maps(networks[0].backbone,
                                                  inputs.contiguous(memory_format=torch.channels_last))
                    cams = head_cam(feature_map, networks[0].head)
                masks = _scaled(cams[rows, classes], self.side)
            else:   # one Grad-CAM per fold model, averaged (a single fold model: its own map)
                masks = np.mean([grad_cam(net, inputs[rows], classes) for net in networks], axis=0)
            for request, row, mask in zip(wanted, rows, masks):
                with run_store.atomic_path(paths[request]) as temporary:
                    overlay(crops[row], mask).save(temporary, format="PNG")


# ---------------------------------------------------------------- which maps a run needs

def misclassified_requests(predictions: pd.DataFrame) -> list[MapRequest]:
    """Predicted- and true-class maps of every wrong validation prediction (from its fold model) and every
    wrong test prediction of the ensemble."""
    rows = predictions[((predictions["role"] == "val") & (predictions["model"] != ENSEMBLE))
                       | (predictions["model"] == ENSEMBLE)]
    wrong = rows[rows["label"] != rows["pred"]]
    return [MapRequest(int(row.sample_id), str(row.model), int(class_index))
            for row in wrong.itertuples() for class_index in (row.pred, row.label)]


def explain_run(run_dir: Path, cache_dir: str | Path | None = None, batch_size: int = 16,
                log: Callable[[str], None] = print) -> dict:
    """Precompute the maps of every misclassified validation and test image of a run."""
    started = time.perf_counter()
    predictions = pd.read_parquet(Path(run_dir) / "predictions.parquet")
    requests = misclassified_requests(predictions)
    explainer = Explainer(run_dir, cache_dir, batch_size=batch_size)
    # beside the run's own heartbeat: `runs rm` waits for it, and readers see the run being explained
    with heartbeat(run_dir, "explain", f"python train_cli.py explain {Path(run_dir).name}", name="explain",
                   optional=True) as beat:
        beat.update("class activation maps", 0, len(requests))
        explainer.overlays(requests, log=log)
    return {"maps": len(requests), "computed": explainer.computed, "images": len({r.sample_id for r in requests}),
            "seconds": round(time.perf_counter() - started, 2), "device": str(explainer.device)}
