"""Time the warm default run on the demo dataset (target: within 20 s end to end on 2 cores): run
`train_cli.py --folds 5` once to fill the caches (features, UMAP maps), then time it again and print where the
seconds went: the stages recorded in run.json, the diagnostics' steps, and what is outside the run (imports, report).

    .venv/bin/python bench/bench_warm.py [--runs-dir DIR] [--threads N ...]

--threads N also times a warm run with that fold thread count, in the same session (e.g. 2, the default before
head mode chose 1), so the two can be compared under the same load.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import core.run.lifecycle, core.run.executors"   # what `train_cli.py` (train) imports before any work


def run(runs_dir: Path, extra: list[str]) -> tuple[float, Path]:
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    started = time.perf_counter()
    subprocess.run([sys.executable, "train_cli.py", "--folds", "5", "--runs-dir", str(runs_dir), *extra],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    (run_dir,) = set(runs_dir.iterdir()) - before
    return wall, run_dir


def import_seconds() -> float:
    """In a process of its own (the run's own imports are not timed apart)."""
    code = f"import time; t = time.perf_counter(); {IMPORTS}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                                text=True).stdout)


def report(label: str, wall: float, run_dir: Path, imports: float) -> None:
    timings = json.loads((run_dir / "run.json").read_text())["timings"]
    steps = json.loads((run_dir / "diagnostics.json").read_text())["seconds"]
    folds = sum(seconds for stage, seconds in timings.items() if stage.startswith("fold"))
    print(f"{label}: {wall:.1f}s end to end = run.json's total {timings['total']:.1f}s + outside it "
          f"{wall - timings['total']:.1f}s (interpreter, imports {imports:.1f}s, report)")
    print("  run: " + "  ".join(f"{stage} {seconds:.1f}s" for stage, seconds in timings.items()
                                if not stage.startswith("fold") and stage != "total") + f"  folds {folds:.1f}s")
    print("  diagnostics: " + "  ".join(f"{step} {seconds:.1f}s" for step, seconds in steps.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, nargs="*", default=[])
    args = parser.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="foldlens-warm-"))
    run(runs_dir, [])   # fills the caches (a no-op for ones already there)
    imports = import_seconds()
    wall, run_dir = run(runs_dir, [])
    report("warm demo run (default config)", wall, run_dir, imports)
    for threads in args.threads:
        wall, run_dir = run(runs_dir, ["--threads", str(threads)])
        report(f"warm demo run, --threads {threads}", wall, run_dir, imports)


if __name__ == "__main__":
    main()
