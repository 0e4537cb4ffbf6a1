#!/usr/bin/env python
"""Train and evaluate with k-fold cross-validation; write a run directory for the dashboard.

  python train_cli.py --folds 5                 train on the embedded demo dataset
  python train_cli.py --data PATH --folds 5     a CLASS/IMAGE folder or a CSV with path,label[,group]
  python train_cli.py --resume RUN_ID           finish an interrupted run's missing folds
  python train_cli.py weights                   fetch ImageNet weights now, so training needn't
  python train_cli.py diagnose RUN_ID           recompute a run's diagnostics without retraining
  python train_cli.py explain RUN_ID            precompute Grad-CAM maps of the run's misclassified images
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.config import RunConfig
from core.errors import UserError

DEFAULTS = RunConfig()


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", default=DEFAULTS.data, help="folder laid out CLASS/IMAGE, or CSV manifest with path,label and "
                                              "optional group columns (default: the embedded demo dataset)")
    add("--folds", type=int, default=DEFAULTS.folds, help="number of cross-validation folds (default: %(default)s)")
    add("--test-size", type=float, default=DEFAULTS.test_size,
        help="share held out as a stratified test split; 0 = cross-validation only (default: %(default)s)")
    add("--no-groups", dest="use_groups", action="store_false",
        help="ignore the manifest's group column when splitting (shows what leakage does; default: use groups)")
    add("--seed", type=int, default=DEFAULTS.seed, help="seed for splits, initialisation and shuffling "
                                                        "(default: %(default)s)")
    add("--model", default=DEFAULTS.model, help="torchvision classification model (default: %(default)s)")
    add("--weights", default=DEFAULTS.weights, help="imagenet, none, or the path of a state_dict file "
                                                    "(default: %(default)s)")
    add("--train-mode", default=DEFAULTS.train_mode, choices=["auto", "head", "finetune"],
        help="head: frozen backbone, train the head on cached features; finetune: all layers; "
             "auto: finetune with CUDA, head otherwise (default: %(default)s)")
    add("--image-size", type=int, default=DEFAULTS.image_size, help="input size in pixels (default: %(default)s)")
    add("--epochs", type=int, default=DEFAULTS.epochs, help="maximum epochs per fold (default: %(default)s)")
    add("--batch-size", type=int, default=DEFAULTS.batch_size, help="batch size (default: %(default)s)")
    add("--lr", type=float, default=DEFAULTS.lr, help="head learning rate for AdamW (default: %(default)s)")
    add("--backbone-lr-mult", type=float, default=DEFAULTS.backbone_lr_mult,
        help="finetune: backbone learning rate = lr × this (default: %(default)s)")
    add("--weight-decay", type=float, default=DEFAULTS.weight_decay, help="AdamW weight decay (default: %(default)s)")
    add("--warmup-epochs", type=int, default=DEFAULTS.warmup_epochs,
        help="linear warm-up before the cosine schedule (default: %(default)s)")
    add("--label-smoothing", type=float, default=DEFAULTS.label_smoothing,
        help="cross-entropy label smoothing (default: %(default)s)")
    add("--balance", default=DEFAULTS.balance, choices=["none", "weights", "sampler"],
        help="class imbalance: none, class-weighted loss, or a weighted sampler (default: %(default)s)")
    add("--patience", type=int, default=DEFAULTS.patience,
        help="early stopping: epochs without a better validation balanced accuracy (default: %(default)s)")
    add("--compile", default=DEFAULTS.compile, choices=["auto", "on", "off"],
        help="torch.compile the network when fine-tuning on CUDA (default: %(default)s)")
    add("--num-workers", type=int, default=DEFAULTS.num_workers,
        help="DataLoader workers; -1 picks from the CPU count (default: %(default)s)")
    add("--image-input", default=DEFAULTS.image_input, choices=["auto", "resident", "loader"],
        help="finetune: resident = decode every image once into device memory and augment whole batches there; "
             "loader = DataLoader workers; auto = resident on CUDA when the images fit (default: %(default)s)")
    add("--name", default=DEFAULTS.name, help="appended to the run id, e.g. 'balanced' (default: none)")
    add("--runs-dir", default=DEFAULTS.runs_dir, help="where runs are written (default: %(default)s)")
    add("--cache-dir", default=DEFAULTS.cache_dir, help="backbone-feature and thumbnail cache; ImageNet weights are "
                                                        "cached under TORCH_HOME (default: %(default)s)")
    add("--resume", metavar="RUN_ID", help="finish the missing folds of an interrupted run (other options are "
                                           "taken from the run, except --runs-dir)")
    return parser


def command_train(argv: list[str]) -> int:
    from core import pipeline
    args = vars(train_parser().parse_args(argv))
    resume_id = args.pop("resume")
    run_dir = pipeline.resume(args["runs_dir"], resume_id) if resume_id else pipeline.train(RunConfig(**args))
    report(run_dir)
    return 0


def report(run_dir: Path) -> None:
    from core.summary import summary_table
    print(f"\nRun written to {run_dir}\n")
    print(summary_table(run_dir))
    print(f"\nOpen the dashboard:\n  streamlit run dashboard/Home.py -- --runs-dir {run_dir.parent}\n"
          f"  (then pick run {run_dir.name}, or open http://localhost:8501/?run={run_dir.name})")


def command_weights(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train_cli.py weights",
                                     description="Fetch and cache ImageNet weights (under TORCH_HOME).")
    parser.add_argument("--model", default=DEFAULTS.model, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    from core.models import check_model_name
    from core.weights import prefetch
    check_model_name(args.model)
    resolved = prefetch(args.model)
    print(f"ready: {args.model} weights from {resolved.source} (sha256 {resolved.sha256})")
    return 0


def command_diagnose(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train_cli.py diagnose", description="Recompute a run's diagnostics.")
    parser.add_argument("run_id")
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    from core import pipeline, run_store
    entry = run_store.find_run(Path(args.runs_dir), args.run_id)
    if entry is None or entry.info is None:
        raise UserError(f"diagnose {args.run_id}: no such run under {args.runs_dir}"
                        f"{'' if entry is None else f' ({entry.error})'}")
    if entry.status != "complete":
        raise UserError(f"diagnose {args.run_id}: the run is {entry.status}; finish it first with "
                        f"python train_cli.py --resume {args.run_id}")
    with run_store.run_lock(entry.path):
        error = pipeline.run_diagnostics_step(entry.path)
    report(entry.path)
    return 1 if error else 0


def command_explain(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train_cli.py explain",
                                     description="Precompute class activation maps (predicted and true class) of "
                                                 "every misclassified validation and test image, into the cache.")
    parser.add_argument("run_id")
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir, help="(default: %(default)s)")
    parser.add_argument("--cache-dir", default=DEFAULTS.cache_dir, help="where the maps are kept (default: "
                                                                        "%(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be a positive whole number")
    from core import run_store
    from core.explain import explain_run
    entry = run_store.find_run(Path(args.runs_dir), args.run_id)
    if entry is None or entry.info is None or not entry.info.get("folds_done"):
        why = "no such run" if entry is None else entry.error or "no fold has finished yet"
        raise UserError(f"explain {args.run_id}: {why} under {args.runs_dir}")
    result = explain_run(entry.path, args.cache_dir, args.batch_size)
    print(f"explain: {result['maps']} maps of {result['images']} misclassified images ({result['computed']} "
          f"computed, the rest cached) in {result['seconds']:.1f} s on {result['device']}; cached under "
          f"{Path(args.cache_dir) / 'gradcam'}")
    return 0


COMMANDS = {"weights": command_weights, "diagnose": command_diagnose, "explain": command_explain}


def main(argv: list[str]) -> int:
    if not sys.stderr.isatty():  # progress bars in a log file are only escape codes
        os.environ.setdefault("TQDM_DISABLE", "1")
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else command_train(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the pipeline has printed the run's --resume command
        print("\ninterrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # recorded in run.json by the pipeline; one line here, not a traceback
        print(f"error: training failed: {type(exc).__name__}: {exc} (details in the run's run.json)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
