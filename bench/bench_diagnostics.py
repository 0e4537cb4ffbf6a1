"""Time run_diagnostics on a synthetic N x 2048 run with 6 embedding spaces (targets on 2 cores: 50,000 within
90 s, 100,000 within 180 s), uncached (a fresh map cache) and again with the maps cached.

    .venv/bin/python bench/bench_diagnostics.py [--samples 50000] [--classes 6] [--dim 2048] [--keep DIR]
        [--compare-knn [--knn-only]]

--classes sets the synthetic run's class count (compare 12 and 1000 classes of the same size: the time should
barely grow with the classes).

--compare-knn also times the kNN graph of the backbone space several ways on the same vectors in this process:
faiss's exact search (what diagnostics use) against scikit-learn's brute force (what they used before), and
faiss's approximate HNSW and IVF indexes, printing the share of the exact neighbours each finds (--knn-only:
just that).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.analysis.diagnostics import run_diagnostics  # noqa: E402
from core.analysis.diagnostics.neighbours import knn, reduce  # noqa: E402
from core.analysis.diagnostics.thresholds import Thresholds  # noqa: E402
from core.store import run_store  # noqa: E402
from core.testing.synthetic import make_synthetic_run  # noqa: E402


def compare_knn(run_dir: Path) -> None:
    import faiss
    from sklearn.neighbors import NearestNeighbors
    th = Thresholds()
    unit = reduce(np.load(run_store.embedding_path(run_dir, "backbone"), mmap_mode="r"), th.pca_dims,
                  th.pca_fit_rows, th.seed)
    started = time.perf_counter()
    index, _ = knn(unit, th.neighbours)
    faiss_seconds = time.perf_counter() - started

    def agreement(found: np.ndarray) -> float:   # share of the exact neighbours found (self left out)
        return np.mean([len(set(a) & set(b)) for a, b in zip(index.tolist(), found.tolist())]) / th.neighbours

    started = time.perf_counter()
    _, expected = NearestNeighbors(n_neighbors=th.neighbours, algorithm="brute").fit(unit).kneighbors()
    sklearn_seconds = time.perf_counter() - started
    print(f"kNN of one {unit.shape[0]} x {unit.shape[1]} space: faiss exact {faiss_seconds:.1f}s, "
          f"sklearn brute {sklearn_seconds:.1f}s ({sklearn_seconds / faiss_seconds:.2f}x); "
          f"same neighbours {agreement(expected):.4%}")
    # approximate search, for the record: what it would save and the recall it would cost
    for name, approximate in (("faiss HNSW (M 32, efSearch 64)", faiss.IndexHNSWFlat(unit.shape[1], 32,
                                                                                     faiss.METRIC_INNER_PRODUCT)),
                              ("faiss IVF (1024 lists, nprobe 32)", faiss.IndexIVFFlat(
                                  faiss.IndexFlatIP(unit.shape[1]), unit.shape[1], 1024, faiss.METRIC_INNER_PRODUCT))):
        started = time.perf_counter()
        if isinstance(approximate, faiss.IndexHNSWFlat):
            approximate.hnsw.efSearch = 64
        else:
            approximate.train(unit)
            approximate.nprobe = 32
        approximate.add(unit)
        _, found = approximate.search(unit, th.neighbours + 1)
        seconds = time.perf_counter() - started
        print(f"  {name}: {seconds:.1f}s with the index built, recall of the exact neighbours "
              f"{agreement(found[:, 1:]):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=6, help="classes of the synthetic run")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--folds", type=int, default=5)       # finetune mode: backbone + one space per fold
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the synthetic run here")
    parser.add_argument("--compare-knn", action="store_true")
    parser.add_argument("--knn-only", action="store_true", help="with --compare-knn: skip timing the diagnostics")
    args = parser.parse_args()
    runs = args.keep or Path(tempfile.mkdtemp())
    run_id = f"20250101-000000-bench-{args.samples}" + ("" if args.classes == 6 else f"-{args.classes}classes")
    if not (runs / run_id / "run.json").exists():
        started = time.perf_counter()
        make_synthetic_run(runs, run_id, n_samples=args.samples, n_classes=args.classes, n_folds=args.folds,
                           dim=args.dim, diagnostics=False, files_per_class=40 if args.classes <= 40 else 2)
        print(f"built synthetic run in {time.perf_counter() - started:.1f}s (not timed below)")
    if args.compare_knn:
        compare_knn(runs / run_id)
        if args.knn_only:
            return
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores (this shared 2-core CPU box), load average "
          f"{os.getloadavg()[0]:.1f}; "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    cache = Path(tempfile.mkdtemp(prefix="foldlens-bench-cache-"))
    for label in ("uncached", "maps cached"):
        started = time.perf_counter()
        result = run_diagnostics(runs / run_id, log=lambda line: None, cache_dir=cache)
        total = time.perf_counter() - started
        print(f"{args.samples} samples in {args.classes} classes x {args.dim}-d x {args.folds + 1} spaces, {label}: "
              f"run_diagnostics {total:.1f}s")
        print("  " + "  ".join(f"{step} {seconds:.1f}s" for step, seconds in result["seconds"].items()))


if __name__ == "__main__":
    main()
