"""Splits: stratified, group-disjoint, seeded, and refused up front when a class is too small."""
import numpy as np
import pandas as pd
import pytest

from core.errors import UserError
from core.splits import assign_splits


def imbalanced(n_a=60, n_b=30, n_c=15, group_size=None):
    labels = pd.Series(["a"] * n_a + ["b"] * n_b + ["c"] * n_c)
    groups = None
    if group_size:
        groups = pd.Series([f"{label}{i // group_size}" for label, i in
                            zip(labels, list(range(n_a)) + list(range(n_b)) + list(range(n_c)))])
    return labels, groups


def test_every_cv_sample_validates_in_exactly_one_fold_and_test_has_none():
    labels, _ = imbalanced()
    split, fold = assign_splits(labels, None, folds=5, test_size=0.2, seed=0)
    assert set(fold[split == "test"]) == {-1}
    assert set(fold[split == "cv"]) == set(range(5))


def test_stratification_keeps_class_shares_in_test_and_each_fold():
    labels, _ = imbalanced()
    split, fold = assign_splits(labels, None, folds=5, test_size=0.2, seed=0)
    overall = labels.value_counts(normalize=True)
    test_share = labels[split == "test"].value_counts(normalize=True)
    assert (test_share - overall).abs().max() < 0.05
    for k in range(5):
        share = labels[fold == k].value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.1


def test_groups_never_straddle_folds_or_the_test_split():
    labels, groups = imbalanced(group_size=3)
    split, fold = assign_splits(labels, groups, folds=3, test_size=0.2, seed=1)
    table = pd.DataFrame({"group": groups, "split": split, "fold": fold})
    assert (table.groupby("group").split.nunique() == 1).all()
    assert (table.groupby("group").fold.nunique() == 1).all()


def test_same_seed_same_splits_other_seed_other_splits():
    labels, groups = imbalanced(group_size=2)
    first = assign_splits(labels, groups, 4, 0.2, seed=7)
    again = assign_splits(labels, groups, 4, 0.2, seed=7)
    other = assign_splits(labels, groups, 4, 0.2, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])


def test_zero_test_size_means_cross_validation_only():
    labels, _ = imbalanced()
    split, fold = assign_splits(labels, None, folds=5, test_size=0, seed=0)
    assert (split == "cv").all() and (fold >= 0).all()


@pytest.mark.parametrize("groups,needed", [(False, "needs at least 6"), (True, "groups")])
def test_class_too_small_for_the_folds_is_refused_naming_the_class(groups, needed):
    labels, group_col = imbalanced(n_c=4, group_size=1 if groups else None)
    with pytest.raises(UserError) as error:
        assign_splits(labels, group_col, folds=5, test_size=0.2, seed=0)
    message = str(error.value)
    assert "'c'" in message and "4 images" in message and needed in message and "\n" not in message


def test_missing_groups_count_as_their_own_group():
    labels, groups = imbalanced(group_size=5)
    groups[::7] = None
    split, fold = assign_splits(labels, groups, 3, 0.2, seed=0)
    assert (split == "cv").sum() + (split == "test").sum() == len(labels)


@pytest.mark.parametrize("test_size", [0.01, 0.6])
def test_test_size_that_cannot_work_is_refused_up_front(test_size):
    labels, _ = imbalanced()
    with pytest.raises(UserError, match="--test-size"):
        assign_splits(labels, None, folds=5, test_size=test_size, seed=0)
