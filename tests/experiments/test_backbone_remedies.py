"""`backbone:MODEL` remedies: any torchvision classifier with its own weights and preprocessing on the baseline's
splits, skipped with the file to place when its weights are missing, with what each run cost."""
from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.config import RunConfig
from core.data.dataset import load_rgb
from core.errors import UserError
from core.experiments import remedies
from core.store import run_store
from core.store.hashing import file_sha256
from core.testing.stand_in_weights import place_stand_in_weights
from core.training.features import eval_transform
from core.training.models import classifier_from_network, imagenet_network, parameter_count
from core.training.preprocessing import Preprocessing, model_preprocessing
from core.training.run_inputs import image_paths, load_run_inputs
from core.training.weights import imagenet_file
from core.views.experiments import costs_view

OTHER = "mobilenet_v3_small"   # small and quick at its own 224 pixels; its weights are placed by the test
MISSING = "efficientnet_b0"    # its weights are not


# ---------------------------------------------------------------- definitions

def test_backbone_names_any_torchvision_classifier_and_refuses_unknown_ones():
    picked = remedies.parse_selection("backbone:vit_b_16,balance-weights,backbone:vit_b_16")
    assert [r.name for r in picked] == ["backbone:vit_b_16", "balance-weights"]
    assert picked[0].overrides == {"model": "vit_b_16", "preprocessing": "model"}
    with pytest.raises(UserError, match="Unknown --remedies backbone:MODEL 'resnet9000'"):
        remedies.parse_selection("backbone:resnet9000")
    assert "backbone:MODEL" in remedies.describe(RunConfig(weights="none"), "head")


def test_a_backbone_remedy_takes_its_models_own_input_size():
    base = RunConfig(image_size=32, name="shoes")
    vit = remedies.remedy_config(base, remedies.remedy_named("backbone:vit_b_16"))
    effnet = remedies.remedy_config(base, remedies.remedy_named("backbone:efficientnet_v2_s"))
    assert (vit.model, vit.image_size, vit.preprocessing, vit.name) == ("vit_b_16", 224, "model",
                                                                         "shoes-backbone:vit_b_16")
    assert effnet.image_size == 384
    same = RunConfig(model="resnet18", preprocessing="model", image_size=224)
    assert remedies.skip_reason(remedies.remedy_named("backbone:resnet18"), same, "head") == \
        "the baseline already uses this setting"


def test_missing_weights_skip_a_backbone_naming_the_file_to_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    remedy = remedies.remedy_named(f"backbone:{OTHER}")
    reason = remedies.skip_reason(remedy, RunConfig(), "finetune")
    assert f"place torchvision's file at {imagenet_file(OTHER)}" in reason
    assert str(imagenet_file(OTHER)).startswith(str(tmp_path))
    place_stand_in_weights(OTHER, 0)
    assert remedies.skip_reason(remedy, RunConfig(), "finetune") is None
    assert "weights of its own" in remedies.skip_reason(remedy, RunConfig(weights="/w/resnet50.pt"), "head")


# ---------------------------------------------------------------- an experiment, offline, with placed weights

@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    from conftest import make_folder_dataset
    root = tmp_path_factory.mktemp("backbones")
    data = make_folder_dataset(root / "data", per_class=8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch"))
        place_stand_in_weights("resnet18", 1)
        placed = place_stand_in_weights(OTHER, 2)
        runs = root / "runs"
        args = ["remedies", "--data", str(data), "--runs-dir", str(runs), "--cache-dir", str(root / "cache"),
                "--model", "resnet18", "--weights", "imagenet", "--image-size", "32", "--folds", "2",
                "--epochs", "2", "--batch-size", "8", "--train-mode", "head",
                "--remedies", f"backbone:{OTHER},backbone:{MISSING}"]
        printed = io.StringIO()
        with redirect_stdout(printed):
            assert train_cli.main(args) == 0
        missing_file = imagenet_file(MISSING)
    document = next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")
    return {"runs": runs, "document": document, "placed": placed, "missing_file": missing_file,
            "printed": printed.getvalue()}


def test_a_backbone_without_weights_is_skipped_with_the_file_to_place(experiment):
    skipped = {s["remedy"]: s["reason"] for s in experiment["document"]["skipped"]}
    assert f"place torchvision's file at {experiment['missing_file']}" in skipped[f"backbone:{MISSING}"]
    assert [r["remedy"] for r in experiment["document"]["runs"]] == [f"backbone:{OTHER}"]


def test_the_backbone_run_uses_the_placed_weights_and_its_own_preprocessing(experiment):
    runs, document = experiment["runs"], experiment["document"]
    entry = document["runs"][0]
    assert entry["status"] == "complete"
    assert entry["overrides"] == {"model": OTHER, "preprocessing": "model", "image_size": 224}
    run_dir = runs / entry["run_id"]
    info, cfg, samples = load_run_inputs(run_dir)
    assert (cfg.model, cfg.image_size, cfg.preprocessing) == (OTHER, 224, "model")
    assert Preprocessing.from_dict(info["preprocessing"]) == model_preprocessing(OTHER, 224)
    assert info["weights"]["path"] == str(experiment["placed"])
    assert info["weights"]["sha256"] == file_sha256(experiment["placed"])
    base = pd.read_parquet(runs / document["baseline"] / "samples.parquet").set_index("path")[["split", "fold"]]
    own = samples.set_index("path")[["split", "fold"]]
    pd.testing.assert_frame_equal(own, base.loc[own.index])
    # the stored features are the placed network's, through its own recipe: not a random initialisation
    network = imagenet_network(OTHER, False)
    network.load_state_dict(torch.load(experiment["placed"], weights_only=True))
    backbone = classifier_from_network(network, OTHER, 3, False)[0].backbone.eval()
    paths = image_paths(info, samples)[:4]
    with torch.inference_mode():
        expected = backbone(torch.stack([eval_transform(model_preprocessing(OTHER, 224))(load_rgb(p))
                                         for p in paths])).numpy()
    stored = np.load(run_store.embedding_path(run_dir, "backbone"))[:4].astype(np.float32)
    assert stored.std(0).mean() > 0.1      # images differ in this space (a degenerate network would not show it)
    np.testing.assert_allclose(stored, expected, rtol=1e-2, atol=1e-2)
    assert info["parameters"] == {"backbone": parameter_count(backbone), "head": 1024 * 3 + 3}


def test_effects_and_costs_are_written_and_printed(experiment):
    folder = Path(experiment["document"]["path"])
    effects = pd.read_parquet(folder / "effects.parquet")
    assert set(effects.remedy) == {f"backbone:{OTHER}"}
    costs = pd.read_parquet(folder / "costs.parquet").set_index("remedy")
    assert list(costs.index) == ["baseline", f"backbone:{OTHER}"]
    assert costs.loc["baseline", "model"] == "resnet18" and costs.loc["baseline", "image_size"] == 32
    other = costs.loc[f"backbone:{OTHER}"]
    assert other.image_size == 224 and other.folds == 2 and other.seconds_per_fold > 0
    assert other.parameters == 1517856 + 1024 * 3 + 3 and other.trained_parameters == 1024 * 3 + 3
    assert "cost per run" in experiment["printed"] and "1.5 M" in experiment["printed"]
    shown = costs_view(costs.reset_index())
    assert shown.loc[1, "parameters"] == other.parameters and shown.loc[1, "input px"] == 224


def test_the_experiments_page_shows_what_each_run_cost(experiment, monkeypatch):
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(experiment["runs"]))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "dashboard" / "Home.py"), default_timeout=120)
    app.query_params["experiment"] = experiment["document"]["experiment_id"]
    app.switch_page("app_pages/8_Experiments.py")
    app.run()
    assert not app.exception, app.exception[0].stack_trace
    assert any("What each run cost" in m.value for m in app.markdown)
    tables = [frame.value for frame in app.dataframe]
    costs = next(t for t in tables if "trained parameters" in t.columns)
    assert list(costs.remedy) == ["baseline", f"backbone:{OTHER}"] and list(costs["input px"]) == [32, 224]
    assert any(f"Skipped **backbone:{MISSING}**" in c.value for c in app.caption)
