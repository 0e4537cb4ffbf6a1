"""Similar images: exact cosine neighbours, the same as a brute-force scan, from an index cached outside the run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analysis import similar
from core.store import run_store


def brute_force(embedding: np.ndarray, query: np.ndarray, exclude: set[int], k: int) -> tuple[list[int], np.ndarray]:
    unit = embedding.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    query = query / np.linalg.norm(query)
    distance = 1.0 - unit @ query
    order = [i for i in np.lexsort((np.arange(len(unit)), distance)) if i not in exclude][:k]
    return order, distance[order]


@pytest.fixture
def space(tmp_path):
    rng = np.random.default_rng(7)
    embedding = rng.normal(0, 1, (500, 24)).astype(np.float16)
    run_dir = tmp_path / "runs" / "r1"
    run_store.write_array(run_store.embedding_path(run_dir, "backbone"), embedding)
    return run_dir, embedding.astype(np.float32), tmp_path / "cache"


def test_neighbours_of_an_image_equal_a_brute_force_scan_without_the_image_itself(space):
    run_dir, embedding, cache = space
    index = similar.load_index(run_dir, "backbone", cache)
    for sample_id in (0, 17, 499):
        found = similar.like_image(index, sample_id, k=10)
        ids, distance = brute_force(embedding, embedding[sample_id], {sample_id}, 10)
        assert found["sample_id"].tolist() == ids
        np.testing.assert_allclose(found["distance"], distance, atol=1e-5)


def test_images_like_a_selection_are_nearest_to_its_mean_direction_and_exclude_it(space):
    run_dir, embedding, cache = space
    index = similar.load_index(run_dir, "backbone", cache)
    selection = [3, 40, 41, 200]
    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    found = similar.like_selection(index, selection, k=15)
    ids, _ = brute_force(embedding, unit[selection].mean(axis=0), set(selection), 15)
    assert found["sample_id"].tolist() == ids and not set(selection) & set(found["sample_id"])
    with pytest.raises(ValueError):
        similar.like_selection(index, [], k=3)


def test_the_index_is_built_once_into_the_cache_and_never_into_the_run(space):
    run_dir, _, cache = space
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    path = similar.index_path(run_dir, "backbone", cache)
    assert not path.exists()
    similar.load_index(run_dir, "backbone", cache)
    built = path.stat().st_ino   # a use touches the file; building it again would write a new one
    similar.load_index(run_dir, "backbone", cache)
    assert path.is_relative_to(cache) and path.stat().st_ino == built
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before


def test_a_changed_embedding_gets_a_new_index(space):
    run_dir, embedding, cache = space
    first = similar.index_path(run_dir, "backbone", cache)
    run_store.write_array(run_store.embedding_path(run_dir, "backbone"), (embedding[::-1]).astype(np.float16))
    assert similar.index_path(run_dir, "backbone", cache) != first


def test_neighbours_are_described_with_label_prediction_and_split():
    neighbours = pd.DataFrame({"sample_id": [2, 0], "distance": [0.1, 0.2]})
    samples = pd.DataFrame({"sample_id": [0, 1, 2], "path": ["a.png", "b.png", "c.png"],
                            "label": ["cat", "dog", "dog"], "split": ["cv", "cv", "test"]})
    rows = pd.DataFrame({"sample_id": [0], "true_name": ["cat"], "pred_name": ["dog"], "confidence": [0.9],
                         "correct": [False], "role": ["val"]})
    described = similar.describe(neighbours, rows, samples)
    assert described[["sample_id", "path", "split", "true_name"]].values.tolist() == [
        [2, "c.png", "test", "dog"], [0, "a.png", "cv", "cat"]]
    assert described["pred_name"].isna().tolist() == [True, False] and described["pred_name"][1] == "dog"
