import numpy as np
import pandas as pd

from core.analysis.diagnostics.duplicates import duplicates
from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.thresholds import Thresholds
from core.testing.alarms import look_alikes, plant_copy


def _samples(fold, split, sha=None):
    n = len(fold)
    return pd.DataFrame({
        "sample_id": np.arange(n), "path": [f"c/{i}.jpg" for i in range(n)], "label": "c", "label_index": 0,
        "group": None, "split": split, "fold": pd.array(fold, dtype="Int64"),
        "sha256": sha if sha is not None else [f"h{i}" for i in range(n)],
    })


def _embedding_with_pairs(n, pairs, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 256))
    for a, b in pairs:
        x[b] = x[a] + rng.normal(size=256) * 0.1   # a near copy: cosine ~0.99
    return x.astype(np.float16)


def _run(samples, embedding):
    th = Thresholds(pca_dims=20)
    return duplicates(samples, prepare("backbone", embedding, th), embedding, th)


def test_near_duplicates_split_across_folds_are_leakage_and_the_same_pairs_within_one_fold_are_not():
    n, planted = 60, [(0, 1), (2, 3), (4, 5)]
    embedding = _embedding_with_pairs(n, planted)
    across = _run(_samples([i % 3 for i in range(n)], ["cv"] * n), embedding)[0]      # pair members in different folds
    within = _run(_samples([(i // 2) % 3 for i in range(n)], ["cv"] * n), embedding)[0]  # pair members together
    found = set(zip(across["sample_id_a"], across["sample_id_b"]))
    assert set(planted) <= found
    assert across[across["kind"] == "near"]["crosses_folds"].all() and across["leakage"].all()
    assert set(zip(within["sample_id_a"], within["sample_id_b"])) == found
    assert not within["leakage"].any()


def test_a_pair_between_test_and_cv_touches_test():
    n = 40
    split = ["test" if i == 1 else "cv" for i in range(n)]
    fold = [None if i == 1 else i % 3 for i in range(n)]
    pairs, summary = _run(_samples(fold, split), _embedding_with_pairs(n, [(0, 1)]))
    row = pairs.iloc[0]
    pair = (row["sample_id_a"], row["sample_id_b"], bool(row["touches_test"]), bool(row["crosses_folds"]))
    assert pair == (0, 1, True, False)
    assert summary["near"]["touches_test"] == 1


def test_identical_files_are_exact_pairs_and_unrelated_images_are_not_paired():
    n = 50
    sha = [f"h{i}" for i in range(n)]
    sha[8] = sha[3]
    embedding = _embedding_with_pairs(n, [(3, 8)])   # folds i % 2: 3 and 8 differ
    pairs, summary = _run(_samples([i % 2 for i in range(n)], ["cv"] * n, sha), embedding)
    assert pairs[["sample_id_a", "sample_id_b", "kind"]].values.tolist() == [[3, 8, "exact"]]
    assert summary["exact"] == {"pairs": 1, "leaking": 1, "crosses_folds": 1, "touches_test": 0, "same_group": None}
    assert summary["near"]["pairs"] == 0


def test_identical_files_under_different_labels_are_listed_as_label_conflicts():
    n = 40
    sha = [f"h{i}" for i in range(n)]
    sha[5] = sha[2]                                   # same bytes, same label: a duplicate, not a conflict
    sha[9] = sha[30] = sha[4]                         # same bytes filed as c, d and c
    samples = _samples([i % 2 for i in range(n)], ["cv"] * n, sha)
    samples.loc[30, "label"] = "d"
    _, summary = _run(samples, _embedding_with_pairs(n, []))
    assert summary["label_conflicts"] == [{"sha256": "h4", "labels": ["c", "d"], "sample_ids": [4, 9, 30],
                                           "paths": ["c/4.jpg", "c/9.jpg", "c/30.jpg"]}]


def test_distinct_look_alikes_with_high_similarity_are_not_called_near_duplicates():
    n = 240
    embedding = look_alikes(n, shared=1.8).astype(np.float16)
    pairs, summary = _run(_samples([i % 3 for i in range(n)], ["cv"] * n), embedding)
    assert summary["sweep"][2]["pairs"] > 50          # a fixed cosine of 0.70 would flag many of them ...
    assert summary["near"]["pairs"] == 0 and len(pairs) == 0   # ... the calibrated one flags none
    threshold = summary["threshold"]
    assert threshold["floor"] <= threshold["nn_median"] < threshold["similarity"] <= threshold["ceiling"]


def test_a_slightly_noised_copy_among_look_alikes_is_a_near_duplicate():
    n = 240
    x = plant_copy(look_alikes(n, shared=1.8), original=100, copy=8)   # the same image, resized and noised
    pairs, summary = _run(_samples([i % 3 for i in range(n)], ["cv"] * n), x.astype(np.float16))
    assert set(zip(pairs["sample_id_a"], pairs["sample_id_b"])) == {(8, 100)}
    assert pairs["leakage"].all() and summary["near"]["pairs"] == 1
