"""The self-training remedy: pseudo-labels for the confident images of the baseline's unlabelled pool, added to
each fold's training part, the head retrained (head mode: the pool's features are in the run's reference space,
the space the heads train in).

No validation or test information reaches a fold's pseudo-labels: fold k's come from the baseline's fold k head
alone (trained on fold k's training part; the fold ensemble's other members saw fold k's validation images), they
join fold k's training part only, and pool images identical to or near-duplicates of any labelled image (pool
table: labelled_sample_id, near_labelled_sample_id) are never pseudo-labelled, since one of a validation or test
image would carry it into training.

The rule, per fold, with class-specific thresholds so the majority class does not swallow the pool:
  class c may take at most quota_c = ceil(pool_share * prior_c * N) images, N the eligible pool, prior_c c's share
  of the fold's training part (co-training's rule, Blum & Mitchell 1998: unlabelled examples are added per class
  in the labelled data's class ratio); it takes its own most confident ones among those the fold model predicts
  as c with confidence >= min_confidence. Its threshold is therefore max(min_confidence, the confidence of its
  quota_c-th most confident prediction): a per-class threshold chosen from the class's own confidence ranking, as
  class-balanced self-training does (Zou et al., ECCV 2018, CBST), instead of one global cut that the classes the
  model predicts most easily would fill.
One round, the head trained once more from scratch on the labelled training part plus the pseudo-labels with the
run's settings (early stopping on the fold's validation part, which holds no pool image).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.errors import UserError
from core.numbers import percent
from core.store import run_store as store
from core.training.fold_job import ExtraTraining, done_folds, load_fold_model, run_fold
from core.training.run_inputs import fold_parts, load_run_inputs

RULE = ("per fold, class c takes at most ceil(pool_share x prior_c x eligible pool) pool images, its most "
        "confident among those fold k's own head predicts as c with confidence >= min_confidence (Blum & Mitchell "
        "1998's class-ratio quota; per-class thresholds as in Zou et al. 2018, CBST); pool images identical to or "
        "near-duplicates of a labelled image are never pseudo-labelled")
PER_CLASS_COLUMNS = ["fold", "class", "prior", "threshold", "candidates", "quota", "pseudo_labels", "known",
                     "correct", "accuracy"]
PSEUDO_COLUMNS = ["fold", "pool_id", "path", "pseudo_label", "confidence", "known_label", "correct"]


@dataclass(frozen=True)
class SelfTrainingSettings:
    min_confidence: float = 0.5   # no class's threshold is below this
    pool_share: float = 0.5       # at most this share of the eligible pool is pseudo-labelled, split by the prior

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def no_pool_reason(baseline: Path) -> str:
    return (f"the baseline run {baseline.name} has no unlabelled pool; add one with: python train_cli.py pool "
            f"{baseline.name} --add DIR_OR_CSV and finish the experiment with remedies --resume EXP_ID, or give "
            f"--unlabelled DIR_OR_CSV to remedies (it adds the pool once the baseline is trained)")


def select_pseudo_labels(probabilities: np.ndarray, prior: np.ndarray, eligible: np.ndarray,
                         settings: SelfTrainingSettings = SelfTrainingSettings()) -> tuple[np.ndarray, pd.DataFrame]:
    """(pseudo-label per pool row, -1 for none; per class: prior, threshold, candidates, quota, pseudo_labels) by
    the module's rule."""
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    n_eligible = int(eligible.sum())
    chosen = np.full(len(probabilities), -1, dtype=np.int64)
    rows = []
    for c, share in enumerate(prior):
        candidates = np.flatnonzero(eligible & (predicted == c) & (confidence >= settings.min_confidence))
        quota = math.ceil(settings.pool_share * share * n_eligible)
        ranked = candidates[np.argsort(-confidence[candidates], kind="stable")][:quota]
        chosen[ranked] = c
        if len(candidates) <= quota:    # every candidate taken: the floor is the threshold
            threshold = settings.min_confidence
        else:                           # the quota's last one (a quota of 0 takes none)
            threshold = float(confidence[ranked[-1]]) if quota else float("inf")
        rows.append({"class_index": c, "prior": float(share), "threshold": threshold,
                     "candidates": len(candidates), "quota": quota, "pseudo_labels": len(ranked)})
    return chosen, pd.DataFrame(rows)


def fold_probabilities(baseline: Path, fold: int, features: np.ndarray) -> np.ndarray:
    """The baseline's fold `fold` head alone on the pool's features (not the ensemble)."""
    head = load_fold_model(baseline, fold).eval()
    with torch.inference_mode():
        return torch.softmax(head(torch.from_numpy(features)).float(), 1).numpy()


def pseudo_label_folds(baseline: Path, run_dir: Path, settings: SelfTrainingSettings
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(pseudo-labels: one row per fold and pool image, per class: one row per fold and class, the record)."""
    info, cfg, samples = load_run_inputs(run_dir)
    base_info = store.read_json(baseline / store.RUN_JSON)
    if info["train_mode"] != "head" or base_info["train_mode"] != "head":
        raise UserError(f"self-training: runs {baseline.name} and {run_dir.name} must train in head mode (the pool "
                        f"comes as backbone features); train the experiment with --train-mode head")
    if base_info["classes"] != info["classes"]:
        raise UserError(f"self-training: {baseline.name} has other classes than {run_dir.name}; train the remedy")
    pool = store.read_pool(baseline)
    if pool is None:
        raise UserError(no_pool_reason(baseline))
    classes, labels = info["classes"], samples.label_index.to_numpy()
    eligible = pool.apart_from_labelled()
    known = pool.table["known_label"].astype(object).where(pool.table["known_label"].notna(), None).to_numpy()
    pseudo, per_class = [], []
    for k in range(cfg.folds):
        train = fold_parts(samples, k)["train"]
        prior = np.bincount(labels[train], minlength=len(classes)) / max(1, len(train))
        probabilities = fold_probabilities(baseline, k, pool.features)
        chosen, table = select_pseudo_labels(probabilities, prior, eligible, settings)
        rows = np.flatnonzero(chosen >= 0)
        names = np.asarray(classes, dtype=object)[chosen[rows]]
        truth = known[rows]
        pseudo.append(pd.DataFrame({
            "fold": k, "pool_id": pool.ids[rows], "path": pool.table["path"].to_numpy()[rows], "pseudo_label": names,
            "confidence": probabilities[rows].max(axis=1), "known_label": pd.array(truth, dtype="string"),
            "correct": pd.array([None if t is None else bool(t == n) for t, n in zip(truth, names)],
                                dtype="boolean")}))
        per_class.append(table.assign(fold=k, **{"class": [classes[c] for c in table.class_index]}))
    pseudo_labels = pd.concat(pseudo, ignore_index=True)[PSEUDO_COLUMNS]
    counted = (pseudo_labels.groupby(["fold", "pseudo_label"])["correct"]
               .agg(known="count", correct="sum").reset_index().rename(columns={"pseudo_label": "class"}))
    per_class = pd.concat(per_class, ignore_index=True).merge(counted, on=["fold", "class"], how="left")
    per_class[["known", "correct"]] = per_class[["known", "correct"]].fillna(0).astype(int)
    per_class["accuracy"] = (per_class["correct"] / per_class["known"]).where(per_class["known"] > 0)
    record = {"baseline": baseline.name, "settings": settings.to_dict(), "rule": RULE,
              "pool_images": len(pool.table), "eligible": int(eligible.sum()),
              "known_labels": int(pool.table["known_label"].notna().sum()), "folds": cfg.folds}
    return pseudo_labels, per_class[PER_CLASS_COLUMNS], record


def derive_self_training_folds(baseline: Path, run_dir: Path,
                               settings: SelfTrainingSettings = SelfTrainingSettings()) -> list[int]:
    """Write run_dir/self_training/ and train every fold not yet done with its pseudo-labels added to its training
    part; returns the folds trained. Deterministic, so a resumed run recomputes the same pseudo-labels."""
    baseline, run_dir = Path(baseline), Path(run_dir)
    pseudo_labels, per_class, record = pseudo_label_folds(baseline, run_dir, settings)
    with store.atomic_dir(run_dir / store.SELF_TRAINING_DIR) as folder:
        store.write_parquet(folder / store.SELF_TRAINING_FILES["pseudo_labels"], pseudo_labels)
        store.write_parquet(folder / store.SELF_TRAINING_FILES["per_class"], per_class)
        store.write_json(folder / store.SELF_TRAINING_FILES["info"], record)
    info = store.read_json(run_dir / store.RUN_JSON)
    pool = store.read_pool(baseline)
    index = pd.Series(np.arange(len(pool.table)), index=pool.ids)
    done, written = set(done_folds(run_dir, record["folds"])), []
    for k in range(record["folds"]):
        if k in done:
            continue
        mine = pseudo_labels[pseudo_labels.fold == k]
        labels = np.asarray([info["classes"].index(name) for name in mine.pseudo_label], dtype=np.int64)
        run_fold(run_dir, k, extra=ExtraTraining(pool.features[index.loc[mine.pool_id].to_numpy()], labels))
        written.append(k)
    return written


def format_pseudo_labels(per_class: pd.DataFrame) -> str:
    """The CLI's lines: pseudo-labels per class (summed over folds) and their accuracy where the truth is known."""
    total = per_class.groupby("class", sort=False)[["pseudo_labels", "known", "correct"]].sum()
    lines = ["self-training pseudo-labels (all folds; accuracy where the pool's true label is known):"]
    for name, row in total.iterrows():
        accuracy = f"{percent(row.correct / row.known)} correct of {row.known} known" if row.known else "truth unknown"
        lines.append(f"  {name:<20} {int(row.pseudo_labels):>6}  {accuracy}")
    return "\n".join(lines)
