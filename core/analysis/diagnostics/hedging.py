"""How far a finding that rests on the model's probabilities can be trusted: the model's strength, said in plain
words beside the finding, and one severity level less when the model is weak.

Applied to the finished list of findings by kind (the part of a finding's id before ':'), so a finding's own text
stays its module's concern. A weak model's low label quality, miscalibration, failing clusters and large prediction
sets are as much its own mistakes as properties of the data.
"""
from __future__ import annotations

from core.analysis.diagnostics.thresholds import Thresholds
from core.numbers import percent, with_interval

# finding kind -> what a weak model means for it (the kinds whose evidence is the model's probabilities)
PROBABILITY_BASED = {
    "label-issues": "many of these flags are its own mistakes, not wrong labels",
    "calibration": "its confidence is judged on many wrong answers; recalibrate once the model is stronger",
    "slice": "a cluster it fails may be where the whole model is weak, not a distinct kind of image",
    "large-sets": "large sets may say the model is weak everywhere, not that these classes overlap",
    "overlapping-classes": "classes it confuses may overlap in its own weak features, not in the images",
}
STEP_DOWN = {"high": "medium", "medium": "low", "low": "low", "info": "info"}


def model_strength(diag: dict, th: Thresholds) -> dict | None:
    """Out-of-fold balanced accuracy against chance (1 / classes): its skill (0 at chance, 1 when perfect), its 95%
    interval when the run recorded one, and whether it is weak. None when the run has no such score."""
    score = diag["imbalance"].get("balanced_accuracy")
    n_classes = len(diag["imbalance"]["counts"])
    if score is None or n_classes < 2:
        return None
    chance = 1 / n_classes
    skill = (score - chance) / (1 - chance)
    return {"balanced_accuracy": score, "interval": diag["overfitting"].get("val_interval"), "chance": chance,
            "skill": skill, "weak": skill < th.model_weak_skill}


def _sentence(kind: str, strength: dict) -> str:
    score = with_interval(strength["balanced_accuracy"], strength["interval"])
    measured = f"out-of-fold balanced accuracy {score}, chance {percent(strength['chance'])}"
    if strength["weak"]:
        return f" The model is weak ({measured}): {PROBABILITY_BASED[kind]}."
    return f" The model is strong enough to judge by ({measured})."


def hedge(found: list[dict], strength: dict | None) -> list[dict]:
    """Each probability-based finding with the model's strength in its evidence and, for a weak model, one
    severity level less (recorded as `hedged`: the severity it would have had)."""
    if strength is None:
        return found
    out = []
    for f in found:
        kind = f["id"].split(":")[0]
        if kind not in PROBABILITY_BASED:
            out.append(f)
            continue
        f = {**f, "evidence": f["evidence"] + _sentence(kind, strength)}
        if strength["weak"] and STEP_DOWN[f["severity"]] != f["severity"]:
            f = {**f, "severity": STEP_DOWN[f["severity"]], "hedged": {"severity": f["severity"]}}
        out.append(f)
    return out
