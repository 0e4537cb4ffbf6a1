"""A resized or re-encoded copy is the same picture (perceptual hash), whatever the embedding says; different
pictures are not."""
import io

import numpy as np
import pandas as pd
from PIL import Image

from core.analysis.diagnostics.duplicates import duplicates
from core.analysis.diagnostics.findings import duplicate_findings
from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.pixel_hash import (close_pairs, correlation, hamming, image_signatures,
                                                  perceptual_hash, thumbnail)
from core.analysis.diagnostics.thresholds import Thresholds

TH = Thresholds(pca_dims=20)


def _picture(seed: int, size=(240, 180)) -> Image.Image:
    """A photo-like image: smooth random shapes (low-frequency noise upsampled) with some fine noise."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-10, 10, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _resaved(image: Image.Image, scale: float, quality: int) -> Image.Image:
    small = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_a_resized_recompressed_copy_is_within_the_threshold_and_different_pictures_are_not():
    for seed in range(5):
        original = perceptual_hash(_picture(seed))
        for scale, quality in ((0.5, 60), (0.3, 40), (1.7, 90)):
            copy = perceptual_hash(_resaved(_picture(seed), scale, quality))
            assert hamming(np.uint64(original), np.uint64(copy)) <= TH.pixel_hash_bits
    hashes = np.array([perceptual_hash(_picture(seed)) for seed in range(40)], dtype=np.uint64)
    distances = hamming(hashes[:, None], hashes[None, :])[np.triu_indices(40, 1)]
    assert distances.min() > TH.pixel_hash_bits
    assert perceptual_hash(Image.new("RGB", (50, 50), (200, 10, 10))) is None   # flat: nothing to hash


def test_thumbnails_of_a_copy_correlate_and_those_of_different_pictures_do_not():
    pictures = [_picture(seed) for seed in range(20)]
    thumbs = np.stack([thumbnail(p) for p in pictures] + [thumbnail(_resaved(p, 0.4, 50)) for p in pictures])
    a, b = np.triu_indices(20, 1)
    assert correlation(thumbs, a, b).max() < TH.copy_correlation
    assert correlation(thumbs, np.arange(20), np.arange(20, 40)).min() >= TH.copy_correlation


def test_two_pictures_of_one_colour_cast_are_not_copies():
    """Reddish images with different shapes: the cast alone would make any two correlate near 1."""
    rng = np.random.default_rng(3)
    thumbs = []
    for _ in range(10):
        pixels = np.full((96, 96, 3), (200, 60, 60), dtype=np.int16) + rng.integers(-20, 20, (96, 96, 3))
        x, y, side = rng.integers(0, 60, 2).tolist() + [int(rng.integers(15, 35))]
        pixels[y:y + side, x:x + side] = rng.integers(0, 256, 3)
        thumbs.append(thumbnail(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))))
    a, b = np.triu_indices(10, 1)
    assert correlation(np.stack(thumbs), a, b).max() < TH.copy_correlation


def test_close_pairs_finds_exactly_the_pairs_a_full_comparison_finds():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64)
    for a, b, flips in ((3, 7, 0), (10, 200, 2), (50, 51, 4), (60, 61, 5)):
        hashes[b] = hashes[a] ^ np.uint64(sum(1 << bit for bit in rng.choice(64, flips, replace=False)))
    valid = np.ones(300, dtype=bool)
    valid[7] = False
    found = close_pairs(hashes, valid, 4)
    distances = hamming(hashes[:, None], hashes[None, :])
    a, b = np.triu_indices(300, 1)
    keep = (distances[a, b] <= 4) & valid[a] & valid[b]
    assert set(zip(found["a"], found["b"])) == set(zip(a[keep], b[keep])) == {(10, 200), (50, 51)}


def test_a_copy_across_folds_is_a_leaking_copy_pair_though_its_embedding_is_far(tmp_path):
    n = 30
    paths = []
    for i in range(n):
        image = _resaved(_picture(0), 0.5, 60) if i == 10 else _picture(i)   # 10: a copy of 0
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    samples = pd.DataFrame({"sample_id": np.arange(n), "path": [p.name for p in paths], "label": "c",
                            "label_index": 0, "group": None, "split": "cv",
                            "fold": pd.array([i % 3 for i in range(n)], dtype="Int64"),
                            "sha256": [f"h{i}" for i in range(n)]})
    embedding = np.random.default_rng(1).normal(size=(n, 64)).astype(np.float16)   # no pair is near here
    pairs, summary = duplicates(samples, prepare("backbone", embedding, TH), embedding, TH, image_signatures(paths))
    copies = pairs[pairs["kind"] == "copy"]
    assert list(zip(copies["sample_id_a"], copies["sample_id_b"])) == [(0, 10)] and copies["leakage"].all()
    assert summary["copy"]["leaking"] == 1 and summary["near"]["pairs"] == 0
    [f] = duplicate_findings(summary, False, TH)
    assert f["severity"] == "high" and f["title"] == "Leakage: 1 copy pair crosses train and validation"
    assert "the same picture at another size or encoding" in f["evidence"]
    without, summary = duplicates(samples, prepare("backbone", embedding, TH), embedding, TH)
    assert "copy" not in set(without["kind"]) and summary["copy"]["pairs"] == 0


def test_no_candidate_pairs_correlate_to_nothing() -> None:
    thumbs = np.random.default_rng(0).integers(0, 255, (4, 768)).astype(np.uint8)
    none = np.array([], dtype=int)
    assert correlation(thumbs, none, none).shape == (0,)


def test_repeated_pictures_give_the_same_pairs_and_correlations_as_comparing_every_pair():
    # a few pictures each held by many samples (placeholders, reused files), some hashes one bit apart
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 6, dtype=np.uint64)
    base[1] = base[0] ^ np.uint64(1)
    picture = rng.integers(0, 6, 120)
    hashes = base[picture]
    valid = rng.random(120) > 0.1
    found = close_pairs(hashes, valid, 4)
    a, b = np.triu_indices(120, 1)
    keep = (hamming(hashes[a], hashes[b]) <= 4) & valid[a] & valid[b]
    assert list(zip(found["a"], found["b"])) == sorted(zip(a[keep], b[keep]))
    assert (found["bits"].to_numpy() == hamming(hashes[found["a"]], hashes[found["b"]])).all()

    thumbs = rng.integers(0, 256, (6, 768)).astype(np.uint8)[picture]
    thumbs[5] = 7                                                  # a flat thumbnail correlates to 0
    pixels = thumbs.astype(np.float64).reshape(120, 256, 3)
    centred = (pixels - pixels.mean(axis=1, keepdims=True)).reshape(120, 768)
    norms = np.linalg.norm(centred, axis=1)
    expected = np.divide((centred[a] * centred[b]).sum(1), norms[a] * norms[b], out=np.zeros(len(a)),
                         where=norms[a] * norms[b] > 0)
    assert np.allclose(correlation(thumbs, a, b), expected, atol=1e-5)
