"""Logit adjustment for long-tailed classes (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).

Two forms, each with its own strength tau (RunConfig):
- the loss (`logit_adjust_loss`): cross-entropy of logits + tau * log(prior) while training, so the trained
  logits themselves favour rare classes; predictions use the logits as they are.
- post hoc (`logit_adjust_posthoc`): logits - tau * log(prior) after training, folded into the head's bias, so
  the saved head, `predict`, `serve` and the ensemble all apply it without knowing it was made.
The prior is each fold's own: class shares of that fold's training part only.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def log_prior(train_labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """log of each class's share of the training labels. A class absent from them counts as one image: its
    adjustment is then that of the rarest possible class, not an infinite one."""
    counts = np.maximum(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes), 1)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)


def adjusted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, prior: torch.Tensor, tau: float,
                           **cross_entropy) -> torch.Tensor:
    """The logit-adjusted loss: cross-entropy of logits + tau * log(prior) (`prior` from `log_prior`); tau 0 is
    plain cross-entropy. Extra keywords (weight, label_smoothing) go to F.cross_entropy."""
    return F.cross_entropy(logits + tau * prior.to(logits.device), targets, **cross_entropy)


def posthoc_offset(prior: torch.Tensor, tau: float) -> torch.Tensor:
    """What post hoc adjustment adds to every logit: -tau * log(prior) (rare classes gain most)."""
    return -tau * prior


@torch.no_grad()
def adjust_head(head: nn.Linear, offset: torch.Tensor) -> None:
    """Shift a linear head's bias by `offset`: its logits become logits + offset, for every input."""
    head.bias.add_(offset.to(head.bias.device, head.bias.dtype))


def adjust_probabilities(probs: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """softmax(log p + offset): the probabilities of logits + offset, from stored probabilities (softmax ignores
    the constant that separates log p from the logits). float32, like predictions.parquet."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-300, None)) + np.asarray(offset, dtype=np.float64)
    logp -= logp.max(axis=1, keepdims=True)
    adjusted = np.exp(logp)
    return (adjusted / adjusted.sum(axis=1, keepdims=True)).astype(np.float32)
