"""Exact duplicates (same file bytes), copies (the same picture resized or re-encoded: perceptual hash) and
near-duplicates (backbone cosine), with split-leakage flags."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from core.analysis.diagnostics.neighbours import Space, centred_cosine, prepare
from core.analysis.diagnostics.pixel_hash import Signatures, close_pairs, correlation
from core.analysis.diagnostics.thresholds import Thresholds
from core.data.dataset import label_conflicts

SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)   # candidate thresholds reported, to tune near_duplicate_similarity
COLUMNS = ["sample_id_a", "sample_id_b", "path_a", "path_b", "similarity", "kind",
           "crosses_folds", "touches_test", "leakage"]


def exact_pairs(sha256: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of samples with identical file bytes (sha256 is indexed by sample_id)."""
    repeated = sha256[sha256.duplicated(keep=False)]
    pairs = [pair for ids in repeated.groupby(repeated).groups.values()
             for pair in itertools.combinations(sorted(ids), 2)]
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def candidate_pairs(space: Space, embedding: np.ndarray) -> pd.DataFrame:
    """Every kNN edge once (a < b) with its exact centred cosine in the full backbone dimension."""
    n = len(space.index)
    a = np.repeat(np.arange(n, dtype=np.int64), space.index.shape[1])
    b = space.index.ravel()
    a, b = divmod(np.unique(pair_keys(np.minimum(a, b), np.maximum(a, b), n)), n)
    return pd.DataFrame({"a": a, "b": b, "similarity": centred_cosine(embedding, a, b)})


def pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """One int64 per (a, b) pair of sample ids below n, ordered as the pairs are (by a, then b)."""
    return np.asarray(a, dtype=np.int64) * n + np.asarray(b, dtype=np.int64)


def calibrated_threshold(pairs: pd.DataFrame, n: int, th: Thresholds) -> dict:
    """The cosine from which a candidate pair is near, and how it was derived: an outlier (robust z above
    `near_duplicate_z`) among the images' nearest-neighbour similarities, clipped to the floor and ceiling.
    Distinct look-alikes raise the median with them; a copy stands out above it. pairs: a, b, similarity."""
    best = np.full(n, -1.0)
    np.maximum.at(best, pairs["a"].to_numpy(), pairs["similarity"].to_numpy(dtype=float))
    np.maximum.at(best, pairs["b"].to_numpy(), pairs["similarity"].to_numpy(dtype=float))
    best = best[best > -1.0]
    median = float(np.median(best)) if len(best) else 0.0
    mad = float(np.median(np.abs(best - median))) if len(best) else 0.0
    outlier = median + th.near_duplicate_z * 1.4826 * mad
    return {"similarity": float(np.clip(outlier, th.near_duplicate_similarity, th.near_duplicate_ceiling)),
            "nn_median": median, "nn_mad": mad, "z": th.near_duplicate_z,
            "floor": th.near_duplicate_similarity, "ceiling": th.near_duplicate_ceiling,
            "rule": "median + z * 1.4826 * MAD of each image's nearest-neighbour cosine, within floor..ceiling"}


def near_duplicate_pairs(embedding: np.ndarray, th: Thresholds) -> tuple[np.ndarray, float]:
    """(a, b) rows of every pair this diagnostic calls near (identical files included), from the backbone
    embedding alone, and the calibrated cosine used: `--dedup-groups near` joins them into split units before
    any split exists."""
    pairs = candidate_pairs(prepare("backbone", embedding, th), embedding)
    cut = calibrated_threshold(pairs, len(embedding), th)["similarity"]
    return pairs.loc[pairs["similarity"] >= cut, ["a", "b"]].to_numpy(), cut


def flag_leakage(frame: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """crosses_folds: both cv, different folds (train/val in some fold); touches_test: one test, one cv."""
    split = samples["split"].to_numpy()
    fold = samples["fold"].to_numpy(dtype=float, na_value=np.nan)
    a, b = frame["sample_id_a"].to_numpy(), frame["sample_id_b"].to_numpy()
    both_cv = (split[a] == "cv") & (split[b] == "cv")
    frame["crosses_folds"] = both_cv & (fold[a] != fold[b])
    frame["touches_test"] = ((split[a] == "test") & (split[b] == "cv")) | ((split[a] == "cv") & (split[b] == "test"))
    frame["leakage"] = frame["crosses_folds"] | frame["touches_test"]
    return frame


def copy_pairs(signatures: Signatures | None, candidates: pd.DataFrame, embedding: np.ndarray,
               exact_keys: np.ndarray, th: Thresholds) -> pd.DataFrame:
    """Pairs of different files showing the same picture: among the backbone kNN edges (`candidates`: a, b) and
    the pairs whose perceptual hashes are within `pixel_hash_bits`, those whose thumbnails correlate at least
    `copy_correlation`. a, b, similarity (their backbone cosine, for the record); none without signatures."""
    empty = pd.DataFrame({"a": np.empty(0, np.int64), "b": np.empty(0, np.int64), "similarity": np.empty(0)})
    if signatures is None:
        return empty
    n = len(embedding)
    close = close_pairs(signatures.hashes, signatures.hashed, th.pixel_hash_bits)
    keys = np.unique(np.concatenate([pair_keys(candidates["a"], candidates["b"], n),
                                     pair_keys(close["a"], close["b"], n)]))
    a, b = divmod(keys[~np.isin(keys, exact_keys)], n)
    both = signatures.read[a] & signatures.read[b]
    a, b = a[both], b[both]
    same = correlation(signatures.thumbs, a, b) >= th.copy_correlation
    a, b = a[same], b[same]
    return pd.DataFrame({"a": a, "b": b, "similarity": centred_cosine(embedding, a, b)}) if len(a) else empty


def duplicates(samples: pd.DataFrame, backbone: Space, embedding: np.ndarray, th: Thresholds,
               signatures: Signatures | None = None) -> tuple[pd.DataFrame, dict]:
    """The pairs (copy, exact, then near by similarity) and their summary for diagnostics.json. signatures: the
    images' decoded pixels, small (`pixel_hash.image_signatures`); without them no copy is found."""
    ea, eb = exact_pairs(samples["sha256"])
    exact = pd.DataFrame({"a": ea, "b": eb, "similarity": np.ones(len(ea), dtype=np.float32), "kind": "exact"})
    n = len(samples)
    candidates = candidate_pairs(backbone, embedding)
    copies = copy_pairs(signatures, candidates, embedding, pair_keys(ea, eb, n), th).assign(kind="copy")
    threshold = calibrated_threshold(candidates, n, th)
    known = np.concatenate([pair_keys(ea, eb, n), pair_keys(copies["a"], copies["b"], n)])
    candidates = candidates[~np.isin(pair_keys(candidates["a"], candidates["b"], n), known)]
    candidates = flag_leakage(candidates.rename(columns={"a": "sample_id_a", "b": "sample_id_b"}), samples)
    near = candidates[candidates["similarity"] >= threshold["similarity"]].assign(kind="near")
    pairs = pd.concat([frame.rename(columns={"a": "sample_id_a", "b": "sample_id_b"}) for frame in (exact, copies)]
                      + [near.drop(columns=["crosses_folds", "touches_test", "leakage"])], ignore_index=True)
    pairs = flag_leakage(pairs, samples)
    paths = samples["path"].to_numpy()
    pairs["path_a"] = paths[pairs["sample_id_a"].to_numpy()]
    pairs["path_b"] = paths[pairs["sample_id_b"].to_numpy()]
    pairs["similarity"] = pairs["similarity"].astype("float64")
    pairs = pairs.sort_values(["kind", "similarity"], ascending=[True, False], kind="stable")[COLUMNS]
    pairs = pairs.astype({"sample_id_a": "int64", "sample_id_b": "int64"}).reset_index(drop=True)
    summary = summarize(pairs, candidates, samples)
    summary["threshold"] = threshold
    summary["label_conflicts"] = label_conflicts(samples.set_index("sample_id"))
    return pairs, summary


def _same_group(samples: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    if "group" not in samples or samples["group"].isna().all():
        return None
    group = samples["group"].to_numpy(dtype=object)
    return np.asarray([ga is not None and ga == gb for ga, gb in zip(group[a], group[b])], dtype=bool)


def summarize(pairs: pd.DataFrame, candidates: pd.DataFrame, samples: pd.DataFrame) -> dict:
    out = {}
    for kind in ("exact", "copy", "near"):
        rows = pairs[pairs["kind"] == kind]
        same = _same_group(samples, rows["sample_id_a"].to_numpy(), rows["sample_id_b"].to_numpy())
        out[kind] = {
            "pairs": len(rows),
            "leaking": int(rows["leakage"].sum()),
            "crosses_folds": int(rows["crosses_folds"].sum()),
            "touches_test": int(rows["touches_test"].sum()),
            "same_group": None if same is None else int(same.sum()),
        }
    same = _same_group(samples, candidates["sample_id_a"].to_numpy(), candidates["sample_id_b"].to_numpy())
    sim = candidates["similarity"].to_numpy()
    out["sweep"] = [{
        "similarity": t, "pairs": int((sim >= t).sum()),
        "leaking": int(candidates["leakage"].to_numpy()[sim >= t].sum()),
        "same_group": None if same is None else int(same[sim >= t].sum()),
    } for t in SWEEP]
    out["candidate_similarity_quantiles"] = (
        {str(q): float(np.quantile(sim, q)) for q in (0.5, 0.9, 0.99)} if len(sim) else {})
    return out
