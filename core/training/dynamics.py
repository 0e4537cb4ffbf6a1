"""Training dynamics: every training image's probability of its given label and its margin, at every epoch.

Recorded from the training passes themselves (no extra forward pass): each training batch carries the positions
of its images within the fold's training part, and the logits the step already computed are scored against the
batch's labels before the weights move. In finetune mode those logits are of augmented images in train mode (as
Pleiss et al. record the area under the margin); an image a pass never showed (a balanced sampler's draw, a
dropped last batch) is NaN for that epoch.

Margin (Pleiss et al., 2020): the given label's logit minus the largest other logit; positive when the model
predicts the given label.
"""
from __future__ import annotations

import numpy as np
import torch


def given_label_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(probability of the given label, margin) of each row of float `logits`."""
    logits = logits.float()
    rows = torch.arange(len(targets), device=logits.device)
    given = logits[rows, targets]
    others = logits.clone()
    others[rows, targets] = float("-inf")
    prob = torch.softmax(logits, dim=1)[rows, targets]
    return prob, given - others.max(dim=1).values


class DynamicsRecorder:
    """Collects one row per epoch of n training images; `fit` feeds it the logits of each training batch."""

    def __init__(self, n: int):
        self.n = n
        self._prob: list[np.ndarray] = []
        self._margin: list[np.ndarray] = []
        self._epoch: tuple[torch.Tensor, torch.Tensor] | None = None

    def begin_epoch(self, device: torch.device) -> None:
        self._epoch = (torch.full((self.n,), float("nan"), device=device),
                       torch.full((self.n,), float("nan"), device=device))

    def record(self, logits: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor) -> None:
        """Kept on the device until the epoch ends (a copy to the host every step would stall a GPU)."""
        prob, margin = given_label_scores(logits.detach(), targets)
        positions = positions.to(prob.device)
        self._epoch[0][positions] = prob
        self._epoch[1][positions] = margin

    def end_epoch(self) -> None:
        prob, margin = self._epoch
        self._prob.append(prob.cpu().numpy())
        self._margin.append(margin.cpu().numpy())
        self._epoch = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """float16 [epochs, n] probability of the given label and margin."""
        shape = (len(self._prob), self.n)
        if not self._prob:
            return np.empty(shape, np.float16), np.empty(shape, np.float16)
        return np.stack(self._prob).astype(np.float16), np.stack(self._margin).astype(np.float16)
