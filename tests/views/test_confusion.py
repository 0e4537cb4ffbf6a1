"""Confusion at any class count: the most confused pairs, the clustered limited matrix, the full CSV."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd

from core.views import confusion


def predictions(rows: list[tuple[int, int, int]], role: str = "val") -> pd.DataFrame:
    """(fold, label, pred) rows of fold models."""
    frame = pd.DataFrame(rows, columns=["fold", "label", "pred"])
    frame["model"] = "fold" + frame["fold"].astype(str)
    frame["role"] = role
    return frame


def test_pairs_are_directed_out_of_fold_mistakes_with_their_spread_over_folds() -> None:
    classes = ["a", "b", "c"]
    # fold 0: 4 a, 1 of them called b; fold 1: 4 a, 3 of them called b; one b called a; c always right.
    rows = [(0, 0, 0)] * 3 + [(0, 0, 1)] + [(1, 0, 0)] + [(1, 0, 1)] * 3 + [(0, 1, 0), (0, 1, 1), (1, 2, 2)]
    train_noise = predictions([(0, 2, 0)] * 10, role="train")   # train rows are not out-of-fold
    pairs = confusion.confused_pairs(pd.concat([predictions(rows), train_noise]), classes)
    assert pairs[["true", "predicted", "count"]].values.tolist() == [["a", "b", 4], ["b", "a", 1]]
    first = pairs.iloc[0]
    assert first["share"] == 4 / 8 and (first["fold min"], first["fold max"]) == (0.25, 0.75)
    # b has validation images in fold 0 only: its spread is over that fold alone.
    assert (pairs.iloc[1]["fold min"], pairs.iloc[1]["fold max"]) == (0.5, 0.5)
    assert (first["true_index"], first["pred_index"]) == (0, 1)


def test_pairs_keep_the_most_frequent() -> None:
    rows = [(0, 0, 1)] * 5 + [(0, 1, 2)] * 3 + [(0, 2, 0)]
    pairs = confusion.confused_pairs(predictions(rows), ["a", "b", "c"], top=2)
    assert pairs["count"].tolist() == [5, 3]


def test_clustered_matrix_groups_confused_classes_and_sums_the_rest_into_other() -> None:
    n = 40
    classes = [f"k{i}" for i in range(n)]
    matrix = np.diag(np.full(n, 20.0))
    # Two confused groups far apart in class order: {0, 30, 5} and {10, 39}; every other class is always right.
    for a, b, count in ((0, 30, 6), (30, 5, 5), (5, 0, 4), (10, 39, 7), (39, 10, 3)):
        matrix[a, b] += count
        matrix[a, a] -= count
    matrix[1, 2] = 1   # one stray mistake
    matrix[1, 1] -= 1
    limited, names = confusion.clustered_confusion(matrix, classes, max_classes=6)
    assert names[-1] == "other" and len(names) == 7 and limited.shape == (7, 7)
    assert limited.sum() == matrix.sum()                      # every image is still counted
    assert set(names[:-1]) >= {"k0", "k30", "k5", "k10", "k39"}
    order = names[:-1]
    group = sorted(order.index(c) for c in ("k0", "k30", "k5"))
    assert group[-1] - group[0] == 2                           # the three sit next to each other
    assert abs(order.index("k10") - order.index("k39")) == 1
    # Rows of kept classes still sum to their class's images.
    assert limited[names.index("k0")].sum() == matrix[0].sum()


def test_clustered_matrix_of_few_classes_has_no_other() -> None:
    matrix = np.array([[5, 1, 0], [2, 4, 0], [0, 0, 6]])
    limited, names = confusion.clustered_confusion(matrix, ["a", "b", "c"], max_classes=25)
    assert sorted(names) == ["a", "b", "c"] and limited.sum() == matrix.sum()
    assert abs(names.index("a") - names.index("b")) == 1


def test_csv_holds_the_full_matrix() -> None:
    matrix = np.array([[5, 1], [2, 4]])
    frame = pd.read_csv(io.BytesIO(confusion.confusion_csv(matrix, ["a", "b"])), index_col=0)
    assert frame.index.tolist() == ["a", "b"] and frame.columns.tolist() == ["a", "b"]
    assert frame.to_numpy().tolist() == [[5, 1], [2, 4]]


def test_both_sides_of_a_pair_are_its_mistakes_either_way_most_confident_first() -> None:
    rows = pd.DataFrame({"sample_id": range(6), "label": [0, 0, 1, 1, 2, 0], "pred": [1, 0, 0, 2, 0, 1],
                         "confidence": [0.6, 0.9, 0.8, 0.7, 0.95, 0.5]})
    assert confusion.both_sides(rows, 0, 1)["sample_id"].to_list() == [2, 0, 5]
    assert confusion.both_sides(rows, 1, 0)["sample_id"].to_list() == [2, 0, 5]


def test_overlapping_pairs_are_the_found_ones_of_the_diagnostics() -> None:
    pair = {"a": "dog", "b": "owl", "share": 0.4, "fold_min": 0.3, "fold_max": 0.5, "confused": 40, "expected": 9.04,
            "significant": True}
    diagnostics = {"overlapping_classes": {"pairs": [pair, {**pair, "a": "cat", "significant": False}]}}
    table = confusion.overlapping_pairs(diagnostics)
    assert table.values.tolist() == [["dog", "owl", 0.4, 0.3, 0.5, 40, 9.0]]
    assert confusion.overlapping_pairs({}).empty and confusion.overlapping_pairs(None).empty


def test_average_linkage_puts_the_closest_items_side_by_side() -> None:
    points = np.array([0.0, 10.0, 0.5, 10.4, 5.0])
    order = confusion.average_linkage_order(np.abs(points[:, None] - points[None, :]))
    assert sorted(order) == [0, 1, 2, 3, 4]
    assert abs(order.index(0) - order.index(2)) == 1 and abs(order.index(1) - order.index(3)) == 1


def test_confused_pairs_among_a_focus_keep_the_shares_of_the_whole_class() -> None:
    predictions = pd.DataFrame({"model": "fold0", "role": "val", "fold": 0,
                                "label": [0, 0, 0, 0, 1, 1, 2, 2, 2, 2], "pred": [1, 1, 2, 0, 1, 2, 0, 0, 0, 2]})
    pairs = confusion.confused_pairs(predictions, ["a", "b", "c"], among=["b"])
    assert list(zip(pairs["true"], pairs["predicted"])) == [("a", "b"), ("b", "c")]
    assert pairs["share"].tolist() == [0.5, 0.5]
