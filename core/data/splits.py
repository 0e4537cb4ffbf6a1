"""Hold-out test split and k folds over split units: stratified by class, unit-disjoint, seeded.

A split unit is what moves as a whole: a group of the manifest, files with identical bytes, and (on request)
near-duplicates, joined transitively (`join_units`). scikit-learn's StratifiedGroupKFold cannot promise a
class in every part nor a hold-out share other than 1/n_splits, so units are placed by one small greedy rule
(`_place_units`): first one unit of every class into each part that must hold every class, then every other
unit, largest first, into a part it does not push past its class targets (least squares), else the closest.
A unit with several labels (identical files labelled differently) counts towards each of its labels.

The placement depends on the units' content, not on the order they are listed in: units are taken in the order
of a keyed hash (sha256 of the seed and the sorted sha256 of the unit's files), and every unit ranks the parts
by its own keyed hash (weighted rendezvous hashing) and joins the first one that still has room. So the same
images give the same splits from a folder or a CSV in any row order, and a subset of them (a cleaned
manifest) keeps most assignments: a missing unit only frees room that a later unit may take.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from core.config import check_split_settings
from core.errors import UserError

SHARE_TOLERANCE = 0.05   # the hold-out share may miss --test-size by this much before the run warns


def join_units(n: int, keys: Sequence[Sequence | None] = (), pairs: np.ndarray | None = None) -> np.ndarray:
    """Unit id (0..m-1) per sample: connected components of 'same key' for each key column (a missing key
    links nothing) and of the given (a, b) index pairs."""
    rows, cols = [np.arange(n)], [np.arange(n)]
    for key in keys:
        if key is None:
            continue
        codes, _ = pd.factorize(pd.Series(list(key)), use_na_sentinel=True)
        members = np.flatnonzero(codes >= 0)
        first = pd.Series(members).groupby(codes[members]).transform("first").to_numpy()
        rows.append(members)
        cols.append(first)
    if pairs is not None and len(pairs):
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        rows.append(pairs[:, 0])
        cols.append(pairs[:, 1])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _unit_ids(n: int, units) -> np.ndarray:
    return np.arange(n) if units is None else join_units(n, [units])


NAMED_SMALL_CLASSES = 5   # classes named in the one line that refuses them; the rest are counted (and listed in a file)


def needed_units(folds: int, test_size: float) -> int:
    """Split units a class needs: one in every fold's validation part, and one in the test split if there is one."""
    return folds + (1 if test_size > 0 else 0)


def small_classes(labels: pd.Series, units, folds: int, test_size: float) -> pd.DataFrame:
    """The classes that cannot appear in every fold (and in the test split): label, images, units (the split units
    holding them), smallest first. `units`: a split-unit key per sample (missing = the sample alone), or None."""
    labels = pd.Series(np.asarray(labels))
    unit = _unit_ids(len(labels), units)
    per_class = (pd.DataFrame({"label": labels, "unit": unit}).groupby("label")["unit"]
                 .agg(images="size", units="nunique").reset_index())
    small = per_class[per_class["units"] < needed_units(folds, test_size)]
    return small.sort_values(["units", "images", "label"], kind="stable").reset_index(drop=True)


def small_classes_message(small: pd.DataFrame, folds: int, test_size: float, grouped: bool,
                          listed_in: str | None = None, can_drop: bool = False) -> str:
    """One line, whatever the number of classes: the first few named with their counts, the rest counted (and the
    file that lists them all, when given), and what to do."""
    needed = needed_units(folds, test_size)

    def counts(row) -> str:
        return (f"{row.images} images in {row.units} group{'s' if row.units != 1 else ''}" if grouped
                else f"{row.images} images")
    fixes = ["add images", "lower --folds", *(["set --test-size 0"] if test_size > 0 else []),
             *(["pass --drop-small-classes to train without " + ("it" if len(small) == 1 else "them")]
               if can_drop else [])]
    fix = ", ".join(fixes[:-1]) + ", or " + fixes[-1]
    setting = f"--folds {folds}{' with a test split' if test_size > 0 else ''}"
    grouping = " (a group, identical files and near-duplicates each count once)" if grouped else ""
    if len(small) == 1:
        row = next(small.itertuples())
        return f"Class '{row.label}' has {counts(row)}{grouping}, but {setting} needs at least {needed}: {fix}."
    named = "; ".join(f"'{row.label}' ({counts(row)})" for row in small.head(NAMED_SMALL_CLASSES).itertuples())
    rest = len(small) - NAMED_SMALL_CLASSES
    more = f" and {rest} more" if rest > 0 else ""
    listed = f" (all listed in {listed_in})" if listed_in else ""
    return (f"{len(small)} classes are too small for {setting}, which needs at least {needed} "
            f"{'groups' if grouped else 'images'} per class{grouping}: {named}{more}{listed}; {fix}.")


def check_enough_per_class(labels: pd.Series, units, folds: int, test_size: float) -> None:
    """Fail before any training when a class cannot appear in every fold (and in the test split), naming every
    such class in one line (the first few, then a count).

    `units`: a split-unit key per sample (group names or unit ids; missing = the sample alone), or None."""
    check_split_settings(folds, test_size)
    labels = pd.Series(np.asarray(labels))
    unit = _unit_ids(len(labels), units)
    small = small_classes(labels, unit, folds, test_size)
    if len(small):   # first: leaving them out may also be what lets the test split hold every class
        raise UserError(small_classes_message(small, folds, test_size, len(np.unique(unit)) < len(unit)))
    if test_size > 0 and np.ceil(test_size * len(labels)) < labels.nunique():
        raise UserError(f"--test-size {test_size}: {test_size:.1%} of {len(labels)} images cannot hold one image "
                        f"of each of the {labels.nunique()} classes; raise it or use --test-size 0")


class _Placement:
    """Units into parts: class counts per part against each part's share of every class.

    digests: a keyed content hash per unit (bytes); it orders the units and ranks the parts for each unit."""

    def __init__(self, counts: sparse.csr_matrix, shares: Sequence[float], digests: Sequence[bytes], stage: str):
        self.counts, self.by_class = counts, counts.tocsc()
        totals = np.asarray(counts.sum(axis=0)).ravel()
        self.target = np.asarray(shares, dtype=float)[:, None] * totals[None, :]
        self.filled = np.zeros_like(self.target)
        self.part = np.full(counts.shape[0], -1)
        self.size = np.asarray(counts.sum(axis=1)).ravel()
        self.tiebreak = np.argsort(np.argsort(np.array(digests, dtype=object), kind="stable"), kind="stable")
        self.preference = _part_preference(digests, shares, stage)   # rank of each part per unit, 0 = first

    def classes_of(self, unit: int) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.counts.indptr[unit], self.counts.indptr[unit + 1]
        return self.counts.indices[start:end], self.counts.data[start:end]

    def place(self, unit: int, part: int) -> None:
        classes, n = self.classes_of(unit)
        self.part[unit] = part
        self.filled[part, classes] += n

    def cost_change(self, unit: int) -> np.ndarray:
        """Per part: change of sum((filled - target)^2) if the unit joined it."""
        classes, n = self.classes_of(unit)
        return (n * (2 * (self.filled[:, classes] - self.target[:, classes]) + n)).sum(axis=1)

    def open_units_of(self, cls: int, part: int) -> np.ndarray:
        """Unplaced units holding class `cls`, smallest first, then those that rank `part` highest."""
        units = self.by_class.indices[self.by_class.indptr[cls]:self.by_class.indptr[cls + 1]]
        units = units[self.part[units] < 0]
        return units[np.lexsort((self.tiebreak[units], self.preference[units, part], self.size[units]))]


def _part_preference(digests: Sequence[bytes], shares: Sequence[float], stage: str) -> np.ndarray:
    """Per unit, the rank of every part (weighted rendezvous hashing: part p scores -ln(u_p) / share_p for a
    uniform u_p from the unit's digest, lowest first), so a unit wants the same part whatever else is listed."""
    shares = np.asarray(shares, dtype=float)
    stream = b"".join(hashlib.shake_256(d + stage.encode()).digest(8 * len(shares)) for d in digests)
    uniform = (np.frombuffer(stream, dtype=">u8").astype(float).reshape(len(digests), len(shares)) + 0.5) / 2.0 ** 64
    score = -np.log(uniform) / np.maximum(shares, 1e-12)
    return np.argsort(np.argsort(score, axis=1, kind="stable"), axis=1, kind="stable")


def _place_units(counts: sparse.csr_matrix, shares: Sequence[float], cover: Sequence[int], digests: Sequence[bytes],
                 stage: str, reserve: int = 0, class_names: Sequence[str] = (),
                 fixed: np.ndarray | None = None) -> np.ndarray:
    """Part index per unit (rows of `counts`: class counts per unit).

    fixed: a part per unit to keep (-1: place it), placed before anything else.
    Every part in `cover` first gets one unit of each class (rarest class first), as long as `reserve` units of
    each class stay outside the covered parts (a hold-out must leave enough groups for every fold)."""
    placement = _Placement(counts, shares, digests, stage)
    units_of_class = np.diff(placement.by_class.indptr)
    outside = units_of_class.copy()   # units of each class not in a covered part

    def may_join(unit: int, part: int) -> bool:
        return reserve == 0 or part not in cover or bool((outside[placement.classes_of(unit)[0]] > reserve).all())

    def place(unit: int, part: int) -> None:
        placement.place(unit, part)
        if part in cover:
            outside[placement.classes_of(unit)[0]] -= 1

    for unit in np.flatnonzero(fixed >= 0) if fixed is not None else ():
        place(int(unit), int(fixed[unit]))

    for cls in np.argsort(units_of_class, kind="stable"):
        for part in cover:
            if placement.filled[part, cls] > 0:
                continue
            unit = next((u for u in placement.open_units_of(cls, part) if may_join(u, part)), None)
            if unit is None:
                if reserve:
                    raise UserError(f"Class '{class_names[cls]}': none of its groups can go to the test split "
                                    f"without leaving fewer than {reserve} for the folds (groups that hold several "
                                    f"classes tie them together); lower --folds or set --test-size 0")
                continue   # a fold without this class: only when units with several classes leave no choice
            place(unit, part)

    order = np.lexsort((placement.tiebreak, -placement.size))
    fill_target = placement.target.sum(axis=1)
    for unit in order[placement.part[order] < 0]:
        change = placement.cost_change(unit)
        if reserve:
            change[[part for part in cover if not may_join(unit, part)]] = np.inf
        room = np.flatnonzero(change < -1e-9)   # parts it brings closer to their targets
        if len(room):   # the one this unit ranks first: independent of which other units are listed
            place(unit, int(room[np.argmin(placement.preference[unit, room])]))
            continue
        best = np.flatnonzero(change <= change.min() + 1e-9)
        if len(best) > 1:   # ties: the part least filled against its target
            best = best[[np.argmin(placement.filled[best].sum(axis=1) / np.maximum(fill_target[best], 1e-12))]]
        place(unit, int(best[0]))
    return placement.part


def _unit_class_counts(unit: np.ndarray, label_codes: np.ndarray, n_classes: int) -> sparse.csr_matrix:
    n_units = int(unit.max()) + 1
    return sparse.csr_matrix((np.ones(len(unit), dtype=np.int64), (unit, label_codes)), shape=(n_units, n_classes))


def unit_digests(unit: np.ndarray, content: Sequence[str], labels: Sequence[str], seed: int) -> list[bytes]:
    """Per unit id: sha256 of the seed and the unit's content keys (its files' sha256) and labels, sorted, so it
    depends on what the unit holds and the seed only (labels only tell apart units of identical files)."""
    content, labels = np.asarray(content, dtype=str), np.asarray(labels, dtype=str)
    order = np.lexsort((labels, content, unit))
    members = np.split(order, np.flatnonzero(np.diff(unit[order])) + 1)
    return [hashlib.sha256("\n".join([str(seed), *content[m], "", *labels[m]]).encode()).digest() for m in members]


def assign_splits(labels: pd.Series, units, folds: int, test_size: float, seed: int,
                  content: Sequence[str] | None = None,
                  keep: tuple[np.ndarray, np.ndarray] | None = None, repeat: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: split ('cv'/'test') and the fold it validates in (-1 for test).

    `units`: a split-unit key per sample (group names or `join_units` ids; missing = the sample alone) or None.
    `content`: a content key per sample (the file's sha256): the splits depend on it and `seed`, not on the
    samples' order. Without it, the position stands in (for callers that have no files).
    `keep`: (split, fold) per sample to keep (split None for a sample to place), e.g. another run's splits for
    the images it shares; a unit keeps the split and fold of its first kept member.
    `repeat`: which draw of the folds (repeated k-fold): the test split is the same for every repeat.
    Every class is in the test split and in every fold's validation part (refused up front when it cannot be);
    the held-out share is as close to `test_size` as the units allow (see `share_warning`)."""
    labels = pd.Series(np.asarray(labels))
    unit = _unit_ids(len(labels), None if units is None else list(units))
    check_enough_per_class(labels, unit, folds, test_size)
    codes, class_names = pd.factorize(labels, sort=True)
    counts = _unit_class_counts(unit, codes, len(class_names))
    content = [str(i) for i in range(len(labels))] if content is None else list(content)
    digests = unit_digests(unit, content, labels.astype(str), seed)
    kept_split, kept_fold = _kept_per_unit(unit, keep, counts.shape[0])

    in_test = np.zeros(counts.shape[0], dtype=bool)
    if test_size > 0:
        in_test = _place_units(counts, [1 - test_size, test_size], cover=[1], digests=digests, stage="test",
                               reserve=folds, class_names=list(class_names), fixed=kept_split) == 1
    cv_units = np.flatnonzero(~in_test)
    unit_fold = np.full(counts.shape[0], -1)
    fold_digests = [hashlib.sha256(digests[u] + f"repeat {repeat}".encode()).digest() if repeat else digests[u]
                    for u in cv_units]
    unit_fold[cv_units] = _place_units(counts[cv_units], [1 / folds] * folds, cover=range(folds),
                                       digests=fold_digests, stage="folds", fixed=kept_fold[cv_units])
    return np.where(in_test[unit], "test", "cv"), unit_fold[unit]


def _kept_per_unit(unit: np.ndarray, keep: tuple[np.ndarray, np.ndarray] | None,
                   n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: test-phase part to keep (0 cv, 1 test, -1 none) and fold to keep (-1 none)."""
    split_part, fold = np.full(n_units, -1), np.full(n_units, -1)
    if keep is None:
        return split_part, fold
    split, kept_fold = (np.asarray(x, dtype=object) for x in keep)
    for i in np.flatnonzero(pd.notna(split))[::-1]:   # reversed: the first kept member of a unit wins
        split_part[unit[i]] = 1 if split[i] == "test" else 0
        fold[unit[i]] = int(kept_fold[i]) if split[i] == "cv" and pd.notna(kept_fold[i]) else -1
    return split_part, fold


def share_warning(test_size: float, held_out: float) -> str | None:
    """One line when the held-out share misses the request by more than SHARE_TOLERANCE, else None."""
    if abs(held_out - test_size) <= SHARE_TOLERANCE:
        return None
    return (f"--test-size {test_size}: {held_out:.1%} of the images are held out, because groups (with identical "
            f"files and near-duplicates joined) move whole and every class needs one in the test split")
