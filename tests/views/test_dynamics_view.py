"""The Dynamics tab's data: cartography points of one class or all, the selection's order, one image's curves."""
import numpy as np
import pandas as pd

from core.store import run_store
from core.views import dynamics as views


def _tables():
    dynamics = pd.DataFrame({"sample_id": [0, 1, 2, 3], "folds": 2, "confidence": [0.9, 0.5, 0.1, 0.2],
                             "variability": [0.05, 0.3, 0.05, 0.1], "correctness": [1.0, 0.5, 0.0, 0.3],
                             "region": ["easy", "ambiguous", "hard", "hard"], "aum": [3.0, 0.1, -2.0, -1.0],
                             "aum_flag": [False, False, True, True], "forgetting": [0, 3, 0, 1],
                             "never_learned": [False, False, True, False]})
    samples = pd.DataFrame({"sample_id": [0, 1, 2, 3, 4], "path": [f"a/{i}.png" for i in range(5)],
                            "label": ["a", "a", "b", "b", "a"]})
    issues = pd.DataFrame({"sample_id": [2, 3], "agreed": [False, True]})
    return dynamics, samples, issues


def test_points_carry_the_map_axes_bands_and_label_issue_marks_and_filter_by_class():
    points = views.cartography_points(*_tables())
    assert points["x"].tolist() == [0.05, 0.3, 0.05, 0.1] and points["y"].tolist() == [0.9, 0.5, 0.1, 0.2]
    assert points["band"].tolist() == ["75–100%", "25–50%", "0–25%", "25–50%"]
    assert points["label_issue"].tolist() == [False, False, True, True]
    assert points["agreed"].tolist() == [False, False, False, True]
    only_b = views.cartography_points(*_tables(), only="b")
    assert only_b["sample_id"].tolist() == [2, 3] and views.region_counts(only_b) == {"easy": 0, "ambiguous": 0,
                                                                                       "hard": 2}


def test_a_selection_shows_agreed_label_issues_first_then_the_least_confident():
    points = views.cartography_points(*_tables())
    assert views.selected_images(points, [0, 1, 2, 3])["sample_id"].tolist() == [3, 2, 1, 0]


def test_an_images_curves_come_from_every_fold_that_trained_on_it(tmp_path):
    run_store.write_npz(run_store.fold_dir(tmp_path, 0) / run_store.DYNAMICS_FILE, sample_id=np.array([3, 5]),
                        prob=np.array([[0.2, 0.9], [0.4, 0.8]], np.float16),
                        margin=np.array([[-1, 2], [0.5, 3]], np.float16), threshold_aum=np.zeros(0, np.float16))
    curves = views.dynamics_curves(tmp_path, [0, 1], 5)
    assert curves["epoch"].tolist() == [1, 2] and curves["margin"].tolist() == [2.0, 3.0]
    assert views.dynamics_curves(tmp_path, [0], 4).empty
