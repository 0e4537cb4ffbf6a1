#!/usr/bin/env python
"""Train and evaluate with k-fold cross-validation; write a run directory for the dashboard.

  python train_cli.py --folds 5                 train on the embedded demo dataset
  python train_cli.py --data PATH --folds 5     a CLASS/IMAGE folder or a CSV with path,label[,group]
  python train_cli.py --resume RUN_ID           finish an interrupted run's missing folds
  python train_cli.py weights                   fetch ImageNet weights now, so training needn't
  python train_cli.py diagnose RUN_ID           recompute a run's diagnostics without retraining
  python train_cli.py remedies                  baseline + remedies on the same splits, effects, learning curve
  python train_cli.py tune --trials 20          Optuna search over k-fold runs (rerun to resume)
  python train_cli.py amazon --categories A,B --meta DIR_OR_URL --per-class N --out DIR
                                                build an image dataset from Amazon Reviews 2023 metadata
  python train_cli.py clean RUN_ID --drop-label-issues 0.05 --drop-exact-duplicates --out cleaned.csv
                                                a cleaned manifest (+ review.json) from a run's diagnostics
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
        help="ignore the manifest's group column when splitting (shows what leakage does; identical files still "
             "move together unless --dedup-groups off; default: use groups)")
    add("--dedup-groups", default=DEFAULTS.dedup_groups, choices=["exact", "near", "off"],
        help="what else moves as one unit in the splits, besides a group: exact = identical files; near = also "
             "images whose pretrained features are near-identical (cosine as the duplicates diagnostic); "
             "off = nothing (default: %(default)s)")
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
    from core.summary import diagnostics_failure, summary_table
    print(f"\nRun written to {run_dir}\n")
    print(summary_table(run_dir))
    print(f"\nOpen the dashboard:\n  streamlit run dashboard/Home.py -- --runs-dir {run_dir.parent}\n"
          f"  (then pick run {run_dir.name}, or open http://127.0.0.1:8501/?run={run_dir.name})")
    failure = diagnostics_failure(run_dir)
    if failure:
        print(f"\n{failure}")


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


def command_amazon(argv: list[str]) -> int:
    from dataclasses import fields
    from core.sources.amazon import AmazonSettings, build, summary
    from core.sources.http import FetchError, HttpSettings
    default = {f.name: f.default for f in fields(AmazonSettings)}
    http = HttpSettings()
    parser = argparse.ArgumentParser(
        prog="train_cli.py amazon", description="Build a grouped image dataset (folder + manifest.csv, group = "
        "parent_asin) from Amazon Reviews 2023 item metadata files meta_<Category>.jsonl[.gz].")
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
    add("--concurrency", type=int, default=default["concurrency"], help="downloads at once (default: %(default)s)")
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
        concurrency=args.concurrency,
        http=HttpSettings(timeout=args.timeout, retries=args.retries, backoff=args.backoff, max_wait=args.max_wait))
    try:
        info = build(settings, ["python", "train_cli.py", "amazon", *argv])
    except (FetchError, OSError) as exc:
        print(f"error: amazon build stopped: {exc}; rerun the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nrerun the same command to resume: finished images are kept", file=sys.stderr)
        raise
    print(summary(info))
    return 0


def command_clean(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train_cli.py clean", description=(
        "Write a cleaned manifest (path,label,group CSV for --data) and review.json beside it, dropping what the "
        "run's diagnostics flag. The run itself is not changed."))
    parser.add_argument("run_id")
    parser.add_argument("--drop-label-issues", type=float, metavar="QUALITY",
                        help="drop suspected label errors (cleanlab) whose label quality is below QUALITY, e.g. 0.05")
    parser.add_argument("--drop-exact-duplicates", action="store_true",
                        help="drop every identical file but the first (lowest sample id) of its set")
    parser.add_argument("--out", default="cleaned.csv", help="manifest to write (default: %(default)s)")
    parser.add_argument("--runs-dir", default=DEFAULTS.runs_dir, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    from core import cleaning, run_store
    entry = run_store.find_run(Path(args.runs_dir), args.run_id)
    if entry is None or entry.info is None:
        raise UserError(f"clean {args.run_id}: no such run under {args.runs_dir}"
                        f"{'' if entry is None else f' ({entry.error})'}")
    if args.drop_label_issues is None and not args.drop_exact_duplicates:
        raise UserError("clean: nothing to do; give --drop-label-issues QUALITY and/or --drop-exact-duplicates")
    if args.drop_label_issues is not None and not 0 < args.drop_label_issues <= 1:
        raise UserError(f"--drop-label-issues {args.drop_label_issues}: a label quality in (0, 1], e.g. 0.05")
    review = cleaning.clean_run(entry.path, entry.info, args.drop_label_issues, args.drop_exact_duplicates, args.out)
    counts = run_store.read_json(review)["counts"]
    print(f"wrote {args.out} ({counts['drop']} dropped) and {review}\ntrain on it:\n  "
          f"{cleaning.training_command(args.out)}")
    return 0


COMMANDS = {"weights": command_weights, "diagnose": command_diagnose, "amazon": command_amazon,
            "clean": command_clean, "remedies": command_remedies, "tune": command_tune}


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
