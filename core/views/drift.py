"""A run's latest drift result (`train_cli.py drift`, drift/TIME.json) shaped for the Data page and the report."""
from __future__ import annotations

import pandas as pd

from core.analysis.diagnostics.image_properties import PROPERTIES

COMMAND = "python train_cli.py drift {run_id} NEW_IMAGES_FOLDER"


def drift_summary(result: dict | None) -> dict | None:
    """Verdict, when and on what, the per-property table (drifted first, largest shift first), the classifier
    two-sample test in one line, its three strongest drivers and the unreadable files; None when never checked."""
    if result is None:
        return None
    shifts = pd.DataFrame(result.get("properties", []), columns=["property", "median_train", "median_new", "ks",
                                                                  "p_adjusted", "drifted"])
    shifts = shifts.sort_values(["drifted", "ks"], ascending=False, ignore_index=True)
    table = pd.DataFrame({"property": shifts["property"].map(lambda name: PROPERTIES.get(name, name)),
                          "training median": shifts["median_train"], "new median": shifts["median_new"],
                          "KS D": shifts["ks"], "p (BH-adjusted)": shifts["p_adjusted"],
                          "shifted": shifts["drifted"].astype(bool)})
    classifier = result.get("classifier")
    if classifier is None:
        test = "Classifier two-sample test: too few new images."
    else:
        test = (f"Classifier two-sample test ({classifier['model']}, {classifier['folds']}-fold): AUC "
                f"{classifier['auc']:.2f} (0.5 = indistinguishable), p = {classifier['p']:.2g}.")
        if "groups_new" in classifier:   # results written before look-alike groups lack them
            test += (f" Compared by look-alike group: {classifier['groups_new']} among the new images, "
                     f"{classifier['groups_train']} among the training images.")
    drivers = pd.DataFrame(result.get("drivers", [])[:3], columns=["property", "spearman"])
    return {"drifted": bool(result["drifted"]), "verdict": result["verdict"], "created": result.get("created"),
            "inputs": ", ".join(result.get("inputs", [])), "n_new": result.get("n_new"),
            "n_train": result.get("n_train"), "properties": table, "classifier": test,
            "drivers": drivers.rename(columns={"spearman": "Spearman ρ with the classifier's score"}),
            "unreadable": pd.DataFrame(result.get("unreadable", []), columns=["path", "reason"])}
