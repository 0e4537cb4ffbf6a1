#!/usr/bin/env python
"""Train and evaluate with k-fold cross-validation; write a run directory for the dashboard.

  python train_cli.py --folds 5                 train on the embedded demo dataset
  python train_cli.py --data PATH --folds 5     a CLASS/IMAGE folder or a CSV with path,label[,group]
  python train_cli.py --resume RUN_ID           finish an interrupted run's missing folds
  python train_cli.py weights                   fetch ImageNet weights now, so training needn't
  python train_cli.py diagnose RUN_ID           recompute a run's diagnostics without retraining
  python train_cli.py remedies                  baseline + remedies on the same splits, effects, learning curve
  python train_cli.py tune --trials 20          Optuna search over k-fold runs (rerun to resume)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.config import RunConfig
from core.errors import UserError

DEFAULTS = RunConfig()


def train_parser(prog: str | None = None, description: str = __doc__, resume: bool = True) -> argparse.ArgumentParser:
    """Every RunConfig option; `remedies` and `tune` reuse it (without --resume) and add their own."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add("--augment-strength", type=float, default=DEFAULTS.augment_strength,
        help="finetune: scales crop, rotation and colour jitter; 0 = none, 2 = strong (default: %(default)s)")
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
    if resume:
        add("--resume", metavar="RUN_ID", help="finish the missing folds of an interrupted run (other options are "
                                               "taken from the run, except --runs-dir)")
    return parser


def command_train(argv: list[str]) -> int:
    args = vars(train_parser().parse_args(argv))
    from core import run_lifecycle
    resume_id = args.pop("resume")
    run_dir = (run_lifecycle.resume(args["runs_dir"], resume_id) if resume_id
               else run_lifecycle.train(RunConfig(**args)))
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
    from core import run_lifecycle, run_store
    entry = run_store.find_run(Path(args.runs_dir), args.run_id)
    if entry is None or entry.info is None:
        raise UserError(f"diagnose {args.run_id}: no such run under {args.runs_dir}"
                        f"{'' if entry is None else f' ({entry.error})'}")
    if entry.status != "complete":
        raise UserError(f"diagnose {args.run_id}: the run is {entry.status}; finish it first with "
                        f"python train_cli.py --resume {args.run_id}")
    with run_store.run_lock(entry.path):
        error = run_lifecycle.run_diagnostics_step(entry.path)
    report(entry.path)
    return 1 if error else 0


REMEDIES_HELP = """Run a baseline and remedies on the same splits and seed, a learning curve, and the fold-paired
effects of each remedy (RUNS_DIR/experiments/EXP_ID/). Takes every training option of a normal run.

  python train_cli.py remedies                         the default remedies for this training mode
  python train_cli.py remedies --remedies list         every remedy, what it overrides, and why one is skipped
  python train_cli.py remedies --remedies balance-weights,label-smoothing
"""

TUNE_HELP = """Search hyperparameters with Optuna: every trial a k-fold run on the same CV-only splits, pruned by a
median rule on the running mean over folds; rerun the same command to resume. The best trial's settings are
then trained once with the test split (the only test evaluation) and printed as a train_cli.py command.

  python train_cli.py tune --trials 20
  python train_cli.py tune --trials 20 --space lr=1e-4:1e-2 --space balance=none|weights
"""


def command_remedies(argv: list[str]) -> int:
    parser = train_parser("train_cli.py remedies", REMEDIES_HELP, resume=False)
    parser.add_argument("--remedies", default="", help="comma-separated remedy names, or 'list' to show them "
                                                       "(default: every remedy that applies)")
    args = vars(parser.parse_args(argv))
    selection = args.pop("remedies")
    cfg = RunConfig(**args)
    from core import experiments, remedies
    if selection == "list":
        cfg.validate()
        print(remedies.describe(cfg, experiments.planned_remedies(cfg, None)[0]))
        return 0
    folder = experiments.run_remedies(cfg, remedies.parse_selection(selection), log=_log())
    print(f"\nExperiment written to {folder}\nRuns: {', '.join(_experiment_runs(folder))}\n"
          f"Open the dashboard's Experiments page:\n  streamlit run dashboard/Home.py -- --runs-dir {cfg.runs_dir}\n"
          f"  (http://localhost:8501/Experiments?experiment={folder.name})")
    return 0


def _experiment_runs(folder: Path) -> list[str]:
    from core import run_store
    document = run_store.read_json(folder / "experiment.json")
    return [document["baseline"], *(r["run_id"] for r in document["runs"] if r["run_id"])]


def _log():
    from tqdm.auto import tqdm
    return tqdm.write  # above any progress bar


def command_tune(argv: list[str]) -> int:
    parser = train_parser("train_cli.py tune", TUNE_HELP, resume=False)
    add = parser.add_argument
    add("--trials", type=int, required=True, help="finished trials the study should have (a rerun adds the missing)")
    add("--metric", default="balanced_accuracy", choices=["balanced_accuracy", "accuracy", "macro_f1"],
        help="objective: its mean over validation folds (default: %(default)s)")
    add("--study", default="tune", help="study name, its folder under RUNS_DIR/experiments (default: %(default)s)")
    add("--space", action="append", default=[], metavar="NAME=LOW:HIGH|NAME=a|b",
        help="override a searched range or choice list (repeatable); default space: see README")
    add("--max-concurrent", type=int, default=1,
        help="trials at once when a cluster executor runs the folds; without one, trials run one after another "
             "(default: %(default)s)")
    args = vars(parser.parse_args(argv))
    options = {key: args.pop(key) for key in ("trials", "metric", "study", "space", "max_concurrent")}
    from core.tuning import tune
    folder = tune(RunConfig(**args), options["trials"], options["metric"], options["study"], options["space"],
                  max_concurrent=options["max_concurrent"], log=_log())
    print(f"\nStudy written to {folder}\nOpen the dashboard's Experiments page:\n"
          f"  streamlit run dashboard/Home.py -- --runs-dir {args['runs_dir']}\n"
          f"  (http://localhost:8501/Experiments?experiment={folder.name})")
    return 0


COMMANDS = {"weights": command_weights, "diagnose": command_diagnose, "remedies": command_remedies,
            "tune": command_tune}


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
