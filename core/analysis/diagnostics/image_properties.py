"""What each image looks like (brightness, blur, size, ...), which images are unusable, and whether a property alone
predicts the label or the model's error: the shortcut a small dataset invites.

Computed with numpy/Pillow rather than CleanVision: CleanVision reads a folder into its own report objects and
scores issues on its own scales, while a run needs one number per sample in samples order, decoded exactly as
training decodes (core.data.dataset.load_rgb), and the handful of statistics below cost one small decode each.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import PredefinedSplit, cross_val_predict
from sklearn.tree import DecisionTreeClassifier

from core.analysis.diagnostics.thresholds import Thresholds
from core.data.dataset import load_rgb

# property -> words for findings and the dashboard; the order is the order of the table's columns
PROPERTIES = {
    "brightness": "brightness (mean luminance, 0–1)",
    "contrast": "contrast (luminance standard deviation, 0–1)",
    "blur": "sharpness (variance of the Laplacian; low = blurry)",
    "entropy": "information (grey-level entropy, bits)",
    "aspect_ratio": "aspect ratio (width / height)",
    "short_side": "size (shorter side, pixels)",
    "colourfulness": "colourfulness (Hasler–Süsstrunk; 0 = greyscale)",
    "white_share": "near-white background (share of pixels)",
    "jpeg_quality": "JPEG quality (estimated from the quantisation table)",
}
FLAGS = {
    "dark": "dark (mean brightness below {dark_brightness:.0%})",
    "blurry": "blurry (edge energy for their contrast {blur_z:.1f} robust z below the dataset's)",
    "tiny": "tiny (shorter side below {tiny_fraction:.0%} of the model input)",
    "odd_aspect": "odd aspect ratio (one side over {odd_aspect:.1f}× the other)",
    "low_information": "low information (grey-level entropy below {low_entropy:.1f} bits)",
}
STATS_SIDE = 256          # statistics are taken on the image shrunk to this longest side: stable across sizes
WHITE_LEVEL = 240         # a pixel is near-white when every channel is at least this
# IJG's standard luminance quantisation table (quality 50), in natural order as Pillow reports it
_IJG_LUMINANCE = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57,
                           69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64,
                           81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
                          dtype=float)


# ---------------------------------------------------------------- per image

def jpeg_quality(image: Image.Image) -> float:
    """The IJG quality (1–100) whose scaled standard table best matches the file's luminance table; NaN when the
    image is not a JPEG. IJG scales the table by 5000/q percent below quality 50 and by 200 - 2q above."""
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables:
        return float("nan")
    scale = 100 * float(np.mean(np.asarray(tables[0], dtype=float) / _IJG_LUMINANCE))
    quality = 5000 / scale if scale > 100 else (200 - scale) / 2
    return float(np.clip(round(quality), 1, 100))


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: edges make it large, blur makes it small."""
    lap = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    return float(lap.var()) if lap.size else 0.0


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk (2003): spread and mean of the opponent colour channels, on a 0–255 scale."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def measure(path: Path) -> dict:
    """Properties of one image file, decoded as training decodes it; every value NaN when it cannot be read."""
    try:
        with Image.open(path) as raw:
            quality = jpeg_quality(raw)
        image = load_rgb(path)
    except Exception:   # a file moved or broken since the scan: no properties, never a failed diagnosis
        return {name: float("nan") for name in PROPERTIES}
    width, height = image.size
    image.thumbnail((STATS_SIDE, STATS_SIDE))
    rgb = np.asarray(image, dtype=np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)   # ITU-R 601 luma, as PIL's "L"
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256) / grey.size
    nonzero = counts[counts > 0]
    return {"brightness": float(grey.mean() / 255), "contrast": float(grey.std() / 255),
            "blur": laplacian_variance(grey), "entropy": float(-(nonzero * np.log2(nonzero)).sum()),
            "aspect_ratio": width / height, "short_side": float(min(width, height)),
            "colourfulness": colourfulness(rgb), "white_share": float((rgb.min(axis=2) >= WHITE_LEVEL).mean()),
            "jpeg_quality": quality}


def robust_z(values: np.ndarray, floor: float) -> np.ndarray:
    """(value - median) / (1.4826 MAD) over the dataset, the MAD at least `floor` (so that near-identical images do
    not make tiny differences look extreme); NaN stays NaN, all NaN when nothing was measured."""
    if np.isnan(values).all():
        return values
    median = np.nanmedian(values)
    mad = 1.4826 * np.nanmedian(np.abs(values - median))
    return (values - median) / max(mad, floor)


def blur_z(frame: pd.DataFrame) -> np.ndarray:
    """How much less edge energy an image has than the dataset's typical one, for its contrast: robust z of
    log10(Laplacian variance / luminance variance), so a dark or faint but sharp image is not called blurry."""
    ratio = frame["blur"].to_numpy(dtype=float) / np.maximum((255 * frame["contrast"].to_numpy(dtype=float)) ** 2, 1)
    return robust_z(np.log10(ratio + 1e-6), floor=0.1)


def image_properties(samples: pd.DataFrame, root: str | Path, image_size: int, th: Thresholds,
                     workers: int | None = None) -> pd.DataFrame:
    """One row per sample (samples order): sample_id, path, label, split, fold, every property and every flag."""
    unique = list(dict.fromkeys(samples["path"]))   # a file several samples share is measured once
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:   # Pillow decodes outside the GIL
        measured = dict(zip(unique, pool.map(measure, [Path(root) / relative for relative in unique])))
    frame = pd.concat([samples[["sample_id", "path", "label", "split", "fold"]].reset_index(drop=True),
                       pd.DataFrame([measured[p] for p in samples["path"]], columns=list(PROPERTIES))], axis=1)
    elongation = np.maximum(frame["aspect_ratio"], 1 / frame["aspect_ratio"])
    frame["dark"] = frame["brightness"] < th.dark_brightness
    frame["blurry"] = blur_z(frame) < -th.blur_z
    frame["tiny"] = frame["short_side"] < th.tiny_fraction * image_size
    frame["odd_aspect"] = elongation > th.odd_aspect
    frame["low_information"] = frame["entropy"] < th.low_entropy
    return frame


# ---------------------------------------------------------------- what the properties predict

def _oof_balanced_accuracy(x: np.ndarray, y: np.ndarray, folds: np.ndarray, depth: int, seed: int) -> float:
    """Balanced accuracy of a shallow tree on one feature, fitted on the other folds, scored out of fold."""
    tree = DecisionTreeClassifier(max_depth=depth, class_weight="balanced", random_state=seed)
    predicted = cross_val_predict(tree, x.reshape(-1, 1), y, cv=PredefinedSplit(folds))
    return float(balanced_accuracy_score(y, predicted))


def _split_rule(x: np.ndarray, target: np.ndarray, seed: int) -> tuple[str, float, float, float]:
    """The single threshold that best separates `target` from the rest: (side, threshold, share of target on
    that side, share of the rest on that side), side '≤' or '>' whichever holds more of the target."""
    stump = DecisionTreeClassifier(max_depth=1, class_weight="balanced", random_state=seed)
    stump.fit(x.reshape(-1, 1), target)
    if stump.tree_.node_count < 3:   # the property is constant: no split
        return "≤", float(np.max(x)), 1.0, 1.0
    threshold = float(stump.tree_.threshold[0])
    below = x <= threshold
    share_in, share_out = below[target].mean(), below[~target].mean()
    if share_in >= share_out:
        return "≤", threshold, float(share_in), float(share_out)
    return ">", threshold, float(1 - share_in), float(1 - share_out)


def _usable(frame: pd.DataFrame, name: str) -> np.ndarray:
    """cv samples with a value of `name` (JPEG quality only exists for JPEGs)."""
    return ((frame["split"] == "cv") & frame[name].notna()).to_numpy()


def _most_apart(x: np.ndarray, labels: np.ndarray, classes: list[str], n: int) -> list[str]:
    """Of `classes` (in their order), the `n` whose values of a property stand most apart from the rest's (rank AUC
    farthest from 0.5), so a run of many classes fits the one-against-the-rest trees for these only, not a
    thousand; every class up to `n`."""
    values, codes = np.unique(labels, return_inverse=True)
    if len(values) <= n:
        return list(classes)
    ranks = pd.Series(x).rank().to_numpy()
    size = np.bincount(codes).astype(float)
    rank_sum = np.bincount(codes, weights=ranks)
    auc = (rank_sum - size * (size + 1) / 2) / np.maximum(size * (len(x) - size), 1)
    apart = set(values[np.argsort(-np.abs(auc - 0.5), kind="stable")[:n]])
    return [name for name in classes if name in apart]


def shortcut_checks(frame: pd.DataFrame, oof_wrong: pd.Series, classes: list[str], th: Thresholds) -> dict:
    """Per property: how well it alone predicts the label (multi-class, and each class against the rest) and the
    out-of-fold error, as balanced accuracy of a depth-`shortcut_depth` tree under the run's own folds.

    oof_wrong: bool per sample_id (cv samples), whether the out-of-fold prediction is wrong.
    """
    label_rows, error_rows = [], []
    for name in PROPERTIES:
        use = _usable(frame, name)
        part = frame[use]
        folds = part["fold"].to_numpy(dtype=int)
        if len(part) < 10 or len(np.unique(folds)) < 2 or part[name].nunique() < 2:
            continue
        x = part[name].to_numpy(dtype=float)
        labels = part["label"].to_numpy()
        row = {"property": name, "n": len(part), "chance": 1 / len(set(labels)),
               "balanced_accuracy": _oof_balanced_accuracy(x, labels, folds, th.shortcut_depth, th.seed)}
        best = None
        for name_c in _most_apart(x, labels, classes, th.shortcut_classes):
            target = labels == name_c
            if target.sum() < 2 or (~target).sum() < 2:
                continue
            score = _oof_balanced_accuracy(x, target, folds, th.shortcut_depth, th.seed)
            if best is None or score > best["class_balanced_accuracy"]:
                side, threshold, share_in, share_out = _split_rule(x, target, th.seed)
                best = {"class": name_c, "class_balanced_accuracy": score, "side": side, "threshold": threshold,
                        "class_share": share_in, "others_share": share_out}
        label_rows.append({**row, **(best or {})})
        wrong = oof_wrong.reindex(part["sample_id"]).to_numpy()
        if np.isnan(wrong.astype(float)).any() or wrong.all() or not wrong.any():
            continue
        wrong = wrong.astype(bool)
        side, threshold, share_in, share_out = _split_rule(x, wrong, th.seed)
        on_side = x <= threshold if side == "≤" else x > threshold
        error_rows.append({"property": name, "n": len(part),
                           "balanced_accuracy": _oof_balanced_accuracy(x, wrong, folds, th.shortcut_depth, th.seed),
                           "side": side, "threshold": threshold, "error_on_side": float(wrong[on_side].mean()),
                           "error_elsewhere": float(wrong[~on_side].mean()) if (~on_side).any() else None,
                           "share_on_side": float(on_side.mean())})
    return {"label": label_rows, "error": error_rows}


def smaller_image_size(frame: pd.DataFrame, image_size: int) -> int | None:
    """When most measured images are tiny for the model input, an input near their own size instead: the
    smallest multiple of 32 (ResNet's stride) at or above their median shorter side, 64 at least. None when
    most are not tiny or that is not smaller: then the tiny ones are the exception, to check or remove."""
    measured = frame["short_side"].notna()
    if not measured.any() or frame.loc[measured, "tiny"].mean() <= 0.5:
        return None
    size = max(64, 32 * int(np.ceil(frame.loc[measured, "short_side"].median() / 32)))
    return size if size < image_size else None


def summary(frame: pd.DataFrame, checks: dict, image_size: int) -> dict:
    """diagnostics.json's `image_properties` block."""
    flags = {}
    for flag in FLAGS:
        hit = frame[frame[flag]]
        flags[flag] = {"count": len(hit), "examples": hit["path"].head(3).tolist()}
    flags["tiny"].update(median_short_side=float(frame["short_side"].median()), image_size=image_size,
                         suggested_image_size=smaller_image_size(frame, image_size))
    return {"file": "image_properties.parquet", "n": len(frame),
            "measured": int(frame["brightness"].notna().sum()), "flags": flags, **checks}
