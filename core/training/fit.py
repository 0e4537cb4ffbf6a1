"""One training loop for both modes: a head on cached features, or the whole network on images.

AdamW, warm-up then cosine learning rate, optional label smoothing, class balancing and logit-adjusted loss,
early stopping on validation balanced accuracy keeping the best epoch's weights.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from core.config import RunConfig
from core.training.device import FastPaths, choose_fast_paths
from core.training.dynamics import DynamicsRecorder
from core.training.logit_adjust import adjusted_cross_entropy, log_prior
from core.training.progress import bar


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    history: list[dict] = field(default_factory=list)  # epoch, phase, loss, accuracy, balanced_accuracy, lr
    dynamics: dict[str, np.ndarray] = field(default_factory=dict)  # prob, margin: [epochs, n_train] (dynamics.py)
    ssl: dict | None = None   # the self-supervised step the fold job ran before this fit (fold.json `ssl`)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """scikit-learn's 'balanced' weights n / (n_present_classes * count); 0 for a class absent from training."""
    present = np.unique(labels)
    weights = np.zeros(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_sampler(labels: np.ndarray, generator: torch.Generator) -> WeightedRandomSampler:
    per_sample = 1.0 / np.bincount(labels)[labels]
    return WeightedRandomSampler(torch.as_tensor(per_sample), num_samples=len(labels), replacement=True,
                                 generator=generator)


def warmup_cosine(warmup_steps: int, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def epoch_metrics(losses: list[torch.Tensor], logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict:
    y_true = torch.cat(labels).numpy()
    y_pred = torch.cat(logits).argmax(1).numpy()
    return {"loss": float(torch.cat(losses).mean()), "accuracy": accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced_accuracy_score(y_true, y_pred)}


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device,
                   bf16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    logits, labels = [], []
    for inputs, targets in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits.append(model(inputs.to(device, non_blocking=True)).float().cpu())
        labels.append(targets)
    return torch.cat(logits), torch.cat(labels)


def fit(model: nn.Module, param_groups: list[dict], train_loader: DataLoader, val_loader: DataLoader,
        train_labels: np.ndarray, num_classes: int, cfg: RunConfig, device: torch.device,
        desc: str = "train", fast: FastPaths | None = None, batch_progress: bool = True,
        dynamics: DynamicsRecorder | None = None) -> FitResult:
    """Train `model` on `train_loader`, select the epoch with the best validation balanced accuracy.

    The loaders may be DataLoaders or anything yielding (inputs, targets) with a length, e.g. device-resident
    batches. `fast` (default: the device's own, never compiled) says whether to compile the training forward
    (evaluation stays eager: no recompiles for eval mode or odd batch sizes) and to run under bf16 autocast.
    With `dynamics`, training batches are (inputs, targets, positions) and every epoch's given-label probability
    and margin of each position is recorded from the logits the step computes anyway.
    """
    fast = fast or choose_fast_paths(device, compile_setting="off")
    weight = class_weights(train_labels, num_classes).to(device) if cfg.balance == "weights" else None
    prior = log_prior(train_labels, num_classes).to(device)   # the fold's training part only
    optimizer = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    forward = torch.compile(model) if fast.compile else model
    steps = len(train_loader)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 warmup_cosine(cfg.warmup_epochs * steps, cfg.epochs * steps))
    result = FitResult(best_state={}, best_epoch=0, epochs_run=0, stopped_early=False)
    best_score = -1.0
    epochs = bar(range(1, cfg.epochs + 1), desc=desc, unit="epoch", leave=False)
    for epoch in epochs:
        lr = optimizer.param_groups[-1]["lr"]  # the head's group is last
        model.train()
        logits_seen, labels_seen = [], []
        batches = bar(train_loader, desc=f"epoch {epoch}", unit="batch", leave=False, disable=not batch_progress)
        if dynamics is not None:
            dynamics.begin_epoch(device)
        for inputs, targets, *positions in batches:
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast.bf16):
                logits = forward(inputs)
            loss = adjusted_cross_entropy(logits.float(), targets, prior, cfg.logit_adjust_loss, weight=weight,
                                          label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            # Kept on the device until the epoch ends: a copy to the host every step would stall the GPU.
            logits_seen.append(logits.detach().float())
            labels_seen.append(targets)
            if dynamics is not None:
                dynamics.record(logits, targets, positions[0])
        if dynamics is not None:
            dynamics.end_epoch()
        train_logits, train_labels_seen = torch.cat(logits_seen).cpu(), torch.cat(labels_seen).cpu()
        # Reported loss is plain cross-entropy so train and validation curves are comparable.
        train_row = epoch_metrics([F.cross_entropy(train_logits, train_labels_seen, reduction="none")],
                                  [train_logits], [train_labels_seen])
        val_logits, val_labels = predict_logits(model, val_loader, device, fast.bf16)
        val_row = epoch_metrics([F.cross_entropy(val_logits, val_labels, reduction="none")], [val_logits], [val_labels])
        result.history += [{"epoch": epoch, "phase": "train", "lr": lr, **train_row},
                           {"epoch": epoch, "phase": "val", "lr": lr, **val_row}]
        result.epochs_run = epoch
        epochs.set_postfix(train_bacc=f"{train_row['balanced_accuracy']:.2f}",
                           val_bacc=f"{val_row['balanced_accuracy']:.2f}")
        if val_row["balanced_accuracy"] > best_score:
            best_score, result.best_epoch = val_row["balanced_accuracy"], epoch
            result.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        elif epoch - result.best_epoch >= cfg.patience:
            result.stopped_early = epoch < cfg.epochs
            break
    model.load_state_dict(result.best_state)
    if dynamics is not None:
        result.dynamics["prob"], result.dynamics["margin"] = dynamics.arrays()
    return result
