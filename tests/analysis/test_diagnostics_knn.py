"""The diagnostics' kNN graph: faiss's exact search gives scikit-learn's exact neighbours, self left out."""
import numpy as np
from sklearn.neighbors import NearestNeighbors

from core.analysis.diagnostics.neighbours import knn


def _unit(rows: int, dims: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dims)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_knn_equals_sklearn_exact_neighbours_on_random_data():
    unit = _unit(3000, 50, seed=1)
    index, similarity = knn(unit, 15)
    distance, expected = NearestNeighbors(n_neighbors=15, algorithm="brute").fit(unit).kneighbors()
    assert index.shape == (3000, 15) and index.dtype == np.int64 and similarity.dtype == np.float32
    # the same neighbours, in the same order, except where two are equally near within float32 rounding
    assert (index == expected).mean() > 0.999
    np.testing.assert_allclose(similarity, 1.0 - distance ** 2 / 2.0, atol=1e-5)
    np.testing.assert_allclose(similarity, np.einsum("ij,ikj->ik", unit, unit[index]), atol=1e-5)


def test_knn_never_lists_a_row_as_its_own_neighbour_even_among_identical_rows():
    unit = np.repeat(_unit(10, 8, seed=2), 6, axis=0)   # every vector six times: self ties with five copies
    index, similarity = knn(unit, 3)
    assert (index != np.arange(len(unit))[:, None]).all()
    assert (np.abs(similarity - 1.0) < 1e-5).all()


def test_knn_caps_k_at_the_number_of_other_rows():
    index, _ = knn(_unit(4, 5, seed=3), 15)
    assert index.shape == (4, 3)
    assert all(sorted(row) == sorted(set(range(4)) - {i}) for i, row in enumerate(index.tolist()))


def test_a_prepared_space_is_read_back_from_the_cache_when_embedding_and_settings_are_unchanged(tmp_path,
                                                                                                monkeypatch):
    from core.analysis.diagnostics import neighbours
    from core.analysis.diagnostics.thresholds import Thresholds
    embedding = _unit(200, 64, seed=4).astype(np.float16)
    first = neighbours.prepare("backbone", embedding, Thresholds(), tmp_path)

    def must_not_run(*args):
        raise AssertionError("the kNN graph was computed again although it was cached")
    monkeypatch.setattr(neighbours, "knn", must_not_run)
    again = neighbours.prepare("fold0", embedding, Thresholds(), tmp_path)
    assert again.name == "fold0"
    for part in ("unit", "index", "similarity"):
        np.testing.assert_array_equal(getattr(again, part), getattr(first, part))
    monkeypatch.undo()
    neighbours.prepare("backbone", embedding, Thresholds(neighbours=5), tmp_path)
    neighbours.prepare("backbone", embedding[::-1].copy(), Thresholds(), tmp_path)
    assert len(list((tmp_path / "spaces").glob("*_index.npy"))) == 3


def test_centred_cosine_equals_the_cosine_of_mean_centred_rows_for_pairs_in_any_order(monkeypatch):
    from core.analysis.diagnostics import neighbours
    monkeypatch.setattr(neighbours, "CHUNK_ROWS", 64)   # several blocks of `a` rows and of pairs
    rng = np.random.default_rng(4)
    embedding = (rng.standard_normal((500, 32)) + 3.0).astype(np.float16)   # a large shared mean, as in ReLU features
    a, b = rng.integers(0, 500, 2000), rng.integers(0, 500, 2000)
    centred = embedding.astype(np.float64) - embedding.astype(np.float64).mean(axis=0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    expected = (centred[a] * centred[b]).sum(axis=1)
    np.testing.assert_allclose(neighbours.centred_cosine(embedding, a, b), expected, atol=1e-5)


def test_outlier_distance_is_the_mean_cosine_distance_to_the_nearest_rows_of_the_same_class():
    from core.analysis.diagnostics.outliers import class_distance
    unit = _unit(300, 20, seed=5)
    labels = np.random.default_rng(5).choice(["a", "b", "c"], 300).astype(object)
    labels[7] = "alone"
    score = class_distance(unit, labels, 5)
    for i in (0, 150, 299):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(300) != i))
        expected = np.sort(1.0 - unit[same] @ unit[i])[:5].mean()
        assert abs(score[i] - expected) < 1e-5
    assert np.isnan(score[7])   # a class of one has no neighbours to be far from
