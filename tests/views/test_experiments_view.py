"""The Experiments page speaks the language `remedies` and `tune` print: percentages and points."""
import math

import pandas as pd

from core.views import experiments as views


def test_the_effects_table_shows_scores_as_percentages_and_differences_in_points():
    effects = pd.DataFrame([{
        "remedy": "balance", "metric": "balanced_accuracy", "n_folds": 5, "baseline_mean": 0.8044,
        "remedy_mean": 0.8261, "difference_mean": 0.0217, "ci_low": -0.012, "ci_high": 0.034, "verdict": "no effect",
        "test_difference": math.nan, "test_ci_low": math.nan, "test_ci_high": math.nan, "test_verdict": None}])
    [row] = views.effects_view(effects).to_dict("records")
    assert row["metric"] == "balanced accuracy"
    assert (row["baseline (validation)"], row["remedy (validation)"]) == ("80.4%", "82.6%")
    assert (row["difference"], row["95% interval"]) == ("+2.2 pts", "-1.2 to +3.4 pts")
    assert (row["test ensemble difference"], row["test 95% interval"]) == ("–", "–")


def test_trials_are_ranked_by_score_and_show_it_as_a_percentage():
    trials = pd.DataFrame({"number": [0, 1, 2], "state": ["COMPLETE", "COMPLETE", "FAIL"],
                           "value": [0.71, 0.864, math.nan], "param_lr": [0.01, 0.0022881136684755237, 0.001]})
    shown = views.trials_view(trials)
    assert shown.number.tolist() == [1, 0, 2]
    assert shown.value.tolist() == ["86.4%", "71.0%", "–"]
    assert "lr" in shown.columns
