"""Time run_diagnostics on a synthetic 50,000 x 2048 run with 6 embedding spaces (target: <= 120 s on 2 cores).

    .venv/bin/python bench/bench_diagnostics.py [--samples 50000] [--dim 2048] [--keep DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.diagnostics import run_diagnostics  # noqa: E402
from core.synthetic import make_synthetic_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--folds", type=int, default=5)       # finetune mode: backbone + one space per fold
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the synthetic run here")
    args = parser.parse_args()
    runs = args.keep or Path(tempfile.mkdtemp())
    run_id = f"20250101-000000-bench-{args.samples}"
    if not (runs / run_id / "run.json").exists():
        started = time.perf_counter()
        make_synthetic_run(runs, run_id, n_samples=args.samples, n_classes=6, n_folds=args.folds, dim=args.dim,
                           diagnostics=False)
        print(f"built synthetic run in {time.perf_counter() - started:.1f}s (not timed below)")
    started = time.perf_counter()
    result = run_diagnostics(runs / run_id, log=lambda line: None)
    total = time.perf_counter() - started
    print(f"{args.samples} samples x {args.dim}-d x {args.folds + 1} spaces: run_diagnostics {total:.1f}s")
    for step, seconds in result["seconds"].items():
        print(f"  {step:<13} {seconds:6.1f}s")


if __name__ == "__main__":
    main()
