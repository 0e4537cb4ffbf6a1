"""How big the cache ($FOLDLENS_CACHE) grows per 10,000 images, by kind, measured by writing each kind's entries
with the code that writes them and extrapolating per image.

    .venv/bin/python bench/bench_cache_size.py [--images 400] [--dim 2048] [--folds 5] [--keep DIR]

- features, thumbnails, activation maps: per image, from the embedded demo dataset's photos (--images of them):
  one backbone-feature file (float16, --dim wide) per image; one 192 px thumbnail per image; one overlay per map
  (explain writes two per misclassified validation or test image), over a smooth made-up heat map;
- neighbour indexes, kNN graphs, UMAP maps: per space (the backbone's, and each fold's in finetune mode: 1 + --folds
  spaces), from a random embedding of --images rows, as the diagnostics and the Similar images page write them.

"bytes" is what the files hold; "on disk" adds the file system's rounding to whole blocks (what `du` counts:
many small files cost more than their bytes). Nothing here is timed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.analysis.diagnostics.neighbours import prepare  # noqa: E402
from core.analysis.diagnostics.thresholds import Thresholds  # noqa: E402
from core.analysis.explain import overlay  # noqa: E402
from core.config import DEMO_DATA  # noqa: E402
from core.data.dataset import load_rgb  # noqa: E402
from core.data.thumbnails import thumbnail  # noqa: E402
from core.store import cache_store  # noqa: E402
from core.store.run_store import write_array  # noqa: E402
from core.views.run_list import human_size  # noqa: E402

PER = 10_000


def sizes(folder: Path) -> tuple[int, int, int]:
    """(files, bytes, bytes on disk) under `folder`."""
    files = [Path(root) / name for root, _, names in os.walk(folder) for name in names]
    return len(files), sum(f.stat().st_size for f in files), sum(f.stat().st_blocks * 512 for f in files)


def heat_map(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth blob, 0–1, like a class activation map upsampled from a 7×7 grid."""
    y, x = np.mgrid[0:side, 0:side] / side
    cy, cx, width = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.35)
    return np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width ** 2)).astype(np.float32)


def measure(cache: Path, n_images: int, dim: int) -> dict[str, tuple[int, int, int, int]]:
    """kind -> (files, bytes, bytes on disk, what it was measured over: images, or rows per space)."""
    manifest = pd.read_csv(DEMO_DATA)
    photos = [DEMO_DATA.parent / p for p in manifest.path[:n_images]]
    rng = np.random.default_rng(0)
    for i, photo in enumerate(photos):   # the backbone features of one image, as cached_features writes them
        write_array(cache / "features" / "key" / f"{i:064x}"[:2] / f"{i:064x}.npy",
                    rng.standard_normal(dim).astype(np.float16))
        thumbnail(photo, cache_dir=cache)
        crop = np.asarray(load_rgb(photo).convert("RGB").resize((224, 224)))
        target = cache / "gradcam" / f"{i:02x}"[:2] / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        overlay(crop, heat_map(rng, 224)).save(target, format="PNG")
    embedding = rng.standard_normal((len(photos), dim)).astype(np.float16)
    prepare("backbone", embedding, Thresholds(), cache)               # kNN graph of one space
    import faiss

    unit = embedding.astype(np.float32)
    index = faiss.IndexFlatIP(dim)                                    # the Similar images page's index of one space
    index.add(unit / np.linalg.norm(unit, axis=1, keepdims=True))
    (cache / "neighbours").mkdir()
    faiss.write_index(index, str(cache / "neighbours" / "space_flatip.faiss"))
    write_array(cache / "umap" / "space.npy", rng.standard_normal((len(photos), 2)).astype(np.float32))
    return {kind: (*sizes(cache / kind), len(photos)) for kind in cache_store.KINDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400, help="demo photos (and embedding rows) measured over")
    parser.add_argument("--dim", type=int, default=2048, help="backbone feature width (ResNet-50: 2048)")
    parser.add_argument("--folds", type=int, default=5, help="spaces per finetune run: the backbone's + one per fold")
    parser.add_argument("--keep", help="write the cache here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        cache = Path(args.keep or temporary)
        measured = measure(cache, args.images, args.dim)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; file system block "
          f"rounding as here; {args.images} demo images, {args.dim}-d features")
    print(f"{'kind':<11} {'per':<28} {'bytes/10k images':>17} {'on disk/10k images':>19}")
    totals = {"head": [0, 0], "finetune": [0, 0]}
    for kind, (files, size, disk, over) in measured.items():
        per_space = kind in ("neighbours", "spaces", "umap")
        per = "space (1 + folds per run)" if per_space else {"features": "image and backbone",
                                                              "thumbnails": "image (192 px)",
                                                              "gradcam": "map (2 per misclassified)"}[kind]
        size_10k, disk_10k = size / over * PER, disk / over * PER
        print(f"{kind:<11} {per:<28} {human_size(size_10k):>17} {human_size(disk_10k):>19}")
        for mode, spaces in (("head", 1), ("finetune", 1 + args.folds)):
            if kind == "gradcam":
                continue   # depends on how many images a run gets wrong: listed per map above
            totals[mode][0] += size_10k * (spaces if per_space else 1)
            totals[mode][1] += disk_10k * (spaces if per_space else 1)
    for mode, (size, disk) in totals.items():
        print(f"one {mode} run of 10,000 images ({'1 space' if mode == 'head' else f'{1 + args.folds} spaces'}), "
              f"without activation maps: {human_size(size)} ({human_size(disk)} on disk)")


if __name__ == "__main__":
    main()
