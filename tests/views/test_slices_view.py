"""The Slices page says what was examined when no slice is found, and why none passed."""
from core.views.images import no_slice_message


def test_no_slice_names_the_clusters_examined_per_space_and_the_test_each_failed() -> None:
    block = {"run_error": 0.14, "candidates": 0, "found": [], "examined": {
        "backbone": {"clusters": 16, "too_small": 2, "not_worse": 12, "one_fold": 0, "not_significant": 2,
                     "passed": 0},
        "finetuned": {"clusters": 0, "too_small": 0, "not_worse": 0, "one_fold": 0, "not_significant": 0,
                      "passed": 0}}}
    text = no_slice_message(block)
    assert text.startswith("No failing slice at the run's out-of-fold error of 14%.")
    assert ("backbone: 16 clusters examined (2 too small to judge, 12 not worse enough than the run, "
            "2 not significantly worse (permutation test))") in text
    assert "finetuned: no cluster formed" in text and "0 clusters" not in text


def test_diagnostics_without_the_count_ask_for_a_rerun_instead_of_printing_zero() -> None:
    text = no_slice_message({"run_error": 0.2, "candidates": 0, "found": []})
    assert "0 clusters" not in text and "diagnose" in text
