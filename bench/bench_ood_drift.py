"""Out-of-distribution detection, drift detection and serve latency with OOD scores, on the demo dataset.

    .venv/bin/python bench/bench_ood_drift.py [--held-out Digital_Music] [--image-size 160] [--requests 40]
                                              [--workdir DIR]

Setup (assets/product_icons, three classes of emoji icons, each emoji drawn by several vendors = one group):
one class is held out of the run entirely; of the other two, 30% of the groups are kept back as new images of
known classes (new emoji), and of the rest 20% of the images at random (an i.i.d. sample: the same distribution
as the training images, vendor variants of trained emoji included); the remainder is trained on as a head-mode
run with ImageNet weights (3 folds, a test split).

- OOD: `predict` on the new known-class images mixed with every image of the held-out class. AUROC of
  `ood_score` for telling held-out-class images from known-class ones (and, for comparison, of 1 - the maximum
  softmax probability, the usual baseline), and the share flagged in each group (the threshold is meant to
  flag about 5% of known-class images).
- Drift: `drift_of_run` on the i.i.d. sample as it is (same distribution: no drift expected), darkened
  (brightness x 0.5) and resized (each side x 0.25), saved as PNG (re-encoding as JPEG would itself shift the
  JPEG quality); and on the new emoji of known classes (whole groups unseen in training, like a run's test
  split: the same population, which the tests must not call drift since they count look-alike groups); and on
  the run's own test split (whole groups too).
- Serve latency: POST /predict of one image, in process (FastAPI TestClient), with and without the OOD
  reference, interleaved, `--requests` each; median and 90th percentile.

`--scale N` instead times the reference alone on N random 2048-d features (80% cv, 20% test): building it
with its calibration (what loading a run costs the first time), and scoring one image (what a request adds).
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance
from sklearn.metrics import roc_auc_score

import train_cli
from core.config import DEMO_DATA


def split_demo(held_out: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(images to train on, an i.i.d. sample of the same images, new emoji of known classes, images of the
    held-out class); absolute paths."""
    meta = pd.read_csv(DEMO_DATA)[["path", "label", "group"]]
    meta["path"] = [str(DEMO_DATA.parent / p) for p in meta["path"]]
    if held_out not in set(meta["label"]):
        sys.exit(f"--held-out {held_out}: not a class of the demo dataset ({', '.join(sorted(set(meta.label)))})")
    known = meta[meta["label"] != held_out]
    groups = known["group"].drop_duplicates().sample(frac=0.3, random_state=seed)
    rest = known[~known["group"].isin(groups)]
    iid = rest.sample(frac=0.2, random_state=seed)
    return (rest.drop(iid.index), iid, known[known["group"].isin(groups)], meta[meta["label"] == held_out])


def train(rows: pd.DataFrame, work: Path, image_size: int) -> Path:
    manifest = work / "manifest.csv"
    rows.to_csv(manifest, index=False)
    code = train_cli.main(["--data", str(manifest), "--runs-dir", str(work / "runs"), "--train-mode", "head",
                           "--image-size", str(image_size), "--folds", "3", "--epochs", "30",
                           "--num-workers", "0", "--name", "oodbench"])
    if code:
        sys.exit("training failed")
    return next((work / "runs").glob("*-oodbench"))


def test_split(run_dir: Path) -> list[Path]:
    """The run's own held-out test images: whole groups its training part never saw."""
    root = Path(json.loads((run_dir / "run.json").read_text())["dataset"]["root"])
    samples = pd.read_parquet(run_dir / "samples.parquet")
    return [root / p for p in samples.loc[samples["split"] == "test", "path"]]


def transformed(paths: list[str], folder: Path, change) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        with Image.open(path) as image:
            target = folder / f"{Path(path).stem}.png"
            change(image.convert("RGB")).save(target)
            out.append(target)
    return out


def serve_latency(ensemble, body: bytes, requests: int) -> dict[str, list[float]]:
    from fastapi.testclient import TestClient

    from core.delivery import serve
    clients = {"with OOD": TestClient(serve.create_app(ensemble)),
               "without OOD": TestClient(serve.create_app(dataclasses.replace(ensemble, ood=None)))}
    times = {name: [] for name in clients}
    upload = [("files", ("image.jpg", body, "image/jpeg"))]
    for name, client in clients.items():   # warm-up: first calls build kernels and caches
        for _ in range(3):
            assert client.post("/predict", files=upload).status_code == 200
    for _ in range(requests):
        for name, client in clients.items():   # interleaved, so load from other processes hits both alike
            started = time.perf_counter()
            assert client.post("/predict", files=upload).status_code == 200
            times[name].append(time.perf_counter() - started)
    return times


def reference_at_scale(n: int) -> None:
    from core.analysis.ood import build_reference
    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (n, 2048)).astype(np.float32)
    split = np.where(rng.random(n) < 0.2, "test", "cv")
    started = time.perf_counter()
    reference = build_reference({"backbone": features}, split)
    built = time.perf_counter() - started
    query = features[:1] + rng.normal(0, 0.1, (1, 2048)).astype(np.float32)
    times = []
    for _ in range(20):
        started = time.perf_counter()
        reference.scores({"backbone": query})
        times.append(time.perf_counter() - started)
    print(f"reference of {reference.n_reference} cv images x 2048 (k = {reference.k}), calibrated on "
          f"{reference.n_calibration}: built in {built:.1f} s; one image scored in {1000 * np.median(times):.1f} ms "
          f"(median of 20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", default="Digital_Music")
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="keep the run and images here (default: a temporary folder)")
    parser.add_argument("--scale", type=int, default=0, help="only time the OOD reference on N random features")
    args = parser.parse_args()
    if args.scale:
        return reference_at_scale(args.scale)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_ood_"))
    work.mkdir(parents=True, exist_ok=True)

    from core.analysis import drift
    from core.delivery import predict
    train_rows, iid, new_known, unknown = split_demo(args.held_out, args.seed)
    started = time.perf_counter()
    run_dir = train(train_rows, work, args.image_size)
    print(f"trained {run_dir.name}: {len(train_rows)} images of 2 classes in {time.perf_counter() - started:.0f} s; "
          f"new: {len(iid)} i.i.d., {len(new_known)} new emoji of known classes, {len(unknown)} of {args.held_out}")

    started = time.perf_counter()
    ensemble = predict.load_ensemble(run_dir)
    load_s = time.perf_counter() - started
    reference = ensemble.ood
    paths = [Path(p) for p in [*new_known["path"], *unknown["path"]]]
    table = predict.predict_files(ensemble, paths, {})
    other = np.r_[np.zeros(len(new_known)), np.ones(len(unknown))]
    flagged = table["out_of_distribution"].astype(bool).to_numpy()
    print(f"\nOOD reference: k = {reference.k} of {reference.n_reference} training images, threshold "
          f"{reference.threshold:.3f} ({reference.calibration}, {reference.n_calibration} images); models + "
          f"reference loaded in {load_s:.1f} s")
    print(f"  AUROC, held-out class vs new known-class images: kNN distance {roc_auc_score(other, table.ood_score):.3f}"
          f"; 1 - max softmax {roc_auc_score(other, 1 - table.confidence):.3f}")
    print(f"  flagged out of distribution: {flagged[other == 0].mean():.1%} of known-class images, "
          f"{flagged[other == 1].mean():.1%} of held-out-class images")

    cases = {"same distribution": [Path(p) for p in iid["path"]],
             "darkened (x0.5)": transformed(list(iid["path"]), work / "dark",
                                            lambda im: ImageEnhance.Brightness(im).enhance(0.5)),
             "resized (x0.25)": transformed(list(iid["path"]), work / "small",
                                            lambda im: im.resize((max(1, im.width // 4), max(1, im.height // 4)))),
             "new emoji": [Path(p) for p in new_known["path"]],
             "run's test split": test_split(run_dir)}
    print("\nDrift (train_cli.py drift), against the training images:")
    for name, files in cases.items():
        started = time.perf_counter()
        result = drift.drift_of_run(run_dir, files, [name])
        shifted = [row["property"] for row in result["properties"] if row["drifted"]]
        auc = result["classifier"]["auc"] if result["classifier"] else float("nan")
        p = result["classifier"]["p"] if result["classifier"] else float("nan")
        largest = max(result["properties"], key=lambda row: row["ks"])
        print(f"  {name:18s} drift={result['drifted']!s:5s} {result['n_new']} images in {result['groups_new']} "
              f"look-alike groups; classifier AUC {auc:.2f} (p = {p:.3g}); largest KS D (groups) "
              f"{largest['ks']:.2f} on {largest['property']} (images: {largest['ks_images']:.2f}); shifted: "
              f"{', '.join(shifted) or '-'}  ({time.perf_counter() - started:.0f} s)")
        print(f"    {result['verdict']}")

    buffer = io.BytesIO()
    with Image.open(new_known["path"].iloc[0]) as image:
        image.convert("RGB").save(buffer, format="JPEG")
    times = serve_latency(ensemble, buffer.getvalue(), args.requests)
    print(f"\nServe, POST /predict of one image, {args.requests} requests each (in process, interleaved):")
    base = np.median(times["without OOD"])
    for name, values in times.items():
        print(f"  {name:12s} median {1000 * np.median(values):.1f} ms, p90 {1000 * np.quantile(values, 0.9):.1f} ms "
              f"({np.median(values) / base - 1:+.1%} median vs without)")
    print(f"\nmachine: {platform.machine()}, {platform.processor() or 'cpu'}; device {ensemble.device}; "
          f"image size {args.image_size}; work folder {work}")


if __name__ == "__main__":
    main()
