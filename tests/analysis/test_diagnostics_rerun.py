"""A rerun of the diagnostics on unchanged embeddings reads the cached kNN graphs and maps: same outputs, and
umap-learn (seconds of numba to import) is not even imported."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from core.testing.synthetic import make_synthetic_run

ROOT = Path(__file__).resolve().parents[2]
DIAGNOSE = ("import sys; from core.analysis.diagnostics import run_diagnostics; "
            "run_diagnostics(sys.argv[1], log=lambda line: None, cache_dir=sys.argv[2]); "
            "print('umap imported' if 'umap' in sys.modules else 'umap not imported')")


def diagnose(run_dir: Path, cache_dir: Path) -> str:
    return subprocess.run([sys.executable, "-c", DIAGNOSE, str(run_dir), str(cache_dir)], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_a_second_diagnose_reuses_graphs_and_maps_without_importing_umap(tmp_path):
    run_dir = make_synthetic_run(tmp_path / "runs", "20250101-000000-rerun", 160, 3, 2, 16, diagnostics=False)
    assert diagnose(run_dir, tmp_path / "cache") == "umap imported"
    first = pd.read_parquet(run_dir / "umap.parquet"), pd.read_parquet(run_dir / "duplicates.parquet")
    assert len(list((tmp_path / "cache" / "spaces").glob("*_index.npy"))) == 3   # backbone and two folds
    assert diagnose(run_dir, tmp_path / "cache") == "umap not imported"
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "umap.parquet"), first[0])
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "duplicates.parquet"), first[1])
