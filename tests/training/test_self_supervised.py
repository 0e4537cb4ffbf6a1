"""`--ssl-method`: a fold's backbone continues pretraining self-supervised (lightly) on that fold's training
images only, then the usual fit runs from it; its features never share cache entries with the pretrained
backbone's; its fold models serve predictions; a machine without lightly gets one line saying what to install."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.config import RunConfig
from core.delivery.predict import classify, load_ensemble
from core.data.dataset import load_rgb
from core.errors import UserError
from core.evaluate import prob_column
from core.run import lifecycle
from core.store import run_store
from core.testing.stand_in_weights import place_stand_in_weights
from core.training import fold_job, self_supervised
from core.training.device import fold_threads
from core.training.features import feature_cache_key, module_sha256
from core.training.models import imagenet_network
from core.training.preprocessing import recorded_preprocessing
from core.training.run_inputs import fold_parts, image_paths, load_run_inputs

SMALL = ["--model", "resnet18", "--weights", "imagenet", "--image-size", "32", "--folds", "2", "--epochs", "2",
         "--batch-size", "8", "--ssl-epochs", "1", "--ssl-batch-size", "4", "--threads", "1"]  # a shared 2-core machine


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict:
    """A head-mode SimCLR run with stand-in resnet18 weights, created but with no fold trained."""
    from conftest import make_folder_dataset
    root = tmp_path_factory.mktemp("ssl")
    data = make_folder_dataset(root / "data", per_class=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch"))
        placed = place_stand_in_weights("resnet18", 4)
        assert train_cli.main(["--data", str(data), *SMALL, "--train-mode", "head", "--ssl-method", "simclr",
                               "--runs-dir", str(root / "runs"), "--cache-dir", str(root / "cache"),
                               "--prepare-only"]) == 0
        (run_dir,) = (root / "runs").iterdir()
        yield {"root": root, "run_dir": run_dir, "placed": placed, "data": data, "patch": patch}


@pytest.fixture
def seen(monkeypatch) -> list[Path]:
    """Every image file the self-supervised step decodes (DataLoader workers: none on the CPU)."""
    loaded = []

    def recording(path):
        loaded.append(Path(path))
        return load_rgb(path)
    monkeypatch.setattr(self_supervised, "load_rgb", recording)
    return loaded


def paths_of(run_dir: Path, role: str, fold: int) -> set[Path]:
    info, _, samples = load_run_inputs(run_dir)
    paths = image_paths(info, samples)
    return {paths[i] for i in fold_parts(samples, fold)[role]}


def test_a_fold_adapts_its_backbone_on_its_training_images_only_and_writes_the_usual_outputs(prepared, seen):
    run_dir = prepared["run_dir"]
    summary = fold_job.run_fold(run_dir, 0)
    train, val, test = (paths_of(run_dir, role, 0) for role in ("train", "val", "test"))
    assert summary["ssl"]["method"] == "simclr" and summary["ssl"]["images"] == len(train)
    assert summary["ssl"]["steps"] == len(train) // 4 and summary["ssl"]["images_per_second"] > 0
    # training images only (full batches: the epoch's last, partial one is dropped), never validation or test ones
    assert set(seen) <= train and len(seen) == len(set(seen)) == 4 * summary["ssl"]["steps"]
    assert len(val) and len(test) and not set(seen) & (val | test)

    fold = run_store.fold_dir(run_dir, 0)
    roles = set(pd.read_parquet(fold / "predictions.parquet").role)
    assert roles == {"train", "val", "test"} and (fold / "history.parquet").exists() and (fold / "dynamics.npz").exists()
    # the checkpoint is the whole network: its backbone moved away from the pretrained weights
    state = torch.load(fold / "model.pt", weights_only=True)["model"]
    pretrained = torch.load(prepared["placed"], weights_only=True)
    moved = [name for name in pretrained if not name.startswith("fc.") and pretrained[name].is_floating_point()
             and not torch.equal(state[f"backbone.{name}"], pretrained[name])]
    assert "conv1.weight" in moved and "layer4.1.conv2.weight" in moved
    # the head read the adapted features, kept as the fold's embedding; not the pretrained backbone's
    adapted = np.load(run_store.embedding_path(run_dir, "fold0")).astype(np.float32)
    backbone = np.load(run_store.embedding_path(run_dir, "backbone")).astype(np.float32)
    assert adapted.shape == backbone.shape and not np.allclose(adapted, backbone, atol=1e-2)


def test_adapted_features_are_cached_apart_from_the_pretrained_backbones(prepared):
    run_dir = prepared["run_dir"]
    fold_job.run_fold(run_dir, 0)
    info, cfg, _ = load_run_inputs(run_dir)
    prep = recorded_preprocessing(info)
    pretrained_key = feature_cache_key(info["model"], info["weights"]["sha256"], prep)
    keys = {path.name for path in (Path(cfg.cache_dir) / "features").iterdir()}
    assert pretrained_key in keys and len(keys - {pretrained_key}) == 1   # fold 0's adapted backbone: its own
    network = imagenet_network("resnet18", False)
    before = module_sha256(network)
    with torch.no_grad():
        network.conv1.weight[0, 0, 0, 0] += 1e-3
    assert module_sha256(network) != before


def test_unlabelled_images_given_to_a_fold_join_its_training_images(prepared, seen, tmp_path, monkeypatch):
    from conftest import make_image
    run_dir = prepared["run_dir"]
    pool = [tmp_path / f"pool_{i}.png" for i in range(2)]
    for i, path in enumerate(pool):
        make_image(path, (120, 120, 120), seed=900 + i)
    given = []

    def step(backbone, dim, images, *args, **kwargs):
        given.extend(images)
        return self_supervised.continue_pretraining(backbone, dim, images, *args, **kwargs)
    monkeypatch.setattr(fold_job, "continue_pretraining", step)
    _, _, samples = load_run_inputs(run_dir)
    result, *_ = fold_job.fit_parts(run_dir, 1, fold_parts(samples, 1), extra_images=pool)
    train = paths_of(run_dir, "train", 1)
    assert sorted(given) == sorted(train | set(pool)) and set(seen) <= train | set(pool)
    assert result.ssl["extra_images"] == 2 and result.ssl["images"] == len(train) + 2


def test_the_finished_run_predicts_with_each_folds_adapted_network(prepared, monkeypatch):
    monkeypatch.setattr(lifecycle, "run_diagnostics_step", lambda run_dir: None)
    run_dir = prepared["run_dir"]
    assert train_cli.main(["--resume", run_dir.name, "--runs-dir", str(run_dir.parent)]) == 0
    info = run_store.read_json(run_dir / "run.json")
    assert info["status"] == "complete" and info["versions"]["lightly"] == "1.6.0"
    assert {"fold0", "fold1"} <= set(info["spaces"])
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    ensemble = predictions[predictions.model == "ensemble"].sort_values("sample_id")
    _, _, samples = load_run_inputs(run_dir)
    paths = image_paths(info, samples)
    loaded = load_ensemble(run_dir, ood=False)
    assert loaded.backbone is None   # no shared pretrained backbone: each fold brings its own
    probs = classify(loaded, [load_rgb(paths[i]) for i in ensemble.sample_id])
    columns = [prob_column(c) for c in info["classes"]]
    np.testing.assert_allclose(probs, ensemble[columns].to_numpy(), atol=0.02)


def test_a_fold_can_finetune_from_a_byol_adapted_backbone(tmp_path, monkeypatch, folder_dataset):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    place_stand_in_weights("resnet18", 5)
    assert train_cli.main(["--data", str(folder_dataset), *SMALL, "--epochs", "1", "--train-mode", "finetune",
                           "--ssl-method", "byol", "--runs-dir", str(tmp_path / "runs"), "--cache-dir",
                           str(tmp_path / "cache"), "--prepare-only"]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = fold_job.run_fold(run_dir, 0)
    assert summary["ssl"]["method"] == "byol" and summary["ssl"]["steps"] >= 1
    assert np.isfinite(summary["ssl"]["last_loss"])
    assert "model" in torch.load(run_store.fold_dir(run_dir, 0) / "model.pt", weights_only=True)


# ---------------------------------------------------------------- settings and a machine without lightly

def test_a_head_fold_that_trains_its_backbone_keeps_torchs_thread_count():
    assert fold_threads(0, "head", trains_backbone=True) == torch.get_num_threads()
    assert fold_threads(0, "head") == 1


@pytest.mark.parametrize("settings, message", [
    ({"ssl_method": "dino"}, "--ssl-method dino: choose one of simclr, byol"),
    ({"ssl_method": "simclr", "weights": "none"}, "continued pretraining starts from pretrained weights"),
    ({"ssl_method": "byol", "ssl_batch_size": 1}, "--ssl-batch-size 1: at least 2"),
    ({"ssl_method": "byol", "ssl_epochs": 0}, "--ssl-epochs 0: must be a positive whole number"),
    ({"ssl_method": "byol", "ssl_lr": 0.0}, "--ssl-lr 0.0: must be positive"),
])
def test_bad_ssl_settings_are_refused(settings, message):
    with pytest.raises(UserError, match=message):
        RunConfig(**settings).validate()


def test_without_lightly_an_ssl_run_stops_with_one_line_saying_what_to_install(monkeypatch, folder_dataset,
                                                                                 tmp_path, capsys):
    for name in [m for m in sys.modules if m == "lightly" or m.startswith("lightly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightly", None)   # import lightly now raises ImportError
    with pytest.raises(UserError, match=r"pip install lightly==1\.6\.0"):
        self_supervised.require_lightly()
    code = train_cli.main(["--data", str(folder_dataset), "--image-size", "32", "--folds", "2", "--ssl-method",
                           "simclr", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--ssl-method needs the lightly package" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_training_path_does_not_import_lightly():
    code = ("import sys; import core.training.fold_job, core.run.lifecycle, core.experiments.remedy_runs; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('lightly', 'pytorch_lightning')], 'lightly'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(train_cli.__file__).parent)


def test_without_images_given_a_fold_learns_from_the_pool_its_run_can_see(prepared, tmp_path, monkeypatch):
    from conftest import make_image
    run_dir = prepared["run_dir"]
    pool = [tmp_path / "pool_0.png"]
    make_image(pool[0], (90, 90, 90), seed=950)
    asked = []

    def pool_of(run, info):
        asked.append(Path(run))
        return pool
    monkeypatch.setattr(fold_job, "unlabelled_images", pool_of)
    _, _, samples = load_run_inputs(run_dir)
    result, *_ = fold_job.fit_parts(run_dir, 1, fold_parts(samples, 1))
    assert asked == [run_dir] and result.ssl["extra_images"] == 1
