"""The remedy definitions: each one a named override of RunConfig, tried against a baseline on the same splits.

This is the one settings block for remedies; `train_cli.py remedies --remedies list` prints it, and every
experiment records the overrides it ran.
"""
from __future__ import annotations

import dataclasses
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from core.config import RunConfig
from core.errors import UserError

BOTH_MODES = ("head", "finetune")


@dataclass(frozen=True)
class Remedy:
    name: str
    what: str                              # one line: what changes, in the user's words
    overrides: dict                        # RunConfig fields and their new values
    modes: tuple[str, ...] = BOTH_MODES    # training modes where it changes anything
    drops_label_issues: bool = False       # train without the baseline's flagged likely label errors
    posthoc: bool = False                  # trains nothing: the baseline's fold models, adjusted (experiments/posthoc)


REMEDIES: tuple[Remedy, ...] = (
    Remedy("balance-weights", "class-weighted cross-entropy (--balance weights)", {"balance": "weights"}),
    Remedy("balance-sampler", "class-balanced sampling of training batches (--balance sampler)",
           {"balance": "sampler"}),
    Remedy("label-smoothing", "cross-entropy label smoothing 0.1 (--label-smoothing 0.1)", {"label_smoothing": 0.1}),
    Remedy("logit-adjust-loss", "long tail: logit-adjusted cross-entropy, tau 1 (--logit-adjust-loss 1)",
           {"logit_adjust_loss": 1.0}),
    Remedy("logit-adjust-posthoc", "long tail: the baseline's fold models with post hoc logit adjustment, tau 1 "
                                   "(--logit-adjust-posthoc 1); nothing is retrained",
           {"logit_adjust_posthoc": 1.0}, posthoc=True),
    Remedy("drop-label-errors", "train and validate without the images the baseline's diagnostics flag as likely "
                                "label errors (at least 2 of the detectors cleanlab, AUM, neighbours agree)", {},
           drops_label_issues=True),
    Remedy("other-backbone", "a bigger backbone (--model resnet101), ImageNet weights", {"model": "resnet101"}),
    Remedy("stronger-augmentation", "stronger augmentation (--augment-strength 1.5)", {"augment_strength": 1.5},
           modes=("finetune",)),
    Remedy("backbone-lr-x3", "backbone learning rate 3x the default multiplier (--backbone-lr-mult 0.3)",
           {"backbone_lr_mult": 0.3}, modes=("finetune",)),
)


def remedy_named(name: str) -> Remedy:
    for remedy in REMEDIES:
        if remedy.name == name:
            return remedy
    raise UserError(f"--remedies {name}: no such remedy; choose from {', '.join(r.name for r in REMEDIES)} "
                    f"(see --remedies list)")


def parse_selection(text: str | None) -> list[Remedy] | None:
    """`a,b,c` -> those remedies in that order; None/empty -> None (the default set)."""
    if not text:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return [remedy_named(name) for name in dict.fromkeys(names)]


def imagenet_weights_offline(model_name: str) -> bool:
    """Whether torchvision's ImageNet weights for `model_name` are already in torch's hub cache (no download)."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    file_name = os.path.basename(urllib.parse.urlparse(weights.url).path)
    return (Path(torch.hub.get_dir()) / "checkpoints" / file_name).is_file()


def skip_reason(remedy: Remedy, cfg: RunConfig, mode: str) -> str | None:
    """Why `remedy` cannot say anything against a baseline with `cfg` trained in `mode`; None = run it."""
    if mode not in remedy.modes:
        return (f"only changes {' or '.join(remedy.modes)} training; this baseline trains in {mode} mode "
                f"(the backbone is frozen)")
    if remedy.overrides and all(getattr(cfg, key) == value for key, value in remedy.overrides.items()):
        return "the baseline already uses this setting"
    model = remedy.overrides.get("model")
    if model and cfg.weights not in ("imagenet", "none"):
        return f"the baseline's --weights {cfg.weights} is a {cfg.model} file; {model} needs weights of its own"
    if model and cfg.weights == "imagenet" and not imagenet_weights_offline(model):
        return (f"no ImageNet weights for {model} on this machine (nothing is downloaded during an experiment); "
                f"fetch them with: python train_cli.py weights --model {model}")
    return None


def default_set(cfg: RunConfig, mode: str) -> tuple[list[Remedy], list[dict]]:
    """Every remedy that applies to this baseline, and {remedy, reason} for the others."""
    chosen, skipped = [], []
    for remedy in REMEDIES:
        reason = skip_reason(remedy, cfg, mode)
        if reason:
            skipped.append({"remedy": remedy.name, "reason": reason})
        else:
            chosen.append(remedy)
    return chosen, skipped


def remedy_config(cfg: RunConfig, remedy: Remedy) -> RunConfig:
    """The baseline's settings with the remedy's overrides (and its name, so its run id says what it is)."""
    name = f"{cfg.name}-{remedy.name}" if cfg.name else remedy.name
    return dataclasses.replace(cfg, **remedy.overrides, name=name)


def describe(cfg: RunConfig, mode: str) -> str:
    """The `--remedies list` text: every remedy, what it overrides, and whether it runs by default here."""
    lines = [f"remedies (training mode here: {mode}):"]
    for remedy in REMEDIES:
        reason = skip_reason(remedy, cfg, mode)
        overrides = ", ".join(f"{k}={v}" for k, v in remedy.overrides.items()) or "drops flagged samples"
        lines.append(f"  {remedy.name:<22} {remedy.what}\n  {'':<22} overrides: {overrides}; "
                     f"{'runs by default' if reason is None else 'skipped: ' + reason}")
    return "\n".join(lines)
