"""`--embedder MODEL`: a second pretrained network's features as a space of the diagnostics, with its own weights
(placed offline) and preprocessing; refused before a run exists when its weights cannot be had. The run itself is
a finetune of another torchvision family with its own recipe."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.store import run_store
from core.store.hashing import file_sha256
from core.testing.stand_in_weights import place_stand_in_weights
from core.training.preprocessing import Preprocessing, model_preprocessing
from core.training.weights import imagenet_file

EMBEDDER = "mobilenet_v3_small"


def offline(*args, **kwargs):
    raise OSError("offline (test)")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    return tmp_path / "torch"


def test_an_embedder_adds_its_space_and_the_diagnostics_use_it(torch_home, folder_dataset, tmp_path):
    placed = place_stand_in_weights(EMBEDDER, 3)
    runs = tmp_path / "runs"
    code = train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "c"),
                           "--model", "shufflenet_v2_x0_5", "--weights", "none", "--preprocessing", "model",
                           "--image-size", "48", "--train-mode", "finetune", "--folds", "2", "--epochs", "1",
                           "--batch-size", "8", "--embedder", EMBEDDER])
    assert code == 0
    run_dir = next(runs.iterdir())
    info = run_store.read_json(run_dir / "run.json")
    assert info["config"]["embedder"] == EMBEDDER
    assert info["embedder"]["weights"]["path"] == str(placed)
    assert info["embedder"]["weights"]["sha256"] == file_sha256(placed)
    assert Preprocessing.from_dict(info["embedder"]["preprocessing"]) == model_preprocessing(EMBEDDER, 224)
    assert Preprocessing.from_dict(info["preprocessing"]) == model_preprocessing("shufflenet_v2_x0_5", 48)
    assert info["spaces"][:2] == ["backbone", "embedder"] and "fold0" in info["spaces"]
    embedded = np.load(run_store.embedding_path(run_dir, "embedder"))
    assert embedded.shape == (18, 1024)
    assert embedded.astype(np.float32).std(0).mean() > 0.1   # the placed network's features: images differ
    diagnostics = run_store.read_json(run_dir / "diagnostics.json")
    assert diagnostics["reference_space"] == "embedder"
    assert "embedder" in set(pd.read_parquet(run_dir / "umap.parquet").space)


def test_an_embedder_whose_weights_cannot_be_had_stops_before_a_run_exists(torch_home, folder_dataset, tmp_path,
                                                                            capsys):
    runs = tmp_path / "runs"
    code = train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(runs), "--weights", "none",
                           "--image-size", "32", "--folds", "2", "--epochs", "1", "--embedder", "efficientnet_b0"])
    error = capsys.readouterr().err.strip().splitlines()[-1]   # above it: the scan's progress bar
    assert code == 2 and (not runs.exists() or not any(runs.iterdir()))
    assert error.startswith("error: --embedder efficientnet_b0: --weights imagenet: could not get")
    assert f"place torchvision's file for efficientnet_b0 at {imagenet_file('efficientnet_b0')}" in error
    assert train_cli.main(["--data", str(folder_dataset), "--embedder", "resnet9000"]) == 2
    assert "Unknown --embedder 'resnet9000'" in capsys.readouterr().err
