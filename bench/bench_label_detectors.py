"""Precision and recall of the label-error detectors on the demo data with labels flipped on purpose (issue #24).

    .venv/bin/python bench/bench_label_detectors.py [--share 0.05] [--seeds 3] [--folds 5]

For each seed: the demo set (assets/product_icons, 413 images, three classes) with `share` of its labels moved
to another class at random, trained in head mode on the ImageNet backbone (features from the cache after the
first run) with the diagnostics; then every detector's flagged list is compared with the planted flips:
cleanlab alone (the listing rule label_issues.parquet had before the detectors: cleanlab's filter or a label
contradicted at 80%), AUM alone, the neighbours' vote alone, and the agreed list (at least 2 detectors).
Prints one line per detector per seed and the pooled numbers. The machine it ran on is printed first.
`--share 0` keeps the demo's own labels: every flagged image is then a false alarm (the demo's labels are
right by construction, though its classes hold look-alike images).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import train_cli  # noqa: E402
from core.numbers import percent  # noqa: E402

DEMO = REPO / "assets" / "product_icons"
LISTS = {"cleanlab alone": "cleanlab", "AUM alone": "aum_flag", "neighbours alone": "neighbours_flag",
         "agreed (>= 2 of 3)": "agreed"}


def flipped_manifest(folder: Path, share: float, seed: int) -> tuple[Path, set[str]]:
    """The demo manifest with `share` of the labels moved to another class chosen at random; returns the flips'
    paths (absolute, as the run records them relative to the manifest's folder)."""
    rows = pd.read_csv(DEMO / "metadata.csv")[["path", "label", "group"]]
    rows["path"] = [str(DEMO / p) for p in rows["path"]]
    rng = np.random.default_rng(seed)
    classes = sorted(rows["label"].unique())
    chosen = rng.choice(len(rows), size=round(share * len(rows)), replace=False)
    for i in chosen:
        rows.loc[i, "label"] = rng.choice([c for c in classes if c != rows.loc[i, "label"]])
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv", set(rows.loc[chosen, "path"])


def scores(flagged: set[str], truth: set[str]) -> tuple[int, float, float]:
    hits = len(flagged & truth)
    return len(flagged), hits / max(1, len(flagged)), hits / max(1, len(truth))


def one_seed(work: Path, share: float, seed: int, folds: int) -> dict[str, tuple[int, int, int]]:
    manifest, truth = flipped_manifest(work / f"data{seed}", share, seed)
    runs = work / "runs"
    code = train_cli.main(["--data", str(manifest), "--runs-dir", str(runs), "--folds", str(folds),
                           "--train-mode", "head", "--seed", str(seed), "--name", f"flips{seed}"])
    if code:
        raise SystemExit(f"training failed (exit {code})")
    run = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    issues = pd.read_parquet(run / "label_issues.parquet")
    root = Path(pd.read_json(run / "run.json", typ="series")["dataset"]["root"])
    issues["abs"] = [str(root / p) for p in issues["path"]]
    out = {}
    for name, column in LISTS.items():
        flagged = set(issues.loc[issues[column], "abs"])
        out[name] = (len(flagged), len(flagged & truth), len(truth))
        n, precision, recall = scores(flagged, truth)
        print(f"seed {seed}  {name:20s} flagged {n:4d}  precision {precision:.2f}  recall {recall:.2f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the manifests and runs in this folder (default: temporary)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU cores, {platform.python_version()}; a shared CPU box "
          "(other work was running on it), head mode; timings are not the point here")
    totals: dict[str, list[int]] = {name: [0, 0, 0] for name in LISTS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, counts in one_seed(args.keep or Path(tmp), args.share, seed, args.folds).items():
                totals[name] = [a + b for a, b in zip(totals[name], counts)]
    print(f"\npooled over {args.seeds} seeds, {percent(args.share)} of 413 labels flipped uniformly:")
    for name, (flagged, hits, planted) in totals.items():
        if not planted:
            print(f"  {name:20s} false alarms {flagged:4d} ({percent(flagged / (413 * args.seeds))} of the images)")
            continue
        print(f"  {name:20s} flagged {flagged:4d}  precision {hits / max(1, flagged):.2f}  "
              f"recall {hits / max(1, planted):.2f}")


if __name__ == "__main__":
    main()
