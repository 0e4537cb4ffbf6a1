"""Size and build time of the HTML report: a real run (default: the newest complete run) and a synthetic run of
50,000 samples with its real diagnostics (UMAP map, label issues, duplicates). Target: well under 20 MB each.

    .venv/bin/python bench/bench_report.py [RUN_ID] [--runs-dir runs] [--samples 50000] [--keep DIR]

The synthetic run is generated once into DIR (default: a temporary folder); its diagnostics take a minute or
two on a 2-core CPU. Thumbnails go to a fresh cache, so the times include making them.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.delivery.report import build_report  # noqa: E402
from core.store import run_store  # noqa: E402
from core.testing.synthetic import make_synthetic_run  # noqa: E402


def measure(run_dir: Path, cache: Path, label: str) -> None:
    started = time.perf_counter()
    html = build_report(run_dir, "http://localhost:8501", cache_dir=str(cache))
    info = run_store.read_json(run_dir / "run.json")
    print(f"{label}: {info['dataset']['n_images']} images, {len(info['classes'])} classes -> "
          f"{len(html.encode()) / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s "
          f"({html.count('data:image/jpeg')} thumbnails, {html.count('Plotly.newPlot')} charts)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--keep", type=Path, help="folder for the synthetic run (reused when present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        complete = [e for e in run_store.list_runs(Path(args.runs_dir)) if e.status == "complete"]
        real = next((e for e in complete if e.run_id == args.run_id), None) if args.run_id else (
            complete[0] if complete else None)
        if real is not None:
            measure(real.path, cache, f"run {real.run_id}")
        else:
            print(f"no complete run under {args.runs_dir}: train one (python train_cli.py --folds 5) to measure it")
        folder = args.keep or Path(scratch) / "runs"
        run_id = f"20250101-000000-report{args.samples}"
        if not (folder / run_id / "findings.json").exists():
            started = time.perf_counter()
            make_synthetic_run(folder, run_id, args.samples, n_classes=10, n_folds=5, dim=64, train_mode="head")
            print(f"generated the synthetic run with diagnostics in {time.perf_counter() - started:.0f} s")
        measure(folder / run_id, cache, f"synthetic run of {args.samples} samples")


if __name__ == "__main__":
    main()
