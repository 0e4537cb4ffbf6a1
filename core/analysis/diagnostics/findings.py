"""Plain-language findings from the numbers in diagnostics.json, ranked by severity."""
from __future__ import annotations

import math

from core.analysis.diagnostics.error_rates import link_error_rates
from core.analysis.diagnostics.hedging import hedge, model_strength
from core.analysis.diagnostics.image_properties import FLAGS, PROPERTIES
from core.analysis.diagnostics.thresholds import Thresholds
from core.numbers import interval, metric_name, percent, points, with_interval

SEVERITIES = ("high", "medium", "low", "info")
PAGES = ("Home", "Overfitting", "Classes", "Embeddings", "Misclassified", "Data", "Compare", "Slices")
PARAMS = ("fold", "class", "true", "pred", "role", "space", "color", "tab", "property", "slice", "sides")


def finding(id: str, severity: str, title: str, evidence: str, page: str, **params: str) -> dict:
    if severity not in SEVERITIES or page not in PAGES or not set(params) <= set(PARAMS):
        raise ValueError(f"finding {id!r}: unknown severity {severity!r}, page {page!r} or params {sorted(params)}")
    return {"id": id, "severity": severity, "title": title, "evidence": evidence,
            "target": {"page": page, "params": params}}


def _count(n: int, noun: str) -> str:
    """'1 near-duplicate pair', '3 near-duplicate pairs': a count with its (last-word) noun in the right number."""
    return f"{n} {noun if n == 1 else noun + 's'}"


def _agree(n: int, singular: str, plural: str) -> str:
    """The verb form that agrees with a count of n."""
    return singular if n == 1 else plural


def _level(value: float, medium: float, high: float, low: float | None = None) -> str | None:
    """The severity of a value that is worse when larger."""
    if value >= high:
        return "high"
    if value >= medium:
        return "medium"
    return "low" if low is not None and value >= low else None


def _inside(value: float, bounds: list[float] | None) -> bool:
    """Whether a value lies inside an interval; without one (an older run), nothing is judged inside."""
    return bounds is not None and bounds[0] <= value <= bounds[1]


def overfitting_findings(o: dict, groups_used: bool, th: Thresholds) -> list[dict]:
    """Train against validation on the headline metric; a gap whose train score lies inside validation's interval
    is one chance alone can make, so it is not called memorisation."""
    gap, name = o["gap"], metric_name(o["metric"])
    severity = _level(gap, th.overfit_gap_medium, th.overfit_gap_high)
    if severity is None or _inside(o["train"], o["val_interval"]):
        return []
    spread = (f"consistent over {o['n_folds']} folds" if o["consistent"]
              else f"in {o['folds_over_gap']} of {o['n_folds']} folds")
    why = (" Folds are grouped, so validation measures groups the model has never seen." if groups_used else "")
    beyond = (f"; train lies above validation's 95% interval ({interval(o['val_interval'])}, pooled out-of-fold), "
              f"so chance alone does not explain the gap" if o["val_interval"] else "")
    return [finding(
        "overfitting", severity,
        f"Overfitting: {name} {percent(o['train'])} on train vs {percent(o['val'])} on validation "
        f"(gap {points(gap)}, {spread})",
        f"Mean {name} {percent(o['train'])} on train against {percent(o['val'])} on validation{beyond}; "
        f"the per-fold gap ranges from {points(o['gap_min'])} to {points(o['gap_max'])} "
        f"(plain accuracy gap {points(o['gaps']['train_minus_val']['accuracy'])}).{why}",
        "Overfitting")]


def heldout_vs_validation_findings(o: dict) -> list[dict]:
    """The test ensemble outside validation's interval: the cross-validated numbers do not carry over to the
    held-out split."""
    test, bounds = o["test"], o["val_interval"]
    if test is None or bounds is None or _inside(test["value"], bounds):
        return []
    name = metric_name(o["metric"])
    below = test["value"] < bounds[0]
    fold_mean = (f"; the fold models' mean on test is {percent(test['fold_mean'])}"
                 if test["fold_mean"] is not None else "")
    return [finding(
        "test-outside-validation", "medium" if below else "low",
        f"Test {name} {percent(test['value'])} is {'below' if below else 'above'} validation's interval "
        f"{interval(bounds)} ({points(test['value'] - o['val'])} from validation)",
        f"The test ensemble (what predict and serve use) scores {with_interval(test['value'], test['interval'])} on "
        f"{_count(test['n'], 'held-out image')}{fold_mean}; validation scores {percent(o['val'])} (mean over folds; "
        f"95% interval {interval(bounds)}, pooled out-of-fold). "
        + ("Validation promises more than the test split delivers: look for near-duplicates or groups shared "
           "across folds but not with test (Data page), a test split that differs from the folds, or a best "
           "epoch chosen on validation." if below else
           "The test split scores better than validation: a test split easier than the folds, or a small one.")
        + " A test interval that overlaps validation's means the test split alone may be too small to tell.",
        "Overfitting")]


def small_test_support_findings(o: dict, th: Thresholds) -> list[dict]:
    """One finding for the classes whose test recall is too uncertain to judge (interval wider than the threshold),
    widest first, naming a few and counting the rest."""
    def width(row: dict) -> float:
        return row["interval"][1] - row["interval"][0]
    rows = sorted((r for r in (o["test"] or {}).get("per_class", [])
                   if r["interval"] is not None and width(r) > th.test_class_interval_width), key=width, reverse=True)
    if not rows:
        return []
    named = rows[:th.test_classes_named]
    more = f" and {len(rows) - len(named)} more" if len(rows) > len(named) else ""
    listed = "; ".join(f"{_count(r['support'], 'test image')} of {r['class']}: recall {percent(r['recall'])}, "
                       f"interval {interval(r['interval'])}" for r in named)
    return [finding(   # info: it is about how well the test split measures, not about the model
        "test-support", "info",
        f"Too few test images to judge {', '.join(r['class'] for r in named)}{more}",
        f"{listed}{more}. With so few images a class's test recall moves by tens of points between splits (95% "
        f"interval, exact binomial, wider than {th.test_class_interval_width * 100:.0f} points): judge these "
        f"classes on their out-of-fold validation recall, or hold out more of their images.",
        "Classes", **{"class": named[0]["class"]})]


def _failing(imb: dict, th: Thresholds) -> list[dict]:
    """Classes whose out-of-fold recall is under the medium threshold, worst first (a class without validation
    images has nothing to fail on)."""
    rows = [r for r in imb["per_class"] if r["recall"] is not None and r["recall"] < th.class_recall_medium]
    return sorted(rows, key=lambda r: r["recall"])


def class_findings(imb: dict, th: Thresholds) -> list[dict]:
    """One finding for the failing classes however many there are: the worst described, the next few named and
    the rest counted (the Classes page lists them all); and one for imbalance."""
    out = []
    failing = _failing(imb, th)
    if failing:
        row = failing[0]
        severity = "high" if row["recall"] < th.class_recall_high else "medium"
        collapse = (f"; {row['collapse_share']:.0%} are predicted as {row['collapse_into']}"
                    if row["collapse_share"] >= th.collapse_share else "")
        worst = f"{row['class']} fails: validation recall {row['recall']:.0%} of {row['support']}{collapse}"
        named = failing[:th.test_classes_named]
        more = f" and {len(failing) - len(named)} more" if len(failing) > len(named) else ""
        listed = ", ".join(f"{r['class']} (recall {r['recall']:.0%})" for r in named)
        title = worst if len(failing) == 1 else f"{len(failing)} classes fail: {listed}{more}"
        out.append(finding(
            f"class-fails:{row['class']}", severity, title,
            f"Out-of-fold recall of {row['class']} is {row['recall']:.1%} over "
            f"{_count(row['support'], 'validation image')} "
            f"(F1 {row['f1']:.2f}); the class it is most often mistaken for is {row['collapse_into']} "
            f"({row['collapse_share']:.0%} of its images)."
            + ("" if len(failing) == 1 else
               f" {len(failing)} classes have a recall under {th.class_recall_medium:.0%}; the per-class table of "
               "the Classes page lists them all."),
            "Classes", **{"class": row["class"], "fold": "oof"}))
    ratio = imb["ratio"]
    severity = ratio and _level(ratio, th.imbalance_medium, th.imbalance_high, th.imbalance_low)
    if severity:
        counts = imb["counts"]
        out.append(finding(
            "imbalance", severity, f"Imbalance {ratio:.1f} : 1",
            f"{imb['largest']} has {counts[imb['largest']]} images and {imb['smallest']} {counts[imb['smallest']]} "
            f"(ratio {ratio:.1f} : 1); out-of-fold accuracy {imb['accuracy']:.0%} vs balanced accuracy "
            f"{imb['balanced_accuracy']:.0%}.",
            "Classes", fold="oof"))
    return out


def _images(value: float) -> str:
    """A cut or a count of training images as a person says it: 10, 2.5."""
    return f"{value:g}"


def tail_findings(t: dict | None, th: Thresholds) -> list[dict]:
    """One finding for the long tail: the classes with few training images fail where the others do not, beyond
    chance (`tail.tail` decides); names the worst few and the remedy that needs no retraining."""
    if not t or not t["fails"]:
        return []
    cut, n = _images(t["cut"]), t["n_tail"]
    classes = f"{n} {_agree(n, 'class', 'classes')}"
    rows = [r for r in t["tail_classes"] if r["recall"] is not None]
    named = rows[:th.tail_classes_named]
    more = f" and {len(rows) - len(named)} more" if len(rows) > len(named) else ""
    listed = ", ".join(f"{r['class']} ({percent(r['recall'])}, {_images(round(r['train_images'], 1))} training "
                       f"images)" for r in named)
    tp, hp = t["tail_pooled"], t["head_pooled"]
    severity = "high" if t["tail_mean_recall"] < th.class_recall_high else "medium"
    return [finding(
        "long-tail", severity,
        f"{classes} with under {cut} training images: mean recall {percent(t['tail_mean_recall'])} "
        f"against {percent(t['head_mean_recall'])}",
        f"Out of fold, the {classes} with fewer than {cut} training images per fold (the tail: under the "
        f"geometric mean of the largest class's {_images(round(t['largest'], 1))} and the smallest's "
        f"{_images(round(t['smallest'], 1))}, rounded down) "
        f"{_agree(n, 'has', 'have')} mean recall {percent(t['tail_mean_recall'])} against "
        f"{percent(t['head_mean_recall'])} for the other {t['n_head']}; pooled over their validation images "
        f"{with_interval(tp['recall'], tp['interval'])} of {tp['n']} against "
        f"{with_interval(hp['recall'], hp['interval'])} of {hp['n']}, lower in {t['folds_lower']} of "
        f"{len(t['folds'])} folds. Worst: {listed}{more}. The model favours the classes it saw most: try "
        f"`train_cli.py remedies --remedies logit-adjust-posthoc,logit-adjust-loss` (post hoc needs no "
        f"retraining; both compared fold-paired with this run's settings), or collect more images of these classes.",
        "Classes", fold="oof", **({"class": named[0]["class"]} if named else {}))]


def confusion_findings(pairs: list[dict], failing: set[str], th: Thresholds) -> list[dict]:
    """The worst confused pair, unless its class already has a 'fails' finding that names it."""
    for p in pairs:
        if p["share"] >= th.confused_pair_share and p["true"] not in failing:
            return [finding(
                f"confused:{p['true']}->{p['pred']}", "low",
                f"{p['true']} is often predicted as {p['pred']} ({p['share']:.0%})",
                f"{_count(p['count'], 'out-of-fold validation image')} of {p['true']} ({p['share']:.0%}) "
                f"{_agree(p['count'], 'is', 'are')} predicted as "
                f"{p['pred']}: the most confused pair.",
                "Misclassified", fold="oof", true=p["true"], pred=p["pred"])]
    return []


def overlapping_class_findings(overlap: dict | None, th: Thresholds) -> list[dict]:
    """One finding for the pairs of classes the model splits far more than chance: the largest described, a few
    named, the rest counted. Older runs' diagnostics have no "overlapping_classes"."""
    rows = [r for r in (overlap or {}).get("pairs", []) if r["significant"]]
    if not rows:
        return []
    r, named = rows[0], rows[:th.test_classes_named]
    found = overlap["found"]
    more = f" and {_count(found - len(named), 'more pair')}" if found > len(named) else ""
    spread = (f"; per fold {percent(r['fold_min'])} to {percent(r['fold_max'])}" if r["fold_min"] is not None
              else "")
    return [finding(
        f"overlapping-classes:{r['a']}|{r['b']}", "medium",
        "Classes the data cannot separate: " + ", ".join(f"{n['a']} and {n['b']}" for n in named) + more
        + ": merge them or relabel",
        f"cleanlab estimates that {r['overlapping']:.0f} of the {r['images']} out-of-fold images of {r['a']} and "
        f"{r['b']} ({percent(r['share'])}{spread}) belong on the other side of the pair. The model confuses the "
        f"two {_count(r['confused'], 'time')} ({r['a_as_b']} {r['a']} as {r['b']}, {r['b_as_a']} the other way), "
        f"where {r['expected']:.1f} would be expected if its errors on them went to every other class in "
        f"proportion to its size. Merge them (python train_cli.py clean RUN_ID --merge-classes "
        f"\"{r['a']},{r['b']}\") or relabel their images."
        + ("" if found == 1 else f" {found} pairs are like it."),
        "Classes", true=r["a"], pred=r["b"], sides="both")]


def calibration_findings(cal: dict, th: Thresholds) -> list[dict]:
    severity = _level(cal["ece"], th.ece_medium, th.ece_high)
    if severity is None:
        return []
    direction = "over-confident" if cal["overconfidence"] > 0 else "under-confident"
    return [finding(
        "calibration", severity, f"Poor calibration: ECE {cal['ece']:.2f}, {direction}",
        f"Out-of-fold confidence averages {cal['mean_confidence']:.0%} while accuracy is {cal['accuracy']:.0%} "
        f"(expected calibration error {cal['ece']:.3f} over {len(cal['bins'])} bins).",
        "Misclassified", fold="oof", tab="calibration")]


def prediction_set_findings(conformal: dict | None, th: Thresholds) -> list[dict]:
    """Where the model's prediction sets are large (it cannot tell those classes apart), and whether the sets
    hold their coverage on the test split. Older runs' diagnostics have no "conformal"."""
    test = (conformal or {}).get("marginal", {}).get("test")
    if not test or not test["n"]:
        return []
    target, out = conformal["coverage"], []
    large = sorted((row for row in test["per_class"] if row["n"] and row["mean_set_size"] >= th.large_set_size),
                   key=lambda row: -row["mean_set_size"])
    if large:
        named = ", ".join(f"{row['class']} {row['mean_set_size']:.1f}" for row in large[:3])
        more = f" (and {len(large) - 3} more)" if len(large) > 3 else ""
        classes = f"{len(large)} {_agree(len(large), 'class', 'classes')}"
        shared = "; ".join(f"{row['class']} with " + (", ".join(f"{s['class']} ({s['share']:.0%})"
                                                               for s in row["shared_with"]) or "no other class")
                           for row in large)
        out.append(finding(
            "large-sets", "medium",
            f"Large prediction sets: {named} classes per image{more}",
            f"To hold the true class in {target:.0%} of sets, the test images of {classes} get "
            f"sets of {th.large_set_size:g} or more classes on average: the model cannot tell them apart from the "
            f"classes most often in their sets ({shared}; share of the class's test images). Whole split: "
            f"{test['mean_set_size']:.1f} classes per set, coverage {test['coverage']:.0%}.",
            "Misclassified", tab="calibration"))
    if test["coverage"] < target - th.coverage_shortfall_se * test["coverage_se"]:
        out.append(finding(
            "coverage-shortfall", "medium",
            f"Prediction sets fall short: {test['coverage']:.0%} hold the true class, not {target:.0%}",
            f"On the test split the fold ensemble's sets hold the true class for {test['coverage']:.1%} of "
            f"{_count(test['n'], 'image')} (standard error {test['coverage_se']:.1%}), under the {target:.0%} they "
            f"were calibrated for on single fold models' out-of-fold predictions: the ensemble is not the model "
            f"they were calibrated on.", "Misclassified", tab="calibration"))
    return out + class_coverage_findings(conformal, target, th)


def class_coverage_findings(conformal: dict, target: float, th: Thresholds) -> list[dict]:
    """Classes whose class-conditional sets (`--class-conditional`: a guarantee per class) fall short on the test
    split by more than `coverage_shortfall_se` standard errors of a share at the target, sqrt(t(1-t)/n): the
    observed share's own error is 0 at 0% or 100% and would pass any class."""
    test = (conformal.get("class_conditional") or {}).get("test")
    short = [row for row in (test or {}).get("per_class", []) if row["n"] and row["coverage"] < target
             - th.coverage_shortfall_se * math.sqrt(target * (1 - target) / row["n"])]
    if not short:
        return []
    named = ", ".join(f"{row['class']} {percent(row['coverage'])} of {row['n']}" for row in short)
    return [finding(
        "class-coverage-shortfall", "low",
        f"Class-conditional prediction sets fall short for {len(short)} {_agree(len(short), 'class', 'classes')}: "
        f"{named}",
        f"With --class-conditional, each class's sets are calibrated on its own out-of-fold images to hold the true "
        f"class for {percent(target)} of its images; on the test split they hold it for {named} test images, more than "
        f"{th.coverage_shortfall_se:g} standard errors under. Few test images, or images that come in groups (one "
        f"product, one patient), make this share noisy; else the fold ensemble or the test split differs for this "
        f"class from the out-of-fold images the sets were calibrated on.", "Misclassified", tab="calibration")]


def _headline_rule(estimate: dict | None, need: int) -> str:
    """How the headline was sized: the estimate of wrong labels and the evidence that ranks them."""
    if estimate is None:
        return ""
    return (f" How many: {estimate['method']} estimates {estimate['count']} wrong labels among the "
            f"{estimate['n']} cross-validation images ({percent(estimate['share'])}), the same share of the test "
            f"split; the headline holds that many images with the strongest combined evidence (each detector's "
            f"score as a percentile rank, averaged) among those at least {need} detectors flag.")


def label_issue_findings(li: dict, th: Thresholds) -> list[dict]:
    """Suspected label errors: the headline (as many as the estimate of wrong labels, with the strongest combined
    evidence of the detectors) first, the others listed after."""
    if li["count"] == 0:
        return []
    detectors = li.get("detectors", ["cleanlab"])
    agreed, single = li.get("agreed", li["count"]), li.get("single", 0)
    in_test = li["test"].get("agreed", li["test"]["count"])
    # a suspect label in the test split changes the headline number itself
    severity = ("medium" if li.get("agreed_share", li["share"]) >= th.label_issue_share_medium or in_test
                else "low")
    need = min(th.agreeing_detectors, len(detectors))
    estimate = li.get("estimated_errors")
    if estimate is None:   # diagnostics.json from before the estimate: the headline was any `need` detectors
        title = (f"Label issues: {_count(agreed, 'image')} flagged by at least {need} of {len(detectors)} detectors "
                 f"({', '.join(detectors)}); {single} more by one")
    else:
        title = (f"Label issues: {_count(agreed, 'likely wrong label')}, the strongest evidence of {len(detectors)} "
                 f"detectors ({', '.join(detectors)}); {single} more listed")
    title += f"; {in_test} of them in the test split (affects the test metric)" if in_test else ""
    worst = li["worst"]
    test_part = ""
    if in_test:
        t = li["worst_test"]
        test_part = (f" {_count(in_test, 'agreed test image')} {_agree(in_test, 'is', 'are')} listed: the test "
                     f"metric scores the model against {_agree(in_test, 'a label', 'labels')} in doubt; the "
                     f"worst, {t['path']}, is labelled {t['label']} but the ensemble sees {t['suggested_label']} "
                     f"({t['suggested_confidence']:.0%}).")
    by = li.get("by_detector", {"cleanlab": li["count"]})
    more = li["contradicted_only"]
    contradicted = (f", {more} of them by a label contradicted with at least "
                    f"{th.label_contradicted_confidence:.0%} on another class" if more else "")
    evidence = {
        "cleanlab": f"cleanlab on models that never trained on them (out-of-fold for the {li['cv']['n']} "
                    f"cross-validation images, the fold ensemble for the {li['test']['n']} test images) flags "
                    f"{by['cleanlab']}{contradicted}",
        "AUM": f"the area under the margin during training flags {by.get('AUM', 0)}",
        "neighbours": f"a vote of each image's nearest neighbours in the pretrained space flags "
                      f"{by.get('neighbours', 0)}"}
    return [finding(
        "label-issues", severity, title,
        "Each detector is independent evidence: " + "; ".join(evidence[d] for d in detectors) + ". One detector "
        "alone is often the model's own mistake on a hard image; images several agree on are more likely wrong "
        f"labels.{_headline_rule(estimate, need)} The first listed, {worst['path']} ({worst['split']}), is labelled {worst['label']} but looks "
        f"like {worst['suggested_label']} (label quality {worst['quality']:.3f}).{test_part}",
        "Misclassified", fold="oof", tab="label_issues")]


def _leakage_consequence(exact: dict, copy: dict, near: dict, groups_used: bool, has_groups: bool,
                         th: Thresholds) -> str:
    """What the leaking pairs mean, saying only what is known: identical files and copies are the same image; a
    near pair is two images whose features are close, which may or may not be the same item."""
    out = []
    if exact["leaking"]:
        out.append(f" {_count(exact['leaking'], 'identical-file pair')} on both sides of a split "
                   f"{_agree(exact['leaking'], 'makes', 'make')} held-out scores optimistic.")
    if copy["leaking"]:
        out.append(f" {_count(copy['leaking'], 'copy pair')} (the same picture at another size or encoding: "
                   f"perceptual hashes within {th.pixel_hash_bits} of 64 bits) on both sides of a split "
                   f"{_agree(copy['leaking'], 'makes', 'make')} held-out scores optimistic.")
    if near["leaking"] and groups_used:
        same = near["same_group"] or 0
        out.append(f" Grouped folds keep the {_count(same, 'same-group pair')} on one side of every split, so the "
                   f"leaking near pairs join different groups: different items that look alike, or one item filed "
                   f"under two groups; only the second makes held-out scores optimistic (see them side by side on "
                   f"the Data page).")
    elif near["leaking"]:
        # say "ignore groups" only of a dataset that has them (--no-groups); without a group column there is none
        how = ("The splits ignore the dataset's groups (--no-groups)" if has_groups
               else "The dataset has no group column")
        out.append(f" {how}; whether a near pair shows one item twice is not known from the features alone. If it "
                   "does, held-out scores are optimistic; a group column (used unless --no-groups) or "
                   "--dedup-groups near keeps such images on one side (see them side by side on the Data page).")
    return "".join(out)


def duplicate_findings(dup: dict, groups_used: bool, th: Thresholds, has_groups: bool = False) -> list[dict]:
    exact, near = dup["exact"], dup["near"]
    # copies (perceptual hash) are absent from diagnostics.json written before they were found
    copy = dup.get("copy", {"pairs": 0, "leaking": 0, "crosses_folds": 0, "touches_test": 0, "same_group": None})
    # the calibrated cosine the pairs were found at (diagnostics.json before it was recorded: the fixed one)
    cut = dup.get("threshold", {}).get("similarity", th.near_duplicate_similarity)
    out = []
    leaking = exact["leaking"] + copy["leaking"] + near["leaking"]
    if leaking:
        high = exact["leaking"] + copy["leaking"] > 0 or near["leaking"] >= th.leakage_share_high * near["pairs"]
        between = " between different groups" if groups_used else ""

        def pairs(key: str) -> tuple[str, int]:
            """'2 identical-file pairs, 1 copy pair and 5 near-duplicate pairs', the surest kind named first."""
            parts = ([_count(exact[key], "identical-file pair")] if exact[key] else []) + (
                [_count(copy[key], "copy pair")] if copy[key] else []) + (
                [_count(near[key], "near-duplicate pair") + between] if near[key] else [])
            text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
            return text, exact[key] + copy[key] + near[key]
        where = []
        for key, singular, plural, what in (("crosses_folds", "crosses", "cross", "train and validation"),
                                            ("touches_test", "touches", "touch", "the test set")):
            text, n = pairs(key)
            if n:
                where.append(f"{text} {_agree(n, singular, plural)} {what}")
        out.append(finding(
            "leakage", "high" if high else "low", "Leakage: " + "; ".join(where),
            (f"Of {exact['pairs']} exact and {_count(near['pairs'], 'near-duplicate pair')} (cosine ≥ "
             f"{cut:.2f}), {exact['leaking']} exact and {near['leaking']} near " if not copy["pairs"] else
             f"Of {exact['pairs']} exact, {copy['pairs']} copy and {_count(near['pairs'], 'near-duplicate pair')} "
             f"(cosine ≥ {cut:.2f}), {exact['leaking']} exact, {copy['leaking']} copy and {near['leaking']} near ")
            + f"{_agree(leaking, 'pair is', 'pairs are')} split across train/validation or touch the test set."
            f"{_leakage_consequence(exact, copy, near, groups_used, has_groups, th)}",
            "Data", tab="duplicates"))
    contained = near["pairs"] - near["leaking"]
    if contained and not (out and out[0]["severity"] == "high"):
        groups = (f"; {near['same_group']} {_agree(near['same_group'], 'is', 'are')} within one group"
                  if near["same_group"] is not None else "")
        how = "grouped folds keep" if groups_used else "the splits keep"
        out.append(finding(
            "duplicates-contained", "info",
            f"Near-duplicates: {_count(near['pairs'], 'pair')} found, {contained / near['pairs']:.0%} kept on one "
            f"side of every split",
            f"{_count(near['pairs'], 'near-duplicate pair')} {_agree(near['pairs'], 'has', 'have')} backbone cosine "
            f"≥ {cut:.2f}{groups}; {how} {contained} of them out of any train/validation "
            f"or test crossing.",
            "Data", tab="duplicates"))
    if exact["pairs"] and not exact["leaking"]:
        out.append(finding(
            "exact-duplicates", "low", f"Exact duplicates: {_count(exact['pairs'], 'pair')} of identical files",
            f"{_count(exact['pairs'], 'pair')} of images {_agree(exact['pairs'], 'has', 'have')} identical bytes "
            f"(sha256); none is split across folds or test.",
            "Data", tab="duplicates"))
    return out


def label_conflict_findings(conflicts: list[dict]) -> list[dict]:
    """Identical files under different labels: at least one of the labels is wrong, whatever the model does."""
    if not conflicts:
        return []
    first, n = conflicts[0], len(conflicts)
    listed = "; ".join(f"{' and '.join(c['labels'])}: {', '.join(c['paths'])}" for c in conflicts[:10])
    more = f"; and {n - 10} more" if n > 10 else ""
    return [finding(
        "label-conflicts", "high",
        f"The same image is labelled {' and '.join(first['labels'])}"
        + (f" (and {_count(n - 1, 'other identical file')} with different labels)" if n > 1 else ""),
        f"{_count(n, 'file')} {_agree(n, 'appears', 'appear')} more than once with different labels ({listed}{more}). "
        f"Identical bytes cannot belong to two classes: at least one of the labels is wrong, and the model is "
        f"trained and scored against both.",
        "Data", tab="duplicates")]


def dropped_class_findings(dropped: list[dict], named: int) -> list[dict]:
    """Classes left out of the run (--drop-small-classes): the model never sees them and predicts none of them, so
    nothing here says how they would fare. One finding, the smallest few named with their counts."""
    if not dropped:
        return []
    n, images = len(dropped), sum(d["images"] for d in dropped)
    classes = f"{n} class{'' if n == 1 else 'es'}"
    listed = ", ".join(f"{d['label']} ({_count(d['images'], 'image')})" for d in dropped[:named])
    more = f" and {n - named} more" if n > named else ""
    return [finding(
        "dropped-classes", "medium",
        f"{classes} left out: too few images for the folds",
        f"{classes} ({_count(images, 'image')}) {_agree(n, 'was', 'were')} too small to appear in every "
        f"fold and the test split, and {_agree(n, 'was', 'were')} left out (--drop-small-classes): {listed}{more}. "
        f"The model cannot predict {_agree(n, 'it', 'them')}, and an image of {_agree(n, 'it', 'one')} gets another "
        f"class; add images to train {_agree(n, 'it', 'them')}.",
        "Data", tab="balance")]


def outlier_findings(out_summary: dict) -> list[dict]:
    n = out_summary["count"]
    if n == 0:
        return []
    worst = out_summary["worst"]
    return [finding(
        "outliers", "low", f"Outliers: {_count(n, 'image')} {_agree(n, 'is', 'are')} far from the rest of their class",
        f"{_count(n, 'image')} {_agree(n, 'is', 'are')} more than {out_summary['z']:.1f} robust z above their "
        f"class's typical distance to its nearest same-class neighbours; the most isolated is {worst['path']} "
        f"({worst['label']}).",
        "Data", tab="outliers")]


def separability_findings(rows: list[dict], th: Thresholds) -> list[dict]:
    """One finding for the classes the pretrained features do not group, lowest agreement first: the worst
    described, a few named, the rest counted."""
    rows = sorted((r for r in rows if r["inseparable"]), key=lambda r: r["agreement"])
    if not rows:
        return []
    r, named = rows[0], rows[:th.test_classes_named]
    more = f" and {len(rows) - len(named)} more" if len(rows) > len(named) else ""
    return [finding(
        f"inseparable:{r['class']}", "medium", f"Features cannot separate {', '.join(n['class'] for n in named)}{more}",
        f"Only {r['agreement']:.0%} of the backbone-space nearest neighbours of {r['class']} images share its label "
        f"(chance {r['chance']:.0%}): the pretrained features do not group this class."
        + ("" if len(rows) == 1 else f" {len(rows)} classes are like it."),
        "Embeddings", space="backbone", color="label", **{"class": r["class"]})]


def findings(diag: dict, th: Thresholds) -> list[dict]:
    groups_used = bool(diag["groups_used"])
    class_list = class_findings(diag["imbalance"], th)
    failing = {r["class"] for r in _failing(diag["imbalance"], th)}
    # a confused pair inside an overlapping pair is already said by the overlap finding
    overlapping = {r[side] for r in (diag.get("overlapping_classes") or {}).get("pairs", []) if r["significant"]
                   for side in ("a", "b")}
    found = (overfitting_findings(diag["overfitting"], groups_used, th)
             + heldout_vs_validation_findings(diag["overfitting"])
             + small_test_support_findings(diag["overfitting"], th) + class_list
             + overlapping_class_findings(diag.get("overlapping_classes"), th)
             + tail_findings(diag.get("tail"), th)
             + confusion_findings(diag["confusion"]["oof"], failing | overlapping, th)
             + calibration_findings(diag["calibration"], th)
             + prediction_set_findings(diag.get("conformal"), th)
             + label_issue_findings(diag["label_issues"], th)
             + dropped_class_findings(diag.get("dropped_classes", []), th.test_classes_named)
             + label_conflict_findings(diag["duplicates"]["label_conflicts"])
             + duplicate_findings(diag["duplicates"], groups_used, th, bool(diag.get("has_groups", groups_used)))
             + outlier_findings(diag["outliers"])
             + separability_findings(diag["separability"], th)
             + shortcut_findings(diag.get("image_properties"), th)
             + image_quality_findings(diag.get("image_properties"), th)
             + slice_findings(diag.get("slices")))
    found = link_error_rates(hedge(found, model_strength(diag, th)))
    if all(f["severity"] == "info" for f in found):
        o = diag["overfitting"]
        found.append(finding(
            "all-clear", "info", "No problems found",
            f"Validation {metric_name(o['metric'])} {percent(o['val'])} (train {percent(o['train'])}); no overfitting "
            f"gap, failing class, poor calibration, label issue, leakage or outlier passed its threshold.", "Home"))
    return sorted(found, key=lambda f: SEVERITIES.index(f["severity"]))   # stable: keeps the order above within a level


# ---------------------------------------------------------------- image properties and slices

def _noun(name: str) -> str:
    """'aspect ratio' from 'aspect ratio (width / height)'."""
    return PROPERTIES[name].split(" (")[0]


FLAG_PROPERTY = {"dark": "brightness", "blurry": "blur", "tiny": "short_side", "odd_aspect": "aspect_ratio",
                 "low_information": "entropy"}


def image_quality_findings(props: dict | None, th: Thresholds) -> list[dict]:
    """One low finding per kind of unusable image (dark, blurry, tiny, odd aspect, low information)."""
    out = []
    for flag, summary in (props or {}).get("flags", {}).items():
        n = summary["count"]
        if n == 0:
            continue
        what = FLAGS[flag].format(**th.to_dict())
        advice = "Such images carry little the model can learn from: check, fix or remove them."
        if summary.get("suggested_image_size"):   # most images are tiny: the model input is too large, not they
            advice = (f"That is most of the dataset (median shorter side {summary['median_short_side']:.0f} px), "
                      "so removing them is not the answer: train at an input nearer their size, "
                      f"--image-size {summary['suggested_image_size']} (this run: {summary['image_size']} px).")
        out.append(finding(
            f"image-quality:{flag}", "low", f"Data quality: {_count(n, 'image')} {_agree(n, 'is', 'are')} {what}",
            f"{n} of {props['n']} images are {what}; for example {', '.join(summary['examples'])}. {advice}",
            "Data", tab="properties", property=FLAG_PROPERTY[flag]))
    return out


def shortcut_findings(props: dict | None, th: Thresholds) -> list[dict]:
    """A property that alone tells a class from the others (high/medium), or that predicts the errors (medium)."""
    out = []
    for row in (props or {}).get("label", []):
        score = row.get("class_balanced_accuracy")
        severity = score is not None and _level(score, th.shortcut_medium, th.shortcut_high)
        if not severity:
            continue
        noun = _noun(row["property"])
        out.append(finding(
            f"shortcut:{row['property']}", severity,
            f"Shortcut: {noun} alone tells {row['class']} from the other classes "
            f"({score:.0%} balanced accuracy)",
            f"{row['class']} images have {noun} {row['side']} {row['threshold']:.3g} {row['class_share']:.0%} of "
            f"the time, other classes {row['others_share']:.0%}: the model may be learning the {noun} rather than "
            f"what the images show. A depth-{th.shortcut_depth} tree on {noun} alone, trained and scored under the "
            f"run's folds, tells {row['class']} from the rest with balanced accuracy {score:.2f} (chance 0.50) and "
            f"predicts the label with {row['balanced_accuracy']:.2f} (chance {row['chance']:.2f}).",
            "Data", tab="properties", property=row["property"]))
    for row in (props or {}).get("error", []):
        if row["balanced_accuracy"] < th.error_shortcut_medium or row["error_elsewhere"] is None:
            continue
        noun = _noun(row["property"])
        out.append(finding(
            f"errors-follow:{row['property']}", "medium",
            f"Errors follow {noun}: {row['error_on_side']:.0%} wrong where {noun} {row['side']} "
            f"{row['threshold']:.3g}, {row['error_elsewhere']:.0%} elsewhere",
            f"{row['share_on_side']:.0%} of the validation images have {noun} {row['side']} {row['threshold']:.3g}; "
            f"{row['error_on_side']:.0%} of them are predicted wrong out of fold, against {row['error_elsewhere']:.0%} "
            f"of the others. {noun.capitalize()} alone predicts the error with balanced accuracy "
            f"{row['balanced_accuracy']:.2f} under the run's folds (chance 0.50).",
            "Data", tab="properties", property=row["property"]))
    return out


def slice_findings(slices: dict | None) -> list[dict]:
    out = []
    for row in (slices or {}).get("found", []):
        top = row["class_mix"][0]
        out.append(finding(
            f"slice:{row['slice']}", "medium",
            f"Failing slice: {row['size']} similar images, {row['error']:.0%} wrong (run {row['run_error']:.0%}), "
            f"mostly {top['class']}",
            row["description"], "Slices", slice=row["slice"], space=row["space"]))
    return out
