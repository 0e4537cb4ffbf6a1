"""Every knob of a run in one dataclass. The CLI fills it; run.json records it verbatim."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO_ROOT / "assets" / "product_icons" / "metadata.csv"


def default_cache_dir() -> Path:
    """Where content-addressed caches (backbone features, thumbnails) live, outside any run."""
    base = os.environ.get("FOLDLENS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "foldlens")
    return Path(base)


@dataclass
class RunConfig:
    # data
    data: str = str(DEMO_DATA)         # folder laid out CLASS/IMAGE, or CSV with path,label[,group]
    use_groups: bool = True            # group-aware splits when the manifest has a group column
    test_size: float = 0.2             # stratified hold-out share; 0 = cross-validation only
    folds: int = 5
    seed: int = 0
    # model
    model: str = "resnet50"
    weights: str = "imagenet"          # imagenet | none | PATH to a state_dict
    train_mode: str = "auto"           # head | finetune | auto
    image_size: int = 224
    # optimisation
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3                   # head learning rate
    backbone_lr_mult: float = 0.1      # finetune: backbone lr = lr * this
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    label_smoothing: float = 0.0
    balance: str = "none"              # none | weights | sampler
    patience: int = 8                  # early stopping on validation balanced accuracy
    # speed
    compile: str = "auto"              # auto | on | off (torch.compile, CUDA finetune only)
    num_workers: int = -1              # DataLoader workers; -1 = pick from the CPU count
    image_input: str = "auto"          # finetune: auto | resident (decoded once, augmented on the device) | loader
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
