"""Prediction sets and calibration a user can act on: coverage, set size, ECE, and what sets cost in `serve`.

    .venv/bin/python bench/bench_confidence.py [RUN_ID] [--runs-dir runs] [--synthetic-samples 4000]
                                               [--requests 60] [--no-serve]

For a real run (default: the newest complete run with a test split under --runs-dir; train the demo with
`python train_cli.py --folds 5`) and a generated one (core/testing/synthetic.py, 6 imbalanced classes): sets are
calibrated on the out-of-fold predictions exactly as `predict --coverage` and `serve` do, then measured on the
test split, for the fold ensemble (what predict and serve return, the run's stored test-ensemble rows) and for the
single fold models (the model the calibration rows came from, where the guarantee is exact), at coverage
0.8 / 0.9 / 0.95, marginal and class-conditional: coverage ± its binomial standard error, mean set size, the
worst class's coverage. Then ECE and log loss of the test ensemble before and after temperature scaling.

Serve latency: the real run's models loaded once, two apps over them (core.delivery.serve.create_app), one with
prediction sets and one without; one-image requests alternate between them (so load from other processes hits
both alike) and the median and mean latency of each are printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from core.analysis.confidence import fit_confidence, out_of_fold
from core.analysis.conformal import coverage_by_class
from core.analysis.diagnostics.calibration import calibration
from core.evaluate import prob_column
from core.store import run_store

COVERAGES = (0.8, 0.9, 0.95)


def measure(run_dir: Path) -> None:
    """Coverage and set size on the test split at every target, then ECE before/after temperature."""
    info = run_store.read_json(run_dir / run_store.RUN_JSON)
    classes = list(info["classes"])
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    oof_probs, oof_labels = out_of_fold(predictions, classes)
    columns = [prob_column(c) for c in classes]
    test = predictions[predictions["role"] == "test"]
    models = {"ensemble": test[test["model"] == "ensemble"], "fold models": test[test["model"] != "ensemble"]}
    print(f"\nrun {run_dir.name}: {len(classes)} classes, {len(oof_labels)} out-of-fold calibration images, "
          f"{len(models['ensemble'])} test images (fold models: {len(models['fold models'])} test predictions)")
    for class_conditional in (False, True):
        for coverage in COVERAGES:
            fitted = fit_confidence(oof_probs, oof_labels, classes, coverage, class_conditional)
            parts = []
            for name, rows in models.items():
                probs, labels = rows[columns].to_numpy(np.float64), rows["label"].to_numpy()
                r = coverage_by_class(fitted.sets(probs), labels, classes)
                worst = min((row for row in r["per_class"] if row["n"]), key=lambda row: row["coverage"])
                parts.append(f"{name} {r['coverage']:.3f} ± {r['coverage_se']:.3f}, size {r['mean_set_size']:.2f}, "
                             f"worst class {worst['class']} {worst['coverage']:.2f} (n={worst['n']})")
            print(f"  {'class-conditional' if class_conditional else 'marginal':17s} target {coverage:.2f}: "
                  + "; ".join(parts))
    ensemble = models["ensemble"]
    probs, labels = ensemble[columns].to_numpy(np.float64), ensemble["label"].to_numpy()
    before = calibration(probs, labels, 15)
    after = calibration(fitted.calibrated(probs), labels, 15)
    oof_before = calibration(oof_probs, oof_labels, 15)
    nll = [log_loss(labels, p / p.sum(1, keepdims=True), labels=range(len(classes)))   # stored as float32
           for p in (probs, fitted.calibrated(probs))]
    print(f"  temperature {fitted.temperature:.2f} (fitted out-of-fold, where ECE is {oof_before['ece']:.3f}); test "
          f"ensemble ECE {before['ece']:.3f} -> {after['ece']:.3f}, log loss {nll[0]:.3f} -> {nll[1]:.3f}, mean "
          f"confidence {before['mean_confidence']:.3f} -> {after['mean_confidence']:.3f} at accuracy "
          f"{before['accuracy']:.3f}")


def serve_latency(run_dir: Path, requests: int) -> None:
    from fastapi.testclient import TestClient

    from core.analysis.confidence import load_confidence
    from core.delivery import predict, serve

    ensemble = predict.load_ensemble(run_dir)
    confidence = load_confidence(run_dir, ensemble.classes, 0.9)
    clients = {"without sets": TestClient(serve.create_app(ensemble)),
               "with sets": TestClient(serve.create_app(ensemble, confidence=confidence))}
    samples = pd.read_parquet(run_dir / "samples.parquet").head(20)
    root = Path(ensemble.info["dataset"]["root"])
    bodies = [(Path(p).name, (root / p).read_bytes()) for p in samples["path"]]
    for client in clients.values():   # warm-up: first-batch allocations, the inference thread
        for name, data in bodies[:3]:
            assert client.post("/predict", files=[("files", (name, data, "image/png"))]).status_code == 200
    latency = {name: [] for name in clients}
    for i in range(requests):
        for name in (list(clients) if i % 2 else list(clients)[::-1]):   # alternate which goes first
            upload = [("files", bodies[i % len(bodies)])]
            started = time.perf_counter()
            answer = clients[name].post("/predict", files=upload)
            latency[name].append(time.perf_counter() - started)
            assert answer.status_code == 200
    row = np.full((1, len(ensemble.classes)), 1 / len(ensemble.classes))
    started = time.perf_counter()
    for _ in range(1000):
        confidence.labels(confidence.sets(row), row), confidence.calibrated(row)
    extra = (time.perf_counter() - started) / 1000
    base, with_sets = (np.array(latency[n]) * 1000 for n in clients)
    print(f"\nserve, run {run_dir.name} ({ensemble.info['train_mode']} mode, {len(ensemble.folds)} folds, "
          f"{ensemble.prep.size} px), {requests} one-image requests per app, alternating (2-core CPU shared with "
          f"other jobs, load average {os.getloadavg()[0]:.1f}):")
    print(f"  without sets: median {np.median(base):.1f} ms, mean {base.mean():.1f} ms; with sets: median "
          f"{np.median(with_sets):.1f} ms, mean {with_sets.mean():.1f} ms; median difference "
          f"{(np.median(with_sets) / np.median(base) - 1) * 100:+.1f}%")
    print(f"  the sets and calibrated confidence of one image on their own: {extra * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--synthetic-samples", type=int, default=4000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--no-serve", action="store_true")
    args = parser.parse_args()
    from core.testing.synthetic import make_synthetic_run

    complete = [e for e in run_store.list_runs(Path(args.runs_dir)) if e.status == "complete"
                and (e.run_id == args.run_id if args.run_id else True)]
    if complete:
        measure(complete[0].path)
    else:
        print(f"no complete run {args.run_id or ''} under {args.runs_dir}: only the synthetic run "
              f"(train the demo with: python train_cli.py --folds 5)")
    with tempfile.TemporaryDirectory() as scratch:
        synthetic = make_synthetic_run(Path(scratch) / "runs", "synthetic", n_samples=args.synthetic_samples,
                                       n_classes=6, files_per_class=4, diagnostics=False)
        measure(synthetic)
    if complete and not args.no_serve:
        serve_latency(complete[0].path, args.requests)


if __name__ == "__main__":
    main()
