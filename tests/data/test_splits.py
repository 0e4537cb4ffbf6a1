"""Splits: unit-disjoint, every class in the test split and in every fold, the share asked for, seeded,
and refused up front when a class is too small."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core.data.splits import (
    NAMED_SMALL_CLASSES,
    SHARE_TOLERANCE,
    assign_splits,
    join_units,
    share_warning,
    small_classes,
    small_classes_message,
)
from core.errors import UserError


def imbalanced(n_a=60, n_b=30, n_c=15, group_size=None):
    labels = pd.Series(["a"] * n_a + ["b"] * n_b + ["c"] * n_c)
    groups = None
    if group_size:
        groups = pd.Series([f"{label}{i // group_size}" for label, i in
                            zip(labels, list(range(n_a)) + list(range(n_b)) + list(range(n_c)))])
    return labels, groups


def grouped(groups_per_class, group_size):
    """Classes c0, c1, ... with the given number of groups each, every group `group_size` images."""
    labels, groups = [], []
    for c, n_groups in enumerate(groups_per_class):
        for g in range(n_groups):
            labels += [f"c{c}"] * group_size
            groups += [f"c{c}-g{g}"] * group_size
    return pd.Series(labels), pd.Series(groups)


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


@pytest.mark.parametrize("seed", range(20))
def test_with_few_groups_every_class_is_still_in_the_test_split(seed):
    # 6 groups per class, 3 folds, 10% test: StratifiedGroupKFold's first fold missed a class in 4 of 20 seeds
    labels, groups = grouped([6, 6, 6], group_size=2)
    split, fold = assign_splits(labels, groups, folds=3, test_size=0.1, seed=seed)
    assert set(labels[split == "test"]) == {"c0", "c1", "c2"}
    for k in range(3):
        assert set(labels[fold == k]) == {"c0", "c1", "c2"}


@pytest.mark.parametrize("test_size", [0.1, 0.25, 0.3, 0.4, 0.5])
def test_grouped_hold_out_share_is_close_to_the_request(test_size):
    # round(1 / 0.4) = 2 splits used to hold out half the images when 40% was asked
    labels, groups = grouped([40, 25, 15], group_size=2)
    split, _ = assign_splits(labels, groups, folds=3, test_size=test_size, seed=0)
    assert abs((split == "test").mean() - test_size) <= 0.02


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
    labels, group_col = imbalanced(n_c=8, group_size=2 if groups else None)
    if not groups:
        labels, _ = imbalanced(n_c=4)
    with pytest.raises(UserError) as error:
        assign_splits(labels, group_col, folds=5, test_size=0.2, seed=0)
    message = str(error.value)
    assert "'c'" in message and f"{4 if not groups else 8} images" in message and needed in message
    assert "\n" not in message


def test_every_small_class_is_named_in_one_line_however_many_there_are():
    """200 thin classes: the line names the thinnest few with their counts and counts the rest."""
    labels = pd.Series(["big"] * 40 + ["other"] * 40 + [f"thin{i:03d}" for i in range(200) for _ in range(1 + i % 4)])
    with pytest.raises(UserError) as error:
        assign_splits(labels, None, folds=5, test_size=0.2, seed=0)
    message = str(error.value)
    assert "\n" not in message and len(message) < 600
    assert message.startswith("200 classes are too small for --folds 5 with a test split, which needs at least 6")
    assert "'thin000' (1 images)" in message and f"and {200 - NAMED_SMALL_CLASSES} more" in message
    assert "'big'" not in message and "'thin003'" not in message   # thin003 has 4 images: not among the first


def test_small_classes_lists_them_all_smallest_first_with_their_units():
    labels, groups = grouped([6, 2, 3, 8], group_size=2)
    small = small_classes(labels, groups, folds=3, test_size=0.2)
    assert small.to_dict("records") == [{"label": "c1", "images": 4, "units": 2},
                                        {"label": "c2", "images": 6, "units": 3}]
    text = small_classes_message(small, 3, 0.2, grouped=True, listed_in="runs/small-classes.csv", can_drop=True)
    assert "'c1' (4 images in 2 groups); 'c2' (6 images in 3 groups)" in text
    assert "(all listed in runs/small-classes.csv)" in text
    assert text.endswith("or pass --drop-small-classes to train without them.")
    assert small_classes(labels, groups, folds=2, test_size=0).empty


def test_samples_without_a_group_are_each_their_own_unit():
    labels, groups = imbalanced(group_size=5)
    groups[::7] = None
    split, fold = assign_splits(labels, groups, 3, 0.2, seed=0)
    loose = groups.isna().to_numpy()
    # the 15 ungrouped samples are not moved as one block: they land in several parts
    assert len(set(zip(split[loose], fold[loose]))) > 1
    named = pd.DataFrame({"group": groups[~loose], "fold": fold[~loose]})
    assert (named.groupby("group").fold.nunique() == 1).all()


@pytest.mark.parametrize("test_size", [0.01, 0.6])
def test_test_size_that_cannot_work_is_refused_up_front(test_size):
    labels, _ = imbalanced()
    with pytest.raises(UserError, match="--test-size"):
        assign_splits(labels, None, folds=5, test_size=test_size, seed=0)


def test_units_join_groups_identical_files_and_near_pairs_transitively():
    groups = ["g1", "g1", None, None, "g2", None, None]
    sha = ["x", "y", "y", "z", "w", "v", "u"]       # 1 and 2 are the same file: 0-1-2 one unit
    pairs = np.array([[3, 4]])                      # 3 looks like 4 (group g2)
    unit = join_units(7, [groups, sha], pairs)
    assert unit[0] == unit[1] == unit[2] and unit[3] == unit[4]
    assert len({unit[0], unit[3], unit[5], unit[6]}) == 4


def test_identical_files_with_different_labels_are_one_unit_and_the_run_still_splits():
    labels, _ = imbalanced()
    sha = [f"h{i}" for i in range(len(labels))]
    sha[3] = sha[70] = sha[100] = "same"           # one image filed as a, b and c
    unit = join_units(len(labels), [sha])
    split, fold = assign_splits(labels, unit, folds=5, test_size=0.2, seed=0)
    assert len({(split[i], fold[i]) for i in (3, 70, 100)}) == 1
    assert set(labels[split == "test"]) == {"a", "b", "c"}


def test_share_warning_only_beyond_the_tolerance():
    assert share_warning(0.2, 0.2 + SHARE_TOLERANCE / 2) is None
    message = share_warning(0.1, 0.167)
    assert "16.7%" in message and "--test-size 0.1" in message and "\n" not in message


@st.composite
def datasets(draw):
    folds = draw(st.integers(2, 5))
    n_classes = draw(st.integers(2, 5))
    test_size = draw(st.floats(0.1, 0.5))
    max_group = draw(st.integers(1, 4))
    labels, groups = [], []
    for c in range(n_classes):
        for g in range(draw(st.integers(folds + 1, 40))):   # enough groups for the test split and every fold
            size = draw(st.integers(1, max_group))
            labels += [f"c{c}"] * size
            groups += [f"c{c}-{g}"] * size
    return pd.Series(labels), pd.Series(groups), folds, test_size, draw(st.integers(0, 10_000))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_property_unit_disjoint_every_class_everywhere_share_as_asked(case):
    labels, groups, folds, test_size, seed = case
    assume(np.ceil(test_size * len(labels)) >= labels.nunique())   # else refused up front (tested above)
    split, fold = assign_splits(labels, groups, folds, test_size, seed)
    table = pd.DataFrame({"label": labels, "group": groups, "split": split, "fold": fold})
    assert (table.groupby("group").split.nunique() == 1).all()          # no unit on both sides
    assert (table.groupby("group").fold.nunique() == 1).all()           # no unit across folds
    classes = set(labels)
    assert set(table[table.split == "test"].label) == classes           # every class in test
    for k in range(folds):
        assert set(table[table.fold == k].label) == classes             # every class in every fold's validation
    held_out = (split == "test").mean()
    largest_group = groups.value_counts().max()
    groups_per_class = table.groupby("label").group.nunique()
    # the share can be met when every class's test quota holds a whole group and leaves groups for every fold,
    # and when rounding each class's quota to whole groups (up to half the largest group each) stays within the
    # tolerance: 6 + 5 single images at 23.4% can only hold out 2 or 3 of 11 (18% or 27%), before and after #25
    if ((labels.value_counts() * test_size).min() >= largest_group
            and (groups_per_class * (1 - test_size)).min() >= folds + 1
            and labels.nunique() * largest_group / 2 <= SHARE_TOLERANCE * len(labels)):
        assert abs(held_out - test_size) <= SHARE_TOLERANCE
    assert (share_warning(test_size, held_out) is None) == (abs(held_out - test_size) <= SHARE_TOLERANCE)
    assert ((fold == -1) == (split == "test")).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(0, 12))
def test_property_units_with_mixed_labels_never_straddle(seed, folds, n_conflicts):
    labels, _ = imbalanced()
    rng = np.random.default_rng(seed)
    sha = [f"h{i}" for i in range(len(labels))]
    for i in range(n_conflicts):                   # pairs of identical files, often with different labels
        a, b = rng.choice(len(labels), 2, replace=False)
        sha[b] = sha[a]
    unit = join_units(len(labels), [sha])
    split, fold = assign_splits(labels, unit, folds, 0.2, seed)
    table = pd.DataFrame({"unit": unit, "split": split, "fold": fold})
    assert (table.groupby("unit")[["split", "fold"]].nunique() == 1).all().all()
    assert set(labels[split == "test"]) == {"a", "b", "c"}


# ---------------------------------------------------------------- splits from content, not order (#25)

def listed(n=200, seed=0):
    """n images of three classes, each with a content key (its file's sha256, here random hex)."""
    rng = np.random.default_rng(seed)
    labels = pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]))
    content = pd.Series([f"{rng.integers(2 ** 63):016x}" for _ in range(n)])
    return labels, content


def by_content(labels, content, folds=5, seed=3, **kwargs) -> pd.Series:
    split, fold = assign_splits(labels, None, folds, 0.2, seed, content=content, **kwargs)
    return pd.Series(list(zip(split, fold)), index=content.to_numpy())


def test_shuffled_rows_give_every_image_the_same_split_and_fold():
    labels, content = listed()
    order = np.random.default_rng(1).permutation(len(labels))
    shuffled = by_content(labels[order].reset_index(drop=True), content[order].reset_index(drop=True))
    assert shuffled.sort_index().equals(by_content(labels, content).sort_index())


def test_grouped_units_keep_their_place_when_the_rows_are_shuffled():
    labels, groups = imbalanced(group_size=3)
    content = pd.Series([f"file{i}" for i in range(len(labels))])
    order = np.random.default_rng(2).permutation(len(labels))
    first = assign_splits(labels, groups, 3, 0.2, seed=5, content=content)
    again = assign_splits(labels[order].reset_index(drop=True), groups[order].reset_index(drop=True), 3, 0.2,
                          seed=5, content=content[order].reset_index(drop=True))
    assert all(np.array_equal(a[order], b) for a, b in zip(first, again))


def test_a_subset_keeps_the_split_and_fold_of_nearly_every_image_it_shares():
    labels, content = listed()
    whole = by_content(labels, content)
    kept = np.sort(np.random.default_rng(4).choice(len(labels), len(labels) - 5, replace=False))
    subset = by_content(labels[kept].reset_index(drop=True), content[kept].reset_index(drop=True))
    # 5 of 200 images gone: only a unit that a missing one left room for moves (an order-based draw kept ~1 in 4)
    assert (subset == whole.loc[subset.index]).mean() >= 0.9


def test_the_seed_still_chooses_the_draw():
    labels, content = listed()
    assert not by_content(labels, content, seed=1).equals(by_content(labels, content, seed=2))


def test_kept_images_keep_their_split_and_fold_and_new_ones_are_placed_around_them():
    labels, content = listed()
    old = by_content(labels, content)
    new_labels, new_content = listed(40, seed=9)
    labels2 = pd.concat([labels[10:], new_labels], ignore_index=True)   # 10 dropped, 40 new
    content2 = pd.concat([content[10:], new_content], ignore_index=True)
    keep_split = np.array([old[c][0] if c in old.index else None for c in content2], dtype=object)
    keep_fold = np.array([old[c][1] if c in old.index else -1 for c in content2])
    # a new seed: without `keep` the draw would differ, so what stays is what was kept
    split, fold = assign_splits(labels2, None, 5, 0.2, seed=11, content=content2, keep=(keep_split, keep_fold))
    shared = pd.notna(keep_split)
    assert (split[shared] == keep_split[shared]).all() and (fold[shared] == keep_fold[shared]).all()
    assert set(fold[split == "cv"]) == set(range(5)) and set(labels2[split == "test"]) == {"a", "b", "c"}
    assert abs((split == "test").mean() - 0.2) <= SHARE_TOLERANCE


def test_a_repeat_draws_the_folds_anew_and_keeps_the_test_split():
    labels, content = listed()
    first = assign_splits(labels, None, 5, 0.2, seed=3, content=content)
    second = assign_splits(labels, None, 5, 0.2, seed=3, content=content, repeat=1)
    assert np.array_equal(first[0], second[0])                      # the same test images
    assert (first[1] != second[1]).mean() > 0.5                     # most cv images validate in another fold
    assert set(second[1][second[0] == "cv"]) == set(range(5))
    assert all(np.array_equal(a, b) for a, b in zip(second, assign_splits(labels, None, 5, 0.2, seed=3,
                                                                          content=content, repeat=1)))
