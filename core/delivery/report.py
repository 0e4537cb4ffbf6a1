"""A run as one self-contained HTML file for people who will never open the dashboard.

`report_context` shapes everything the template shows (tested without a browser); `render_report` turns it
into HTML with Jinja2 (autoescaped: file and class names are data) and plotly's own HTML export, with
plotly.js embedded once and images as small base64 thumbnails, so the file opens offline and its size stays
bounded whatever the run's size (the map and the galleries are sampled, see `ReportLimits`).
"""
from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from PIL import Image

from core.config import default_cache_dir
from core.data.thumbnails import image_path, thumbnail
from core.evaluate import HEADLINE
from core.numbers import interval, percent, spread, with_interval
from core.store import run_store as store
from core.views import dropped, superclasses
from core.views import tables as views
from core.views.drift import drift_summary
from core.views.maps import map_coords

SEVERITY_ORDER = ("high", "medium", "low", "info")
# Where each dashboard page's evidence sits in the report (a finding names a page and, for some, a tab).
SECTION_OF_PAGE = {"Home": "summary", "Overfitting": "overfitting", "Classes": "classes", "Embeddings": "map",
                   "Misclassified": "mistakes", "Data": "data", "Compare": "summary"}
# The duplicate pairs that show each duplicates finding.
DUPLICATE_FINDINGS = {"leakage": lambda pairs: pairs["leakage"],
                      "duplicates-contained": lambda pairs: ~pairs["leakage"],
                      "exact-duplicates": lambda pairs: pairs["kind"] == "exact"}
SECTION_OF_TAB = {"calibration": "calibration", "label_issues": "label-issues", "duplicates": "leakage",
                  "outliers": "data"}


@dataclass
class ReportLimits:
    """What bounds the file's size: sampled map points and gallery lengths (recorded in the report)."""
    map_points: int = 3000
    worst_images: int = 24
    label_issue_images: int = 12
    leak_pairs: int = 6
    finding_images: int = 4
    outlier_images: int = 8
    skipped_rows: int = 20
    thumbnail_px: int = 112
    jpeg_quality: int = 75
    seed: int = 0


# ---------------------------------------------------------------- links

def dashboard_link(base: str | None, page: str, run_id: str, params: dict | None = None) -> str | None:
    """The live dashboard's URL of a view: BASE/PAGE?run=RUN&... (Home is BASE/), or None without a base."""
    if not base:
        return None
    query = {"run": run_id, **{k: str(v) for k, v in (params or {}).items() if v is not None}}
    path = "" if page == "Home" else page
    return f"{base.rstrip('/')}/{path}?{urlencode(query)}"


def finding_section(target: dict) -> str:
    """The report section holding a finding's evidence."""
    tab = (target.get("params") or {}).get("tab")
    return SECTION_OF_TAB.get(tab) or SECTION_OF_PAGE.get(target.get("page", "Home"), "summary")


# ---------------------------------------------------------------- images

class Thumbnails:
    """Small JPEG data URIs of dataset images, made from the thumbnail cache (never outside the dataset root)."""

    def __init__(self, root: str, limits: ReportLimits, cache_dir: str | None = None):
        self.root, self.limits = root, limits
        self.cache_dir = cache_dir or default_cache_dir()  # this machine's cache: the run may come from elsewhere
        self._uris: dict[str, str | None] = {}

    def __call__(self, relative: str) -> str | None:
        if relative not in self._uris:
            self._uris[relative] = self._encode(relative)
        return self._uris[relative]

    def _encode(self, relative: str) -> str | None:
        path = image_path(self.root, relative)
        small = thumbnail(path, cache_dir=self.cache_dir) if path else None
        if small is None:
            return None
        image = Image.open(small).convert("RGB")
        image.thumbnail((self.limits.thumbnail_px, self.limits.thumbnail_px))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=self.limits.jpeg_quality)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def prediction_card(row: pd.Series, thumbs: Thumbnails) -> dict:
    """A gallery item for a prediction row (views.prediction_rows / views.misclassified)."""
    badges = [text for column, text in (("label_issue", "suspected label issue"), ("duplicate", "duplicate"))
              if row.get(column, False)]
    return {"src": thumbs(row["path"]), "path": row["path"], "title": f"{row['true_name']} → {row['pred_name']}",
            "detail": f"{percent(row['confidence'])} confident · {row['role']} · #{int(row['sample_id'])}",
            "badges": badges}


def label_issue_card(row: pd.Series, thumbs: Thumbnails) -> dict:
    return {"src": thumbs(row["path"]), "path": row["path"],
            "title": f"given {row['label']} → looks like {row['suggested_label']}",
            "detail": f"label quality {row['quality']:.3f} · #{int(row['sample_id'])}",
            "badges": [f"likely wrong label ({int(row['detectors'])} detectors)"] if row.get("agreed", False) else []}


def outlier_card(row: pd.Series, thumbs: Thumbnails) -> dict:
    return {"src": thumbs(row["path"]), "path": row["path"], "title": f"{row['label']} ({row['split']})",
            "detail": f"robust z {row['z']:.1f} · #{int(row['sample_id'])}", "badges": []}


def pair_card(pair: pd.Series, thumbs: Thumbnails) -> dict:
    flags = [text for column, text in (("leakage", "leakage"), ("crosses_folds", "crosses folds"),
                                       ("touches_test", "touches test")) if pair.get(column, False)]
    return {"kind": pair["kind"], "similarity": f"{pair['similarity']:.3f}", "flags": flags,
            "images": [{"src": thumbs(pair[f"path_{side}"]), "path": pair[f"path_{side}"],
                        "title": f"#{int(pair[f'sample_id_{side}'])}", "detail": pair[f"path_{side}"], "badges": []}
                       for side in ("a", "b")]}


# ---------------------------------------------------------------- tables

def headline_rows(metrics: dict) -> list[dict]:
    """Per headline metric, as display text: the test ensemble with its 95% interval and the fold models' mean on
    test; validation mean ± std over folds with its interval (pooled out-of-fold); train; both gaps in points,
    marked when train lies inside the held-out interval."""
    rows = []
    for row in views.headline_table(metrics).itertuples():
        test_interval = [row.test_low, row.test_high] if not np.isnan(row.test_low) else None
        val_interval = "" if np.isnan(row.val_low) else f" ({interval([row.val_low, row.val_high])})"
        rows.append({"metric": row.metric.replace("_", " "),
                     "test": with_interval(row.test_ensemble, test_interval),
                     "test_folds": percent(row.test_mean),
                     "val": spread(row.val_mean, row.val_std) + val_interval,
                     "train": spread(row.train_mean, row.train_std),
                     "gap_val": views.gap_text(row.train_minus_val, row.train_mean, row.val_high),
                     "gap_test": views.gap_text(row.train_minus_test, row.train_mean, row.test_high)})
    return rows


def per_class_rows(metrics: dict, classes: list[str]) -> list[dict]:
    """Per class: validation precision, recall and F1 (mean ± std over folds), pooled support, and the
    test-ensemble recall with its 95% interval (exact binomial) and support when there is a test split."""
    table = views.per_class_table(metrics, classes).rename(columns={"test recall": "test_recall"})
    return table.to_dict("records")


def sample_points(points: pd.DataFrame, limit: int, seed: int = 0) -> pd.DataFrame:
    """At most `limit` map points: a seeded uniform sample (every point when there are fewer)."""
    if len(points) <= limit:
        return points
    return points.sample(n=limit, random_state=seed).sort_index()


def method_notes(info: dict, metrics: dict) -> list[str]:
    """How the numbers were obtained, in plain sentences built from what the run recorded."""
    config, dataset = info.get("config", {}), info.get("dataset", {})
    folds = config.get("folds")
    grouped = dataset.get("groups_used")
    notes = []
    if views.has_test_split(metrics):
        notes.append(f"First, {percent(dataset.get('test_share', config.get('test_size')))} of the images were held "
                     "out as a test split (stratified by class"
                     + (", whole groups at a time" if grouped else "") + "). The test split plays no part in "
                     "training or in any choice; it is only predicted at the end.")
    else:
        notes.append("There is no held-out test split in this run (test size 0): every number comes from "
                     "cross-validation.")
    notes.append(f"The remaining images were split into {folds} folds, stratified by class"
                 + (" and grouped: all images of one group (e.g. one product) are in the same fold, so validation "
                    "measures groups the model has never seen." if grouped else
                    ". Folds were not grouped" + (" (the run ignored the manifest's group column)"
                                                  if dataset.get("has_groups") else "")
                    + ", so near-duplicates can sit on both sides of a split and inflate validation numbers."))
    notes.append(f"Each of the {folds} fold models was trained on the other folds and validated on its own fold. "
                 "“Validation” numbers are the mean ± standard deviation over folds; the pooled out-of-fold "
                 "predictions give every cross-validation image exactly one prediction by a model that never "
                 "trained on it.")
    notes.append(f"Training mode: {info.get('train_mode')} ({info.get('train_mode_reason', '')}). Each fold kept the "
                 "weights of its best epoch by validation balanced accuracy, so validation numbers are slightly "
                 "optimistic.")
    if views.has_test_split(metrics):
        notes.append("Test numbers per fold are each fold model on the test split; the test ensemble is the mean "
                     "probability of all fold models, which is also what `train_cli.py predict` and `serve` use.")
    if (metrics.get("ensemble", {}).get("test") or {}).get("intervals"):
        notes.append("Every held-out number comes with a 95% interval: exact binomial (Clopper-Pearson) for plain "
                     "accuracy and each class's recall, a percentile bootstrap over images for balanced accuracy and "
                     "macro F1. A class with few test images has a wide interval: its test recall alone says "
                     "little.")
    notes.append("Gaps are train minus validation (or test) of the fold means, in percentage points. A gap whose "
                 "train score lies inside the held-out interval is marked “within the interval”: chance alone can "
                 "make it, so it is not evidence that the models memorise their training images; a gap beyond it "
                 "is.")
    return notes


def config_rows(info: dict) -> list[dict]:
    frame = views.config_rows(info)
    rows = frame.to_dict("records")
    weights = info.get("weights") or {}
    rows.append({"setting": "weights sha256", "value": str(weights.get("sha256"))})
    rows.append({"setting": "architecture", "value": str(info.get("model"))})
    return rows


# ---------------------------------------------------------------- the whole report

def _findings(findings: dict | None, run_id: str, dashboard_url: str | None, tables: dict, thumbs: Thumbnails,
              limits: ReportLimits) -> list[dict]:
    out = []
    items = sorted((findings or {}).get("findings", []),
                   key=lambda f: SEVERITY_ORDER.index(f.get("severity", "info"))
                   if f.get("severity") in SEVERITY_ORDER else len(SEVERITY_ORDER))
    for finding in items:
        target = finding.get("target") or {}
        out.append({"severity": finding.get("severity", "info"), "title": finding.get("title", ""),
                    "evidence": finding.get("evidence", ""), "section": finding_section(target),
                    "more": finding.get("more"),
                    "link": dashboard_link(dashboard_url, target.get("page", "Home"), run_id, target.get("params")),
                    "images": finding_images(finding, tables, thumbs, limits)})
    return out


def finding_images(finding: dict, tables: dict, thumbs: Thumbnails, limits: ReportLimits) -> list[dict]:
    """A few images that show a finding: the mistakes it names, the label issues, the leaking pairs."""
    fid, k = finding.get("id", ""), limits.finding_images
    wrong = tables["wrong"]
    if fid.startswith("confused:") and "->" in fid:
        true, pred = fid.removeprefix("confused:").split("->", 1)
        picked = wrong[(wrong["true_name"] == true) & (wrong["pred_name"] == pred)]
        return [prediction_card(row, thumbs) for _, row in picked.head(k).iterrows()]
    if fid.startswith("class-fails:"):
        picked = wrong[wrong["true_name"] == fid.removeprefix("class-fails:")]
        return [prediction_card(row, thumbs) for _, row in picked.head(k).iterrows()]
    if fid == "label-issues" and tables["label_issues"] is not None:
        return [label_issue_card(row, thumbs) for _, row in tables["label_issues"].head(k).iterrows()]
    if fid == "outliers" and tables["outliers"] is not None:
        flagged = tables["outliers"][tables["outliers"]["is_outlier"]]
        return [outlier_card(row, thumbs) for _, row in flagged.head(k).iterrows()]
    pairs = tables["duplicates"]
    if fid in DUPLICATE_FINDINGS and pairs is not None:
        pairs = pairs[DUPLICATE_FINDINGS[fid](pairs)].head(max(1, k // 2))
        return [image for _, pair in pairs.iterrows() for image in pair_card(pair, thumbs)["images"]]
    return []


def _drift(result: dict | None) -> dict | None:
    """The latest drift result with its tables as rows, for the template."""
    summary = drift_summary(result)
    if summary is None:
        return None
    return {**summary, **{name: summary[name].to_dict("records") for name in ("properties", "drivers", "unreadable")}}


def report_context(run_dir: Path, dashboard_url: str | None = None, limits: ReportLimits | None = None,
                   cache_dir: str | None = None) -> dict:
    """Everything the template shows, as plain values and plotly figures (built in core.views.figures)."""
    from core.views import figures  # plotly: only when a report is made

    limits = limits or ReportLimits()
    run_dir = Path(run_dir)
    info = store.read_json(run_dir / store.RUN_JSON)
    metrics = store.read_optional_json(run_dir, "metrics")
    if metrics is None:
        from core.errors import UserError
        raise UserError(f"run {run_dir.name} has no finished fold yet (metrics.json); nothing to report")
    run_id, classes = info["run_id"], list(info["classes"])
    samples, predictions = store.read_table(run_dir, "samples"), store.read_table(run_dir, "predictions")
    history = store.read_table(run_dir, "history")
    diagnostics = store.read_optional_json(run_dir, "diagnostics")
    label_issues, duplicates = store.read_table(run_dir, "label_issues"), store.read_table(run_dir, "duplicates")
    outliers, maps = store.read_table(run_dir, "outliers"), store.read_table(run_dir, "umap")
    thumbs = Thumbnails(info.get("dataset", {}).get("root", ""), limits, cache_dir)
    link = lambda page, **params: dashboard_link(dashboard_url, page, run_id, params)  # noqa: E731

    has_test = views.has_test_split(metrics)
    rows = views.space_rows(predictions, samples, classes, "backbone")  # OOF + test ensemble: each image once
    wrong = views.misclassified(rows, None, None, views.label_issue_ids(label_issues),
                                views.duplicate_ids(duplicates))
    if duplicates is not None:
        duplicates = views.duplicate_pairs(duplicates)
    tables = {"wrong": wrong, "label_issues": label_issues, "duplicates": duplicates, "outliers": outliers}

    charts = {"folds": figures.fold_bars(views.fold_gaps(metrics, "balanced_accuracy"), "balanced_accuracy"),
              "confusion": figures.limited_confusion_heatmap(metrics, classes, "oof"),
              "curves": (figures.learning_curves(history, ["loss", "balanced_accuracy"])
                         if history is not None and len(history) else None),
              "class_gaps": figures.class_gap_bars(views.class_gaps(metrics, classes).head(figures.WORST_SHOWN),
                                                   classes),
              "counts": figures.class_count_bars(views.class_counts(samples, classes), classes),
              "tail": figures.tail_scatter(views.scores_by_training_images(metrics, classes),
                                           views.tail_cut(diagnostics))}
    if has_test:
        charts["confusion_test"] = figures.limited_confusion_heatmap(metrics, classes, "ensemble")
    calibration = (diagnostics or {}).get("calibration")
    if calibration:
        charts["calibration"] = figures.reliability(calibration)
    conformal = (diagnostics or {}).get("conformal")
    if conformal and conformal["test_calibration"]:
        fixed = conformal["test_calibration"]
        charts["calibration_test"] = figures.reliability(fixed["before"], fixed["after"], "the test ensemble")
    map_space = "backbone"
    coords, projection = map_coords(run_dir, map_space, maps)
    map_total = 0
    if coords is not None:
        points = views.embedding_points(coords, rows, "label")
        map_total = len(points)
        shown = sample_points(points, limits.map_points, limits.seed)
        charts["map"] = figures.embedding_map(shown, classes, projection, map_total)
    charts = {name: figures.static(figure) for name, figure in charts.items() if figure is not None}

    dup_summary = (diagnostics or {}).get("duplicates")
    leaking = duplicates[duplicates["leakage"]] if duplicates is not None else None
    flagged_outliers = outliers[outliers["is_outlier"]] if outliers is not None else None
    skipped = info.get("skipped", [])
    counts = views.class_counts(samples, classes)
    return {
        "run_id": run_id, "info": info, "classes": classes, "limits": asdict(limits),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": info.get("status"), "has_test": has_test, "has_diagnostics": diagnostics is not None,
        "dataset": info.get("dataset", {}), "n_images": len(samples), "folds_done": info.get("folds_done", []),
        "headline": headline_rows(metrics), "ensemble": _ensemble_line(metrics),
        "superclass_headline": headline_rows(metrics["superclass"]) if "superclass" in metrics else None,
        "superclass_errors": superclasses.errors_within(metrics), "dropped": dropped.dropped_summary(info),
        "findings": _findings(store.read_optional_json(run_dir, "findings"), run_id, dashboard_url, tables,
                              thumbs, limits),
        "per_class": per_class_rows(metrics, classes), "charts": charts,
        "conformal": (diagnostics or {}).get("conformal"),
        "map_total": map_total, "map_shown": min(map_total, limits.map_points), "map_projection": projection,
        "worst": [prediction_card(row, thumbs) for _, row in wrong.head(limits.worst_images).iterrows()],
        "n_wrong": len(wrong), "n_predicted": len(rows),
        "label_issues": ([label_issue_card(row, thumbs) for _, row in
                          label_issues.head(limits.label_issue_images).iterrows()]
                         if label_issues is not None else None),
        "label_issue_summary": (diagnostics or {}).get("label_issues"),
        "duplicates": dup_summary,
        "pairs": ([pair_card(pair, thumbs) for _, pair in duplicates.head(limits.leak_pairs).iterrows()]
                  if duplicates is not None else None),
        "n_leaking": int(len(leaking)) if leaking is not None else None,
        "outliers": ([outlier_card(row, thumbs) for _, row in flagged_outliers.head(limits.outlier_images).iterrows()]
                     if flagged_outliers is not None else None),
        "n_outliers": int(len(flagged_outliers)) if flagged_outliers is not None else None,
        "counts": counts.to_dict("records"),
        "imbalance_ratio": float(counts["total"].max() / max(1, counts["total"].min())),
        "skipped": skipped[:limits.skipped_rows], "n_skipped": len(skipped),
        "drift": _drift(store.latest_drift(run_dir)),
        "method": method_notes(info, metrics), "config": config_rows(info),
        "versions": info.get("versions", {}), "timings": info.get("timings", {}),
        "links": {"summary": link("Home"), "findings": link("Home"), "classes": link("Classes", fold="oof"),
                  "overfitting": link("Overfitting"), "calibration": link("Misclassified", tab="calibration"),
                  "map": link("Embeddings", space=map_space, color="label"),
                  "mistakes": link("Misclassified", fold="oof"),
                  "label_issues": link("Misclassified", fold="oof", tab="label_issues"),
                  "leakage": link("Data", tab="duplicates"), "data": link("Data", tab="balance"),
                  "drift": link("Data", tab="drift"),
                  "config": link("Home")},
        "dashboard_url": dashboard_url,
    }


def _ensemble_line(metrics: dict) -> str | None:
    test = metrics.get("ensemble", {}).get("test")
    if not test:
        return None
    intervals = test.get("intervals", {})
    return (f"Test ensemble (mean probability of the fold models, what predict and serve use; {test['n']} held-out "
            "images): " + ", ".join(f"{key.replace('_', ' ')} {with_interval(test[key], intervals.get(key))}"
                                    for key in HEADLINE) + ".")


def render_report(context: dict) -> str:
    """The HTML file: the Jinja2 template with autoescaping, plotly.js embedded once, each chart's own div."""
    import jinja2
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    environment = jinja2.Environment(loader=jinja2.PackageLoader("core.delivery", "templates"),
                                     autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    charts = {name: pio.to_html(figure, full_html=False, include_plotlyjs=False,
                                config={"displaylogo": False, "responsive": True})
              for name, figure in context["charts"].items()}
    return environment.get_template("report.html.j2").render(**{**context, "charts": charts},
                                                             plotly_js=get_plotlyjs())


def build_report(run_dir: Path, dashboard_url: str | None = None, limits: ReportLimits | None = None,
                 cache_dir: str | None = None) -> str:
    return render_report(report_context(run_dir, dashboard_url, limits, cache_dir))
