"""Time the class activation maps of a run's misclassified images (target on a 2-core CPU, demo run: < 60 s).

    .venv/bin/python bench/bench_explain.py [--run RUNS_DIR/RUN_ID]

Without --run it first trains the demo run (head mode on CPU, ImageNet weights from the cache; not timed).
Maps go to an empty temporary cache, so all are computed; a second pass shows the cached cost.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import train_cli  # noqa: E402
from core.analysis.explain import explain_run  # noqa: E402


def demo_run(runs_dir: Path) -> Path:
    if train_cli.main(["--folds", "5", "--runs-dir", str(runs_dir)]) != 0:
        sys.exit("training the demo run failed")
    return max(runs_dir.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, help="an existing run directory (default: train the demo run)")
    args = parser.parse_args()
    run_dir = args.run or demo_run(Path(tempfile.mkdtemp()) / "runs")
    with tempfile.TemporaryDirectory() as cache:
        first = explain_run(run_dir, cache, log=lambda line: None)
        started = time.perf_counter()
        explain_run(run_dir, cache, log=lambda line: None)
        again = time.perf_counter() - started
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.get_num_threads()} threads, device {first['device']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{run_dir.name}: {first['maps']} maps (predicted + true class) of {first['images']} misclassified "
          f"validation/test images in {first['seconds']:.1f} s ({first['seconds'] / max(1, first['images']):.2f} "
          f"s per image); all cached: {again:.1f} s")


if __name__ == "__main__":
    main()
