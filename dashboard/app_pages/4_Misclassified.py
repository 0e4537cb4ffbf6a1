"""Misclassified: the most confidently wrong predictions first, suspected label issues, and calibration."""
from __future__ import annotations

import activation_maps
import gallery
import links
import page_setup
import pandas as pd
import runs
import streamlit as st
from charts import chart
from focus_picker import current_focus
from formatting import percent, plain

from core.views import figures, focus
from core.views import tables as views

run = page_setup.for_run("Misclassified")
classes = run.classes
folds = [str(k) for k in run.info.get("folds_done", [])]


def wrong_rows(run: runs.Run, fold: str, role: str, true: str, pred: str) -> pd.DataFrame:
    """The filtered mistakes with badges (cached per filter)."""
    rows = run.rows(views.source_for(fold, role), role)
    return views.misclassified(rows, *(None if name == "all" else run.classes.index(name) for name in (true, pred)),
                               views.label_issue_ids(run.table("label_issues")),
                               views.duplicate_ids(run.table("duplicates")))


mistakes, issues, calibration = links.tabs(["Mistakes", "Label issues", "Calibration"])
if mistakes.open:
    with mistakes:
        columns = st.columns(4)
        # the focus carried from another page: a pair's mistakes one way, or one class's mistakes
        cell = focus.focus_cell(current_focus(run)) or {}
        true = links.choice("True class", "true", ["all", *classes], cell.get("true") or "all", where=columns[0])
        pred = links.choice("Predicted class", "pred", ["all", *classes], cell.get("predicted") or "all",
                            where=columns[1])
        fold = links.choice("Fold model", "fold", ["oof", *folds], "oof", where=columns[2],
                            help="oof = each image predicted by the fold model that did not train on it "
                                 "(test images: by the ensemble of folds).")
        roles = views.roles_for(fold, views.has_test_split(run.json("metrics")))
        role = links.choice("Role", "role", roles, "val", where=columns[3],
                            help="val = validation (out-of-fold), test = held-out test set, train = images the "
                                 "fold model trained on (offered for one fold model, not oof, where each image "
                                 "would appear once per other fold).")
        wrong = runs.cached(wrong_rows, run, fold, role, true, pred)
        true_index, pred_index = (None if name == "all" else classes.index(name) for name in (true, pred))
        total = views.mistakes_out_of(run.rows(views.source_for(fold, role), role), true_index, pred_index)
        scope = (f"images of **{plain(true)}**" if true != "all" else
                 f"predictions of **{plain(pred)}**" if pred != "all" else "predictions")
        st.caption(f"**{len(wrong)}** wrong of {total} {scope} ({percent(len(wrong) / max(1, total))}), "
                   "most confidently wrong first. A confident mistake on a clean image is a model problem; on a "
                   "badged one it is often the data.")
        if run.table("label_issues") is None:
            page_setup.diagnostics_missing(
                run, "Label-issue and duplicate badges appear once the diagnostics have run.", caption=True,
                consequence="there are no label-issue or duplicate badges")
        cam = activation_maps.choice()
        gallery.paged_gallery(wrong, run, per_page=24, key="wrong", cam=cam)

if issues.open:
    with issues:
        table = run.table("label_issues")
        if table is None:
            page_setup.diagnostics_missing(run, "Suspected label issues appear once the diagnostics have run.",
                                           consequence="there is no list of suspected label issues")
        else:
            rows = views.label_issue_rows(table)
            agreed = int(rows["agreed"].sum())
            st.caption(f"**{agreed}** likely wrong labels first (orange: as many as the estimate of wrong labels, "
                       "the strongest combined evidence among images at least 2 detectors flag); "
                       f"**{len(rows) - agreed}** more listed below them. The detectors: cleanlab (models that never trained on the image: out of "
                       "fold, the fold ensemble for test images), AUM (the margin during training) and the labels of "
                       "its nearest neighbours in the pretrained space. One detector alone is often the model's own "
                       "mistake on a hard image; those in the test split affect the test metric.")
            gallery.paged_gallery(rows, run, per_page=24, key="issues", caption=lambda row: (
                f"given **{plain(row['label'])}** → looks like **{plain(row['suggested_label'])}**  \n"
                f"quality {row['quality']:.3f} · #{row['sample_id']}"
                f"{' · test split' if row['affects_test_metric'] else ''}  \n"
                + (":orange-badge[" if row["agreed"] else ":gray-badge[")
                + ("all 3 detectors" if row["flagged_by"].count(",") == 2 else row["flagged_by"]) + "]"))

if calibration.open:
    with calibration:
        report = (run.json("diagnostics") or {}).get("calibration")
        if report is None:
            page_setup.diagnostics_missing(run, "The calibration report appears once the diagnostics have run.",
                                           consequence="there is no calibration report")
        else:
            with st.columns([3, 2])[0]:
                chart(figures.reliability(report))
            side = "over" if report["overconfidence"] > 0 else "under"
            st.caption(f"Mean confidence {percent(report['mean_confidence'])} vs accuracy "
                       f"{percent(report['accuracy'])}: the model is {side}-confident. Points below the "
                       "diagonal are bins where it is surer than it is right; marker size = images in the bin.")
        conformal = (run.json("diagnostics") or {}).get("conformal")
        if conformal and conformal["test_calibration"]:
            st.subheader("What predict and serve return: calibrated confidence and prediction sets")
            fixed = conformal["test_calibration"]
            with st.columns([3, 2])[0]:
                chart(figures.reliability(fixed["before"], fixed["after"], "the test ensemble"))
            st.caption(f"Temperature {conformal['temperature']:.2f}, fitted on the out-of-fold predictions of the "
                       f"single fold models, divides the logits: `predict --coverage` and `serve` report the scaled "
                       f"top-class probability as calibrated_confidence. The ensemble averages the folds, which "
                       f"already softens it: the red line shows whether the temperature still helps it here.")
            test = conformal["marginal"]["test"]
            st.markdown(f"**Prediction sets at {percent(conformal['coverage'])} coverage** (test split: "
                        f"{percent(test['coverage'])} hold the true class, {test['mean_set_size']:.2f} classes "
                        f"per set)")
            percent_column, size_column = (st.column_config.NumberColumn(format=f) for f in ("percent", "%.2f"))
            st.dataframe(views.prediction_set_rows(conformal), hide_index=True, column_config={
                "coverage": percent_column, "coverage (per class)": percent_column, "set size": size_column,
                "set size (per class)": size_column})
            st.caption("Each image's set holds the classes it could be; calibrated on the out-of-fold predictions "
                       "so that the true class is in the stated share of sets, on average over images or, with "
                       "`--class-conditional` (per class columns), for every class. A class with large sets is "
                       "one the model cannot tell apart from those it shares its sets with.")

links.share_link()
