#!/usr/bin/env python
"""Folds per hour through each executor on the same data, and what the Ray path costs per fold.

Runs `train_cli.py` three times on the same dataset and settings, each as its own process: `--executor local`,
`--executor ray` (a private local Ray instance; one CPU per fold, so folds run side by side), and Ray with every
CPU per fold (one fold at a time, like the local loop: the difference is Ray's own cost). Reads run.json's
timings:

  fold phase  = the run's total time less scan, backbone features and diagnostics (what the executor changes;
                it includes assembling after each fold, which both executors do)
  start/stop  = the command's wall time less the run's total (Ray: starting and stopping the instance)

  python bench/bench_executors.py                                 demo dataset, head mode, random weights, 64 px
  python bench/bench_executors.py --train-mode finetune --weights imagenet --image-size 224 --epochs 5
                                                                  (on a GPU machine: one GPU per Ray fold)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(options: list[str], args: argparse.Namespace, runs_dir: Path, cache_dir: Path) -> dict:
    command = [sys.executable, "train_cli.py", "--data", args.data, "--folds", str(args.folds), "--epochs",
               str(args.epochs), "--train-mode", args.train_mode, "--weights", args.weights, "--image-size",
               str(args.image_size), "--runs-dir", str(runs_dir), "--cache-dir", str(cache_dir),
               *options]
    started = time.perf_counter()
    # Run from the checkout: Ray puts the driver's folder on its workers' import path.
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(options)}: train_cli.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    timings = info["timings"]
    fold_phase = timings["total"] - sum(timings.get(stage, 0.0) for stage in ("scan", "features", "diagnostics"))
    fold_seconds = [timings[f"fold{k}"] for k in range(args.folds)]
    metrics = json.loads((run_dir / "metrics.json").read_text())["folds"]
    return {"wall": wall, "total": timings["total"], "fold_phase": fold_phase, "fold_job": fold_seconds,
            "metrics": metrics, "execution": info["execution"], "threads": info["config"]["threads"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO / "assets" / "product_icons" / "metadata.csv"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train-mode", default="head", choices=["head", "finetune"])
    parser.add_argument("--weights", default="none")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    print(f"{args.folds} folds, {args.train_mode} mode, {args.epochs} epochs, {args.image_size} px, weights "
          f"{args.weights}, data {args.data}; {os.cpu_count()} CPUs")
    variants = {"local": ["--executor", "local"],
                "ray, folds side by side": ["--executor", "ray", "--cpus-per-fold", "1"],
                "ray, one fold at a time": ["--executor", "ray", "--cpus-per-fold", str(os.cpu_count())]}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"  # shared: later runs read the backbone features the first one cached
        for i, (label, options) in enumerate(variants.items()):
            results[label] = run(options, args, Path(tmp) / f"run{i}", cache_dir)
    for label, r in results.items():
        jobs = r["fold_job"]
        print(f"{label}: command {r['wall']:.1f} s, run {r['total']:.1f} s, fold phase {r['fold_phase']:.1f} s "
              f"= {3600 * args.folds / r['fold_phase']:.0f} folds/hour; one fold job {min(jobs):.1f}-{max(jobs):.1f} s "
              f"(threads {r['threads']}); start/stop {r['wall'] - r['total']:.1f} s")
    local, sequential = results["local"], results["ray, one fold at a time"]
    print(f"Ray's cost per fold (one at a time, against the local loop): "
          f"{(sequential['fold_phase'] - local['fold_phase']) / args.folds:+.1f} s, plus "
          f"{(sequential['wall'] - sequential['total']) - (local['wall'] - local['total']):+.1f} s once to start and "
          f"stop the instance")
    same = all(r["metrics"] == local["metrics"] for r in results.values())
    print(f"fold metrics identical through every executor: {same}")


if __name__ == "__main__":
    main()
