"""Each finding fires on a case with the problem and stays quiet without it."""
import pytest
from diagnostics_fixtures import missing_class_metrics

from core.analysis.diagnostics.findings import (
    calibration_findings,
    class_findings,
    dropped_class_findings,
    duplicate_findings,
    finding,
    heldout_vs_validation_findings,
    label_conflict_findings,
    label_issue_findings,
    outlier_findings,
    overfitting_findings,
    separability_findings,
    small_test_support_findings,
)
from core.analysis.diagnostics.imbalance import imbalance
from core.analysis.diagnostics.overfitting import per_class_gaps
from core.analysis.diagnostics.thresholds import Thresholds
from core.evaluate import proportion_interval

TH = Thresholds()


def _overfit(train, vals, val_interval=None, test=None):
    gaps = [train - v for v in vals]
    return {"metric": "balanced_accuracy", "train": train, "val": sum(vals) / len(vals),
            "gap": sum(gaps) / len(gaps), "val_interval": val_interval, "test": test,
            "n_folds": len(vals), "folds_over_gap": sum(g >= TH.overfit_gap_medium for g in gaps),
            "consistent": all(g >= TH.overfit_gap_medium for g in gaps), "gap_min": min(gaps), "gap_max": max(gaps),
            "gaps": {"train_minus_val": {"accuracy": 0.3}}}


def test_overfitting_judges_balanced_accuracy_and_says_whether_every_fold_has_it():
    [f] = overfitting_findings(_overfit(1.0, [0.66, 0.68, 0.67, 0.65, 0.69]), True, TH)
    assert f["severity"] == "high"
    assert f["title"] == ("Overfitting: balanced accuracy 100.0% on train vs 67.0% on validation "
                          "(gap +33.0 pts, consistent over 5 folds)")
    assert "plain accuracy gap +30.0 pts" in f["evidence"]
    [f] = overfitting_findings(_overfit(1.0, [0.95, 0.6, 0.6]), False, TH)
    assert "in 2 of 3 folds" in f["title"]
    assert overfitting_findings(_overfit(0.95, [0.93, 0.92, 0.94]), False, TH) == []


def test_a_gap_whose_train_score_lies_inside_the_validation_interval_is_not_called_overfitting():
    # 12 points of gap, but validation is so uncertain that train's score is among its plausible values
    assert overfitting_findings(_overfit(0.80, [0.68, 0.68], val_interval=[0.50, 0.85]), False, TH) == []
    [f] = overfitting_findings(_overfit(0.80, [0.68, 0.68], val_interval=[0.62, 0.74]), False, TH)
    assert f["severity"] == "medium" and "above validation's 95% interval (62.0–74.0%" in f["evidence"]


def _test(value, interval, per_class=()):
    return {"n": 60, "value": value, "interval": interval, "fold_mean": value + 0.03, "per_class": list(per_class)}


def test_a_test_score_outside_the_validation_interval_is_a_finding_and_one_inside_is_not():
    drop = _overfit(0.9, [0.80, 0.81], val_interval=[0.75, 0.86], test=_test(0.62, [0.50, 0.73]))
    [f] = heldout_vs_validation_findings(drop)
    assert f["severity"] == "medium"
    assert f["title"] == ("Test balanced accuracy 62.0% is below validation's interval 75.0–86.0% "
                          "(-18.5 pts from validation)")
    assert "62.0% (95% interval 50.0–73.0%) on 60 held-out images" in f["evidence"]
    assert "fold models' mean on test is 65.0%" in f["evidence"]
    assert heldout_vs_validation_findings({**drop, "test": _test(0.78, [0.66, 0.88])}) == []
    assert heldout_vs_validation_findings({**drop, "test": None}) == []
    assert heldout_vs_validation_findings({**drop, "val_interval": None}) == []   # a run from before intervals
    [f] = heldout_vs_validation_findings({**drop, "test": _test(0.95, [0.90, 0.99])})
    assert f["severity"] == "low" and " above " in f["title"]


def _recall(name, hits, support):
    return {"class": name, "support": support, "recall": hits / support,
            "interval": proportion_interval(hits, support)}


def test_classes_with_too_few_test_images_are_one_finding_naming_the_worst_and_counting_the_rest():
    per_class = [_recall("big", 180, 200), _recall("C", 2, 12), _recall("D", 3, 6), _recall("E", 5, 10),
                 _recall("F", 8, 16), _recall("G", 1, 3)]
    o = _overfit(0.9, [0.8], test=_test(0.8, [0.7, 0.9], per_class))
    [f] = small_test_support_findings(o, TH)
    # widest interval first: 3 images of G, 6 of D, 10 of E; C and F are counted, big is precise enough
    assert f["title"] == "Too few test images to judge G, D, E and 2 more"
    assert f["evidence"].startswith("3 test images of G: recall 33.3%, interval 0.8–90.6%; 6 test images of D")
    assert f["target"]["params"] == {"class": "G"} and f["severity"] == "info"
    precise = _overfit(0.9, [0.8], test=_test(0.8, [0.7, 0.9], [_recall("big", 180, 200)]))
    assert small_test_support_findings(precise, TH) == []
    assert small_test_support_findings(_overfit(0.9, [0.8]), TH) == []


def test_the_issue_example_twelve_test_images_of_a_class_read_as_an_interval():
    [f] = small_test_support_findings(_overfit(0.9, [0.8], test=_test(0.6, [0.5, 0.7], [_recall("C", 2, 12)])), TH)
    assert f["evidence"].startswith("12 test images of C: recall 16.7%, interval 2.1–48.4%.")


def _oof(confusion, classes):
    support = [sum(row) for row in confusion]
    return {"accuracy": 0.7, "balanced_accuracy": 0.5, "confusion": confusion,
            "per_class": {c: {"recall": confusion[i][i] / support[i], "f1": 0.5} for i, c in enumerate(classes)}}


def test_a_failing_class_is_named_with_what_it_collapses_into_and_imbalance_with_its_ratio():
    classes = ["All_Beauty", "Digital_Music"]
    result = imbalance({"All_Beauty": 65, "Digital_Music": 24}, _oof([[60, 5], [17, 3]], classes), classes)
    titles = {f["id"]: f["title"] for f in class_findings(result, TH)}
    assert titles["class-fails:Digital_Music"] == ("Digital_Music fails: validation recall 15% of 20; "
                                                   "85% are predicted as All_Beauty")
    assert titles["imbalance"] == "Imbalance 2.7 : 1"
    balanced = imbalance({"a": 50, "b": 50}, _oof([[45, 5], [5, 45]], ["a", "b"]), ["a", "b"])
    assert class_findings(balanced, TH) == []


def test_a_class_missing_from_a_fold_gets_no_gap_and_no_failing_class_finding():
    metrics = missing_class_metrics()   # every prediction right: any nonzero gap or failing class is made up
    assert metrics["folds"]["1"]["val"]["per_class"]["c"]["recall"] is None
    assert metrics["folds"]["0"]["train"]["per_class"]["c"]["recall"] is None
    # [recall val, recall test, f1 val, f1 test] gaps: b has no test image; c is never on both sides of a
    # fold, d never in the folds at all
    expected = {"a": [0.0] * 4, "b": [0.0, None, 0.0, None], "c": [None] * 4, "d": [None] * 4}
    for row in per_class_gaps(metrics):
        gaps = [row[f"{key}_gap_{role}"] for key in ("recall", "f1") for role in ("val", "test")]
        assert gaps == expected[row["class"]], row
    result = imbalance({"a": 7, "b": 6, "c": 2, "d": 1}, metrics["oof"]["val"], ["a", "b", "c", "d"])
    assert [row["recall"] for row in result["per_class"]] == [1.0, 1.0, 1.0, None]
    assert [f["id"] for f in class_findings(result, TH) if f["id"].startswith("class-fails")] == []


def test_a_finding_with_an_unknown_severity_page_or_parameter_is_refused():
    for bad in ({"severity": "urgent"}, {"page": "Nowhere"}, {"colour": "red"}):
        arguments = {"severity": "low", "page": "Data", **bad}
        with pytest.raises(ValueError):
            finding("x", arguments.pop("severity"), "title", "evidence 1", arguments.pop("page"), **arguments)


def test_poor_calibration_fires_only_past_its_threshold():
    cal = {"ece": 0.2, "overconfidence": 0.2, "mean_confidence": 0.9, "accuracy": 0.7, "bins": [{}] * 15}
    assert calibration_findings(cal, TH)[0]["severity"] == "high"
    assert calibration_findings({**cal, "ece": 0.02}, TH) == []


def _dup(near_pairs, near_leaking, same_group=None):
    zero = {"pairs": 0, "leaking": 0, "crosses_folds": 0, "touches_test": 0, "same_group": None}
    return {"exact": zero, "near": {"pairs": near_pairs, "leaking": near_leaking, "crosses_folds": near_leaking,
                                    "touches_test": 0, "same_group": same_group}}


def test_leaking_near_duplicates_are_high_and_contained_ones_are_reported_as_info():
    [leak] = duplicate_findings(_dup(20, 14), False, TH)
    assert (leak["id"], leak["severity"]) == ("leakage", "high")
    assert leak["title"] == "Leakage: 14 near-duplicate pairs cross train and validation"
    assert "no group column" in leak["evidence"] and "ignore" not in leak["evidence"]
    [leak] = duplicate_findings(_dup(20, 14), False, TH, has_groups=True)   # grouped data run with --no-groups
    assert "splits ignore the dataset's groups (--no-groups)" in leak["evidence"]
    [kept] = duplicate_findings(_dup(20, 0, same_group=20), True, TH)
    assert (kept["id"], kept["severity"]) == ("duplicates-contained", "info")
    assert duplicate_findings(_dup(0, 0), True, TH) == []


def test_the_leakage_finding_names_the_calibrated_threshold_the_pairs_were_found_at():
    dup = {**_dup(20, 14), "threshold": {"similarity": 0.93}}
    [leak] = duplicate_findings(dup, False, TH)
    assert "(cosine ≥ 0.93)" in leak["evidence"]


def test_on_grouped_folds_leaking_pairs_are_named_as_different_groups_and_counts_of_one_read_singular():
    [leak, kept] = duplicate_findings(_dup(20, 1, same_group=19), True, TH)
    assert leak["title"] == "Leakage: 1 near-duplicate pair between different groups crosses train and validation"
    assert "keep the 19 same-group pairs on one side" in leak["evidence"]
    assert "different items that look alike" in leak["evidence"]
    assert kept["title"] == "Near-duplicates: 20 pairs found, 95% kept on one side of every split"
    [kept] = duplicate_findings(_dup(1, 0, same_group=1), True, TH)
    assert kept["title"] == "Near-duplicates: 1 pair found, 100% kept on one side of every split"
    assert kept["evidence"].startswith("1 near-duplicate pair has backbone cosine")
    exact = {"pairs": 1, "leaking": 0, "crosses_folds": 0, "touches_test": 0, "same_group": 1}
    [found] = duplicate_findings({**_dup(0, 0), "exact": exact}, True, TH)
    assert found["title"] == "Exact duplicates: 1 pair of identical files"


def test_outliers_fire_only_when_some_are_flagged():
    worst = {"path": "a/1.jpg", "label": "a"}
    assert outlier_findings({"count": 3, "z": 3.5, "worst": worst})[0]["id"] == "outliers"
    assert outlier_findings({"count": 1, "z": 3.5, "worst": worst})[0]["title"] == (
        "Outliers: 1 image is far from the rest of their class")
    assert outlier_findings({"count": 0, "z": 3.5, "worst": None}) == []


def test_near_pairs_between_groups_are_not_called_optimistic_but_identical_files_are():
    leak = duplicate_findings(_dup(20, 3, same_group=17), True, TH)[0]
    assert "so held-out scores are optimistic" not in leak["evidence"]
    assert "different items that look alike, or one item filed under two groups" in leak["evidence"]
    [leak] = duplicate_findings(_dup(20, 14), False, TH)
    assert "so held-out scores are optimistic" not in leak["evidence"]
    assert "not known from the features alone" in leak["evidence"] and "--dedup-groups near" in leak["evidence"]
    exact = {"pairs": 2, "leaking": 2, "crosses_folds": 2, "touches_test": 0, "same_group": None}
    [leak] = duplicate_findings({**_dup(0, 0), "exact": exact}, False, TH)
    assert "2 identical-file pairs on both sides of a split make held-out scores optimistic" in leak["evidence"]


def test_identical_files_with_different_labels_are_a_high_finding_that_lists_them():
    conflicts = [{"sha256": "s1", "labels": ["Bag", "Dress"], "sample_ids": [3, 9],
                  "paths": ["Bag/1.jpg", "Dress/7.jpg"]},
                 {"sha256": "s2", "labels": ["Coat", "Shirt"], "sample_ids": [4, 5],
                  "paths": ["Coat/2.jpg", "Shirt/2.jpg"]}]
    [f] = label_conflict_findings(conflicts)
    assert (f["id"], f["severity"]) == ("label-conflicts", "high")
    assert f["title"] == "The same image is labelled Bag and Dress (and 1 other identical file with different labels)"
    assert "Bag and Dress: Bag/1.jpg, Dress/7.jpg; Coat and Shirt: Coat/2.jpg, Shirt/2.jpg" in f["evidence"]
    assert label_conflict_findings([]) == []


def _label_issues(count, flagged, in_test, agreed=None, detectors=("cleanlab", "AUM", "neighbours")):
    worst = {"path": "Dress/3.jpg", "split": "cv", "label": "Dress", "suggested_label": "Bag", "quality": 0.04,
             "suggested_confidence": 0.86}
    agreed = count if agreed is None else agreed
    return {"count": count, "n": 500, "share": count / 500, "flagged": flagged, "contradicted_only": count - flagged,
            "detectors": list(detectors), "agreed": agreed, "agreed_share": agreed / 500, "single": count - agreed,
            "by_detector": {"cleanlab": count, "AUM": agreed, "neighbours": agreed},
            "cv": {"count": count - in_test, "agreed": agreed - in_test, "n": 400},
            "test": {"count": in_test, "agreed": in_test, "n": 100}, "worst": worst,
            "worst_test": {**worst, "path": "Bag/9.jpg", "split": "test"} if in_test else None}


def test_label_issues_in_the_test_split_are_said_to_affect_the_test_metric():
    [f] = label_issue_findings(_label_issues(6, 4, in_test=2), TH)
    assert f["severity"] == "medium"   # 1.2% of images, but two of them sit in the test split
    assert f["title"] == ("Label issues: 6 images flagged by at least 2 of 3 detectors (cleanlab, AUM, neighbours); "
                          "0 more by one; 2 of them in the test split (affects the test metric)")
    assert "flags 6, 2 of them by a label contradicted with at least 80%" in f["evidence"]
    assert "2 agreed test images are listed: the test metric scores the model against labels in doubt" in f["evidence"]
    [f] = label_issue_findings(_label_issues(6, 6, in_test=0), TH)
    assert f["severity"] == "low" and "test" not in f["title"] and "contradicted" not in f["evidence"]


def test_the_label_issue_headline_counts_what_detectors_agree_on_and_the_rest_below():
    [f] = label_issue_findings(_label_issues(80, 70, in_test=0, agreed=12), TH)
    assert f["title"] == ("Label issues: 12 images flagged by at least 2 of 3 detectors (cleanlab, AUM, neighbours); "
                          "68 more by one")
    assert f["severity"] == "low"   # 80 listed is 16%, but the 12 agreed are 2.4%: under the 5% bar
    assert "the area under the margin during training flags 12" in f["evidence"]
    [f] = label_issue_findings(_label_issues(80, 70, in_test=0, agreed=30, detectors=("cleanlab", "neighbours")), TH)
    assert f["severity"] == "medium" and "at least 2 of 2 detectors (cleanlab, neighbours)" in f["title"]
    assert "area under the margin" not in f["evidence"]


def test_the_label_issue_headline_says_how_many_wrong_labels_were_estimated_and_how_they_were_chosen():
    estimate = {"count": 7, "share": 7 / 400, "n": 400, "method": "AUM (threshold samples)"}
    [f] = label_issue_findings({**_label_issues(80, 70, in_test=0, agreed=5), "estimated_errors": estimate}, TH)
    assert f["title"] == ("Label issues: 5 likely wrong labels, the strongest evidence of 3 detectors (cleanlab, "
                          "AUM, neighbours); 75 more listed")
    assert ("How many: AUM (threshold samples) estimates 7 wrong labels among the 400 cross-validation images "
            "(1.8%), the same share of the test split") in f["evidence"]
    assert "among those at least 2 detectors flag" in f["evidence"]


def test_many_failing_classes_make_one_finding_naming_the_worst_few_and_counting_the_rest():
    classes = [f"k{i:02d}" for i in range(40)]
    # k00..k29 each keep 1 + i % 4 of their 10 images (recall 10–40%), the others all 10.
    confusion = [[0] * 40 for _ in classes]
    for i in range(40):
        kept = 1 + i % 4 if i < 30 else 10
        confusion[i][i], confusion[i][(i + 1) % 40] = kept, 10 - kept
    result = imbalance(dict.fromkeys(classes, 10), _oof(confusion, classes), classes)
    fails = [f for f in class_findings(result, TH) if f["id"].startswith("class-fails")]
    assert len(fails) == 1
    [found] = fails
    assert found["id"] == "class-fails:k00" and found["target"]["params"]["class"] == "k00"   # the worst first
    assert found["title"] == "30 classes fail: k00 (recall 10%), k04 (recall 10%), k08 (recall 10%) and 27 more"
    many = [{"class": c, "agreement": 0.1 + i / 100, "chance": 0.025, "inseparable": True}
            for i, c in enumerate(classes)]
    [inseparable] = separability_findings(many, TH)
    assert inseparable["title"] == "Features cannot separate k00, k01, k02 and 37 more"


def test_classes_left_out_are_one_finding_naming_the_smallest_and_counting_the_rest():
    dropped = [{"label": f"thin{i}", "images": 2 + i, "units": 2 + i} for i in range(40)]
    [f] = dropped_class_findings(dropped, TH.test_classes_named)
    assert f["id"] == "dropped-classes" and f["title"] == "40 classes left out: too few images for the folds"
    assert "thin0 (2 images), thin1 (3 images), thin2 (4 images) and 37 more" in f["evidence"]
    assert f"({sum(2 + i for i in range(40))} images)" in f["evidence"]
    assert f["target"] == {"page": "Data", "params": {"tab": "balance"}}
    [one] = dropped_class_findings(dropped[:1], TH.test_classes_named)
    assert one["title"].startswith("1 class left out") and "cannot predict it" in one["evidence"]
    assert dropped_class_findings([], TH.test_classes_named) == []
