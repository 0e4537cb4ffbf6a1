"""The decoded pixels of every image, small: a resized or re-encoded copy of an image is the same picture even
when its file bytes (sha256) differ, whatever cosine the backbone gives the pair.

Two signatures per image. A DCT perceptual hash (Zauner 2010, as imagehash's `phash` computes it: grey 32x32, its
2-D DCT, one bit per coefficient of the 8x8 lowest frequencies, set when above their median) finds candidate pairs
among all images without comparing all pairs: two hashes at most d bits apart agree exactly on at least one of
d + 1 disjoint bit chunks (pigeonhole). A 16x16 colour thumbnail then decides: a pair is the same picture when the
thumbnails' correlation reaches `copy_correlation`. The hash alone is not enough: on icons on a white background
its low frequencies sit near their median, so a copy can be 12 bits away while two different drawings are 4 apart.
Written here in a few lines of scipy rather than adding imagehash (which also needs PyWavelets) for one function.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
THUMB = 16                # the colour thumbnail compared: THUMB x THUMB x 3 bytes per image
WEIGHTS = np.uint64(1) << np.arange(BITS, dtype=np.uint64)[::-1]


def perceptual_hash(image: Image.Image) -> int | None:
    """The 64-bit DCT hash of an image; None for a flat image (every such image would hash alike)."""
    grey = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.float64)
    if grey.std() < FLAT:
        return None
    low = dctn(grey, type=2, norm="ortho")[:LOW, :LOW].ravel()
    return int((low > np.median(low)).astype(np.uint64) @ WEIGHTS)


def thumbnail(image: Image.Image) -> np.ndarray:
    """The image as THUMB x THUMB RGB (box-averaged), flattened: what `correlation` compares."""
    return np.asarray(image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8).ravel()


def _signature(path: Path) -> tuple[int | None, np.ndarray | None]:
    """The hash and thumbnail of an image file decoded as training decodes it; None, None when unreadable."""
    try:
        image = load_rgb(path)
    except Exception:   # a file moved or broken since the scan: no signature, never a failed diagnosis
        return None, None
    return perceptual_hash(image), thumbnail(image)


@dataclass(frozen=True)
class Signatures:
    """One row per sample: its hash (0 where `hashed` is False: flat or unreadable), its thumbnail (zeros where
    `read` is False)."""
    hashes: np.ndarray
    hashed: np.ndarray
    thumbs: np.ndarray
    read: np.ndarray


def image_signatures(paths: list[Path], workers: int | None = None) -> Signatures:
    """Every path's signature; a path listed twice is decoded once."""
    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:   # Pillow decodes outside the GIL
        found = dict(zip(unique, pool.map(_signature, unique)))
    rows = [found[p] for p in paths]
    blank = np.zeros(THUMB * THUMB * 3, dtype=np.uint8)
    return Signatures(hashes=np.array([h or 0 for h, _ in rows], dtype=np.uint64),
                      hashed=np.array([h is not None for h, _ in rows], dtype=bool),
                      thumbs=np.stack([blank if t is None else t for _, t in rows]) if rows else
                      np.empty((0, blank.size), np.uint8),
                      read=np.array([t is not None for _, t in rows], dtype=bool))


CORRELATION_BATCH = 65_536   # distinct thumbnail pairs correlated at once: bounds the memory of a big run


def correlation(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Correlation of the thumbnails of pairs (a[i], b[i]), each colour channel centred on its own mean: two
    pictures of one colour cast but different content do not correlate. 0 for a flat thumbnail.

    Computed once per pair of distinct thumbnails, in batches: a picture reused by many samples (a placeholder
    image, a synthetic run's shared files) makes millions of sample pairs but few distinct ones."""
    if len(a) == 0:
        return np.zeros(0)
    distinct, inverse = np.unique(thumbs, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    pixels = distinct.astype(np.float32).reshape(len(distinct), -1, 3)
    centred = (pixels - pixels.mean(axis=1, keepdims=True)).reshape(len(distinct), -1)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    unit = np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 0)
    codes, back = np.unique(inverse[a].astype(np.int64) * len(distinct) + inverse[b], return_inverse=True)
    left, right = divmod(codes, len(distinct))
    values = np.concatenate([np.einsum("ij,ij->i", unit[left[i:i + CORRELATION_BATCH]],
                                       unit[right[i:i + CORRELATION_BATCH]])
                             for i in range(0, len(codes), CORRELATION_BATCH)])
    return values[back.ravel()].astype(np.float64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between hashes, element-wise."""
    return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def _value_pairs(values: np.ndarray, max_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of distinct hash values at most `max_bits` apart: two such values agree exactly on at
    least one of max_bits + 1 chunks, so only values sharing a chunk are compared."""
    edges = np.linspace(0, BITS, max_bits + 2).astype(int)
    found = []
    for start, stop in zip(edges[:-1], edges[1:]):
        chunk = (values >> np.uint64(BITS - stop)) & np.uint64((1 << (stop - start)) - 1)
        order = np.argsort(chunk, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(chunk[order])) + 1):
            if len(group) > 1:
                i, j = np.triu_indices(len(group), k=1)
                found.append(np.stack([group[i], group[j]], axis=1))
    pairs = np.unique(np.sort(np.concatenate(found), axis=1), axis=0) if found else np.empty((0, 2), np.int64)
    keep = hamming(values[pairs[:, 0]], values[pairs[:, 1]]) <= max_bits
    return pairs[keep, 0], pairs[keep, 1]


def close_pairs(hashes: np.ndarray, valid: np.ndarray, max_bits: int) -> pd.DataFrame:
    """Every pair a < b of valid hashes at most `max_bits` apart: columns a, b, bits.

    Compared once per distinct hash value, then expanded to the samples holding each value (all pairs within a
    value, all pairs across two close values): the expansion is the answer's own size, nothing more."""
    ids = np.flatnonzero(valid)
    values, inverse = np.unique(hashes[ids], return_inverse=True)
    inverse = inverse.ravel()
    members = np.argsort(inverse, kind="stable")                 # positions in ids, grouped by value
    counts = np.bincount(inverse, minlength=len(values))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    p, q = _value_pairs(values, max_bits)
    same = np.flatnonzero(counts > 1)
    p, q = np.concatenate([same, p]), np.concatenate([same, q])   # a value with itself: pairs within it
    sizes = counts[p] * counts[q]
    pair = np.repeat(np.arange(len(p)), sizes)
    offset = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    i, j = np.divmod(offset, counts[q][pair])
    a = ids[members[first[p][pair] + i]]
    b = ids[members[first[q][pair] + j]]
    keep = (p[pair] != q[pair]) | (i < j)                         # within a value: each pair once, none with itself
    a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    order = np.lexsort((b, a))
    a, b = a[order].astype(np.int64), b[order].astype(np.int64)
    return pd.DataFrame({"a": a, "b": b, "bits": hamming(hashes[a], hashes[b])})
