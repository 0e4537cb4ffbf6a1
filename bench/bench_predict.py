"""`train_cli.py predict` on a run's own test split: agreement with the run's stored test ensemble, and speed.

    .venv/bin/python bench/bench_predict.py [RUN_ID] [--runs-dir runs]

Runs the command as a user would (a subprocess) on every test image of the run (default: the newest complete
run with a test split) and compares the CSV with the `ensemble` rows of predictions.parquet.
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
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.store import run_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args()
    runs = [e for e in run_store.list_runs(Path(args.runs_dir)) if e.status == "complete"
            and (e.run_id == args.run_id if args.run_id else True)]
    if not runs:
        sys.exit(f"no complete run {args.run_id or ''} under {args.runs_dir}")
    run = runs[0].path
    ensemble = pd.read_parquet(run / "predictions.parquet").query("model == 'ensemble'").sort_values("sample_id")
    if ensemble.empty:
        sys.exit(f"run {run.name} has no test split to compare with")
    root = Path(json.loads((run / "run.json").read_text())["dataset"]["root"])
    samples = pd.read_parquet(run / "samples.parquet").set_index("sample_id")
    paths = [str(root / p) for p in samples.loc[ensemble["sample_id"], "path"]]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "predictions.csv"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, str(REPO / "train_cli.py"), "predict", run.name, *paths, "--out",
                               str(out), "--runs-dir", args.runs_dir], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(f"predict failed: {done.stderr[-2000:]}")
        table = pd.read_csv(out)
    columns = [c for c in ensemble.columns if c.startswith("prob_")]
    got, stored = table[columns].to_numpy(), ensemble[columns].to_numpy()
    same = np.mean(got.argmax(1) == stored.argmax(1))
    print(f"run {run.name}: {len(paths)} test images in {seconds:.1f} s including start-up and model loading "
          f"({len(paths) / seconds:.1f} images/s); largest probability difference from the stored test ensemble "
          f"{np.abs(got - stored).max():.1e}; same predicted class for {same:.0%} (2-core CPU shared with other "
          f"jobs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
