"""Where each kind of finding's measured error rate is written: its row of the planted-problem benchmark
(bench/bench_findings.py, tables in docs/findings-error-rates.md). A finding of a kind listed here carries
`more`, the page and anchor to read."""
from __future__ import annotations

PAGE = "docs/findings-error-rates.md"
# finding kind (its id before ':') -> anchor of its row
ANCHORS = {
    "label-issues": "label-flips", "leakage": "duplicates", "duplicates-contained": "duplicates",
    "exact-duplicates": "duplicates", "shortcut": "shortcut", "slice": "failing-slice",
    "image-quality": "unusable-images", "imbalance": "imbalance", "outliers": "clean-data",
    "calibration": "clean-data", "large-sets": "clean-data",
}


def link_error_rates(found: list[dict]) -> list[dict]:
    """Each finding with a measured error rate, with `more` pointing at it."""
    out = []
    for f in found:
        anchor = ANCHORS.get(f["id"].split(":")[0])
        out.append({**f, "more": f"{PAGE}#{anchor}"} if anchor else f)
    return out
