"""The remedy definitions: each one a named override of RunConfig, tried against a baseline on the same splits.

This is the one settings block for remedies; `train_cli.py remedies --remedies list` prints it, and every
experiment records the overrides it ran. Besides the named remedies, `backbone:MODEL` tries any torchvision
classifier with its own ImageNet weights and its own preprocessing (input size, resize, normalisation).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core.config import RunConfig, check_model_name
from core.errors import UserError

BOTH_MODES = ("head", "finetune")
BACKBONE = "backbone:"      # `backbone:MODEL` names a remedy that swaps the network for MODEL
SSL_COST = ("it trains the backbone in every fold (about 2 x --ssl-epochs x training images forward and backward "
            "passes, bench/bench_ssl.py): slow without a GPU")


@dataclass(frozen=True)
class Remedy:
    name: str
    what: str                              # one line: what changes, in the user's words
    overrides: dict                        # RunConfig fields and their new values
    modes: tuple[str, ...] = BOTH_MODES    # training modes where it changes anything
    drops_label_issues: bool = False       # train without the baseline's flagged likely label errors
    posthoc: bool = False                  # trains nothing: the baseline's fold models, adjusted (experiments/posthoc)
    own_input_size: bool = False           # --image-size becomes the model's own (its weights' crop size)
    named_only: str = ""                   # why it is left out of the default set: it runs when named
    uses_pool: bool = False                # pseudo-labels the baseline's unlabelled pool (experiments/self_training)


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
                                "label errors (the headline of the detectors cleanlab, AUM, neighbours: their strongest combined evidence)", {},
           drops_label_issues=True),
    Remedy("self-training", "pseudo-labels for the confident images of the baseline's unlabelled pool (per-class "
                            "thresholds), from each fold's own head, added to that fold's training part; the head "
                            "retrained", {}, modes=("head",), uses_pool=True),
    Remedy("other-backbone", "a bigger backbone (--model resnet101), ImageNet weights", {"model": "resnet101"}),
    Remedy("stronger-augmentation", "stronger augmentation (--augment-strength 1.5)", {"augment_strength": 1.5},
           modes=("finetune",)),
    Remedy("backbone-lr-x3", "backbone learning rate 3x the default multiplier (--backbone-lr-mult 0.3)",
           {"backbone_lr_mult": 0.3}, modes=("finetune",)),
    Remedy("ssl-simclr", "self-supervised continued pretraining of the backbone (SimCLR, lightly) on each fold's "
                         "training images before the usual fit (--ssl-method simclr; --ssl-epochs sets its length)",
           {"ssl_method": "simclr"}, named_only=SSL_COST),
    Remedy("ssl-byol", "self-supervised continued pretraining of the backbone (BYOL, lightly) on each fold's "
                       "training images before the usual fit (--ssl-method byol; --ssl-epochs sets its length)",
           {"ssl_method": "byol"}, named_only=SSL_COST),
)


def backbone_remedy(model: str) -> Remedy:
    """`backbone:MODEL`: the network swapped for MODEL, with its own weights' preprocessing at its own size."""
    return Remedy(f"{BACKBONE}{model}", f"another backbone (--model {model}) with its own ImageNet weights and "
                                        f"its own preprocessing (--preprocessing model, its own input size)",
                  {"model": model, "preprocessing": "model"}, own_input_size=True)


def remedy_named(name: str) -> Remedy:
    if name.startswith(BACKBONE):
        return backbone_remedy(name.removeprefix(BACKBONE))
    for remedy in REMEDIES:
        if remedy.name == name:
            return remedy
    raise UserError(f"--remedies {name}: no such remedy; choose from {', '.join(r.name for r in REMEDIES)}, or "
                    f"backbone:MODEL for any torchvision classifier (see --remedies list)")


def parse_selection(text: str | None) -> list[Remedy] | None:
    """`a,b,c` -> those remedies in that order; None/empty -> None (the default set)."""
    if not text:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    for name in names:
        if name.startswith(BACKBONE):
            check_model_name(name.removeprefix(BACKBONE), f"--remedies {BACKBONE}MODEL")
    return [remedy_named(name) for name in dict.fromkeys(names)]


def imagenet_weights_offline(model_name: str) -> bool:
    """Whether the ImageNet weights of `model_name` are on this machine already (nothing is downloaded during an
    experiment): torchvision's file in torch's hub cache, or for resnet50 also our converted checkpoint."""
    from core.training import weights

    converted = weights.weights_cache_dir() / weights.CONVERTED_NAME
    return weights.imagenet_file(model_name).is_file() or (model_name == "resnet50" and converted.is_file())


def missing_weights_reason(model_name: str) -> str:
    from core.training.weights import imagenet_file

    return (f"no ImageNet weights for {model_name} on this machine (nothing is downloaded during an experiment); "
            f"place torchvision's file at {imagenet_file(model_name)}, or fetch it with: "
            f"python train_cli.py weights --model {model_name}")


def skip_reason(remedy: Remedy, cfg: RunConfig, mode: str) -> str | None:
    """Why `remedy` cannot say anything against a baseline with `cfg` trained in `mode`; None = run it."""
    if mode not in remedy.modes and remedy.uses_pool:
        return ("pseudo-labelled pool images join the cached backbone features a head trains on; finetune mode is "
                "not supported (run the experiment with --train-mode head)")
    if mode not in remedy.modes:
        return (f"only changes {' or '.join(remedy.modes)} training; this baseline trains in {mode} mode "
                f"(the backbone is frozen)")
    if remedy.overrides and all(getattr(cfg, key) == value for key, value in remedy_overrides(remedy).items()):
        return "the baseline already uses this setting"
    model = remedy.overrides.get("model")
    if model and cfg.weights not in ("imagenet", "none"):
        return f"the baseline's --weights {cfg.weights} is a {cfg.model} file; {model} needs weights of its own"
    if model and cfg.weights == "imagenet" and not imagenet_weights_offline(model):
        return missing_weights_reason(model)
    if remedy.overrides.get("ssl_method"):
        return ssl_skip_reason(cfg)
    return None


def ssl_skip_reason(cfg: RunConfig) -> str | None:
    """Why continued pretraining cannot run against this baseline: no pretrained weights, or no lightly."""
    if cfg.weights == "none":
        return "continued pretraining starts from pretrained weights; this baseline has --weights none"
    from core.training.self_supervised import require_lightly

    try:
        require_lightly()
    except UserError as error:
        return str(error)
    return None


def default_set(cfg: RunConfig, mode: str) -> tuple[list[Remedy], list[dict]]:
    """Every remedy that applies to this baseline, and {remedy, reason} for the others; those that run only
    when named are neither (as backbone:MODEL)."""
    chosen, skipped = [], []
    for remedy in REMEDIES:
        if remedy.named_only:
            continue
        reason = skip_reason(remedy, cfg, mode)
        if reason:
            skipped.append({"remedy": remedy.name, "reason": reason})
        else:
            chosen.append(remedy)
    return chosen, skipped


def remedy_overrides(remedy: Remedy) -> dict:
    """The remedy's overrides, with the model's own input size where the remedy takes it."""
    if not remedy.own_input_size:
        return remedy.overrides
    from core.training.preprocessing import own_input_size

    return {**remedy.overrides, "image_size": own_input_size(remedy.overrides["model"])}


def remedy_config(cfg: RunConfig, remedy: Remedy) -> RunConfig:
    """The baseline's settings with the remedy's overrides (and its name, so its run id says what it is)."""
    name = f"{cfg.name}-{remedy.name}" if cfg.name else remedy.name
    return dataclasses.replace(cfg, **remedy_overrides(remedy), name=name)


def describe(cfg: RunConfig, mode: str) -> str:
    """The `--remedies list` text: every remedy, what it overrides, and whether it runs by default here."""
    lines = [f"remedies (training mode here: {mode}):"]
    for remedy in REMEDIES:
        reason = skip_reason(remedy, cfg, mode)
        overrides = (", ".join(f"{k}={v}" for k, v in remedy.overrides.items())
                     or ("adds pseudo-labelled images of the baseline's pool (train_cli.py pool)" if remedy.uses_pool
                         else "drops flagged samples"))
        when = ("skipped: " + reason if reason else f"only when named: {remedy.named_only}" if remedy.named_only
                else "runs by default")
        lines.append(f"  {remedy.name:<22} {remedy.what}\n  {'':<22} overrides: {overrides}; {when}")
    lines.append(f"  {BACKBONE + 'MODEL':<22} any torchvision classifier (e.g. {BACKBONE}efficientnet_v2_s) with its "
                 f"own ImageNet weights and preprocessing; only when named")
    return "\n".join(lines)
