"""The out-of-distribution score: k-th nearest training image in the models' feature spaces, calibrated on
held-out images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from core.analysis import ood
from core.analysis.ood import OodSettings, build_reference, choose_k, load_reference
from core.testing.synthetic import make_synthetic_run


def clusters(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 0.3) -> np.ndarray:
    return centres[rng.integers(0, len(centres), n)] + rng.normal(0, spread, (n, centres.shape[1]))


@pytest.fixture(scope="module")
def space():
    """Known classes as four clusters in 64 dimensions; "other" classes as clusters elsewhere."""
    rng = np.random.default_rng(0)
    known, other = rng.normal(0, 1, (4, 64)), rng.normal(0, 1, (3, 64))
    train, test = clusters(rng, 600, known), clusters(rng, 300, known)
    embeddings = np.concatenate([train, test])
    split = np.array(["cv"] * 600 + ["test"] * 300)
    return rng, known, other, embeddings, split


def test_images_of_other_classes_score_farther_than_new_images_of_known_classes(space):
    rng, known, other, embeddings, split = space
    reference = build_reference({"backbone": embeddings}, split)
    near = reference.scores({"backbone": clusters(rng, 200, known)})
    far = reference.scores({"backbone": clusters(rng, 200, other)})
    auroc = roc_auc_score(np.r_[np.zeros(200), np.ones(200)], np.r_[near, far])
    assert auroc > 0.99
    assert (far > reference.threshold).mean() > 0.95


def test_the_threshold_flags_about_five_percent_of_new_images_of_known_classes(space):
    rng, known, _, embeddings, split = space
    reference = build_reference({"backbone": embeddings}, split)
    assert reference.calibration == "test split" and reference.n_calibration == 300
    flagged = (reference.scores({"backbone": clusters(rng, 4000, known)}) > reference.threshold).mean()
    assert 0.02 < flagged < 0.09   # 95th percentile of 300 held-out scores: the rate itself is estimated


def test_scale_does_not_matter_features_are_compared_at_unit_length(space):
    rng, known, _, embeddings, split = space
    reference = build_reference({"backbone": embeddings}, split)
    new = clusters(rng, 20, known)
    np.testing.assert_allclose(reference.scores({"backbone": new}), reference.scores({"backbone": 7.5 * new}),
                               atol=1e-5)


def test_without_enough_test_images_the_threshold_comes_from_leave_one_out_on_the_cv_images(space):
    _, _, _, embeddings, split = space
    few = np.where(np.arange(len(split)) < 610, split, "cv")   # 10 test images: too few
    reference = build_reference({"backbone": embeddings}, few, OodSettings(min_calibration=20))
    assert reference.calibration == "leave-one-out" and reference.n_calibration == reference.n_reference == 890
    # an image scored against the others, not against itself: leave-one-out scores are not all zero
    assert reference.threshold > 0.1


@pytest.mark.parametrize("n, k", [(10, 1), (240, 5), (1000, 20), (50_000, 50), (2, 1)])
def test_k_grows_with_the_training_images_up_to_sun_et_al_s_fifty(n, k):
    assert choose_k(n) == k


def test_a_run_s_reference_is_its_cv_images_and_none_without_embeddings(tmp_path):
    one_training_image = np.array(["test", "test", "cv"])
    assert build_reference({"backbone": np.ones((3, 4))}, one_training_image) is None
    run = make_synthetic_run(tmp_path / "runs", "r1", n_samples=60, n_classes=3, diagnostics=False)
    samples = pd.read_parquet(run / "samples.parquet")
    reference = load_reference(run, ["backbone"], cache_dir=tmp_path / "cache")
    assert reference.n_reference == (samples["split"] == "cv").sum()
    (run / "embeddings" / "backbone.npy").unlink()
    assert load_reference(run, ["backbone"], cache_dir=tmp_path / "cache") is None


def test_the_calibration_is_kept_in_the_cache_by_content(tmp_path, monkeypatch):
    run = make_synthetic_run(tmp_path / "runs", "r1", n_samples=60, n_classes=3, diagnostics=False)
    first = load_reference(run, ["backbone"], cache_dir=tmp_path / "cache")
    [kept] = (tmp_path / "cache" / "ood").glob("*.json")
    monkeypatch.setattr(ood, "kth_distance", None)   # a second load must not search the held-out images again
    again = load_reference(run, ["backbone"], cache_dir=tmp_path / "cache")
    assert (again.threshold, again.calibration, again.n_calibration) == (
        first.threshold, first.calibration, first.n_calibration)
    monkeypatch.undo()
    # other settings: a new key
    other = load_reference(run, ["backbone"], OodSettings(quantile=0.9), cache_dir=tmp_path / "cache")
    assert other.threshold < first.threshold and len(list((tmp_path / "cache" / "ood").glob("*.json"))) == 2
    assert kept.exists()


def test_a_large_training_set_is_represented_by_a_seeded_sample(space):
    _, _, _, embeddings, split = space
    settings = OodSettings(max_reference=200)
    first, again = (build_reference({"backbone": embeddings}, split, settings) for _ in range(2))
    assert first.n_reference == 200 and first.k == choose_k(200)
    assert first.threshold == again.threshold   # the same sample every time the models load


def test_in_several_spaces_the_score_is_the_mean_distance_and_the_sample_is_shared_among_them(space):
    """Finetune mode: one space per fold network; the reference images are the same rows in every space, the
    sample budget split among the spaces, and the threshold calibrated on the mean."""
    rng, known, _, embeddings, split = space
    shifted = embeddings + rng.normal(0, 0.2, embeddings.shape)
    reference = build_reference({"fold0": embeddings, "fold1": shifted}, split, OodSettings(max_reference=400))
    assert list(reference.indexes) == ["fold0", "fold1"] and reference.n_reference == 200
    assert reference.k == choose_k(200) and reference.calibration == "test split"
    new = clusters(rng, 30, known)
    each = [build_reference({"fold0": embeddings}, split, OodSettings(max_reference=200)),
            build_reference({"fold1": shifted}, split, OodSettings(max_reference=200))]
    np.testing.assert_allclose(reference.scores({"fold0": new, "fold1": new + 0.1}),
                               (each[0].scores({"fold0": new}) + each[1].scores({"fold1": new + 0.1})) / 2, atol=1e-6)
    held = split == "test"
    mean_held = (each[0].scores({"fold0": embeddings[held]}) + each[1].scores({"fold1": shifted[held]})) / 2
    assert reference.threshold == pytest.approx(np.quantile(mean_held, 0.95))


def test_a_finetune_run_s_reference_is_in_its_fold_spaces(tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "ft", n_samples=60, n_classes=3, train_mode="finetune",
                             diagnostics=False)
    info = pd.read_json(run / "run.json", typ="series")
    spaces = ood.serving_spaces(info, [0, 1, 2])
    assert spaces == ["fold0", "fold1", "fold2"]
    assert ood.serving_spaces({"train_mode": "head"}, [0, 1, 2]) == ["backbone"]
    reference = load_reference(run, spaces, cache_dir=tmp_path / "cache")
    assert list(reference.indexes) == spaces
    (run / "embeddings" / "fold1.npy").unlink()   # a space the models need is missing: no score, not a wrong one
    assert load_reference(run, spaces, cache_dir=tmp_path / "cache") is None
