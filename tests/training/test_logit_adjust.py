"""Logit adjustment (Menon et al. 2021): the loss, the post hoc shift, and both through the fit loop and a fold."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from core.config import RunConfig
from core.errors import UserError
from core.training.fit import fit
from core.training.logit_adjust import (
    adjust_head,
    adjust_probabilities,
    adjusted_cross_entropy,
    log_prior,
    posthoc_offset,
)


def test_the_prior_is_the_training_share_and_an_absent_class_counts_as_one_image():
    prior = log_prior(np.array([0, 0, 0, 1]), 3)
    assert torch.exp(prior).tolist() == pytest.approx([3 / 5, 1 / 5, 1 / 5])


def test_the_adjusted_loss_is_cross_entropy_of_logits_plus_tau_log_prior():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    targets = torch.tensor([0, 2])
    prior = torch.log(torch.tensor([0.7, 0.2, 0.1]))
    tau = 1.5
    shifted = logits + tau * prior
    by_hand = -(shifted[[0, 1], targets] - torch.logsumexp(shifted, 1)).mean()
    assert adjusted_cross_entropy(logits, targets, prior, tau).item() == pytest.approx(by_hand.item(), rel=1e-6)
    # tau 0 is plain cross-entropy; the rare class's loss is larger than without the adjustment
    assert adjusted_cross_entropy(logits, targets, prior, 0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, targets).item())
    assert adjusted_cross_entropy(logits[1:], targets[1:], prior, tau) > adjusted_cross_entropy(
        logits[1:], targets[1:], prior, 0.0)


def test_posthoc_moves_predictions_toward_rare_classes_and_the_head_and_probabilities_agree():
    prior = log_prior(np.array([0] * 90 + [1] * 9 + [2] * 1), 3)
    offset = posthoc_offset(prior, 1.0)
    head = nn.Linear(4, 3)
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = torch.softmax(head(x), 1)
        adjust_head(head, offset)
        after = torch.softmax(head(x), 1)
    # the adjusted head's probabilities are those computed from the stored ones
    assert adjust_probabilities(before.numpy(), offset.numpy()) == pytest.approx(after.numpy(), abs=1e-5)
    # the rarest class gains probability everywhere, the commonest loses it, and more images go to the rare ones
    assert (after[:, 2] > before[:, 2]).all() and (after[:, 0] < before[:, 0]).all()
    assert (after.argmax(1) == 2).sum() >= (before.argmax(1) == 2).sum()
    assert (after.argmax(1) == 0).sum() < (before.argmax(1) == 0).sum()


def test_fit_with_the_adjusted_loss_favours_the_rare_class_on_overlapping_data():
    rng = np.random.default_rng(0)
    y = np.array([0] * 300 + [1] * 30)
    x = (rng.normal(0, 1, (len(y), 2)) + 1.0 * y[:, None]).astype(np.float32)   # classes overlap
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def rare_predicted(tau: float) -> int:
        torch.manual_seed(0)
        model = nn.Linear(2, 2)
        cfg = RunConfig(epochs=10, patience=10, lr=0.1, warmup_epochs=0, logit_adjust_loss=tau)
        fit(model, [{"params": model.parameters(), "lr": cfg.lr}],
            DataLoader(data, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)),
            DataLoader(data, batch_size=512), y, 2, cfg, torch.device("cpu"))
        with torch.no_grad():
            return int((model(torch.from_numpy(x)).argmax(1) == 1).sum())
    assert rare_predicted(1.0) > rare_predicted(0.0)


@pytest.mark.parametrize("field", ["logit_adjust_loss", "logit_adjust_posthoc"])
def test_a_negative_tau_is_refused_in_one_line(field):
    with pytest.raises(UserError, match="must be in"):
        RunConfig(**{field: -1.0}).validate()
