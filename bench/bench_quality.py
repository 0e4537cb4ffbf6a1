#!/usr/bin/env python
"""The quality numbers the README quotes, printed: the demo run (grouped folds), scikit-learn's
LogisticRegression on the same frozen backbone features and the same folds, and the demo run with --no-groups.

  python bench/bench_quality.py                        train_cli.py --folds 5 twice (about a minute each on a CPU)
  python bench/bench_quality.py --cli-args '--seed 1'  extra train_cli.py arguments for both runs

Head mode on ImageNet weights (fetched first with `train_cli.py weights`); the backbone features come from the
content-addressed cache after the first run, so the --no-groups run computes none.
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

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, balanced_accuracy_score  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.training import run_inputs  # noqa: E402


def train(runs_dir: Path, arguments: list[str]) -> Path:
    """One `train_cli.py` run; the run directory it wrote. Exits with its output when it fails."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "train_cli.py", "--runs-dir", str(runs_dir), *arguments], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train_cli.py {' '.join(arguments)} failed (exit {done.returncode}):\n"
                 f"{(done.stdout + done.stderr)[-3000:]}")
    run = sorted(runs_dir.iterdir())[-1]
    print(f"run {run.name}: {time.perf_counter() - started:.0f} s wall, train_cli.py {' '.join(arguments)}")
    return run


def pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}%" + ("" if std is None else f" ± {100 * std:.1f}")


def print_run(label: str, run: Path) -> None:
    """Headline numbers exactly as metrics.json stores them (mean ± std over the fold models)."""
    info = json.loads((run / "run.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    summary = metrics["summary"]
    val = {name: summary["val"][name] for name in ("accuracy", "balanced_accuracy")}
    line = (f"{label}: {info['train_mode']} mode, {info['dataset']['n_images']} images, groups used: "
            f"{info['dataset']['groups_used']}; validation accuracy {pct(**val['accuracy'])}, "
            f"balanced accuracy {pct(**val['balanced_accuracy'])}, "
            f"train balanced accuracy {pct(summary['train']['balanced_accuracy']['mean'])}")
    if metrics.get("ensemble"):
        line += f", test ensemble balanced accuracy {pct(metrics['ensemble']['test']['balanced_accuracy'])}"
    print(line)
    findings = json.loads((run / "findings.json").read_text())["findings"] if (run / "findings.json").exists() else []
    for finding in findings:
        if finding.get("severity") == "high":
            print(f"  finding [high] {finding['title']}")


def logistic_regression_baseline(run: Path) -> None:
    """LogisticRegression per fold on the run's backbone embedding (the head's inputs), same folds and test
    split; mean ± std over folds like metrics.json, and the test ensemble of mean probabilities."""
    info, _, samples = run_inputs.load_run_inputs(run)
    features = np.load(run / "embeddings" / "backbone.npy").astype(np.float32)
    labels = samples.label_index.to_numpy()
    scores, test_probs = {"accuracy": [], "balanced_accuracy": []}, []
    for fold in info["folds_done"]:
        parts = run_inputs.fold_parts(samples, fold)
        model = LogisticRegression(max_iter=5000).fit(features[parts["train"]], labels[parts["train"]])
        predicted = model.predict(features[parts["val"]])
        scores["accuracy"].append(accuracy_score(labels[parts["val"]], predicted))
        scores["balanced_accuracy"].append(balanced_accuracy_score(labels[parts["val"]], predicted))
        if len(parts["test"]):
            probs = np.zeros((len(parts["test"]), len(info["classes"])))
            probs[:, model.classes_] = model.predict_proba(features[parts["test"]])
            test_probs.append(probs)
    line = (f"logistic regression (scikit-learn, default C, same features and folds): validation accuracy "
            f"{pct(np.mean(scores['accuracy']), np.std(scores['accuracy']))}, balanced accuracy "
            f"{pct(np.mean(scores['balanced_accuracy']), np.std(scores['balanced_accuracy']))}")
    if test_probs:
        test = run_inputs.fold_parts(samples, 0)["test"]
        ensemble = np.mean(test_probs, axis=0).argmax(1)
        line += f", test ensemble balanced accuracy {pct(balanced_accuracy_score(labels[test], ensemble))}"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cli-args", default="", help="extra train_cli.py arguments for both runs")
    args = parser.parse_args()
    extra = ["--folds", "5", "--train-mode", "head", *args.cli_args.split()]
    subprocess.run([sys.executable, "train_cli.py", "weights"], cwd=REPO, check=True, capture_output=True)
    print(f"machine: {os.cpu_count()} CPU cores; pandas {pd.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        grouped = train(Path(tmp, "grouped"), extra)
        print_run("demo run, grouped folds", grouped)
        logistic_regression_baseline(grouped)
        print_run("demo run, --no-groups", train(Path(tmp, "no-groups"), [*extra, "--no-groups"]))


if __name__ == "__main__":
    main()
