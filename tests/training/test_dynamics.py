"""Training dynamics: each training image's given-label probability and margin, every epoch, from the passes."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import train_cli
from core.config import RunConfig
from core.run import lifecycle
from core.store import run_store
from core.training.dynamics import DynamicsRecorder, given_label_scores
from core.training.fit import fit


def test_given_label_scores_are_softmax_probability_and_margin_over_the_best_other_class():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    prob, margin = given_label_scores(logits, torch.tensor([0, 2]))
    assert prob.tolist() == pytest.approx(torch.softmax(logits, 1)[[0, 1], [0, 2]].tolist())
    assert margin.tolist() == pytest.approx([1.0, -4.0])


def test_the_recorder_places_each_batch_by_position_and_leaves_unseen_images_nan():
    recorder = DynamicsRecorder(4)
    recorder.begin_epoch(torch.device("cpu"))
    recorder.record(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), torch.tensor([1, 1]), torch.tensor([3, 0]))
    recorder.end_epoch()
    prob, margin = recorder.arrays()
    assert prob.shape == (1, 4) and prob.dtype == np.float16
    assert margin[0, 3] == 2.0 and margin[0, 0] == -1.0 and np.isnan(margin[0, [1, 2]]).all()


def test_fit_records_every_epoch_of_every_training_image_in_its_shuffled_pass():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = torch.from_numpy((rng.normal(0, 1, (40, 3)) + 3 * y[:, None]).astype(np.float32))
    y[5] = 1 - y[5]   # one flipped label: the model never agrees with it for long
    targets = torch.from_numpy(y)
    train = DataLoader(TensorDataset(x, targets, torch.arange(40)), batch_size=8, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(x, targets), batch_size=64)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    cfg = RunConfig(epochs=6, patience=10, lr=0.1, warmup_epochs=0)
    result = fit(model, [{"params": model.parameters(), "lr": cfg.lr}], train, val, y, 2, cfg, torch.device("cpu"),
                 dynamics=DynamicsRecorder(40))
    prob, margin = result.dynamics["prob"], result.dynamics["margin"]
    assert prob.shape == margin.shape == (6, 40) and not np.isnan(margin).any()
    assert ((margin > 0) == (prob > 0.5)).all()             # two classes: positive margin = majority probability
    aum = margin.astype(np.float32).mean(0)
    assert aum[5] < 0 < np.median(aum)                       # the flipped image has the lowest margins
    assert aum.argmin() == 5


def test_a_head_mode_fold_writes_its_dynamics_and_threshold_samples(tmp_path, csv_dataset, capsys, monkeypatch):
    monkeypatch.setattr(lifecycle, "run_diagnostics_step", lambda run_dir: None)
    code = train_cli.main(["--data", str(csv_dataset), "--runs-dir", str(tmp_path / "runs"), "--weights", "none",
                           "--image-size", "32", "--folds", "2", "--epochs", "3", "--batch-size", "4"])
    assert code == 0
    run = next((tmp_path / "runs").iterdir())
    samples = pd.read_parquet(run / "samples.parquet")
    for fold in (0, 1):
        with np.load(run_store.fold_dir(run, fold) / run_store.DYNAMICS_FILE) as saved:
            train_ids = samples[(samples.split == "cv") & (samples.fold != fold)].sample_id.to_numpy()
            assert sorted(saved["sample_id"].tolist()) == train_ids.tolist()
            epochs = run_store.read_json(run_store.fold_dir(run, fold) / "fold.json")["epochs_run"]
            assert saved["prob"].shape == saved["margin"].shape == (epochs, len(train_ids))
            assert saved["prob"].dtype == np.float16 and not np.isnan(saved["prob"]).any()
            classes = samples.label.nunique()
            assert len(saved["threshold_aum"]) == len(train_ids) // (classes + 1)
