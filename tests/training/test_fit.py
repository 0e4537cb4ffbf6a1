"""The training loop: balancing, schedule, and early stopping that keeps the best epoch."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from core.config import RunConfig
from core.training.fit import balanced_sampler, class_weights, fit, warmup_cosine


def test_class_weights_are_inverse_frequency_and_zero_for_absent_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([4 / 6, 4 / 2, 0.0])


def test_weighted_sampler_draws_classes_about_equally():
    labels = np.array([0] * 900 + [1] * 100)
    drawn = labels[list(balanced_sampler(labels, torch.Generator().manual_seed(0)))]
    assert abs((drawn == 1).mean() - 0.5) < 0.05


def test_learning_rate_warms_up_linearly_then_decays_to_zero():
    factor = warmup_cosine(warmup_steps=4, total_steps=20)
    assert [factor(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factor(12) == pytest.approx(0.5) and factor(20) == pytest.approx(0.0)


def separable(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = (rng.normal(0, 1, (n, 4)) + 3 * y[:, None]).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_fit_learns_and_restores_the_best_epoch_when_validation_gets_worse():
    x, y = separable()
    # Validation labels are the opposite: the better the model learns, the worse validation gets,
    # so the best epoch is the first and training stops after `patience` epochs.
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(x, 1 - y), batch_size=64)
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    cfg = RunConfig(epochs=40, patience=3, lr=0.05, warmup_epochs=0)
    result = fit(model, [{"params": model.parameters(), "lr": cfg.lr}], train, val, y.numpy(), 2, cfg,
                 torch.device("cpu"))
    assert result.stopped_early and result.epochs_run == result.best_epoch + 3
    assert torch.equal(model.weight, result.best_state["weight"])
    train_rows = [h for h in result.history if h["phase"] == "train"]
    assert train_rows[-1]["accuracy"] > 0.9
