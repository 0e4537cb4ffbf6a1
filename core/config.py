"""Every knob of a run in one dataclass, its checks, and the image settings derived from it.

The CLI fills RunConfig; run.json records it verbatim.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "assets" / "product_icons" / "metadata.csv"
EVAL_CROP_FRACTION = 0.875  # torchvision's ImageNet evaluation recipe: resize to size / 0.875, centre-crop size
# Near-duplicates: cosine of mean-centred pretrained-backbone embeddings at or above this. One setting for
# `--dedup-groups near` (split units) and the duplicates diagnostic (Thresholds.near_duplicate_similarity).
NEAR_DUPLICATE_SIMILARITY = 0.70
DEDUP_GROUPS = ("exact", "near", "off")
# Conformal prediction sets: the share of images whose true class their set should hold. One setting for the
# diagnostics (Thresholds.conformal_coverage) and `serve` (ServeSettings.coverage); `predict --coverage` takes any.
CONFORMAL_COVERAGE = 0.9
PREPROCESSING = ("standard", "model")  # one recipe for every network | the network's own (training/preprocessing.py)
SSL_METHODS = ("simclr", "byol")  # self-supervised continued pretraining in each fold (training/self_supervised.py)


SET_METHODS = ("aps", "raps")


PICK_STRATEGIES = ("auto", "typiclust", "badge")


@dataclass(frozen=True)
class PickSettings:
    """Which unlabelled pool images to label next (core/analysis/active_learning.py explains the strategies)."""
    typiclust_per_class: int = 10   # auto: TypiClust while (labelled + budget) < this x classes, else BADGE
    max_clusters: int = 500         # TypiClust's cap on clusters (the paper's, for large budgets)
    min_cluster_size: int = 5       # TypiClust: smaller clusters are passed over while larger ones remain
    typicality_k: int = 20          # TypiClust: neighbours in the typicality (the paper's k)
    badge_dims: int = 64            # BADGE: PCA dimensions of the features in the gradient embedding
    seed: int = 0


@dataclass(frozen=True)
class SetSettings:
    """How prediction sets are scored (core/analysis/conformal.py): APS, or RAPS (Angelopoulos et al. 2021), which
    adds `raps_lambda` to a class's score for every rank it lies beyond the `raps_k_reg` most probable classes, so
    that long tails of unlikely classes stay out of the sets. Their paper's ImageNet settings: lambda 0.01 to 0.2,
    k_reg about the rank the true class usually has (1 or 2 here: few classes)."""
    method: str = "aps"
    raps_lambda: float = 0.05
    raps_k_reg: int = 1

    def check(self) -> "SetSettings":
        if self.method not in SET_METHODS:
            raise UserError(f"--set-method {self.method}: use one of {', '.join(SET_METHODS)}")
        if not self.raps_lambda >= 0:   # also refuses nan
            raise UserError(f"--raps-lambda {self.raps_lambda}: give a penalty of 0 or more (e.g. 0.05)")
        if self.raps_k_reg < 0:
            raise UserError(f"--raps-k-reg {self.raps_k_reg}: give a number of classes, 0 or more (e.g. 1)")
        return self
FAST_PATHS = ("compile", "bf16", "channels_last")  # CUDA's speed-ups, which --cpu-fast-paths also takes on the CPU


def default_cache_dir() -> Path:
    """Where content-addressed caches (backbone features, thumbnails) live, outside any run."""
    base = os.environ.get("FOLDLENS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "foldlens")
    return Path(base)


def resize_side(image_size: int) -> int:
    """Short side an image is resized to before its centre `image_size` crop (evaluation, resident cache)."""
    return round(image_size / EVAL_CROP_FRACTION)


@dataclass(frozen=True)
class Augmentation:
    """Fine-tuning augmentation, drawn the same way on the DataLoader path and the device-resident path."""
    crop_scale: tuple[float, float] = (0.5, 1.0)    # random-resized crop: share of the image's area
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    max_degrees: float = 10.0                       # rotation, white fill
    jitter: float = 0.2                             # brightness, contrast and saturation factors in 1 ± jitter

    @classmethod
    def at_strength(cls, strength: float) -> "Augmentation":
        """strength 1 = the defaults; 0 = none; 2 = crops down to 8% of the area, 20 degrees, jitter 0.4."""
        base = cls()
        smallest_crop = max(0.08, 1 - strength * (1 - base.crop_scale[0]))  # torchvision's own lower default
        return cls((min(1.0, smallest_crop), 1.0), base.crop_ratio, base.max_degrees * strength,
                   base.jitter * strength)


@dataclass
class RunConfig:
    # data
    data: str = str(DEMO_DATA)         # folder laid out CLASS/IMAGE, or CSV with path,label[,group][,superclass]
    use_groups: bool = True            # group-aware splits when the manifest has a group column
    dedup_groups: str = "exact"        # what else moves as one split unit: exact (identical files) | near | off
    test_size: float = 0.2             # stratified hold-out share; 0 = cross-validation only
    folds: int = 5
    seed: int = 0
    redraw_splits: bool = False        # a cleaned manifest's run: draw its splits anew instead of the source run's
    repeat: int = 0                    # which draw of the folds (repeated k-fold); the test split is the same
    drop_small_classes: bool = False   # train without the classes too small for the folds (run.json lists them)
    # model
    model: str = "resnet50"
    weights: str = "imagenet"          # imagenet | none | PATH to a state_dict
    train_mode: str = "auto"           # head | finetune | auto
    image_size: int = 224
    preprocessing: str = "standard"    # standard | model (its own weights' resize, mean, std, filter)
    embedder: str = ""                 # a second pretrained torchvision model whose features the diagnostics'
                                       # maps, neighbours and duplicates also use ("" = the run's own only)
    # optimisation
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3                   # head learning rate
    backbone_lr_mult: float = 0.1      # finetune: backbone lr = lr * this
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.0
    balance: str = "none"              # none | weights | sampler
    logit_adjust_loss: float = 0.0     # tau of the logit-adjusted loss (Menon et al. 2021): logits + tau*log(prior)
    logit_adjust_posthoc: float = 0.0  # tau of post hoc logit adjustment: logits - tau*log(prior) after training
                                       # (folded into the saved head); priors from each fold's training part
    augment_strength: float = 1.0      # finetune: scales every augmentation (Augmentation.at_strength)
    patience: int = 8                  # early stopping on validation balanced accuracy
    # self-supervised continued pretraining of the backbone, in each fold on its training part only
    ssl_method: str = ""               # "" = off | simclr | byol (lightly's losses and heads)
    ssl_epochs: int = 10               # passes over the fold's training images (two augmented views each)
    ssl_batch_size: int = 64           # images per step (SimCLR's negatives are the rest of the batch)
    ssl_lr: float = 1e-4               # AdamW learning rate of the backbone (its projection heads: 10x)
    # speed
    compile: str = "auto"              # auto | on | off (torch.compile, CUDA finetune only unless below)
    cpu_fast_paths: str = ""           # finetune on the CPU: any of compile,bf16,channels_last (CUDA's fast paths,
                                       # run here so the suite exercises them where no GPU is)
    num_workers: int = -1              # DataLoader workers; -1 = pick from the CPU count
    image_input: str = "auto"          # finetune: auto | resident (decoded once, augmented on the device) | loader
    threads: int = 0                   # torch CPU threads in every fold job, whatever runs it; 0 = 1 in head mode,
                                       # else torch's default where the run starts (start_run records the number)
    # bookkeeping
    name: str = ""
    runs_dir: str = "runs"
    cache_dir: str = dataclasses.field(default_factory=lambda: str(default_cache_dir()))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation.at_strength(self.augment_strength)

    def validate(self) -> None:
        """Checks that need no data, so a typo fails before the scan."""
        check_model_name(self.model)
        if self.embedder:
            check_model_name(self.embedder, "--embedder")
        check_split_settings(self.folds, self.test_size)
        for name, value, allowed in (("--train-mode", self.train_mode, ("auto", "head", "finetune")),
                                     ("--balance", self.balance, ("none", "weights", "sampler")),
                                     ("--compile", self.compile, ("auto", "on", "off")),
                                     ("--image-input", self.image_input, ("auto", "resident", "loader")),
                                     ("--dedup-groups", self.dedup_groups, DEDUP_GROUPS),
                                     ("--preprocessing", self.preprocessing, PREPROCESSING)):
            if value not in allowed:
                raise UserError(f"{name} {value}: choose one of {', '.join(allowed)}")
        if self.ssl_method and self.ssl_method not in SSL_METHODS:
            raise UserError(f"--ssl-method {self.ssl_method}: choose one of {', '.join(SSL_METHODS)} "
                            f"(or leave it out: no self-supervised step)")
        if self.ssl_method and self.weights == "none":
            raise UserError("--ssl-method with --weights none: continued pretraining starts from pretrained "
                            "weights; pass --weights imagenet or a state_dict file")
        unknown = parse_fast_paths(self.cpu_fast_paths) - set(FAST_PATHS)
        if unknown:
            raise UserError(f"--cpu-fast-paths {self.cpu_fast_paths}: unknown {', '.join(sorted(unknown))}; "
                            f"name any of {', '.join(FAST_PATHS)}, comma-separated")
        for name, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--image-size", self.image_size), ("--ssl-epochs", self.ssl_epochs)):
            if value < 1:
                raise UserError(f"{name} {value}: must be a positive whole number")
        if self.image_size < 16:
            raise UserError(f"--image-size {self.image_size}: at least 16 pixels")
        if not self.lr > 0:
            raise UserError(f"--lr {self.lr}: must be positive")
        if not self.ssl_lr > 0:
            raise UserError(f"--ssl-lr {self.ssl_lr}: must be positive")
        if self.ssl_batch_size < 2:
            raise UserError(f"--ssl-batch-size {self.ssl_batch_size}: at least 2 (each image is contrasted with "
                            f"the others in its batch)")
        for name, value in (("--weight-decay", self.weight_decay), ("--warmup-epochs", self.warmup_epochs),
                            ("--backbone-lr-mult", self.backbone_lr_mult)):
            if value < 0:
                raise UserError(f"{name} {value}: must not be negative")
        if not 0 <= self.augment_strength <= 2:
            raise UserError(f"--augment-strength {self.augment_strength}: must be in [0, 2] (1 = default)")
        if self.repeat < 0:
            raise UserError(f"--repeat {self.repeat}: must be 0 (the first draw of the folds) or more")
        if self.threads < 0:
            raise UserError(f"--threads {self.threads}: must be 0 (torch's default) or a positive number")
        if self.patience < 1:
            raise UserError(f"--patience {self.patience}: must be at least 1 epoch")
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing {self.label_smoothing}: must be in [0, 1)")
        for name, value in (("--logit-adjust-loss", self.logit_adjust_loss),
                            ("--logit-adjust-posthoc", self.logit_adjust_posthoc)):
            if not 0 <= value <= 10:
                raise UserError(f"{name} {value}: must be in [0, 10] (0 = off; 1 = Menon et al.'s default)")


def command_line(cfg: RunConfig, always: Collection[str] = ()) -> str:
    """The `python train_cli.py ...` command that trains with `cfg`: every setting that is not the default
    (or is named in `always`), floats written exactly, so the command reproduces the run's settings."""
    defaults, parts = RunConfig(), ["python", "train_cli.py"]
    for field in dataclasses.fields(RunConfig):
        value = getattr(cfg, field.name)
        if value == getattr(defaults, field.name) and field.name not in always:
            continue
        if field.name == "use_groups":   # a flag: only the non-default value has one
            parts += [] if value else ["--no-groups"]
        elif isinstance(value, bool):   # a flag that is off by default
            parts += ["--" + field.name.replace("_", "-")] if value else []
        else:
            parts += ["--" + field.name.replace("_", "-"), str(value)]
    return shlex.join(parts)


def parse_fast_paths(setting: str) -> frozenset[str]:
    """"compile, bf16" -> {"compile", "bf16"}; RunConfig.validate refuses names not in FAST_PATHS."""
    return frozenset(name.strip() for name in setting.split(",") if name.strip())


def check_split_settings(folds: int, test_size: float) -> None:
    """The checks that need no data, so the CLI can make them before scanning."""
    if folds < 2:
        raise UserError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if not 0 <= test_size <= 0.5:
        raise UserError(f"--test-size {test_size}: must be between 0 and 0.5 (0 = cross-validation only)")


def list_model_names() -> list[str]:
    import torchvision  # here: it takes seconds to import, and `--help` does not need it
    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_model_name(name: str, option: str = "--model") -> None:
    names = list_model_names()
    if name not in names:
        raise UserError(f"Unknown {option} '{name}'. Valid torchvision classification models: {', '.join(names)}")
