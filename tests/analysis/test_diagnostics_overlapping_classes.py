"""Overlapping classes: a pair whose images the model splits between the two labels far more than chance is
found, with its spread over folds; separable data and a weak model whose errors go everywhere are not."""
import numpy as np
import pandas as pd

from core.analysis.diagnostics.findings import overlapping_class_findings
from core.analysis.diagnostics.overlapping_classes import overlapping_classes
from core.analysis.diagnostics.thresholds import Thresholds
from core.testing.synthetic import classifier_outputs

TH = Thresholds()
CLASSES = ["cat", "dog", "fox", "owl", "yak"]


def oof_rows(probs: np.ndarray, labels: np.ndarray, n_folds: int = 3, seed: int = 0) -> pd.DataFrame:
    folds = np.random.default_rng(seed).permutation(len(labels)) % n_folds
    return pd.DataFrame({"sample_id": np.arange(len(labels)), "label": labels, "pred": probs.argmax(1),
                         "fold": folds})


def mixed(probs: np.ndarray, labels: np.ndarray, a: int, b: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Images of a and b made one kind of image: each labelled a or b at random, the model split between them."""
    rng = np.random.default_rng(seed)
    probs, labels = probs.copy(), labels.copy()
    both = (labels == a) | (labels == b)
    labels[both] = rng.choice([a, b], both.sum())
    mass, weight = probs[both, a] + probs[both, b], rng.uniform(0.3, 0.7, both.sum())
    probs[both, a], probs[both, b] = mass * weight, mass * (1 - weight)
    return probs, labels


def test_separable_data_has_no_overlapping_pair():
    probs, labels = classifier_outputs(600, 5, signal=6.0, seed=1)
    assert (probs.argmax(1) == labels).mean() > 0.95
    result = overlapping_classes(oof_rows(probs, labels), probs, CLASSES, TH)
    assert result["found"] == 0 and not any(p["significant"] for p in result["pairs"])
    assert result["tested"] == 10 and result["n_folds"] == 3
    assert overlapping_class_findings(result, TH) == []


def test_a_weak_model_whose_errors_go_everywhere_has_no_overlapping_pair():
    probs, labels = classifier_outputs(900, 5, signal=1.0, seed=3)
    assert (probs.argmax(1) == labels).mean() < 0.7      # many errors, spread over every class
    result = overlapping_classes(oof_rows(probs, labels), probs, CLASSES, TH)
    assert result["found"] == 0


def test_two_classes_with_mixed_images_are_found_with_their_fold_spread_and_one_finding():
    probs, labels = mixed(*classifier_outputs(600, 5, signal=6.0, seed=1), 1, 3)
    result = overlapping_classes(oof_rows(probs, labels), probs, CLASSES, TH)
    assert result["found"] == 1
    first = result["pairs"][0]
    assert (first["a"], first["b"], first["significant"]) == ("dog", "owl", True)
    assert 0.3 < first["share"] <= 0.7                     # about half of them belong on the other side
    assert first["confused"] == first["a_as_b"] + first["b_as_a"] and first["confused"] > 3 * first["expected"]
    assert first["p_value"] * result["tested"] < TH.overlap_p_value
    assert set(first["fold_shares"]) == {"0", "1", "2"} and first["folds_with_overlap"] == 3
    assert 0 < first["fold_min"] <= first["share"] <= first["fold_max"]
    assert not any(p["significant"] for p in result["pairs"][1:])

    [f] = overlapping_class_findings(result, TH)
    assert f["id"] == "overlapping-classes:dog|owl" and f["severity"] == "medium"
    assert f["title"] == "Classes the data cannot separate: dog and owl: merge them or relabel"
    assert "--merge-classes \"dog,owl\"" in f["evidence"] and "per fold" in f["evidence"]
    assert f["target"] == {"page": "Classes", "params": {"true": "dog", "pred": "owl", "sides": "both"}}


def test_a_pair_confused_in_one_fold_alone_is_not_found():
    probs, labels = classifier_outputs(600, 5, signal=6.0, seed=1)
    rows = oof_rows(probs, labels)
    # in fold 0 alone, the dog and owl images carry the other label of the pair
    swap = (rows["fold"] == 0).to_numpy() & np.isin(labels, [1, 3])
    rows.loc[swap, "label"] = 4 - labels[swap]
    result = overlapping_classes(rows, probs, CLASSES, TH)
    pair = next(p for p in result["pairs"] if (p["a"], p["b"]) == ("dog", "owl"))
    assert pair["share"] >= TH.overlap_share and pair["confused"] >= TH.overlap_min_images
    assert pair["p_value"] * result["tested"] < TH.overlap_p_value
    assert pair["folds_with_overlap"] == 1 and not pair["significant"] and result["found"] == 0


def test_many_found_pairs_make_one_finding_naming_a_few_and_counting_the_rest():
    classes = [f"k{i}" for i in range(12)]
    probs, labels = classifier_outputs(2400, 12, signal=6.0, seed=4)
    for a, b in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)):
        probs, labels = mixed(probs, labels, a, b, seed=a)
    result = overlapping_classes(oof_rows(probs, labels), probs, classes, TH)
    assert result["found"] == 5
    [f] = overlapping_class_findings(result, TH)
    assert f["title"].endswith("and 2 more pairs: merge them or relabel")


def test_two_classes_cannot_be_told_from_chance():
    probs, labels = classifier_outputs(300, 2, signal=0.5, seed=1)
    result = overlapping_classes(oof_rows(probs, labels), probs, ["a", "b"], TH)
    assert result == {"pairs": [], "found": 0, "tested": 1, "n_folds": 3}
