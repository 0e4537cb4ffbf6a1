"""Every finding kind that links to its measured error rate links to a row that exists."""
import re
from pathlib import Path

from core.analysis.diagnostics.error_rates import ANCHORS, PAGE, link_error_rates
from core.analysis.diagnostics.findings import finding

REPO = Path(__file__).resolve().parents[2]


def test_every_anchor_is_a_row_of_the_error_rates_page():
    anchors = set(re.findall(r'<a id="([a-z-]+)"></a>', (REPO / PAGE).read_text()))
    assert set(ANCHORS.values()) <= anchors


def test_findings_of_a_measured_kind_link_to_its_row_and_others_do_not():
    found = link_error_rates([finding("label-issues", "low", "t", "e", "Misclassified"),
                              finding("slice:2", "medium", "t", "e", "Slices", slice="2"),
                              finding("test-support", "info", "t", "e", "Classes")])
    assert [f.get("more") for f in found] == [f"{PAGE}#label-flips", f"{PAGE}#failing-slice", None]
