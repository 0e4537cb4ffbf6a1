"""Experiment speed on the demo dataset: a head-mode tuning trial (seconds) and `remedies` (minutes).

    .venv/bin/python bench/bench_experiments.py [--trials 4] [--data PATH] [--keep DIR]

Everything runs in this one process, as `train_cli.py tune` and `remedies` do, so one-time costs (imports,
UMAP's compilation, the backbone features when the cache is cold) are paid once: the first trial's time shows
them, the later trials' times do not. Backbone features come from the content-addressed cache ($FOLDLENS_CACHE);
ImageNet weights must be cached (python train_cli.py weights).
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
os.environ.setdefault("TQDM_DISABLE", "1")

import pandas as pd  # noqa: E402

from core.config import RunConfig  # noqa: E402
from core.store import run_store  # noqa: E402


def quiet(_: str) -> None:
    pass


def bench_tune(cfg: RunConfig, trials: int) -> None:
    from core.experiments.tuning import tune

    started = time.perf_counter()
    folder = tune(cfg, trials, study_name="bench", log=quiet)
    total = time.perf_counter() - started
    table = run_store.read_json(folder / "experiment.json")
    trial_seconds = []
    for run_id in pd.read_parquet(folder / "trials.parquet").run_id:
        trial_seconds.append(run_store.read_json(Path(cfg.runs_dir) / run_id / "run.json")["timings"]["total"])
    later = trial_seconds[1:] or trial_seconds
    print(f"tune, head mode, {cfg.folds} folds x {cfg.epochs} epochs max: {trials} trials in {total:.1f} s "
          f"(including the best trial's test run)")
    print(f"  first trial {trial_seconds[0]:.1f} s; later trials {min(later):.1f}-{max(later):.1f} s "
          f"(mean {sum(later) / len(later):.1f} s); best {table['metric']} {table['best']['value']:.3f}")


def bench_remedies(cfg: RunConfig) -> None:
    from core.experiments.remedy_runs import run_remedies

    started = time.perf_counter()
    folder = run_remedies(cfg, log=quiet)
    total = time.perf_counter() - started
    document = run_store.read_json(folder / "experiment.json")
    ran = [r["remedy"] for r in document["runs"] if r["status"] == "complete"]
    print(f"remedies, head mode: baseline + {len(ran)} remedies ({', '.join(ran)}) + learning curve in "
          f"{total / 60:.1f} min")
    print("  " + ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in document["timings"].items()))
    for skipped in document["skipped"]:
        print(f"  skipped {skipped['remedy']}: {skipped['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--data", default=RunConfig().data)
    parser.add_argument("--keep", help="write the runs here instead of a temporary folder")
    parser.add_argument("--skip-remedies", action="store_true")
    args = parser.parse_args()
    import torch
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f} at the start (other processes slow every number down)")
    with tempfile.TemporaryDirectory() as scratch:
        runs = Path(args.keep or scratch) / "runs"
        cfg = RunConfig(data=args.data, runs_dir=str(runs), train_mode="head")
        bench_tune(cfg, args.trials)
        if not args.skip_remedies:
            bench_remedies(cfg)


if __name__ == "__main__":
    main()
