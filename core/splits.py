"""Hold-out test split and k folds: stratified by class, group-aware when groups exist, seeded."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from .errors import UserError


def _units(labels: pd.Series, groups: pd.Series | None) -> pd.Series:
    """The unit a split moves as a whole: the group, or the sample itself when there is none."""
    if groups is None:
        return pd.Series(np.arange(len(labels)), index=labels.index).astype(str)
    # A sample without a group is its own group.
    return groups.where(groups.notna(), "__sample_" + pd.Series(np.arange(len(labels)), index=labels.index).astype(str))


def check_split_settings(folds: int, test_size: float) -> None:
    """The checks that need no data, so the CLI can make them before scanning."""
    if folds < 2:
        raise UserError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if not 0 <= test_size <= 0.5:
        raise UserError(f"--test-size {test_size}: must be between 0 and 0.5 (0 = cross-validation only)")


def check_enough_per_class(labels: pd.Series, groups: pd.Series | None, folds: int, test_size: float) -> None:
    """Fail before any training when a class cannot appear in every fold (and in the test split)."""
    check_split_settings(folds, test_size)
    units = _units(labels, groups)
    needed = folds + (1 if test_size > 0 else 0)
    per_class = pd.DataFrame({"label": labels, "unit": units}).groupby("label")["unit"].agg(["size", "nunique"])
    for label, row in per_class.iterrows():
        if row["nunique"] < needed:
            what = f"{row['size']} images in {row['nunique']} groups" if groups is not None else f"{row['size']} images"
            fix = "add images, lower --folds" + (", or set --test-size 0" if test_size > 0 else "")
            raise UserError(f"Class '{label}' has {what}, but --folds {folds}"
                            f"{' with a test split' if test_size > 0 else ''} needs at least {needed}: {fix}.")


def _test_mask(labels: pd.Series, units: pd.Series, grouped: bool, test_size: float, seed: int) -> np.ndarray:
    mask = np.zeros(len(labels), dtype=bool)
    if test_size == 0:
        return mask
    if not grouped and math.ceil(test_size * len(labels)) < labels.nunique():
        raise UserError(f"--test-size {test_size}: {test_size:.1%} of {len(labels)} images cannot hold one image "
                        f"of each of the {labels.nunique()} classes; raise it or use --test-size 0")
    if grouped:
        # StratifiedGroupKFold's first fold is a stratified, group-disjoint share of about 1/n_splits
        # (the share actually held out is recorded in run.json).
        n_splits = max(2, round(1 / test_size))
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, test_index = next(splitter.split(np.zeros(len(labels)), labels, units))
    else:
        _, test_index = train_test_split(np.arange(len(labels)), test_size=test_size, stratify=labels,
                                         random_state=seed)
    mask[test_index] = True
    return mask


def assign_splits(labels: pd.Series, groups: pd.Series | None, folds: int, test_size: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: split ('cv'/'test') and the fold it validates in (-1 for test)."""
    labels = labels.reset_index(drop=True)
    groups = None if groups is None else groups.reset_index(drop=True)
    check_enough_per_class(labels, groups, folds, test_size)
    units = _units(labels, groups)
    grouped = groups is not None
    is_test = _test_mask(labels, units, grouped, test_size, seed)
    cv_index = np.flatnonzero(~is_test)
    check_enough_per_class(labels[cv_index], None if groups is None else groups[cv_index], folds, 0)

    splitter = (StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed) if grouped
                else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    fold = np.full(len(labels), -1, dtype=np.int64)
    for k, (_, val_index) in enumerate(splitter.split(np.zeros(len(cv_index)), labels[cv_index],
                                                      units[cv_index] if grouped else None)):
        fold[cv_index[val_index]] = k
    split = np.where(is_test, "test", "cv")
    return split, fold
