"""Drift: have new images, as a whole, moved away from the images the run's models were trained on?

Two views, both against the training images (the run's cv split):

- Per image property (brightness, blur, size, ...: image_properties.measure, decoded as training decodes): a
  two-sample Kolmogorov–Smirnov test of the new images' values against the training images', the p-values
  corrected over the properties by Benjamini–Hochberg (scipy.stats.false_discovery_control). A property drifts
  when its corrected p is below `alpha` and the KS statistic D (the largest gap between the two cumulative
  distributions, 0–1) is at least `min_ks`: with many images a negligible shift is also "significant".
- A classifier two-sample test (Lopez-Paz and Oquab, ICLR 2017) on the pretrained features (the run's reference
  space): a logistic regression learns to tell new images from training images; its out-of-fold scores give a
  cross-validated AUC (0.5: indistinguishable), and the one-sided Mann–Whitney U test of the new images' scores
  against the training images' gives the p-value (AUC = U / (n_new * n_train)). Which properties drive it: the
  Spearman correlation of that score with each property over all images.

The verdict says "drift" when a property drifts or the classifier tells the images apart (p < alpha and AUC at
least `min_auc`), and names what moved, in plain words.

Both tests treat images as independent. When images come in clusters (several photos of one item, one emoji
drawn by several vendors), new images of items the run never saw form clusters of their own, and the classifier
test reports them as a difference even when the items come from the same population (bench/bench_ood_drift.py,
"new emoji"): read a classifier-only drift with no property shift as "new kinds of images", not as a broken camera.
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
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from core.analysis.diagnostics.image_properties import PROPERTIES, measure
from core.analysis.similar import normalised
from core.data.dataset import inspect_file
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
    seed: int = 0


# ---------------------------------------------------------------- the tests, on numbers

def property_shifts(train: pd.DataFrame, new: pd.DataFrame, settings: DriftSettings = DriftSettings()) -> pd.DataFrame:
    """One row per property measured in both: medians, KS statistic and p, BH-corrected p, robust shift of the
    median (in training MADs), and whether it drifted."""
    rows = []
    for name in [name for name in PROPERTIES if name in train and name in new]:
        a, b = train[name].dropna().to_numpy(float), new[name].dropna().to_numpy(float)
        if len(a) < 2 or len(b) < 2:
            continue
        test = stats.ks_2samp(a, b)
        spread = 1.4826 * np.median(np.abs(a - np.median(a)))   # robust SD; 0 when most values are equal
        rows.append({"property": name, "n_train": len(a), "n_new": len(b), "median_train": float(np.median(a)),
                     "median_new": float(np.median(b)), "ks": float(test.statistic), "p": float(test.pvalue),
                     "shift_mads": float((np.median(b) - np.median(a)) / spread) if spread > 0 else None})
    frame = pd.DataFrame(rows, columns=["property", "n_train", "n_new", "median_train", "median_new", "ks", "p",
                                        "shift_mads"])
    frame["p_adjusted"] = stats.false_discovery_control(frame["p"]) if len(frame) else []
    frame["drifted"] = (frame["p_adjusted"] < settings.alpha) & (frame["ks"] >= settings.min_ks)
    return frame


def classifier_test(train: np.ndarray, new: np.ndarray, settings: DriftSettings = DriftSettings()) -> dict | None:
    """The classifier two-sample test on embeddings: out-of-fold scores of "new" for every row (training rows
    first), AUC and p. None when either side has fewer images than two folds need."""
    folds = min(settings.folds, len(train), len(new))
    if folds < 2:
        return None
    x = normalised(np.concatenate([train, new]))
    y = np.r_[np.zeros(len(train)), np.ones(len(new))]
    components = min(settings.components, x.shape[1], len(x) - len(x) // folds - 1)
    model = make_pipeline(PCA(components, random_state=settings.seed),
                          LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=settings.seed)
    score = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    test = stats.mannwhitneyu(score[y == 1], score[y == 0], alternative="greater")
    return {"auc": float(roc_auc_score(y, score)), "p": float(test.pvalue), "folds": folds,
            "model": f"PCA({components}) + logistic regression on unit-length pretrained features",
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


def verdict(shifts: pd.DataFrame, classifier: dict | None, top: pd.DataFrame, n_new: int,
            settings: DriftSettings = DriftSettings()) -> tuple[bool, str]:
    """(drifted, one paragraph in plain words)."""
    moved = shifts[shifts["drifted"]].sort_values("ks", ascending=False)
    separable = (classifier is not None and classifier["p"] < settings.alpha
                 and classifier["auc"] >= settings.min_auc)
    if classifier is None:
        told = "too few images for the classifier test"
    else:
        p = "p < 0.001" if classifier["p"] < 1e-3 else f"p = {classifier['p']:.3f}"
        told = f"AUC {classifier['auc']:.2f}, {p}"
    if moved.empty and not separable:
        return False, (f"No drift detected: the {n_new} new images look like the training images. No image "
                       f"property shifted (Kolmogorov–Smirnov, Benjamini–Hochberg at {settings.alpha:g}), and a "
                       f"classifier on pretrained features tells them from training images no better than "
                       f"chance allows ({told}).")
    parts = [f"Drift: the {n_new} new images differ from the training images."]
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
            new_embeddings: np.ndarray, settings: DriftSettings = DriftSettings()) -> dict:
    """The drift result of new images against training images (properties and embeddings in the same row order
    on each side): `property_shifts`, `classifier_test` with its `drivers`, and the verdict."""
    shifts = property_shifts(train_properties, new_properties, settings)
    classifier = classifier_test(train_embeddings, new_embeddings, settings)
    top = pd.DataFrame(columns=["property", "spearman"])
    if classifier is not None:
        both = pd.concat([train_properties, new_properties], ignore_index=True)
        top = drivers(both, classifier.pop("scores"))
    drifted, text = verdict(shifts, classifier, top, len(new_embeddings), settings)
    return {"drifted": drifted, "verdict": text, "n_train": len(train_embeddings), "n_new": len(new_embeddings),
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


def training_side(run_dir: Path, settings: DriftSettings) -> tuple[pd.DataFrame, np.ndarray]:
    """Properties and pretrained features of the run's training (cv) images, a seeded sample of at most
    `max_reference`; properties from the diagnostics' image_properties.parquet when present, else measured."""
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
    return properties, embeddings[rows].astype(np.float32)


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
    train_properties, train_embeddings = training_side(run_dir, settings)
    result = compare(train_properties, measure_all(readable), train_embeddings,
                     new_embeddings(run_dir, readable, shas), settings)
    return {"run_id": run_dir.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "inputs": list(inputs), "n_files": len(paths), "unreadable": unreadable, **result}


def write_drift(run_dir: Path, result: dict) -> Path:
    """drift/<UTC time>.json in the run (atomic); the newest is what the dashboard and the report show."""
    target = store.drift_path(run_dir, datetime.fromisoformat(result["created"]))
    store.write_json(target, result)
    return target
