#!/usr/bin/env python
"""Speed of fine-tuning and embedding extraction, a plain notebook-style loop against foldlens's path, on the
same JPEG files and the same ResNet-50 in one process; then (with CUDA, or --quality) a fine-tuning run of the
demo dataset through the DataLoader path and through the resident path, to show the fast path gives the same
results; then the wall time of `train_cli.py --folds 5` on the demo dataset, cold (empty feature cache) and warm.

  python bench/bench_speed.py               sizes follow the device: CUDA 224 px / batch 256, CPU 96 px / batch 32
  python bench/bench_speed.py --skip-cli --steps 20 --image-size 128
  python bench/bench_speed.py --quality --skip-cli --image-size 64     the quality comparison on a CPU

plain: PIL decode + torchvision transforms in a DataLoader with 2 workers, fp32, batch 32, AdamW.
ours:  images decoded once into device memory, augmented there (core.training.gpu_input), bf16 autocast, channels_last,
       torch.compile and fused AdamW on CUDA; embeddings through core.training.features.compute_features.
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

# Progress bars would bury the numbers. tqdm reads this when imported (torch imports it), so it is set first.
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.training.features import ImageFiles, compute_features, eval_transform, inference_batch_size, train_transform  # noqa: E402
from core.training.gpu_input import ResidentBatches, decode_images  # noqa: E402
from core.training.models import Architecture, rebuild_classifier  # noqa: E402
from core.training.preprocessing import Preprocessing  # noqa: E402

PLAIN_BATCH, PLAIN_WORKERS = 32, 2


def make_photos(folder: Path, n: int, side: int) -> tuple[list[Path], np.ndarray]:
    """n distinct photo-sized JPEGs (demo icons enlarged to side x 3/4 side, plus noise): real decoding work."""
    icons = sorted((REPO / "assets" / "product_icons").glob("*/*.jpg"))
    classes = sorted({p.parent.name for p in icons})
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(n):
        icon = icons[i % len(icons)]
        pixels = np.asarray(Image.open(icon).convert("RGB").resize((side, side * 3 // 4)), dtype=np.float32)
        pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
        labels.append(classes.index(icon.parent.name))
    return paths, np.array(labels)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forever(batches):
    while True:
        yield from batches


def timed_training(forward, optimizer, batches, device: torch.device, bf16: bool, warmup: int,
                   steps: int) -> tuple[float, float]:
    """(images/s over `steps` steps, seconds of the `warmup` steps before them: compilation, cudnn tuning)."""
    images, started = 0, time.perf_counter()
    for i, (x, y) in enumerate(forever(batches)):
        if i == warmup:
            sync(device)
            warm_seconds, images, started = time.perf_counter() - started, 0, time.perf_counter()
        if i == warmup + steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += len(y)
    sync(device)
    return images / (time.perf_counter() - started), warm_seconds


def network(device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    model = rebuild_classifier(Architecture("resnet50", 2048), 3).to(device).train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def bench_training(paths, labels, images, args, device: torch.device) -> tuple[float, float]:
    recipe = Preprocessing.standard(args.image_size)
    plain = network(device)
    loader = DataLoader(ImageFiles(paths, labels, train_transform(recipe)), batch_size=PLAIN_BATCH,
                        shuffle=True, num_workers=PLAIN_WORKERS, drop_last=True)
    plain_rate, _ = timed_training(plain, torch.optim.AdamW(plain.parameters(), lr=1e-4), loader, device,
                                   bf16=False, warmup=args.warmup, steps=args.steps)
    del plain, loader
    cuda = device.type == "cuda"
    model = network(device, channels_last=cuda)
    forward = torch.compile(model) if cuda and args.compile == "on" else model
    batches = ResidentBatches(images, labels, np.arange(len(labels)), recipe, args.batch_size, train=True,
                              generator=torch.Generator().manual_seed(0), drop_last=True)
    ours_rate, warm_seconds = timed_training(forward, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda),
                                             batches, device, bf16=cuda, warmup=args.warmup, steps=args.steps)
    print(f"finetune  plain {plain_rate:9.1f} img/s | ours {ours_rate:9.1f} img/s | x{ours_rate / plain_rate:.1f}"
          f"   (ours: {args.warmup} warm-up steps took {warm_seconds:.1f} s, compilation included)")
    return plain_rate, ours_rate


@torch.inference_mode()
def bench_embeddings(paths, labels, images, decode_seconds: float, args, device: torch.device) -> None:
    """Like with like: decoding + inference from the JPEG files, and inference alone on decoded images, for both.

    plain decodes in DataLoader workers while the network runs; ours decodes every file once into the resident
    cache (`decode_seconds`, measured in main) and then only runs the network."""
    backbone = network(device).backbone.eval()
    recipe = Preprocessing.standard(args.image_size)
    loader = DataLoader(ImageFiles(paths, labels, eval_transform(recipe)), batch_size=PLAIN_BATCH,
                        num_workers=PLAIN_WORKERS)
    backbone(next(iter(loader))[0].to(device))  # warm-up, as for ours
    sync(device)
    started = time.perf_counter()
    decoded = [x for x, _ in loader]
    plain_decode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for x in decoded:
        backbone(x.to(device)).cpu()
    sync(device)
    plain_inference_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for x, _ in loader:
        backbone(x.to(device)).cpu()
    sync(device)
    plain_both_seconds = time.perf_counter() - started
    batches = ResidentBatches(images, labels, np.arange(len(labels)), recipe,
                              inference_batch_size(args.batch_size, device))
    compute_features(backbone, batches, device)  # warm-up: cudnn picks its kernels for this shape
    started = time.perf_counter()
    compute_features(backbone, batches, device)
    ours_inference_seconds = time.perf_counter() - started
    n = len(paths)
    rates = {"decode + inference": (n / plain_both_seconds, n / (decode_seconds + ours_inference_seconds)),
             "inference alone": (n / plain_inference_seconds, n / ours_inference_seconds)}
    for what, (plain_rate, ours_rate) in rates.items():
        print(f"embedding {what:18s} plain {plain_rate:9.1f} img/s | ours {ours_rate:9.1f} img/s | "
              f"x{ours_rate / plain_rate:.1f}")
    print(f"  ({n} images; plain: batch {PLAIN_BATCH}, fp32, {PLAIN_WORKERS} DataLoader workers decoding while the "
          f"network runs (decoding alone {n / plain_decode_seconds:.1f} img/s); ours: batch {batches.batch_size}, "
          f"files decoded once into the resident cache in {decode_seconds:.1f} s, then inference only)")


def run_cli(arguments: list[str], runs_dir: Path) -> tuple[float, Path | None, str]:
    """(wall seconds, the run written or None on failure, stdout + stderr) of one train_cli.py command."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "train_cli.py", "--runs-dir", str(runs_dir), *arguments], cwd=REPO,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    run = sorted(runs_dir.iterdir())[-1] if done.returncode == 0 else None
    return seconds, run, done.stdout + done.stderr


def weights_arguments(extra: list[str]) -> list[str]:
    """ImageNet weights fetched now (not inside a timed run); `--weights none` where none can be had offline."""
    if "--weights" in extra:
        return []
    done = subprocess.run([sys.executable, "train_cli.py", "weights"], cwd=REPO, capture_output=True, text=True)
    if done.returncode == 0:
        return []
    reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    print(f"weights: no ImageNet weights here ({reason[:200]}); "
          f"the train_cli.py runs below use --weights none")
    return ["--weights", "none"]


def bench_cli(extra: list[str]) -> None:
    """Default command on the demo dataset: cold = fresh feature cache (ImageNet weights come from TORCH_HOME)."""
    with tempfile.TemporaryDirectory() as tmp:
        for state in ("cold", "warm"):
            seconds, run, output = run_cli(["--folds", "5", "--cache-dir", f"{tmp}/cache", *extra], Path(tmp, "runs"))
            if run is None:
                print(f"cli {state}: failed\n{output[-3000:]}")
                return
            info = json.loads((run / "run.json").read_text())
            metrics = json.loads((run / "metrics.json").read_text())["summary"]["val"]["balanced_accuracy"]
            print(f"cli {state}: {seconds:6.1f} s wall  mode={info['train_mode']}  device={info['device']}  "
                  f"val balanced accuracy {metrics['mean']:.3f} ± {metrics['std']:.3f}  timings={info['timings']}")
            print("  " + "\n  ".join(line for line in output.splitlines()
                                     if line.startswith(("fold 0: images", "features:"))))


def bench_quality(args, extra: list[str]) -> None:
    """The fast input path must not change a run's results: fine-tune the demo dataset through each path, same
    seed and folds, and compare out-of-fold and test-ensemble balanced accuracy with the spread over folds."""
    common = ["--train-mode", "finetune", "--folds", "5", "--image-size", str(args.image_size),
              "--epochs", str(args.quality_epochs), *extra]
    folds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for image_input in ("loader", "resident"):
            seconds, run, output = run_cli([*common, "--image-input", image_input], Path(tmp, image_input))
            if run is None:
                print(f"quality {image_input}: failed\n{output[-3000:]}")
                return
            metrics = json.loads((run / "metrics.json").read_text())
            per_fold = metrics["summary"]["val"]["balanced_accuracy"]
            folds[image_input] = pd.read_parquet(run / "samples.parquet")[["sample_id", "split", "fold"]]
            print(f"quality {image_input:8s}: out-of-fold balanced accuracy "
                  f"{metrics['oof']['val']['balanced_accuracy']:.3f} (folds {per_fold['mean']:.3f} ± "
                  f"{per_fold['std']:.3f}), test ensemble {metrics['ensemble']['test']['balanced_accuracy']:.3f}, "
                  f"{seconds:.0f} s wall")
    print(f"quality: same samples, splits and folds on both paths: {folds['loader'].equals(folds['resident'])}")


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=224 if cuda else 96)
    parser.add_argument("--batch-size", type=int, default=256 if cuda else 32, help="ours (plain is always 32)")
    parser.add_argument("--steps", type=int, default=60 if cuda else 6, help="timed training steps per path")
    parser.add_argument("--warmup", type=int, default=10 if cuda else 2, help="untimed steps first")
    parser.add_argument("--images", type=int, default=2048 if cuda else 256, help="distinct JPEG files")
    parser.add_argument("--compile", choices=["on", "off"], default="on", help="ours on CUDA (default: on)")
    parser.add_argument("--skip-cli", action="store_true", help="skip the train_cli.py wall times")
    parser.add_argument("--quality", action=argparse.BooleanOptionalAction, default=cuda,
                        help="fine-tune the demo dataset through the DataLoader and the resident path and compare "
                             "their metrics (default: on with CUDA)")
    parser.add_argument("--quality-epochs", type=int, default=15 if cuda else 3)
    parser.add_argument("--cli-args", default="", help="extra train_cli.py arguments, e.g. '--epochs 5'")
    args = parser.parse_args()

    device = torch.device("cuda" if cuda else "cpu")
    import torchvision
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {device} ({name}); torch {torch.__version__}, torchvision {torchvision.__version__}; "
          f"python {sys.version.split()[0]}")
    print(f"settings: {vars(args)}; plain: batch {PLAIN_BATCH}, {PLAIN_WORKERS} workers, fp32")
    if cuda:
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths, labels = make_photos(Path(tmp), args.images, round(args.image_size * 1.6))
        print(f"data: {len(paths)} JPEGs of {round(args.image_size * 1.6)} px wide written in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        images = decode_images(paths, Preprocessing.standard(args.image_size), device)
        sync(device)
        seconds = time.perf_counter() - started
        print(f"resident cache: {tuple(images.shape)} uint8, {images.numel() / 2**20:.0f} MiB, decoded in "
              f"{seconds:.1f} s ({len(paths) / seconds:.0f} img/s, once per run)")
        bench_training(paths, labels, images, args, device)
        bench_embeddings(paths, labels, images, seconds, args, device)
    extra = args.cli_args.split()
    if args.quality or not args.skip_cli:
        extra += weights_arguments(extra)
    if args.quality:
        bench_quality(args, extra)
    if not args.skip_cli:
        bench_cli(extra)


if __name__ == "__main__":
    main()
