"""Drift: have new images, as a whole, moved away from the images the run's models were trained on?

Images often come in look-alike groups (several photos of one item, one emoji drawn by several vendors), and new
images of items the run never saw form groups of their own: tests that treat images as independent then call a
sample from the same population "drift" (the run's own test split, whole groups the training part never saw,
gave KS D = 0.29 on entropy and a classifier AUC of 0.66 on the demo run). So both tests count groups, not images:

- Look-alike groups (`look_alike_groups`), over training and new images together: connected components of the
  diagnostics' near-duplicate candidate pairs (the backbone kNN graph, diagnostics/duplicates.py) whose centred
  cosine reaches `look_alike`, and of training images sharing a value of the run's `group` column. The
  near-duplicate rule's own calibrated cut (0.95 on the demo run) finds copies only; vendor variants of one emoji
  sit at 0.4-0.7 (on the demo run 93% of training images whose nearest neighbour is at 0.5 or more share its
  group), so `look_alike` is lower, and every near-duplicate pair is among those joined.
- Per image property (brightness, blur, size, ...: image_properties.measure, decoded as training decodes): one
  image per group and side (drawn with the seed), then a two-sample Kolmogorov–Smirnov test of the new
  groups' values against the training groups', the p-values corrected over the properties by Benjamini–Hochberg
  (scipy.stats.false_discovery_control). A property drifts when its corrected p is below `alpha` and the KS
  statistic D (the largest gap between the two cumulative distributions, 0–1) is at least `min_ks`: with many
  groups a negligible shift is also "significant". The image-level D is reported beside it.
- A classifier two-sample test (Lopez-Paz and Oquab, ICLR 2017) on the pretrained features (the run's reference
  space): a logistic regression learns to tell new images from training images, cross-validated with
  StratifiedGroupKFold so that a group never sits on both sides of a split; its out-of-fold scores give the AUC
  (0.5: indistinguishable), and the one-sided Mann–Whitney U test of the new groups' mean scores against the
  training groups' gives the p-value. Which properties drive it: the Spearman correlation of that score with each
  property over all images.

The verdict says "drift" when a property drifts or the classifier tells the images apart (p < alpha and AUC at
least `min_auc`), names what moved in plain words, and says how many look-alike groups the new images form.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from core.analysis.diagnostics.duplicates import calibrated_threshold, candidate_pairs
from core.analysis.diagnostics.image_properties import PROPERTIES, measure
from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.thresholds import Thresholds
from core.analysis.similar import normalised
from core.data.dataset import inspect_file
from core.data.splits import join_units
from core.errors import UserError
from core.store import run_store as store

VERDICT_PROPERTIES = 3   # shifted properties the verdict describes; the others it names


@dataclass(frozen=True)
class DriftSettings:
    alpha: float = 0.01           # significance, after correction over the properties
    min_ks: float = 0.2           # smallest KS statistic called a shift
    min_auc: float = 0.6          # smallest classifier AUC called a difference
    folds: int = 5                # classifier two-sample test: cross-validation folds
    components: int = 32          # ... pretrained features reduced by PCA first (fewer parameters than images)
    max_reference: int = 2000     # training images compared (a random sample when there are more)
    look_alike: float = 0.5       # an image joins its nearest neighbour's group from this centred cosine
    seed: int = 0


# ---------------------------------------------------------------- the tests, on numbers

def look_alike_groups(embeddings: np.ndarray, known: np.ndarray | None = None,
                      settings: DriftSettings = DriftSettings(), th: Thresholds = Thresholds()) -> np.ndarray:
    """Group id (0..m-1) per row of `embeddings` (training and new images together): components of the kNN graph's
    pairs at centred cosine >= `look_alike` or the near-duplicate cut of `th` (whichever is lower), and of rows
    sharing a `known` group (None: no group)."""
    n = len(embeddings)
    if n < 3:
        return join_units(n, [known])
    pairs = candidate_pairs(prepare("backbone", embeddings, th), embeddings)
    cut = min(calibrated_threshold(pairs, n, th)["similarity"], settings.look_alike)
    return join_units(n, [known], pairs.loc[pairs["similarity"] >= cut, ["a", "b"]].to_numpy())


def _per_group(values: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """One image's value per group, drawn at random (NaN left out; a group with none is dropped). Not the group's
    median: medians of larger groups spread less, and a side of larger groups would look shifted."""
    keep = np.flatnonzero(~np.isnan(values))
    order = np.random.default_rng(seed).permutation(keep)
    first = pd.Series(order).groupby(groups[order], sort=False).first().to_numpy()
    return values[first]


def property_shifts(train: pd.DataFrame, new: pd.DataFrame, settings: DriftSettings = DriftSettings(),
                    train_groups: np.ndarray | None = None, new_groups: np.ndarray | None = None) -> pd.DataFrame:
    """One row per property measured in both: image medians, the KS test on one image per group (each image its
    own group when no groups are given) and the image-level KS statistic, BH-corrected p, robust shift of the median
    (in training MADs), and whether it drifted."""
    train_groups = np.arange(len(train)) if train_groups is None else np.asarray(train_groups)
    new_groups = np.arange(len(new)) if new_groups is None else np.asarray(new_groups)
    rows = []
    for name in [name for name in PROPERTIES if name in train and name in new]:
        x, z = train[name].to_numpy(float), new[name].to_numpy(float)
        a, b = x[~np.isnan(x)], z[~np.isnan(z)]
        ga, gb = _per_group(x, train_groups, settings.seed), _per_group(z, new_groups, settings.seed)
        if len(ga) < 2 or len(gb) < 2:
            continue
        test = stats.ks_2samp(ga, gb)
        spread = 1.4826 * np.median(np.abs(a - np.median(a)))   # robust SD; 0 when most values are equal
        rows.append({"property": name, "n_train": len(a), "n_new": len(b), "groups_train": len(ga),
                     "groups_new": len(gb), "median_train": float(np.median(a)), "median_new": float(np.median(b)),
                     "ks": float(test.statistic), "p": float(test.pvalue),
                     "ks_images": float(stats.ks_2samp(a, b).statistic),
                     "shift_mads": float((np.median(b) - np.median(a)) / spread) if spread > 0 else None})
    frame = pd.DataFrame(rows, columns=["property", "n_train", "n_new", "groups_train", "groups_new", "median_train",
                                        "median_new", "ks", "p", "ks_images", "shift_mads"])
    frame["p_adjusted"] = stats.false_discovery_control(frame["p"]) if len(frame) else []
    frame["drifted"] = (frame["p_adjusted"] < settings.alpha) & (frame["ks"] >= settings.min_ks)
    return frame


def classifier_test(train: np.ndarray, new: np.ndarray, settings: DriftSettings = DriftSettings(),
                    groups: np.ndarray | None = None) -> dict | None:
    """The classifier two-sample test on embeddings, cross-validated by group (`groups`: one id per row, training
    rows first; None: each image its own): out-of-fold scores of "new" for every row, the image-level AUC, and the
    p of the new groups' mean scores against the training groups'. None when either side has fewer groups than
    two folds need."""
    y = np.r_[np.zeros(len(train)), np.ones(len(new))]
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    n_train, n_new = len(np.unique(groups[y == 0])), len(np.unique(groups[y == 1]))
    folds = min(settings.folds, n_train, n_new)
    if folds < 2:
        return None
    x = normalised(np.concatenate([train, new]))
    splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=settings.seed).split(x, y, groups))
    if any(len(np.unique(y[fit])) < 2 for fit, _ in splits):   # one group holds nearly all of one side
        return None
    components = min(settings.components, x.shape[1], min(len(fit) for fit, _ in splits) - 1)
    model = make_pipeline(PCA(components, random_state=settings.seed),
                          LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))
    score = cross_val_predict(model, x, y, cv=splits, method="predict_proba")[:, 1]
    means = pd.DataFrame({"side": y, "group": groups, "score": score}).groupby(["side", "group"])["score"].mean()
    test = stats.mannwhitneyu(means.loc[1.0].to_numpy(), means.loc[0.0].to_numpy(), alternative="greater")
    return {"auc": float(roc_auc_score(y, score)), "p": float(test.pvalue), "folds": folds,
            "groups_train": n_train, "groups_new": n_new,
            "model": f"PCA({components}) + logistic regression on unit-length pretrained features, "
                     f"cross-validated by look-alike group",
            "scores": score}


def drivers(properties: pd.DataFrame, scores: np.ndarray) -> pd.DataFrame:
    """Spearman correlation of the classifier's score with each property over all images, strongest first."""
    rows = []
    for name in [name for name in PROPERTIES if name in properties]:
        values = properties[name].to_numpy(float)
        keep = ~np.isnan(values)
        if keep.sum() < 3 or np.ptp(values[keep]) == 0:
            continue
        rho = stats.spearmanr(values[keep], scores[keep]).statistic
        rows.append({"property": name, "spearman": float(rho)})
    frame = pd.DataFrame(rows, columns=["property", "spearman"])
    return frame.reindex(frame["spearman"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def _shift_words(row) -> str:
    direction = "higher" if row.median_new > row.median_train else "lower"
    return (f"{row.property} {direction} (median {row.median_new:.3g} vs {row.median_train:.3g} in training, "
            f"KS D = {row.ks:.2f})")


def _images(n_new: int, groups_new: int) -> str:
    """"412 new images in 37 look-alike groups", or "the 60 new images" when no two of them look alike."""
    if groups_new >= n_new:
        return f"the {n_new} new images"
    return f"the {n_new} new images (in {groups_new} look-alike group{'' if groups_new == 1 else 's'})"


def verdict(shifts: pd.DataFrame, classifier: dict | None, top: pd.DataFrame, n_new: int,
            settings: DriftSettings = DriftSettings(), groups_new: int | None = None) -> tuple[bool, str]:
    """(drifted, one paragraph in plain words)."""
    images = _images(n_new, n_new if groups_new is None else groups_new)
    moved = shifts[shifts["drifted"]].sort_values("ks", ascending=False)
    separable = (classifier is not None and classifier["p"] < settings.alpha
                 and classifier["auc"] >= settings.min_auc)
    if classifier is None:
        told = "too few images for the classifier test"
    else:
        p = "p < 0.001" if classifier["p"] < 1e-3 else f"p = {classifier['p']:.3f}"
        told = f"AUC {classifier['auc']:.2f}, {p}"
    if moved.empty and not separable:
        return False, (f"No drift detected: {images} look like the training images. No image "
                       f"property shifted (Kolmogorov–Smirnov, Benjamini–Hochberg at {settings.alpha:g}), and a "
                       f"classifier on pretrained features tells them from training images no better than "
                       f"chance allows ({told}; compared by look-alike group).")
    parts = [f"Drift: {images} differ from the training images."]
    if not moved.empty:
        named = "; ".join(_shift_words(row) for row in moved.head(VERDICT_PROPERTIES).itertuples())
        rest = moved["property"].iloc[VERDICT_PROPERTIES:].tolist()
        parts.append(f"Shifted: {named}" + (f"; also {', '.join(rest)}." if rest else "."))
    if separable:
        lead = f" Its score follows {top['property'].iloc[0]} most (Spearman ρ = {top['spearman'].iloc[0]:+.2f})." \
            if len(top) else ""
        parts.append(f"A classifier on pretrained features tells them apart ({told}).{lead}")
    else:
        parts.append(f"A classifier on pretrained features does not tell them apart reliably ({told}).")
    return True, " ".join(parts)


def compare(train_properties: pd.DataFrame, new_properties: pd.DataFrame, train_embeddings: np.ndarray,
            new_embeddings: np.ndarray, settings: DriftSettings = DriftSettings(),
            train_groups: np.ndarray | None = None) -> dict:
    """The drift result of new images against training images (properties and embeddings in the same row order
    on each side; `train_groups`: the run's group column for the training rows, None for none): look-alike groups,
    `property_shifts`, `classifier_test` with its `drivers`, and the verdict."""
    known = None if train_groups is None else np.r_[np.asarray(train_groups, dtype=object),
                                                    np.full(len(new_embeddings), None, dtype=object)]
    groups = look_alike_groups(np.concatenate([train_embeddings, new_embeddings]), known, settings)
    train_side, new_side = groups[:len(train_embeddings)], groups[len(train_embeddings):]
    shifts = property_shifts(train_properties, new_properties, settings, train_side, new_side)
    classifier = classifier_test(train_embeddings, new_embeddings, settings, groups)
    top = pd.DataFrame(columns=["property", "spearman"])
    if classifier is not None:
        both = pd.concat([train_properties, new_properties], ignore_index=True)
        top = drivers(both, classifier.pop("scores"))
    n_groups = len(np.unique(new_side))
    drifted, text = verdict(shifts, classifier, top, len(new_embeddings), settings, n_groups)
    return {"drifted": drifted, "verdict": text, "n_train": len(train_embeddings), "n_new": len(new_embeddings),
            "groups_train": len(np.unique(train_side)), "groups_new": n_groups,
            "properties": shifts.to_dict("records"), "classifier": classifier, "drivers": top.to_dict("records"),
            "settings": asdict(settings)}


# ---------------------------------------------------------------- a run and a folder of new images

def readable_images(paths: list[Path], workers: int | None = None) -> tuple[list[Path], list[str], list[dict]]:
    """(readable paths, their sha256, [{path, reason}] of the rest): a broken file is listed, never a crash."""
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
        found = list(pool.map(inspect_file, paths))
    good = [(path, item["sha256"]) for path, item in zip(paths, found) if "reason" not in item]
    bad = [{"path": str(path), "reason": item["reason"]} for path, item in zip(paths, found) if "reason" in item]
    return [p for p, _ in good], [s for _, s in good], bad


def measure_all(paths: list[Path], workers: int | None = None) -> pd.DataFrame:
    with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:   # Pillow decodes outside the GIL
        return pd.DataFrame(list(pool.map(measure, paths)), columns=list(PROPERTIES))


def training_side(run_dir: Path, settings: DriftSettings) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """Properties, pretrained features and groups (the samples' group column, None without one) of the run's
    training (cv) images, a seeded sample of at most `max_reference`; properties from the diagnostics'
    image_properties.parquet when present, else measured."""
    from core.training.run_inputs import image_paths, load_run_inputs
    info, _, samples = load_run_inputs(run_dir)
    embeddings = store.read_embedding(run_dir, "backbone")
    if embeddings is None:
        raise UserError(f"run {run_dir.name} has no embeddings/backbone.npy; finish it with: "
                        f"python train_cli.py --resume {run_dir.name}")
    rows = np.flatnonzero((samples["split"] == "cv").to_numpy())
    if len(rows) > settings.max_reference:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, settings.max_reference, replace=False))
    stored = store.read_table(run_dir, "image_properties")
    if stored is not None and len(stored) == len(samples):
        properties = stored.iloc[rows][list(PROPERTIES)].reset_index(drop=True)
    else:
        paths = image_paths(info, samples)
        properties = measure_all([paths[i] for i in rows])
    groups = samples["group"].to_numpy(dtype=object)[rows] if "group" in samples else None
    return properties, embeddings[rows].astype(np.float32), groups


def new_embeddings(run_dir: Path, paths: list[Path], shas: list[str]) -> np.ndarray:
    """Pretrained features of new images, as the run's reference space was made (through the feature cache)."""
    from core.training.backbone_space import pretrained_features
    from core.training.preprocessing import recorded_preprocessing
    from core.training.run_inputs import load_run_inputs
    from core.training.weights import recorded_backbone
    info, cfg, _ = load_run_inputs(run_dir)
    return pretrained_features(recorded_backbone(info), info["model"], info["weights"]["sha256"],
                               recorded_preprocessing(info), cfg, paths, shas)


def drift_of_run(run_dir: Path, paths: list[Path], inputs: list[str],
                 settings: DriftSettings = DriftSettings()) -> dict:
    """`compare` of new image files with the run's training images, plus the unreadable files with reasons.
    `inputs`: what the files were given as (folders, files), recorded with the result."""
    run_dir = Path(run_dir)
    readable, shas, unreadable = readable_images(paths)
    if len(readable) < 2:
        reason = f" ({unreadable[0]['path']}: {unreadable[0]['reason']})" if unreadable else ""
        raise UserError(f"drift: {len(readable)} readable image{'' if len(readable) == 1 else 's'} among "
                        f"{len(paths)} files{reason}; give at least two image files or a folder of images")
    train_properties, train_embeddings, train_groups = training_side(run_dir, settings)
    result = compare(train_properties, measure_all(readable), train_embeddings,
                     new_embeddings(run_dir, readable, shas), settings, train_groups)
    return {"run_id": run_dir.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "inputs": list(inputs), "n_files": len(paths), "unreadable": unreadable, **result}


def write_drift(run_dir: Path, result: dict) -> Path:
    """drift/<UTC time>.json in the run (atomic); the newest is what the dashboard and the report show."""
    target = store.drift_path(run_dir, datetime.fromisoformat(result["created"]))
    store.write_json(target, result)
    return target
