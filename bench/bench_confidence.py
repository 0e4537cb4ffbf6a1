"""Prediction sets and calibration a user can act on: coverage, set size, ECE, and what sets cost in `serve`.

    .venv/bin/python bench/bench_confidence.py [RUN_ID] [--runs-dir runs] [--synthetic-samples 4000]
                                               [--requests 40] [--folds 5] [--no-serve]

For a real run (default: the newest complete run with a test split under --runs-dir; train the demo with
`python train_cli.py --folds 5`) and a generated one (core/testing/synthetic.py, 6 imbalanced classes): sets are
calibrated on the out-of-fold predictions exactly as `predict --coverage` and `serve` do, then measured on the
test split, for the fold ensemble (what predict and serve return, the run's stored test-ensemble rows) and for the
single fold models (the model the calibration rows came from, where the guarantee is exact), at coverage
0.8 / 0.9 / 0.95, marginal and class-conditional: coverage ± its binomial standard error, mean set size, the
worst class's coverage. Then ECE and log loss of the test ensemble before and after temperature scaling.

Serve latency (`--requests`, `--folds`): head and finetune mode, each with and without prediction sets + OOD scores
(see `serve_latency`), on generated runs with untrained ResNet-50 fold models.
"""
from __future__ import annotations

import argparse
import os
import platform
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


def fake_run(runs_dir: Path, mode: str, folds: int) -> Path:
    """A generated run (core/testing/synthetic.py) with untrained ResNet-50 fold models of the right shapes: what
    a request costs does not depend on the weights."""
    import torch

    from core.testing.synthetic import make_synthetic_run
    from core.training.models import Architecture, rebuild_classifier

    run_dir = make_synthetic_run(runs_dir, mode, n_samples=200, n_classes=3, n_folds=folds, dim=2048,
                                 train_mode=mode, files_per_class=8, diagnostics=False)
    info = run_store.read_json(run_dir / run_store.RUN_JSON)
    for k in range(folds):
        network = rebuild_classifier(Architecture.from_dict(info["model"]), len(info["classes"]))
        torch.save({"head": network.head.state_dict()} if mode == "head" else {"model": network.state_dict()},
                   run_store.fold_dir(run_dir, k) / "model.pt")
    return run_dir


def serve_latency(requests: int, folds: int) -> None:
    """POST /predict of one image, in process, to apps over the same loaded models: without prediction sets and
    OOD scores (what serve answered before them) and with both; in finetune mode also with one more ResNet-50
    pass per image, what scoring OOD in the pretrained space would add (the choice core/analysis/ood.py did not
    make). Requests to the apps of a mode alternate, so load from other processes hits all alike; medians."""
    import dataclasses

    import torch
    from fastapi.testclient import TestClient

    from core.analysis.confidence import load_confidence
    from core.delivery import predict, serve
    from core.training.weights import recorded_classifier

    print(f"\nserve latency, {folds} fold models (untrained ResNet-50 at 224 px, 3 classes), {requests} one-image "
          f"requests per app, alternating, in process; {platform.machine()} CPU, {os.cpu_count()} cores shared with "
          f"other jobs:")
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("head", "finetune"):
            run_dir = fake_run(Path(scratch) / "runs", mode, folds)
            ensemble = predict.load_ensemble(run_dir, torch.device("cpu"))
            confidence = load_confidence(run_dir, ensemble.classes, 0.9)
            apps = {"without": serve.create_app(dataclasses.replace(ensemble, ood=None)),
                    "with sets + OOD": serve.create_app(ensemble, confidence=confidence)}
            if mode == "finetune":
                extra = recorded_classifier(ensemble.info).eval()   # the cost of one more backbone pass
                apps["+ a pretrained pass"] = serve.create_app(
                    dataclasses.replace(ensemble, models=[*ensemble.models, extra], folds=[*ensemble.folds, -1]),
                    confidence=confidence)
            clients = {name: TestClient(app) for name, app in apps.items()}
            root = Path(ensemble.info["dataset"]["root"])
            bodies = [(Path(p).name, (root / p).read_bytes())
                      for p in pd.read_parquet(run_dir / "samples.parquet").head(8)["path"]]
            for client in clients.values():   # warm-up: first-batch allocations, the inference thread
                for body in bodies[:2]:
                    assert client.post("/predict", files=[("files", body)]).status_code == 200
            latency = {name: [] for name in clients}
            for i in range(requests):
                order = list(clients)[i % len(clients):] + list(clients)[:i % len(clients)]   # rotate who goes first
                for name in order:
                    started = time.perf_counter()
                    answer = clients[name].post("/predict", files=[("files", bodies[i % len(bodies)])])
                    latency[name].append(1000 * (time.perf_counter() - started))
                    assert answer.status_code == 200
            base = np.median(latency["without"])
            print(f"  {mode} mode (load average {os.getloadavg()[0]:.1f}): " + "; ".join(
                f"{name} median {np.median(values):.0f} ms" + ("" if name == "without" else
                                                               f" ({np.median(values) / base - 1:+.1%})")
                for name, values in latency.items()))
    row = np.full((1, len(ensemble.classes)), 1 / len(ensemble.classes))
    started = time.perf_counter()
    for _ in range(1000):
        confidence.labels(confidence.sets(row), row), confidence.calibrated(row)
    print(f"  the sets and calibrated confidence of one image on their own: "
          f"{(time.perf_counter() - started) * 1000:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--synthetic-samples", type=int, default=4000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--folds", type=int, default=5, help="fold models in the serve latency runs")
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
    if not args.no_serve:
        serve_latency(args.requests, args.folds)


if __name__ == "__main__":
    main()
