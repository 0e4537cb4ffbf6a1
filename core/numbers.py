"""One metric language for every front (CLI, report, dashboard, findings): metrics as percentages with one decimal,
differences in points, intervals as 'low–high%', and numbers in suggested commands rounded to what matters."""
from __future__ import annotations

import math

MISSING = "–"


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)   # math.isnan takes numpy's floats too (float32 is no float)


def percent(value: float | None) -> str:
    """A metric (a fraction): 0.8044 -> '80.4%'."""
    return MISSING if _missing(value) else f"{100 * value:.1f}%"


def points(difference: float | None) -> str:
    """A difference of two metrics (fractions), signed, in percentage points: 0.123 -> '+12.3 pts'."""
    return MISSING if _missing(difference) else f"{100 * difference:+.1f} pts"


def interval(bounds: list[float] | tuple[float, float] | None) -> str:
    """A 95% interval of a metric: (0.021, 0.484) -> '2.1–48.4%'."""
    if bounds is None or any(_missing(b) for b in bounds):
        return MISSING
    low, high = bounds
    return f"{100 * low:.1f}–{100 * high:.1f}%"


def points_interval(low: float | None, high: float | None) -> str:
    """A 95% interval of a difference: (-0.012, 0.034) -> '-1.2 to +3.4 pts'."""
    if _missing(low) or _missing(high):
        return MISSING
    return f"{100 * low:+.1f} to {100 * high:+.1f} pts"


def with_interval(value: float | None, bounds: list[float] | tuple[float, float] | None) -> str:
    """'16.7% (95% interval 2.1–48.4%)', or the value alone when there is no interval."""
    if bounds is None or _missing(value):
        return percent(value)
    return f"{percent(value)} (95% interval {interval(bounds)})"


def spread(mean: float | None, std: float | None) -> str:
    """Mean ± standard deviation over folds: '80.4% ± 3.1'."""
    return percent(mean) if _missing(std) or _missing(mean) else f"{percent(mean)} ± {100 * std:.1f}"


def metric_name(key: str) -> str:
    """'balanced_accuracy' -> 'balanced accuracy'."""
    return key.replace("_", " ")


def significant(value: float, digits: int = 3) -> float:
    """`value` rounded to `digits` significant digits, for a command a person copies: 0.0022881136 -> 0.00229."""
    if value == 0 or _missing(value) or math.isinf(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
