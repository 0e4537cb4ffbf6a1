"""Temperature scaling (Guo et al. 2017): one number T that softens (T > 1) or sharpens over-/under-confident
probabilities without changing which class is on top, fitted by minimising the negative log-likelihood."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

FLOOR = 1e-12   # probabilities are stored as float32: an exact 0 would be an infinite logit


def scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the probabilities a model would give with its logits divided by T (log p is the
    logits up to a per-row constant, which softmax ignores)."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, None))
    return np.exp(log_softmax(logits / temperature, axis=1))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] (searched on log T) that minimises the mean negative log-likelihood of `labels`."""
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, None))
    labels = np.asarray(labels)

    def nll(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))
