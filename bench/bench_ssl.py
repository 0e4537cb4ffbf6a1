"""Self-supervised continued pretraining (--ssl-method): how fast the step runs, and what the remedy does.

    .venv/bin/python bench/bench_ssl.py [--images 64] [--image-size 224] [--batch-size 32] [--methods simclr,byol]
                                        [--effect] [--effect-image-size 112] [--effect-ssl-epochs 2] [--folds 3]
                                        [--no-throughput] [--keep DIR]

1. Images per second of the step itself (`core.training.self_supervised.continue_pretraining`): ResNet-50 from
   the ImageNet weights, the first `--images` demo images, one epoch per method, two augmented views per image,
   on CUDA when there is one (bf16, channels_last) else on this machine's CPU threads. Printed with the device.
2. With `--effect`: `train_cli.py remedies --remedies ssl-simclr` on the demo dataset in a small configuration
   (head mode, `--effect-image-size` pixels, `--effect-ssl-epochs` passes, `--folds` folds): the baseline's and the
   remedy's validation balanced accuracy and the fold-paired effect with its 95% interval, and seconds per fold.

ImageNet weights must be cached (python train_cli.py weights); lightly must be installed (requirements.txt).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("FOLDLENS_PROGRESS", "folds")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from core.config import DEMO_DATA, RunConfig  # noqa: E402
from core.store import run_store  # noqa: E402


def quiet(_: str) -> None:
    pass


def bench_throughput(images: int, image_size: int, batch_size: int, methods: list[str]) -> None:
    from core.training.device import describe_device, pick_device
    from core.training.preprocessing import Preprocessing
    from core.training.self_supervised import continue_pretraining
    from core.training.weights import build_classifier

    manifest = pd.read_csv(DEMO_DATA)
    paths = [DEMO_DATA.parent / p for p in manifest.path[:images]]
    device = pick_device()
    print(f"SSL step, resnet50 from ImageNet weights, {len(paths)} demo images at {image_size} px, batch {batch_size}, "
          f"1 epoch, on {describe_device(device)} (torch {torch.__version__}):")
    for method in methods:
        model, arch, _ = build_classifier("resnet50", 2, "imagenet", log=quiet)
        cfg = RunConfig(ssl_method=method, ssl_epochs=1, ssl_batch_size=batch_size, image_size=image_size)
        started = time.perf_counter()
        result = continue_pretraining(model.backbone.to(device), arch.feature_dim, paths,
                                      Preprocessing.standard(image_size), cfg, device, seed=0)
        print(f"  {method:<7} {result.images_per_second:7.3g} images/s (two views each; {result.steps} steps in "
              f"{result.seconds:.1f} s, {time.perf_counter() - started:.1f} s with set-up; "
              f"loss {result.first_loss:.3f} -> {result.last_loss:.3f})")


def bench_effect(image_size: int, ssl_epochs: int, folds: int, batch_size: int, runs_dir: Path) -> None:
    from core.experiments.remedies import remedy_named
    from core.experiments.remedy_runs import run_remedies

    cfg = RunConfig(train_mode="head", image_size=image_size, folds=folds, ssl_epochs=ssl_epochs,
                    ssl_batch_size=batch_size, runs_dir=str(runs_dir), name="bench-ssl")
    started = time.perf_counter()
    folder = run_remedies(cfg, [remedy_named("ssl-simclr")], log=quiet)
    minutes = (time.perf_counter() - started) / 60
    document = run_store.read_json(folder / "experiment.json")
    effects = pd.read_parquet(folder / "effects.parquet")
    costs = pd.read_parquet(folder / "costs.parquet").set_index("remedy")
    row = effects[(effects.remedy == "ssl-simclr") & (effects.metric == "balanced_accuracy")].iloc[0]
    print(f"remedy ssl-simclr on the demo dataset: head mode, {image_size} px, {folds} folds, SimCLR {ssl_epochs} "
          f"epochs, batch {batch_size} ({minutes:.1f} min in all, experiment {document['experiment_id']}):")
    print(f"  validation balanced accuracy: baseline {100 * row.baseline_mean:.1f}%, ssl-simclr "
          f"{100 * row.remedy_mean:.1f}%; effect {100 * row.difference_mean:+.1f} points, 95% CI "
          f"[{100 * row.ci_low:+.1f}, {100 * row.ci_high:+.1f}] ({row.verdict}); test ensemble "
          f"{100 * row.test_difference:+.1f} points")
    print(f"  seconds per fold: baseline {costs.at['baseline', 'seconds_per_fold']:.1f}, ssl-simclr "
          f"{costs.at['ssl-simclr', 'seconds_per_fold']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--methods", default="simclr,byol")
    parser.add_argument("--effect", action="store_true", help="also run the remedy on the demo dataset")
    parser.add_argument("--no-throughput", action="store_true", help="skip part 1 (with --effect: only the remedy)")
    parser.add_argument("--effect-image-size", type=int, default=112)
    parser.add_argument("--effect-ssl-epochs", type=int, default=2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the experiment's runs here (default: a temporary folder)")
    args = parser.parse_args()
    if not args.no_throughput:
        bench_throughput(args.images, args.image_size, args.batch_size, args.methods.split(","))
    if args.effect:
        with tempfile.TemporaryDirectory() as scratch:
            bench_effect(args.effect_image_size, args.effect_ssl_epochs, args.folds, args.batch_size,
                         args.keep or Path(scratch))


if __name__ == "__main__":
    main()
