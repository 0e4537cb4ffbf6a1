"""Perceptual hashes of the decoded pixels: a resized or re-encoded copy of an image is the same picture even when
its file bytes (sha256) differ and whatever cosine the backbone gives the pair.

The hash is the DCT hash of Zauner (2010), as imagehash's `phash` computes it: the image in grey shrunk to 32x32,
its 2-D DCT, and one bit per coefficient of the 8x8 lowest frequencies, set when above their median. Written here
in a few lines of scipy rather than adding imagehash (which also needs PyWavelets) for one function. Pairs within
`pixel_hash_bits` of 64 are found without comparing all pairs: two hashes that differ in at most d bits agree
exactly on at least one of d + 1 disjoint bit chunks (pigeonhole), so only images sharing a chunk are compared.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.fft import dctn

from core.data.dataset import load_rgb

SIDE = 32                 # the grey image the DCT is taken of
LOW = 8                   # LOW x LOW lowest frequencies: 64 bits
FLAT = 1.0                # grey standard deviation (0-255) under which an image has no picture to hash
BITS = LOW * LOW
WEIGHTS = np.uint64(1) << np.arange(BITS, dtype=np.uint64)[::-1]


def perceptual_hash(image: Image.Image) -> int | None:
    """The 64-bit DCT hash of an image; None for a flat image (every such image would hash alike)."""
    grey = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    if grey.std() < FLAT:
        return None
    low = dctn(grey, type=2, norm="ortho")[:LOW, :LOW].ravel()
    return int((low > np.median(low)).astype(np.uint64) @ WEIGHTS)


def file_hash(path: Path) -> int | None:
    """The hash of an image file decoded as training decodes it; None when it cannot be read or is flat."""
    try:
        return perceptual_hash(load_rgb(path))
    except Exception:   # a file moved or broken since the scan: no hash, never a failed diagnosis
        return None


def image_hashes(paths: list[Path], workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(hashes as uint64, which are valid), one per path; a path listed twice is decoded once."""
    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:   # Pillow decodes outside the GIL
        found = dict(zip(unique, pool.map(file_hash, unique)))
    valid = np.array([found[p] is not None for p in paths], dtype=bool)
    return np.array([found[p] or 0 for p in paths], dtype=np.uint64), valid


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between hashes, element-wise."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def close_pairs(hashes: np.ndarray, valid: np.ndarray, max_bits: int) -> pd.DataFrame:
    """Every pair a < b of valid hashes at most `max_bits` apart: columns a, b, bits."""
    ids = np.flatnonzero(valid)
    edges = np.linspace(0, BITS, max_bits + 2).astype(int)
    found = []
    for start, stop in zip(edges[:-1], edges[1:]):
        chunk = (hashes[ids] >> np.uint64(BITS - stop)) & np.uint64((1 << (stop - start)) - 1)
        order = np.argsort(chunk, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(chunk[order])) + 1):
            if len(group) > 1:
                a, b = np.triu_indices(len(group), k=1)
                found.append(np.stack([ids[group[a]], ids[group[b]]], axis=1))
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0) if found else np.empty((0, 2), np.int64)
    bits = hamming(hashes[pairs[:, 0]], hashes[pairs[:, 1]])
    keep = bits <= max_bits
    return pd.DataFrame({"a": pairs[keep, 0].astype(np.int64), "b": pairs[keep, 1].astype(np.int64),
                         "bits": bits[keep]})
