"""The one metric language: percentages with one decimal, differences in points, intervals, rounded commands."""
import math

import pytest

from core.numbers import (
    interval,
    metric_name,
    percent,
    points,
    points_interval,
    significant,
    spread,
    with_interval,
)


def test_a_metric_is_a_percentage_with_one_decimal_and_a_missing_one_a_dash():
    assert percent(0.8044) == "80.4%"
    assert percent(1.0) == "100.0%"
    assert percent(None) == percent(math.nan) == "–"


def test_a_difference_is_signed_points():
    assert points(0.123) == "+12.3 pts"
    assert points(-0.184) == "-18.4 pts"
    assert points(0.0) == "+0.0 pts"
    assert points(None) == "–"
    assert points_interval(-0.012, 0.034) == "-1.2 to +3.4 pts"
    assert points_interval(None, 0.1) == "–"


def test_an_interval_and_a_value_with_its_interval():
    assert interval([0.0209, 0.4841]) == "2.1–48.4%"
    assert interval(None) == interval([math.nan, 0.5]) == "–"
    assert with_interval(0.1667, [0.0209, 0.4841]) == "16.7% (95% interval 2.1–48.4%)"
    assert with_interval(0.1667, None) == "16.7%"


def test_a_fold_spread_and_a_metric_name():
    assert spread(0.804, 0.031) == "80.4% ± 3.1"
    assert spread(0.804, math.nan) == "80.4%"
    assert metric_name("balanced_accuracy") == "balanced accuracy"


@pytest.mark.parametrize(("value", "expected"), [(0.0022881136684755237, 0.00229), (0.30000000000000004, 0.3),
                                                 (123456.0, 123000.0), (-0.0123456, -0.0123), (0.0, 0.0)])
def test_significant_keeps_three_significant_digits(value, expected):
    assert significant(value) == expected


def test_numpy_values_read_like_python_ones():
    import numpy as np
    assert percent(np.float32(0.5)) == "50.0%" and percent(np.float64("nan")) == "–"
