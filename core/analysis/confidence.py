"""What makes a run's predictions actionable: temperature-scaled probabilities and conformal prediction sets,
both calibrated on the run's out-of-fold predictions (every cv image predicted by the one fold model that never
saw it: an exchangeable calibration set). Fitted from predictions.parquet when the models load, so every run,
old ones included, has them; deterministic, so `predict`, `serve` and the diagnostics agree.

The out-of-fold probabilities come from single fold models while `predict` and `serve` use the fold ensemble, a
different (usually better, less confident) model: the guarantee is exact for a single fold model, and the
diagnostics and bench/bench_confidence.py measure the ensemble's coverage on the test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis import conformal
from core.analysis.temperature import fit_temperature, scale
from core.config import SetSettings
from core.errors import UserError
from core.evaluate import prob_column


def check_coverage(coverage: float, what: str = "--coverage") -> float:
    """The target coverage as a float strictly between 0 and 1, else a one-line UserError."""
    try:
        value = float(coverage)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0 < value < 1:
        raise UserError(f"{what} {coverage}: give the share of images whose set should hold the true class, "
                        f"strictly between 0 and 1 (e.g. 0.9)")
    return value


@dataclass(frozen=True)
class Confidence:
    """Prediction sets at one target coverage and the temperature, fitted on `n_calibration` images."""
    classes: list[str]
    coverage: float
    class_conditional: bool
    temperature: float
    thresholds: np.ndarray       # [C] score threshold per class (all equal unless class-conditional)
    n_calibration: int
    settings: SetSettings = SetSettings()   # APS or RAPS, and RAPS's penalty

    def sets(self, probs: np.ndarray) -> np.ndarray:
        """[n, C] bool: the classes each image could be (conformal sets of the uncalibrated probabilities)."""
        return conformal.prediction_sets(probs, self.thresholds, self.settings)

    def calibrated(self, probs: np.ndarray) -> np.ndarray:
        return scale(probs, self.temperature)

    def labels(self, members: np.ndarray, probs: np.ndarray) -> list[list[str]]:
        """Each set's class names, most probable first."""
        return [[self.classes[c] for c in np.argsort(-p, kind="stable") if row[c]] for row, p in zip(members, probs)]

    def always_in(self) -> list[str]:
        """Classes in every set: too few calibration images (fewer than 1/(1-coverage) - 1) to bound them."""
        return [name for name, value in zip(self.classes, self.thresholds) if np.isinf(value)]

    def describe(self) -> dict:
        raps = ({"raps_lambda": self.settings.raps_lambda, "raps_k_reg": self.settings.raps_k_reg}
                if self.settings.method == "raps" else {})
        return {"coverage": self.coverage, "class_conditional": self.class_conditional, "method": self.settings.method,
                **raps,
                "temperature": self.temperature, "n_calibration": self.n_calibration,
                "always_in_sets": self.always_in(),
                "calibrated_on": "out-of-fold predictions of the single fold models (predictions.parquet, role val)"}


def fit_confidence(probs: np.ndarray, labels: np.ndarray, classes: list[str], coverage: float,
                   class_conditional: bool = False, settings: SetSettings = SetSettings(),
                   temperature: float | None = None) -> Confidence:
    """Sets and temperature from calibration probabilities [n, C] and their true labels. `temperature`: one
    already fitted on the same probabilities (it does not depend on the sets), not fitted again."""
    coverage = check_coverage(coverage)
    settings = settings.check()
    return Confidence(classes=list(classes), coverage=coverage, class_conditional=class_conditional,
                      temperature=fit_temperature(probs, labels) if temperature is None else temperature,
                      thresholds=conformal.thresholds(probs, labels, 1 - coverage, class_conditional, settings),
                      n_calibration=len(labels), settings=settings)


def out_of_fold(predictions: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities [n, C] and labels [n] of the out-of-fold rows (role val), in sample order."""
    rows = predictions[predictions["role"] == "val"].sort_values("sample_id")
    return rows[[prob_column(c) for c in classes]].to_numpy(np.float64), rows["label"].to_numpy()


def load_confidence(run_dir: Path, classes: list[str], coverage: float,
                    class_conditional: bool = False, settings: SetSettings = SetSettings()) -> Confidence:
    """`fit_confidence` on the run's out-of-fold predictions; a UserError when it has none yet."""
    coverage = check_coverage(coverage)
    path = Path(run_dir) / "predictions.parquet"
    predictions = pd.read_parquet(path, columns=["sample_id", "role", "label", *map(prob_column, classes)],
                                  filters=[("role", "==", "val")]) if path.exists() else None
    if predictions is None or predictions.empty:
        raise UserError(f"run {Path(run_dir).name} has no out-of-fold predictions yet ({path.name}, role val) to "
                        f"calibrate prediction sets on; finish a fold first, or leave out --coverage")
    probs, labels = out_of_fold(predictions, classes)
    return fit_confidence(probs, labels, classes, coverage, class_conditional, settings)
