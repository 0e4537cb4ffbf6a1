"""Class activation maps: exact for a linear head, Grad-CAM when fine-tuned, cached once, precomputed by the CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from explain_fixtures import trained_runs  # noqa: F401

import train_cli
from core.analysis.explain import Explainer, MapRequest, explain_run, feature_maps, grad_cam, head_cam, last_conv_stage
from core.training.models import Architecture, rebuild_classifier


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return rebuild_classifier(Architecture("resnet18", 512), num_classes=3).eval()


def test_head_cam_is_exact_its_mean_plus_bias_is_the_logit(network) -> None:
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feature_map, pooled = feature_maps(network.backbone, images)
        cams = head_cam(feature_map, network.head)
        logits = network(images)
    assert last_conv_stage(network.backbone) is network.backbone.layer4
    assert cams.shape == (2, 3, 2, 2)
    torch.testing.assert_close(pooled, feature_map.mean(dim=(2, 3)))
    torch.testing.assert_close(cams.mean(dim=(2, 3)) + network.head.bias, logits, rtol=1e-4, atol=1e-4)


def test_grad_cam_gives_one_map_per_image_scaled_to_0_1(network) -> None:
    maps = grad_cam(network, torch.randn(2, 3, 64, 64), [0, 2])
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_every_misclassified_image_gets_predicted_and_true_class_maps_once(trained_runs, tmp_path, mode) -> None:
    run = trained_runs[mode]
    predictions = pd.read_parquet(run / "predictions.parquet")
    val_or_ensemble = predictions[(predictions["role"] == "val") | (predictions["model"] == "ensemble")]
    wrong = val_or_ensemble[val_or_ensemble["label"] != val_or_ensemble["pred"]]
    assert len(wrong) > 0   # what this test is about
    first = explain_run(run, tmp_path, log=lambda line: None)
    assert first["maps"] == first["computed"] == 2 * len(wrong) and first["images"] == wrong["sample_id"].nunique()
    files = sorted((tmp_path / "gradcam").rglob("*.png"))
    assert len(files) == first["maps"]
    stamps = [f.stat().st_ino for f in files]   # a use touches a file; redoing it would write a new one
    again = explain_run(run, tmp_path, log=lambda line: None)
    assert again["computed"] == 0 and [f.stat().st_ino for f in files] == stamps   # reused, not redone


def test_an_overlay_is_keyed_by_image_model_and_class(trained_runs, tmp_path) -> None:
    explainer = Explainer(trained_runs["head"], tmp_path)
    base = MapRequest(0, "fold0", 0)
    paths = explainer.overlays([base, MapRequest(0, "fold0", 1), MapRequest(0, "fold1", 0),
                                MapRequest(1, "fold0", 0)])
    assert len(set(paths.values())) == 4 and explainer.computed == 4
    from PIL import Image
    with Image.open(paths[base]) as picture:
        assert picture.size == (32, 32) and picture.mode == "RGB"   # the model's centre crop, never upscaled
    assert np.asarray(Image.open(paths[base])).std() > 0
    assert Explainer(trained_runs["head"], tmp_path).overlays([base])[base] == paths[base]


def test_explain_cli_precomputes_and_names_bad_input_in_one_line(trained_runs, tmp_path, capsys) -> None:
    run = trained_runs["head"]
    args = ["--runs-dir", str(run.parent), "--cache-dir", str(tmp_path)]
    assert train_cli.main(["explain", run.name, *args]) == 0
    assert "maps of" in capsys.readouterr().out and any((tmp_path / "gradcam").rglob("*.png"))
    assert train_cli.main(["explain", "no-such-run", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: run no-such-run: no such run") and "\n" not in error
    assert train_cli.main(["explain", run.name, *args, "--batch-size", "0"]) == 2
