#!/usr/bin/env python
"""Train and evaluate with k-fold cross-validation; write a run directory for the dashboard.

  python train_cli.py --folds 5                 train on the embedded demo dataset
  python train_cli.py --data PATH --folds 5     a CLASS/IMAGE folder or a CSV with path,label[,group]
  python train_cli.py --resume RUN_ID           finish an interrupted run's missing folds
  python train_cli.py --repeats 5               repeated k-fold: 5 draws of the folds, one test split, the spread
  python train_cli.py --executor ray            folds as Ray tasks, in parallel on this machine or a cluster
  python train_cli.py fold RUN_ID K             one fold job on its own (a Slurm or Kubernetes job)
  python train_cli.py weights                   fetch ImageNet weights now, so training needn't
  python train_cli.py diagnose RUN_ID           recompute a run's diagnostics without retraining
  python train_cli.py remedies                  baseline + remedies on the same splits, effects, learning curve
  python train_cli.py tune --trials 20          Optuna search over k-fold runs (rerun to resume)
  python train_cli.py amazon --categories A,B --meta DIR_OR_URL --per-class N --out DIR
                                                build an image dataset from Amazon Reviews 2023 metadata
  python train_cli.py clean RUN_ID --drop-label-issues 0.05 --drop-exact-duplicates --out cleaned.csv
                                                a cleaned manifest (+ review.json) from a run's diagnostics
  python train_cli.py clean RUN_ID --merge-classes A,B --out merged.csv
                                                ... with two classes the data cannot separate made one
  python train_cli.py report RUN_ID             one self-contained HTML report of a run (opens offline)
  python train_cli.py predict RUN_ID IMAGES...  classify image files or folders with the run's fold models
  python train_cli.py predict RUN_ID IMAGES... --coverage 0.9
                                                ... and the set of classes each could be (90% hold the truth)
  python train_cli.py serve RUN_ID              serve the run's fold models over HTTP (FastAPI, loopback)
  python train_cli.py drift RUN_ID IMAGES...    have new images drifted from the run's training images?
  python train_cli.py pool RUN_ID --add DIR_OR_CSV   add unlabelled images to a run (its pool; or --unlabelled
                                                DIR_OR_CSV when training)
  python train_cli.py pool RUN_ID --budget N --out to_label.csv
                                                which pool images to label next (TypiClust / BADGE)
  python train_cli.py explain RUN_ID            precompute Grad-CAM maps of the run's misclassified images
  python train_cli.py runs [--json]             list runs: status (stalled when its writer was killed), size, metrics
  python train_cli.py runs rm RUN_ID            remove a run (refused while its writer is alive)
  python train_cli.py cache [prune --older-than 30d | --max-size 5G]
                                                what the cache holds by kind; remove least recently used entries
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import fields
from pathlib import Path
from collections.abc import Callable
from typing import NoReturn

# settings dataclasses and errors only: the rest of core loads torch, so commands import it after parsing
from core.config import (DEDUP_GROUPS, PICK_STRATEGIES, PREPROCESSING, SET_METHODS, SSL_METHODS, PickSettings,
                         RunConfig, SetSettings)
from core.data.sources.settings import AmazonSettings, HttpSettings
from core.delivery.serve_settings import TOKEN_ENV, ServeSettings
from core.errors import UserError
from core.run.execution import EXECUTORS, ExecutionSettings

DEFAULTS = RunConfig()
INTERRUPTED = 130   # the exit status of a command stopped by Ctrl-C, as a shell reports 128 + SIGINT
EXECUTION_OPTIONS = ("executor", "ray_address", "gpus_per_fold", "cpus_per_fold")
DASHBOARD_URL = "http://127.0.0.1:8501"   # where `streamlit run` serves by default (.streamlit/config.toml)


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (exit 2 through main), not the usage text: `--help` shows that."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def run_parser(command: str, description: str, run_id_help: str | None = None) -> OneLineParser:
    """The parser of a command on one run: RUN_ID first (its --runs-dir is added last, where --help lists it)."""
    parser = OneLineParser(prog=f"train_cli.py {command}", description=description)
    parser.add_argument("run_id", help=run_id_help)
    return parser


def add_runs_dir(parser: argparse.ArgumentParser, help: str = "(default: %(default)s)") -> None:
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir, help=help)


def add_cache_dir(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--cache-dir", default=DEFAULTS.cache_dir, help=help)


def add_out(parser: argparse.ArgumentParser, what: str, default: str | None = None, shown: str = "%(default)s") -> None:
    parser.add_argument("--out", default=default, help=f"{what} to write (default: {shown})")


def add_confidence_options(parser: argparse.ArgumentParser, help: str, default: str | float | None = None) -> None:
    """--coverage and --class-conditional: conformal prediction sets (predict, serve)."""
    parser.add_argument("--coverage", default=default, metavar="SHARE", help=help)
    parser.add_argument("--class-conditional", action="store_true",
                        help="hold the coverage for every class on its own (a rare class gets its own guarantee; "
                             "its sets grow instead), not only on average over images")
    default = SetSettings()
    parser.add_argument("--set-method", choices=SET_METHODS, default=default.method,
                        help="conformal score: aps (adaptive sets) or raps (adaptive sets with a penalty on classes "
                             "ranked beyond --raps-k-reg, for shorter sets) (default: %(default)s)")
    parser.add_argument("--raps-lambda", type=float, default=default.raps_lambda, metavar="PENALTY",
                        help="raps: added to a class's score per rank beyond k-reg (default: %(default)s)")
    parser.add_argument("--raps-k-reg", type=int, default=default.raps_k_reg, metavar="K",
                        help="raps: classes ranked this high or higher are not penalised (default: %(default)s)")


def set_settings(args: argparse.Namespace) -> SetSettings:
    """The checked --set-method, --raps-lambda and --raps-k-reg."""
    return SetSettings(args.set_method, args.raps_lambda, args.raps_k_reg).check()


def file_to_write(path: str) -> Path:
    """A file to write: refused at once when it names a folder, before any work is done."""
    if Path(path).is_dir():
        raise UserError(f"--out {path} is a folder; give the path of a file to write")
    return Path(path)


def train_parser(prog: str | None = None, description: str = __doc__, resume: bool = True) -> argparse.ArgumentParser:
    """Every RunConfig option; `remedies` and `tune` reuse it (without --resume) and add their own."""
    parser = OneLineParser(prog=prog, description=description, allow_abbrev=False,  # --fold is not --folds
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--data", default=DEFAULTS.data, help="folder laid out CLASS/IMAGE, or CSV manifest with path,label and "
                                              "optional group columns (default: the embedded demo dataset)")
    add("--folds", type=int, default=DEFAULTS.folds, help="number of cross-validation folds (default: %(default)s)")
    add("--test-size", type=float, default=DEFAULTS.test_size,
        help="share held out as a stratified test split; 0 = cross-validation only (default: %(default)s)")
    add("--no-groups", dest="use_groups", action="store_false",
        help="ignore the manifest's group column when splitting (shows what leakage does; identical files still "
             "move together unless --dedup-groups off; default: use groups)")
    add("--dedup-groups", default=DEFAULTS.dedup_groups, choices=DEDUP_GROUPS,
        help="what else moves as one unit in the splits, besides a group: exact = identical files; near = also "
             "images whose pretrained features are near-identical (cosine as the duplicates diagnostic); "
             "off = nothing (default: %(default)s)")
    add("--seed", type=int, default=DEFAULTS.seed, help="seed for splits, initialisation and shuffling "
                                                        "(default: %(default)s)")
    add("--redraw-splits", action="store_true",
        help="on a manifest cleaned from another run (review.json beside it): draw the splits anew from the images' "
             "content instead of keeping that run's test split and folds for the images both share (default: keep)")
    add("--drop-small-classes", action="store_true",
        help="train without the classes that have too few images (groups) for every fold and the test split; "
             "run.json and a finding list them with their counts (default: refuse the run, naming them all)")
    add("--repeat", type=int, default=DEFAULTS.repeat,
        help="which draw of the folds, for repeated k-fold: the test split stays, the folds are drawn anew "
             "(default: %(default)s; `--repeats R` trains draws 0..R-1)")
    add("--model", default=DEFAULTS.model, help="torchvision classification model (default: %(default)s)")
    add("--weights", default=DEFAULTS.weights, help="imagenet, none, or the path of a state_dict file "
                                                    "(default: %(default)s)")
    add("--train-mode", default=DEFAULTS.train_mode, choices=["auto", "head", "finetune"],
        help="head: frozen backbone, train the head on cached features; finetune: all layers; "
             "auto: finetune with CUDA, head otherwise (default: %(default)s)")
    add("--image-size", type=int, default=DEFAULTS.image_size, help="input size in pixels (default: %(default)s)")
    add("--preprocessing", default=DEFAULTS.preprocessing, choices=PREPROCESSING,
        help="standard: resize to size/0.875, ImageNet mean and std, for every model; model: the model's own "
             "weights' resize margin, mean, std and filter (default: %(default)s)")
    add("--embedder", default=DEFAULTS.embedder, metavar="MODEL",
        help="a second pretrained torchvision model whose features also give the diagnostics a map, neighbours "
             "and duplicates, to compare with the run's own (default: none)")
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
    add("--logit-adjust-loss", type=float, default=DEFAULTS.logit_adjust_loss, metavar="TAU",
        help="long tail: train on the logit-adjusted loss, cross-entropy of logits + TAU × log(class prior of "
             "the fold's training part) (Menon et al. 2021; 1 is theirs; default: %(default)s = off)")
    add("--logit-adjust-posthoc", type=float, default=DEFAULTS.logit_adjust_posthoc, metavar="TAU",
        help="long tail: after training, subtract TAU × log(class prior of the fold's training part) from the "
             "logits, in the saved head, so predict and serve apply it too (default: %(default)s = off)")
    add("--augment-strength", type=float, default=DEFAULTS.augment_strength,
        help="finetune: scales crop, rotation and colour jitter; 0 = none, 2 = strong (default: %(default)s)")
    add("--patience", type=int, default=DEFAULTS.patience,
        help="early stopping: epochs without a better validation balanced accuracy (default: %(default)s)")
    add("--ssl-method", default=DEFAULTS.ssl_method, choices=SSL_METHODS,
        help="before each fold's fit, continue pretraining the backbone self-supervised (SimCLR or BYOL, with the "
             "lightly package) on that fold's training images only; then head or finetune as usual "
             "(default: off)")
    add("--ssl-epochs", type=int, default=DEFAULTS.ssl_epochs,
        help="with --ssl-method: passes over the fold's training images (default: %(default)s)")
    add("--ssl-batch-size", type=int, default=DEFAULTS.ssl_batch_size,
        help="with --ssl-method: images per step, two augmented views each (default: %(default)s)")
    add("--ssl-lr", type=float, default=DEFAULTS.ssl_lr,
        help="with --ssl-method: AdamW learning rate of the backbone; its projection heads take 10x "
             "(default: %(default)s)")
    add("--compile", default=DEFAULTS.compile, choices=["auto", "on", "off"],
        help="torch.compile the network when fine-tuning on CUDA (default: %(default)s)")
    add("--cpu-fast-paths", default=DEFAULTS.cpu_fast_paths, metavar="NAMES",
        help="fine-tuning on the CPU: take CUDA's fast paths here too, any of compile,bf16,channels_last "
             "(slower on most CPUs; the tests use it to run those branches without a GPU; default: none)")
    add("--num-workers", type=int, default=DEFAULTS.num_workers,
        help="DataLoader workers; -1 picks from the CPU count (default: %(default)s)")
    add("--image-input", default=DEFAULTS.image_input, choices=["auto", "resident", "loader"],
        help="finetune: resident = decode every image once into device memory and augment whole batches there; "
             "loader = DataLoader workers; auto = resident on CUDA when the images fit (default: %(default)s)")
    add("--threads", type=int, default=DEFAULTS.threads,
        help="torch CPU threads in every fold job, whatever runs it (results depend on it); 0 = 1 in head mode, "
             "else torch's default on this machine, recorded in the run (default: %(default)s)")
    add("--name", default=DEFAULTS.name, help="appended to the run id, e.g. 'balanced' (default: none)")
    add_runs_dir(parser, help="where runs are written (default: %(default)s)")
    add_cache_dir(parser, help="backbone-feature and thumbnail cache; ImageNet weights are cached under TORCH_HOME "
                               "(default: %(default)s)")
    if resume:
        add("--resume", metavar="RUN_ID", help="finish the missing folds of an interrupted run (other options are "
                                               "taken from the run, except --runs-dir and where folds run)")
        add("--prepare-only", action="store_true",
            help="create the run (scan, splits, backbone features) and stop: then run its folds as separate "
                 "`train_cli.py fold RUN_ID K` jobs and finish it with --resume RUN_ID")
        add("--print-id", action="store_true",
            help="with --prepare-only: print only the run id on stdout, for a script to capture (the rest on stderr)")
        add("--assemble-only", action="store_true",
            help="with --resume: assemble and diagnose, and fail listing the missing folds instead of training "
                 "them (a job without a GPU, after the fold jobs)")
    where = parser.add_argument_group("where folds run (not part of the run's config: a resumed run may run "
                                      "elsewhere; run.json records each attempt's under `execution`)").add_argument
    where("--executor", default=ExecutionSettings().executor, choices=EXECUTORS,
          help="local: one fold after another in this process; ray: folds as Ray tasks, in parallel "
               "(default: %(default)s)")
    where("--ray-address", metavar="ADDRESS", help="default: start a private Ray instance on this machine (loopback "
                                                   "only, stopped at the end); auto: join the cluster `ray start` "
                                                   "made; or the head's HOST:PORT")
    where("--gpus-per-fold", type=float, metavar="N",
          help="GPUs each fold task holds (default: 1 when the Ray cluster has GPUs, else 0)")
    where("--cpus-per-fold", type=float, metavar="N", help="CPUs each fold task holds (default: 1)")
    return parser


def execution_settings(args: dict) -> ExecutionSettings:
    """Pop the execution options out of the parsed arguments (what is left is the RunConfig)."""
    return ExecutionSettings(**{name: args.pop(name) for name in EXECUTION_OPTIONS})


def command_train(argv: list[str]) -> int:
    parser = train_parser()
    # the train command's alone (not a RunConfig setting, and not remedies' or tune's): it trains several runs
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="repeated k-fold for small datasets: train R runs, the folds drawn anew in each "
                             "(--repeat 0..R-1), the test split the same, and report the spread of the scores over "
                             "them (an experiment under RUNS_DIR/experiments; default: %(default)s = one run)")
    add_unlabelled_option(parser, "the run's pool once it is trained (then pick which to label with pool RUN_ID "
                                  "--budget N)")
    args = vars(parser.parse_args(argv))
    from core.run import lifecycle as run_lifecycle
    from core.run.executors import open_executor
    resume_id, prepare_only, repeats = args.pop("resume"), args.pop("prepare_only"), args.pop("repeats")
    print_id, assemble_only = args.pop("print_id"), args.pop("assemble_only")
    unlabelled = args.pop("unlabelled")
    if unlabelled and (prepare_only or repeats != 1):
        raise UserError("--unlabelled adds a pool to one trained run: drop --prepare-only and --repeats (add it "
                        "later with: python train_cli.py pool RUN_ID --add DIR_OR_CSV)")
    add_to_pool = pool_adder(unlabelled)   # checks the paths before training, not after it
    settings = execution_settings(args)
    cfg = RunConfig(**args)
    if print_id and not prepare_only:
        raise UserError("--print-id goes with --prepare-only (a finished run's id is in its summary)")
    if assemble_only and resume_id is None:
        raise UserError("--assemble-only goes with --resume RUN_ID: it finishes a run whose folds are done")
    if prepare_only:
        return prepare_run_for_fold_jobs(cfg, settings, resume_id, print_id)
    if repeats != 1:
        return train_repeats(cfg, settings, repeats, resume_id)
    if resume_id is None:  # an empty id ("$UNSET" in a script) is one to look up, not a new run
        cfg.validate()  # before a Ray instance takes seconds to start
    with open_executor(settings) as executor:
        run_dir = (run_lifecycle.run_new(cfg, executor) if resume_id is None
                   else run_lifecycle.resume(args["runs_dir"], resume_id, executor, assemble_only))
    print_run_summary(run_dir)
    if add_to_pool is not None:
        add_to_pool(run_dir)
    return 0


def add_unlabelled_option(parser: argparse.ArgumentParser, where: str) -> None:
    parser.add_argument("--unlabelled", nargs="+", metavar="DIR_OR_CSV",
                        help=f"unlabelled images (folders, or CSVs with a path column), added as `train_cli.py "
                             f"pool RUN_ID --add` adds them, to {where}")


def pool_adder(unlabelled: list[str] | None) -> Callable[[Path], None] | None:
    """`--unlabelled`: the call that adds those images to a trained run's pool, after checking they exist."""
    for given in unlabelled or []:
        if not Path(given).expanduser().exists():
            raise UserError(f"--unlabelled {given}: no such folder or CSV file")
    return (lambda run_dir: add_pool(run_dir, unlabelled)) if unlabelled else None


def add_pool(run_dir: Path, inputs: list[str]) -> None:
    """Build or grow the run's unlabelled pool and say what it holds (`pool --add`, `--unlabelled`)."""
    from core.delivery import pool
    record = pool.build_pool(run_dir, inputs)
    print(f"pool of {run_dir.name}: {record['n_images']} distinct images from {record['n_files']} files; "
          f"{record['identical_to_labelled']} identical to labelled images, {record['near_labelled']} "
          f"near-duplicates of them (not picked); {len(record['skipped'])} file{'' if len(record['skipped']) == 1 else 's'} "
          f"skipped")
    for item in record["skipped"]:
        print(f"  skipped {item['path']}: {item['reason']}")


def train_repeats(cfg: RunConfig, settings: ExecutionSettings, repeats: int, resume_id: str | None) -> int:
    """--repeats R: R runs with the folds drawn anew in each, and the spread of their scores."""
    if resume_id is not None:
        raise UserError("--repeats starts new runs: drop --resume (finish an interrupted repeat with --resume RUN_ID "
                        "alone)")
    cfg.validate()
    from core.experiments.repeats import run_repeats
    from core.run.executors import open_executor
    with open_executor(settings) as executor:
        folder = run_repeats(cfg, repeats, executor)
    print(f"\nExperiment written to {folder}; its runs are in {cfg.runs_dir} (the Experiments page shows them)")
    return 0


def prepare_run_for_fold_jobs(cfg: RunConfig, settings: ExecutionSettings, resume_id: str | None,
                              print_id: bool = False) -> int:
    """--prepare-only: create the run without training, and print the fold-job commands that finish it
    (print_id: only the run id on stdout, as `RUN_ID=$(python train_cli.py --prepare-only --print-id)` wants)."""
    from core.run import lifecycle as run_lifecycle
    if resume_id is not None or settings != ExecutionSettings():
        raise UserError("--prepare-only creates a new run and runs no fold: drop --resume and the executor options")
    with contextlib.redirect_stdout(sys.stderr if print_id else sys.stdout):   # the log, too, when stdout is the id
        run_dir = run_lifecycle.prepare(cfg)
    runs = f" --runs-dir {cfg.runs_dir}" if cfg.runs_dir != DEFAULTS.runs_dir else ""
    print(f"\nRun {run_dir.name} is ready for its fold jobs:\n"
          f"  python train_cli.py fold {run_dir.name} K{runs}     for K in 0..{cfg.folds - 1}, anywhere that sees "
          f"{run_dir}\nthen assemble and diagnose it:\n  python train_cli.py --resume {run_dir.name} --assemble-only"
          f"{runs}", file=sys.stderr if print_id else sys.stdout)
    if print_id:
        print(run_dir.name)
    return 0


def print_run_summary(run_dir: Path) -> None:
    """The metrics table, how to open the run in the dashboard, and a diagnostics failure if there was one."""
    from core.delivery.summary import diagnostics_failure, summary_table
    print(f"\nRun written to {run_dir}\n")
    print(summary_table(run_dir))
    print(f"\nOpen the dashboard:\n  streamlit run dashboard/Home.py -- --runs-dir {run_dir.parent}\n"
          f"  (then pick run {run_dir.name}, or open {DASHBOARD_URL}/?run={run_dir.name})")
    failure = diagnostics_failure(run_dir)
    if failure:
        print(f"\n{failure}")


def command_weights(argv: list[str]) -> int:
    parser = OneLineParser(prog="train_cli.py weights",
                           description="Fetch and cache ImageNet weights (under TORCH_HOME).")
    parser.add_argument("--model", default=DEFAULTS.model, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    from core.config import check_model_name
    from core.training.weights import prefetch
    check_model_name(args.model)
    resolved = prefetch(args.model)
    print(f"ready: {args.model} weights from {resolved.source} (sha256 {resolved.sha256})")
    return 0


def command_diagnose(argv: list[str]) -> int:
    parser = run_parser("diagnose", "Recompute a run's diagnostics.")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.run import lifecycle as run_lifecycle
    from core.store import run_store
    entry = run_store.require_run(args.runs_dir, args.run_id)
    if entry.status != "complete":
        raise UserError(f"diagnose {args.run_id}: the run is {entry.status}; finish it first with "
                        f"python train_cli.py --resume {args.run_id}")
    with run_store.run_lock(entry.path):
        error = run_lifecycle.run_diagnostics_step(entry.path)
    print_run_summary(entry.path)
    return 1 if error else 0


REMEDIES_HELP = """Run a baseline and remedies on the same splits and seed, a learning curve, and the fold-paired
effects of each remedy (RUNS_DIR/experiments/EXP_ID/). Takes every training option of a normal run.

  python train_cli.py remedies                         the default remedies for this training mode
  python train_cli.py remedies --remedies list         every remedy, what it overrides, and why one is skipped
  python train_cli.py remedies --remedies balance-weights,label-smoothing
  python train_cli.py remedies --resume EXP_ID         finish an interrupted experiment, or retry its failed remedies
                                                       (or run self-training once the baseline has a pool)
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
    parser.add_argument("--resume", metavar="EXP_ID", help="finish an interrupted experiment, or retry the remedies "
                        "that failed in one: its complete runs are kept, an unfinished one gets its missing folds "
                        "(other options are taken from the experiment, except --runs-dir and where folds run)")
    add_unlabelled_option(parser, "the baseline's pool once it is trained: the self-training remedy pseudo-labels "
                                  "it, the ssl-* remedies learn from it too")
    args = vars(parser.parse_args(argv))
    selection, resume_id = args.pop("remedies"), args.pop("resume")
    add_pool_hook = pool_adder(args.pop("unlabelled"))
    settings = execution_settings(args)
    cfg = RunConfig(**args)
    from core.experiments import remedies
    from core.experiments import remedy_runs as experiments
    from core.run.executors import open_executor
    if resume_id is not None:  # an empty id ("$UNSET" in a script) is one to look up, not a new experiment
        if selection:
            raise UserError(f"--remedies {selection} with --resume: a resumed experiment trains the remedies it "
                            "planned; drop --remedies (or start a new experiment with them)")
    else:
        cfg.validate()
        if selection == "list":
            print(remedies.describe(cfg, experiments.planned_remedies(cfg, None)[0]))
            return 0
        chosen = remedies.parse_selection(selection)
    with open_executor(settings) as executor:
        folder = (experiments.run_remedies(cfg, chosen, executor, log=print_above_bars, add_pool=add_pool_hook)
                  if resume_id is None else
                  experiments.resume_remedies(Path(cfg.runs_dir), resume_id, executor, log=print_above_bars,
                                              add_pool=add_pool_hook))
    print_experiment_summary(folder, cfg.runs_dir)
    return 0


def print_experiment_summary(folder: Path, runs_dir: str) -> None:
    from core.store import run_store
    document = run_store.read_json(folder / "experiment.json")
    runs = [document["baseline"], *(r["run_id"] for r in document["runs"] if r["run_id"])]
    print(f"\nExperiment written to {folder}\nRuns: {', '.join(runs)}\n{experiments_page(folder, runs_dir)}")


def experiments_page(folder: Path, runs_dir: str) -> str:
    """How to open an experiment or study in the dashboard."""
    return (f"Open the dashboard's Experiments page:\n  streamlit run dashboard/Home.py -- --runs-dir {runs_dir}\n"
            f"  ({DASHBOARD_URL}/Experiments?experiment={folder.name})")


def print_above_bars(message: str) -> None:
    """The experiments' log: a plain print would break the progress bars of their runs."""
    from tqdm.auto import tqdm
    tqdm.write(message)


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
        help="trials at once with --executor ray (their folds share the cluster); with the local executor, trials "
             "run one after another (default: %(default)s)")
    args = vars(parser.parse_args(argv))
    options = {key: args.pop(key) for key in ("trials", "metric", "study", "space", "max_concurrent")}
    settings = execution_settings(args)
    cfg = RunConfig(**args)
    from core.experiments.tuning import tune
    from core.run.executors import open_executor
    cfg.validate()  # before a Ray instance takes seconds to start
    with open_executor(settings) as executor:
        folder = tune(cfg, options["trials"], options["metric"], options["study"], options["space"], executor,
                      options["max_concurrent"], log=print_above_bars,
                      resume=" ".join(["python", "train_cli.py", "tune", *argv]))
    print(f"\nStudy written to {folder}\n{experiments_page(folder, cfg.runs_dir)}")
    return 0


def command_amazon(argv: list[str]) -> int:
    default = {f.name: f.default for f in fields(AmazonSettings)}  # it has required fields: no AmazonSettings()
    http = HttpSettings()
    parser = OneLineParser(prog="train_cli.py amazon", description="Build a grouped image dataset (folder + "
                           "manifest.csv, group = parent_asin) from Amazon Reviews 2023 item metadata files "
                           "meta_<Category>.jsonl[.gz].")
    add = parser.add_argument
    add("--categories", required=True, help="comma-separated, e.g. All_Beauty,Digital_Music,Health_and_Personal_Care")
    add("--meta", required=True, metavar="DIR_OR_URL",
        help="folder holding meta_<Category>.jsonl or .jsonl.gz files, or the base URL that serves them")
    add("--out", required=True, help="dataset folder to write (an interrupted build resumes when rerun)")
    add("--per-class", type=int, help="products per category, sampled with --seed (default: all with an image)")
    add("--images", default=default["images"], choices=["main", "all"],
        help="main: each product's MAIN image (else its first); all: every image (default: %(default)s)")
    add("--size", default=default["size"], choices=["large", "hi_res"],
        help="large (~500 px) or hi_res (up to 1500 px), the other when missing (default: %(default)s)")
    add("--seed", type=int, default=default["seed"], help="sampling seed (default: %(default)s)")
    add("--min-ratings", type=int, default=default["min_ratings"],
        help="keep products with at least this many ratings (default: %(default)s)")
    add("--label-level", type=int, default=default["label_level"], metavar="N",
        help="0: label = the file's category; N: the N-th entry of each product's category path, the file's category "
             "its superclass (manifest column superclass; products without that level are left out) "
             "(default: %(default)s)")
    add("--concurrency", type=int, default=default["concurrency"], help="downloads at once (default: %(default)s)")
    add("--progress-every", type=float, default=default["progress_every_s"], metavar="SECONDS",
        help="print images done, failed and the rate per category this often, on stderr (default: %(default)s)")
    add("--timeout", type=float, default=http.timeout, help="seconds per request attempt (default: %(default)s)")
    add("--retries", type=int, default=http.retries,
        help="retries on timeouts, connection errors, 429 and 5xx (default: %(default)s)")
    add("--backoff", type=float, default=http.backoff,
        help="seconds before the first retry, doubled each time, with jitter (default: %(default)s)")
    add("--max-wait", type=float, default=http.max_wait,
        help="longest wait between attempts; a longer Retry-After gives up (default: %(default)s)")
    args = parser.parse_args(argv)
    settings = AmazonSettings(
        categories=tuple(c.strip() for c in args.categories.split(",") if c.strip()), meta=args.meta, out=args.out,
        per_class=args.per_class, images=args.images, size=args.size, seed=args.seed, min_ratings=args.min_ratings,
        label_level=args.label_level, concurrency=args.concurrency, progress_every_s=args.progress_every,
        http=HttpSettings(timeout=args.timeout, retries=args.retries, backoff=args.backoff, max_wait=args.max_wait))
    from core.data.sources.amazon import build, summary
    from core.data.sources.http import FetchError
    command = ["python", "train_cli.py", "amazon", *argv]
    try:
        info = build(settings, command)
    except (FetchError, OSError) as exc:
        print(f"error: amazon build stopped: {exc}; rerun the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished images are kept: rerun the same command to resume:\n  {' '.join(command)}",
              file=sys.stderr)
        return INTERRUPTED
    print(summary(info))
    return 0


def command_clean(argv: list[str]) -> int:
    parser = run_parser("clean", "Write a cleaned manifest (path,label,group CSV for --data) and review.json beside "
                        "it, dropping what the run's diagnostics flag or merging classes. The run itself is not "
                        "changed.")
    parser.add_argument("--drop-label-issues", type=float, metavar="QUALITY",
                        help="drop suspected label errors (flagged by at least 2 of the detectors cleanlab, AUM, "
                             "neighbours) whose label quality is below QUALITY, e.g. 0.05")
    parser.add_argument("--drop-exact-duplicates", action="store_true",
                        help="drop every identical file but the first (lowest sample id) of its set")
    parser.add_argument("--merge-classes", action="append", default=[], metavar="A,B",
                        help="relabel every image of A and B as one class \"A+B\" (classes the data cannot "
                             "separate); repeat it for several merges")
    parser.add_argument("--merged-name", metavar="NAME", help="the merged class's name (with one --merge-classes)")
    add_out(parser, "manifest", "cleaned.csv")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.data import cleaning
    from core.store import run_store
    entry = run_store.require_run(args.runs_dir, args.run_id)
    if args.drop_label_issues is None and not args.drop_exact_duplicates and not args.merge_classes:
        raise UserError("clean: nothing to do; give --drop-label-issues QUALITY, --drop-exact-duplicates and/or "
                        "--merge-classes A,B")
    if args.drop_label_issues is not None and not 0 < args.drop_label_issues <= 1:
        raise UserError(f"--drop-label-issues {args.drop_label_issues}: a label quality in (0, 1], e.g. 0.05")
    if args.merged_name is not None and len(args.merge_classes) != 1:
        raise UserError("--merged-name names one merge: give exactly one --merge-classes with it")
    classes = list(entry.info.get("classes") or [])
    where = f"the run's classes are listed under \"classes\" in {entry.path / run_store.RUN_JSON}"
    groups = [cleaning.parse_merge(text, classes, where) for text in args.merge_classes]
    merges = cleaning.merge_map(groups, [args.merged_name] * len(groups), classes)
    review, outcome = cleaning.clean_run(entry.path, entry.info, args.drop_label_issues, args.drop_exact_duplicates,
                                         file_to_write(args.out), merges)
    record = run_store.read_json(review)
    print(f"wrote {args.out} ({outcome}) and {review}\ntrain on it:\n  {record['command']}")
    return 0


def command_fold(argv: list[str]) -> int:
    parser = run_parser("fold", "Run one fold job of a run here, e.g. as one task of a Slurm array. It writes only "
                        "folds/foldK/ (in one rename; a fold already done is left as it is). When every fold is done, "
                        "`python train_cli.py --resume RUN_ID` assembles and diagnoses the run.",
                        run_id_help="a run made with --prepare-only (or an interrupted one)")
    parser.add_argument("fold", type=int, help="fold index K, from 0")
    parser.add_argument("--force", action="store_true",
                        help="train a fold that is already done again, replacing it (the run's assembled results "
                             "and diagnostics then read stale until --resume RUN_ID updates them)")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.store import run_store
    from core.store.freshness import stale_note
    from core.store.heartbeat import heartbeat
    from core.training import fold_job
    entry = run_store.require_run(args.runs_dir, args.run_id)
    n_folds = entry.info["config"]["folds"]
    if not 0 <= args.fold < n_folds:
        raise UserError(f"fold {args.run_id} {args.fold}: that run has folds 0 to {n_folds - 1}")
    if not run_store.embedding_path(entry.path, "backbone").exists():
        raise UserError(f"fold {args.run_id}: the run has no backbone features yet; make runs for fold jobs with "
                        f"--prepare-only, or finish this one with: python train_cli.py --resume {args.run_id}")
    if (run_store.fold_dir(entry.path, args.fold) / "fold.json").exists() and not args.force:
        raise UserError(f"fold {args.run_id} {args.fold}: that fold is already done; add --force to train it again "
                        f"and replace it")
    runs = f" --runs-dir {args.runs_dir}" if args.runs_dir != DEFAULTS.runs_dir else ""
    with heartbeat(entry.path, f"fold {args.fold}", f"python train_cli.py fold {args.run_id} {args.fold}{runs}",
                   name=f"fold{args.fold}") as beat:
        beat.update("training")
        summary = fold_job.run_fold(entry.path, args.fold, replace=args.force)
    print(f"fold {args.fold} of {args.run_id}: best epoch {summary['best_epoch']} of {summary['epochs_run']} "
          f"({summary['seconds']:.1f} s)")
    if args.force and entry.status == "complete":
        print(stale_note(args.run_id, [args.fold]), file=sys.stderr)
    return 0


def command_report(argv: list[str]) -> int:
    parser = run_parser("report", "Write one self-contained HTML report of a run: opens offline in any browser "
                        "(plotly.js and thumbnails embedded), readable by someone who never saw the dashboard.")
    add_out(parser, "HTML file", shown="report-RUN_ID.html")
    parser.add_argument("--dashboard-url", help="base URL of a live dashboard (e.g. http://host:8501): every section "
                                                "links to the same view there")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.delivery import report
    from core.store import run_store
    run_dir = run_store.require_run(args.runs_dir, args.run_id).path
    out = file_to_write(args.out or f"report-{args.run_id}.html")
    html = report.build_report(run_dir, args.dashboard_url)
    with run_store.atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html.encode()) / 1e6:.1f} MB)")
    return 0


def command_predict(argv: list[str]) -> int:
    parser = run_parser("predict", "Classify images with a run's fold models as an ensemble (mean probability, like "
                        "the run's test ensemble). Prints a table and writes a CSV with every class's probability.")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders searched recursively")
    add_out(parser, "CSV", "predictions.csv")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: also average over each image's horizontal mirror")
    add_confidence_options(parser, "also give each image's prediction set: the classes it could be, holding the "
                                   "true class for this share of images (e.g. 0.9), and its calibrated confidence")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.analysis.confidence import check_coverage, load_confidence
    from core.delivery import predict
    from core.store import run_store
    from core.training.device import describe_device
    coverage = None if args.coverage is None else check_coverage(args.coverage)
    sets = set_settings(args)
    if coverage is None and sets != SetSettings():
        raise UserError("--set-method, --raps-lambda and --raps-k-reg shape prediction sets, which predict makes only "
                        "with --coverage: add e.g. --coverage 0.9")
    out = file_to_write(args.out)
    run_dir = run_store.require_run(args.runs_dir, args.run_id).path
    paths = predict.collect_inputs(args.inputs)
    ensemble = predict.load_ensemble(run_dir)
    confidence = None if coverage is None else load_confidence(run_dir, ensemble.classes, coverage,
                                                               args.class_conditional, sets)
    if confidence is not None and confidence.always_in():
        print(f"warning: too few out-of-fold images to bound {', '.join(confidence.always_in())} at coverage "
              f"{coverage:g}: every prediction set holds {'it' if len(confidence.always_in()) == 1 else 'them'}",
              file=sys.stderr)
    print(f"run {ensemble.run_id}: {len(ensemble.folds)} fold models ({ensemble.info['train_mode']} mode) on "
          f"{describe_device(ensemble.device)}; {len(paths)} files{', with TTA' if args.tta else ''}", file=sys.stderr)
    table = predict.predict_files(ensemble, paths, predict.run_splits(run_dir), tta=args.tta)
    if table["error"].notna().all():  # nothing to write: keep whatever CSV is there
        first = table.iloc[0]
        raise UserError(f"predict: none of the {len(table)} files could be classified ({first['path']}: "
                        f"{first['error']}); give image files or folders of images")
    if confidence is not None:
        table = predict.add_prediction_sets(table, confidence)
    table.to_csv(out, index=False)
    print(predict.printable(table))
    print(f"\nwrote {out}", file=sys.stderr)
    for warning in (predict.seen_in_training_warning(table), predict.ood_warning(table, ensemble.ood)):
        if warning:
            print(warning, file=sys.stderr)
    return 0


def command_serve(argv: list[str]) -> int:
    parser = run_parser("serve", "Serve a run's fold models over HTTP: POST /predict, GET /model, GET /health, docs "
                        "at /docs.")
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    add("--port", type=int, default=8000, help="(default: %(default)s)")
    add("--token", help="require 'Authorization: Bearer TOKEN' on /predict and /model; prefer the "
                        "FOLDLENS_API_TOKEN environment variable (a --token shows in the process list)")
    add("--no-token", action="store_true", help="allow listening on a non-loopback address without a token")
    add("--max-file-mb", type=float, default=ServeSettings().max_file_bytes / 2**20,
        help="largest accepted image (default: %(default)s)")
    add("--max-files", type=int, default=ServeSettings().max_files,
        help="most images per request (default: %(default)s)")
    add("--max-batch", type=int, help="images of queued requests that share one forward pass (default: 32 on CUDA, "
                                      "1 on a CPU, where sharing did not pay in bench/bench_serve.py)")
    add("--tta", action="store_true", help="also average over each image's horizontal mirror")
    add_confidence_options(parser, "each image's prediction set holds the true class for this share of images "
                                   "(default: %(default)s)", default=ServeSettings().coverage)
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.analysis.confidence import check_coverage, load_confidence
    from core.delivery import predict, serve
    from core.store import run_store
    coverage = check_coverage(args.coverage)
    sets = set_settings(args)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if not serve.is_loopback(args.host) and token is None and not args.no_token:
        raise UserError(f"--host {args.host}: anyone who can reach it could use the model; set a token with "
                        f"{TOKEN_ENV} (or --token), or pass --no-token to serve it open")
    if args.max_file_mb <= 0 or args.max_files < 1 or (args.max_batch is not None and args.max_batch < 1):
        raise UserError("--max-file-mb, --max-files and --max-batch must be positive")
    run_dir = run_store.require_run(args.runs_dir, args.run_id).path
    listener = serve.listening_socket(args.host, args.port)   # before loading models: a busy port fails at once
    import uvicorn
    ensemble = predict.load_ensemble(run_dir)
    settings = ServeSettings(max_file_bytes=int(args.max_file_mb * 1024 * 1024), max_files=args.max_files,
                             max_batch=args.max_batch, token=token, tta=args.tta, coverage=coverage,
                             class_conditional=args.class_conditional)
    confidence = load_confidence(run_dir, ensemble.classes, coverage, args.class_conditional, sets)
    app = serve.create_app(ensemble, run_store.read_optional_json(run_dir, "metrics"), settings, confidence)
    print(f"serving run {ensemble.run_id} ({len(ensemble.folds)} fold models) on http://{args.host}:{args.port} "
          f"(API docs at /docs{', bearer token required' if token else ''})", file=sys.stderr)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
    return 0


def command_drift(argv: list[str]) -> int:
    parser = run_parser("drift", "Compare new images with the run's training images: per image property (brightness, "
                        "blur, size, ...) a Kolmogorov-Smirnov test, and a classifier two-sample test on pretrained "
                        "features. Prints a verdict and writes it into the run (drift/TIME.json), where the "
                        "dashboard and the report show the latest.")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders searched recursively")
    add_out(parser, "a copy of the result as JSON", shown="none")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    from core.analysis import drift
    from core.delivery.predict import collect_inputs
    from core.store import run_store
    out = file_to_write(args.out) if args.out else None
    run_dir = run_store.require_run(args.runs_dir, args.run_id).path
    result = drift.drift_of_run(run_dir, collect_inputs(args.inputs, "drift"), args.inputs)
    written = drift.write_drift(run_dir, result)
    if out:
        run_store.write_json(out, result)
    print(result["verdict"])
    for item in result["unreadable"]:
        print(f"  skipped {item['path']}: {item['reason']}")
    print(f"\nwrote {written}" + (f" and {out}" if out else ""), file=sys.stderr)
    return 0


def command_pool(argv: list[str]) -> int:
    parser = run_parser("pool", "Unlabelled images: add them to a finished run (scanned like the data, embedded with "
                        "the run's backbone, scored by its fold ensemble; stored in the run's pool/), and rank which "
                        "to label next (TypiClust for small budgets, BADGE beyond; see README).")
    parser.add_argument("--add", nargs="+", metavar="DIR_OR_CSV",
                        help="folders of images (searched recursively) or CSVs with a path column (a label column "
                             "is kept as the known truth, never used for picking); added to the pool already there")
    parser.add_argument("--budget", type=int, help="how many pool images to pick for labelling")
    parser.add_argument("--strategy", choices=PICK_STRATEGIES, default="auto",
                        help="typiclust, badge, or auto: TypiClust while labelled + budget is under "
                             f"{PickSettings().typiclust_per_class} images per class, else BADGE "
                             f"(default: %(default)s)")
    add_out(parser, "the picks as CSV (path, sha256, prediction, confidence, strategy, score, reason)",
            default="to_label.csv")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    if not args.add and args.budget is None:
        raise UserError("pool: nothing to do; give --add DIR_OR_CSV to add images, and/or --budget N to pick "
                        "which to label next")
    if args.budget is not None and args.budget < 1:
        raise UserError(f"--budget {args.budget}: must be a positive whole number of images to label")
    out = file_to_write(args.out) if args.budget is not None else None
    from core.delivery import pool
    from core.store import run_store
    run_dir = run_store.require_run(args.runs_dir, args.run_id).path
    if args.add:
        add_pool(run_dir, args.add)
    if args.budget is not None:
        picks = pool.rank_pool(run_dir, args.budget, args.strategy)
        run_store.write_csv(out, picks)
        written = pool.write_picks(run_dir, picks)
        strategy = picks["strategy"].iloc[0] if len(picks) else args.strategy
        print(f"{len(picks)} images to label next ({strategy}), best first:")
        print(picks[["rank", "path", "prediction", "confidence"]].head(20).to_string(index=False))
        print(f"\nwrote {out} and {written}", file=sys.stderr)
    return 0


def command_explain(argv: list[str]) -> int:
    parser = run_parser("explain", "Precompute class activation maps (predicted and true class) of every "
                        "misclassified validation and test image, into the cache.")
    add_runs_dir(parser)
    add_cache_dir(parser, help="where the maps are kept (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: must be a positive whole number")
    from core.analysis.explain import explain_run
    from core.store import run_store
    entry = run_store.require_run(args.runs_dir, args.run_id)
    if not entry.info.get("folds_done"):
        raise UserError(f"explain {args.run_id}: no fold has finished yet; finish it with: "
                        f"python train_cli.py --resume {args.run_id}")
    result = explain_run(entry.path, args.cache_dir, args.batch_size)
    print(f"explain: {result['maps']} maps of {result['images']} misclassified images ({result['computed']} "
          f"computed, the rest cached) in {result['seconds']:.1f} s on {result['device']}; cached under "
          f"{Path(args.cache_dir) / 'gradcam'}")
    return 0


def command_runs(argv: list[str]) -> int:
    if argv[:1] == ["rm"]:
        parser = run_parser("runs rm", "Remove a run folder. Refused while a writer of the run (training, a fold "
                            "job, explain) is alive, here or on another machine sharing the runs folder.")
        add_runs_dir(parser)
        args = parser.parse_args(argv[1:])
        from core.store import run_store
        from core.store.run_removal import remove_run
        from core.views.run_list import folder_size, human_size
        entry = run_store.find_run(Path(args.runs_dir), args.run_id)
        size = human_size(folder_size(entry.path)) if entry else ""
        removed = remove_run(Path(args.runs_dir), args.run_id)
        print(f"removed {removed} ({size})")
        return 0
    parser = OneLineParser(prog="train_cli.py runs", description="List the runs folder: id, name, status (a run "
                           "whose writer was killed reads stalled, with the command that resumes it), created, data, "
                           "mode, folds done, headline metrics, size on disk. `runs rm RUN_ID` removes one.")
    parser.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    add_runs_dir(parser)
    args = parser.parse_args(argv)
    import json

    from core.views.run_list import format_rows, run_rows
    rows = run_rows(Path(args.runs_dir))
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(format_rows(rows))
    else:
        print(f"no runs under {args.runs_dir}")
    return 0


def command_cache(argv: list[str]) -> int:
    from core.store.cache_store import CacheSettings
    keep = CacheSettings().keep_recent_s
    prune = argv[:1] == ["prune"]
    parser = OneLineParser(
        prog=f"train_cli.py cache{' prune' if prune else ''}",
        description=(f"Remove cache entries, least recently used first. An entry used in the last {keep / 3600:g} "
                     "hour(s) is never removed: a live writer touches or writes what it uses as it goes. Anything "
                     "removed is computed again when next needed." if prune else
                     "What the cache holds (features, thumbnails, activation maps, neighbour indexes, kNN graphs, "
                     "UMAP maps) and its size by kind. `cache prune --older-than 30d` or `--max-size 5G` trims it."))
    add_cache_dir(parser, help="the cache (default: $FOLDLENS_CACHE, else %(default)s)")
    if prune:
        parser.add_argument("--older-than", metavar="AGE", help="remove entries unused for longer, e.g. 30d, 12h")
        parser.add_argument("--max-size", metavar="SIZE", help="then remove least recently used entries until the "
                                                               "cache fits, e.g. 5G, 500M")
        parser.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    else:
        parser.add_argument("--json", action="store_true", help="one JSON list, for scripts")
    args = parser.parse_args(argv[1:] if prune else argv)
    from core.store import cache_store
    from core.views.run_list import human_size
    cache_dir = Path(args.cache_dir)
    if not prune:
        kinds = cache_store.inventory(cache_dir)
        if args.json:
            import json
            print(json.dumps({"cache_dir": str(cache_dir), "kinds": kinds}, indent=2))
            return 0
        print(f"cache: {cache_dir}")
        for kind in kinds:
            print(f"  {kind['kind']:<11} {human_size(kind['bytes']):>9}  {kind['files']:>8} files  {kind['what']}")
        print(f"  {'total':<11} {human_size(sum(k['bytes'] for k in kinds)):>9}  "
              f"{sum(k['files'] for k in kinds):>8} files")
        return 0
    if args.older_than is None and args.max_size is None:
        raise UserError("cache prune: give --older-than AGE (e.g. 30d) and/or --max-size SIZE (e.g. 5G)")
    older_than = cache_store.parse_age(args.older_than) if args.older_than is not None else None
    max_bytes = cache_store.parse_size(args.max_size) if args.max_size is not None else None
    doomed, kept = cache_store.prune_plan(cache_dir, older_than, max_bytes)
    size = human_size(sum(e.size for e in doomed))
    if args.dry_run:
        print(f"would remove {len(doomed)} entries ({size}) from {cache_dir}")
    else:
        cache_store.remove(doomed)
        print(f"removed {len(doomed)} entries ({size}) from {cache_dir}")
    if kept:
        print(f"kept {len(kept)} entries ({human_size(sum(e.size for e in kept))}) used in the last "
              f"{keep / 3600:g} hour(s)")
    return 0


COMMANDS = {"weights": command_weights, "diagnose": command_diagnose, "fold": command_fold,
            "amazon": command_amazon, "clean": command_clean, "explain": command_explain,
            "report": command_report, "predict": command_predict, "serve": command_serve, "drift": command_drift,
            "pool": command_pool, "remedies": command_remedies, "tune": command_tune, "runs": command_runs,
            "cache": command_cache}


def main(argv: list[str]) -> int:
    if not sys.stderr.isatty():  # progress bars in a log file are only escape codes
        os.environ.setdefault("TQDM_DISABLE", "1")
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        if argv and command is None and not argv[0].startswith("-"):  # training takes options only
            import difflib
            near = difflib.get_close_matches(argv[0], COMMANDS, n=1)
            raise UserError(f"unknown command '{argv[0]}'" + (f"; did you mean '{near[0]}'?" if near else "")
                            + f" Commands: {', '.join(COMMANDS)}; training takes only options (see --help)")
        return command(argv[1:]) if command else command_train(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the pipeline has printed the run's --resume command
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # one line here, not a traceback; a training failure is also recorded in run.json
        from core.store import safe_write
        if safe_write.is_storage_error(exc):  # a full disk or a refused write outside run_store's atomic writes
            print(f"error: {safe_write.describe(exc)}", file=sys.stderr)
            return 2
        where = f"{argv[0]} failed" if command else "training failed"
        details = "" if command else " (details in the run's run.json)"
        print(f"error: {where}: {type(exc).__name__}: {exc}{details}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
