"""Precision and recall of the label-error detectors with labels flipped on purpose, and their false alarms on
clean labels (issue #24).

    .venv/bin/python bench/bench_label_detectors.py [--dataset demo|generated|both] [--share 0.05] [--seeds 3]
                                                    [--folds 5] [--keep DIR]

For each dataset and seed, two head-mode runs on the ImageNet backbone (features from the cache after the first
run) with the diagnostics: one with `share` of the labels moved to another class at random, one with the labels
as they are (every image its diagnostics flag there is a false alarm). Datasets: the demo set
(assets/product_icons, 413 images, three look-alike classes, labels right by construction; a weak model, about
65% balanced accuracy) and the generated set of bench_findings.py (240 images, three hue families; a strong
model). Lists compared with the planted flips: cleanlab alone (the listing rule label_issues.parquet had before
the detectors: cleanlab's filter or a label contradicted at 80%), AUM alone, the neighbours' vote alone, and the
headline (`agreed`: as many images as the estimate of label errors, with the strongest combined evidence among
those at least 2 detectors flag). Prints one line per list per seed, then for the headline and cleanlab alone the
mean over seeds with its 95% interval (t, over seeds), and the share of images flagged on clean labels and the
high-severity findings there. The machine it ran on is printed first.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import train_cli  # noqa: E402
from bench_findings import demo_manifest, generated_manifest  # noqa: E402

LISTS = {"cleanlab alone": "cleanlab", "AUM alone": "aum_flag", "neighbours alone": "neighbours_flag",
         "headline (agreed)": "agreed"}
COMPARED = ("headline (agreed)", "cleanlab alone")


def flipped(manifest: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, set[str]]:
    """The manifest with `share` of the labels moved to another class chosen at random, and the flips' paths."""
    rows = manifest.copy()
    rng = np.random.default_rng(seed)
    classes = sorted(rows["label"].unique())
    chosen = rng.choice(len(rows), size=round(share * len(rows)), replace=False)
    for i in chosen:
        rows.loc[i, "label"] = rng.choice([c for c in classes if c != rows.loc[i, "label"]])
    return rows, {str(Path(p).resolve()) for p in rows.loc[chosen, "path"]}


def train(manifest: pd.DataFrame, work: Path, name: str, seed: int, folds: int) -> Path:
    """One head-mode run with its diagnostics; a run of this name already diagnosed in `work` is reused (a rerun
    with --keep resumes; `train_cli.py diagnose` refreshes a kept run's lists after a change to the detectors)."""
    done = [run for run in (work / "runs").glob(f"*-{name}") if (run / "label_issues.parquet").exists()]
    if done:
        return max(done, key=lambda p: p.stat().st_mtime)
    csv = work / "manifests" / f"{name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    manifest[["path", "label"] + (["group"] if manifest["group"].notna().any() else [])].to_csv(csv, index=False)
    runs = work / "runs"
    code = train_cli.main(["--data", str(csv), "--runs-dir", str(runs), "--folds", str(folds),
                           "--train-mode", "head", "--seed", str(seed), "--name", name])
    if code:
        raise SystemExit(f"training failed (exit {code})")
    return max(runs.glob(f"*-{name}"), key=lambda p: p.stat().st_mtime)


def flagged_lists(run: Path) -> tuple[dict[str, set[str]], int, list[str], str]:
    """Each list's flagged paths (absolute), the run's image count, its high-severity findings and the severity
    of its label-issues finding."""
    issues = pd.read_parquet(run / "label_issues.parquet")
    info = json.loads((run / "run.json").read_text())
    root = Path(info["dataset"]["root"])
    paths = np.array([str((root / p).resolve()) for p in issues["path"]])
    n = len(pd.read_parquet(run / "samples.parquet"))
    found = json.loads((run / "findings.json").read_text())["findings"]
    high = [f["id"] for f in found if f["severity"] == "high"]
    label = next((f["severity"] for f in found if f["id"] == "label-issues"), "none")
    return {name: set(paths[issues[column].to_numpy(dtype=bool)]) for name, column in LISTS.items()}, n, high, label


def interval(values: list[float], share: bool = False) -> str:
    """Mean and its 95% t interval over seeds (as percentages when `share`)."""
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    show = (lambda v: f"{100 * v:.1f}%") if share else (lambda v: f"{v:.2f}")
    if len(values) < 2:
        return show(mean)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return f"{show(mean)} ({show(max(0.0, mean - half))}-{show(min(1.0, mean + half))})"


def one_dataset(dataset: str, manifest: pd.DataFrame, work: Path, share: float, seeds: int, folds: int) -> None:
    scores: dict[str, dict[str, list[float]]] = {name: {"precision": [], "recall": []} for name in LISTS}
    alarms: dict[str, list[float]] = {name: [] for name in LISTS}
    highs, labels = [], []
    for seed in range(seeds):
        planted, truth = flipped(manifest, share, seed)
        lists, _, _, _ = flagged_lists(train(planted, work, f"{dataset}-flips{seed}", seed, folds))
        for name, flagged in lists.items():
            hits = len(flagged & truth)
            precision, recall = hits / max(1, len(flagged)), hits / max(1, len(truth))
            scores[name]["precision"].append(precision)
            scores[name]["recall"].append(recall)
            print(f"{dataset} seed {seed}  {name:18s} flagged {len(flagged):4d} of {len(truth):3d} flips  "
                  f"precision {precision:.2f}  recall {recall:.2f}", flush=True)
        clean, n, high, label = flagged_lists(train(manifest, work, f"{dataset}-clean{seed}", seed, folds))
        highs.append(high)
        labels.append(label)
        for name, flagged in clean.items():
            alarms[name].append(len(flagged) / n)
        print(f"{dataset} seed {seed}  clean labels: headline {len(clean['headline (agreed)'])} of {n} images, "
              f"cleanlab alone {len(clean['cleanlab alone'])}; label-issues finding: {label}; high findings: "
              f"{', '.join(high) or 'none'}",
              flush=True)
    print(f"\n{dataset}, {seeds} seeds, {100 * share:g}% of {len(manifest)} labels flipped uniformly "
          "(mean over seeds, 95% interval):")
    for name in COMPARED:
        print(f"  {name:18s} precision {interval(scores[name]['precision'])}  "
              f"recall {interval(scores[name]['recall'])}")
    print(f"  clean labels, share of images flagged: headline {interval(alarms['headline (agreed)'], True)}, "
          f"cleanlab alone {interval(alarms['cleanlab alone'], True)}; label-issues finding: "
          f"{', '.join(f'{labels.count(v)} {v}' for v in sorted(set(labels)))}; runs with a high finding: "
          f"{sum(bool(h) for h in highs)} of {seeds} ({', '.join(sorted({i for h in highs for i in h})) or 'none'})\n",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("demo", "generated", "both"), default="both")
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the manifests and runs in this folder (default: temporary)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} CPU cores, {platform.python_version()}; a shared CPU box "
          "(other work was running on it), head mode; timings are not the point here", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for dataset in ("demo", "generated"):
            if args.dataset in (dataset, "both"):
                manifest = demo_manifest() if dataset == "demo" else generated_manifest(work)
                one_dataset(dataset, manifest, work, args.share, args.seeds, args.folds)


if __name__ == "__main__":
    main()
