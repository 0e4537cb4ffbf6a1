"""Diagnostics of a finished run: why the model fails, computed once from the run directory.

umap-learn and cleanlab are imported inside the steps that need them, so this package imports
on the training machine that has neither; `run_diagnostics` then fails at its first step.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Callable

import numpy as np

from core.analysis.diagnostics.calibration import calibration
from core.analysis.diagnostics.conformal_sets import conformal_sets
from core.analysis.diagnostics.confusion import confusion
from core.analysis.diagnostics.duplicates import duplicates
from core.analysis.diagnostics.findings import findings
from core.analysis.diagnostics.image_properties import image_properties, shortcut_checks
from core.analysis.diagnostics.image_properties import summary as property_summary
from core.analysis.diagnostics.imbalance import imbalance
from core.analysis.diagnostics.dynamics import image_dynamics, load_dynamics, summary
from core.analysis.diagnostics.label_issues import DETECTORS, label_issues, neighbour_vote
from core.analysis.diagnostics.label_issues import summarize as summarize_label_issues
from core.analysis.diagnostics.neighbours import prepare
from core.analysis.diagnostics.outliers import outliers
from core.analysis.diagnostics.overfitting import overfitting
from core.analysis.diagnostics.overlapping_classes import overlapping_classes
from core.analysis.diagnostics.pixel_hash import image_signatures
from core.analysis.diagnostics.run_data import load_run
from core.analysis.diagnostics.separability import separability
from core.analysis.diagnostics.slices import failing_slices
from core.analysis.diagnostics.tail import tail
from core.analysis.diagnostics.thresholds import Thresholds
from core.analysis.diagnostics.umap_maps import umap_maps
from core.store import run_store

SCHEMA_VERSION = 3            # diagnostics.json; 2: "overfitting" judges balanced accuracy and carries intervals;
#                               3: "imbalance" no longer repeats the dense OOF confusion (metrics.json holds it)
FINDINGS_SCHEMA_VERSION = 1   # findings.json
BACKBONE = "backbone"
EMBEDDER = "embedder"         # with --embedder: the reference space for duplicates, outliers and separability


def _require_optional() -> None:
    # found, not imported: umap-learn's import costs seconds (numba) that a rerun with cached maps never needs
    missing = [package for module, package in (("umap", "umap-learn"), ("cleanlab", "cleanlab"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"diagnostics need {' and '.join(missing)}: pip install {' '.join(missing)}")


def run_diagnostics(run_dir: Path, thresholds: Thresholds | None = None, log: Callable[[str], None] = print,
                    cache_dir: str | Path | None = None) -> dict:
    """Compute every diagnostic of a run and write them into it; returns diagnostics.json's content
    with the findings document under "findings_document". kNN graphs and maps are cached in `cache_dir`, by
    default the run's own cache directory (a benchmark passes a fresh one to time the uncached work)."""
    _require_optional()   # fail before a minute of work, not after
    th = thresholds or Thresholds()
    run = load_run(run_dir)
    classes = run.classes
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 3)
        log(f"diagnostics: {name} {seconds[name]:.1f}s")
        clock = now

    oof = run.oof()
    probs = run.probabilities(oof)
    labels = oof["label"].to_numpy()
    diag = {
        "schema_version": SCHEMA_VERSION,
        "thresholds": th.to_dict(),
        "groups_used": bool(run.info.get("dataset", {}).get("groups_used", False)),
        "has_groups": bool(run.info.get("dataset", {}).get("has_groups", False)),
        "dropped_classes": run.info.get("dataset", {}).get("dropped_classes", []),
        "overfitting": overfitting(run.metrics, run.history, th),
        "imbalance": imbalance(run.info["class_counts"], run.metrics["oof"]["val"], classes),
        "tail": tail(run.metrics, classes, th),
        "confusion": confusion(run.metrics, classes),
        "calibration": calibration(probs, labels, th.calibration_bins),
    }
    step("metrics")

    test = run.test_ensemble()
    diag["conformal"] = conformal_sets(probs, labels, run.probabilities(test), test["label"].to_numpy(), classes, th)
    step("conformal")

    fold_dynamics = load_dynamics(run.run_dir, run.info.get("folds_done", []))
    per_image, aum_threshold = image_dynamics(fold_dynamics, th)
    diag["dynamics"] = summary(per_image, aum_threshold, len(fold_dynamics)) if fold_dynamics else None
    step("dynamics")

    diag["overlapping_classes"] = overlapping_classes(oof, probs, classes, th)
    step("overlapping_classes")

    cache_dir = cache_dir or run.info["config"].get("cache_dir")
    spaces = []
    for name in run.info["spaces"]:
        embedding = np.load(run_store.embedding_path(run.run_dir, name), mmap_mode="r")
        spaces.append(prepare(name, embedding, th, cache_dir))
    step("neighbours")

    reference = EMBEDDER if EMBEDDER in run.info["spaces"] else BACKBONE
    backbone = next(s for s in spaces if s.name == reference)
    diag["reference_space"] = reference
    vote = neighbour_vote(backbone.index, run.samples["label_index"].to_numpy(), len(classes), th)
    issues, estimate = label_issues(oof, probs, test, run.probabilities(test), run.samples, classes, th,
                                    per_image if fold_dynamics else None, vote)
    detectors = [d for d in DETECTORS if d != "AUM" or fold_dynamics]
    diag["label_issues"] = summarize_label_issues(issues, len(oof), len(test), detectors, estimate)
    step("label_issues")

    embedding = np.load(run_store.embedding_path(run.run_dir, reference), mmap_mode="r")
    paths = [Path(run.info["dataset"]["root"]) / relative for relative in run.samples["path"]]
    pairs, diag["duplicates"] = duplicates(run.samples, backbone, embedding, th, image_signatures(paths))
    step("duplicates")

    ranked = outliers(run.samples, backbone.unit, th)
    flagged = ranked[ranked["is_outlier"]]
    worst = flagged.iloc[0][["sample_id", "path", "label", "z"]].to_dict() if len(flagged) else None
    diag["outliers"] = {"count": len(flagged), "z": th.outlier_z, "file": "outliers.parquet", "worst": worst}
    diag["separability"] = separability(backbone, run.samples["label_index"].to_numpy(), classes, th)
    step("outliers")

    image_size = int(run.info.get("config", {}).get("image_size", 224))
    properties = image_properties(run.samples, run.info["dataset"]["root"], image_size, th)
    wrong = (oof["label"] != oof["pred"]).set_axis(oof["sample_id"])
    diag["image_properties"] = property_summary(properties, shortcut_checks(properties, wrong, classes, th),
                                                image_size)
    step("image_properties")

    members, diag["slices"] = failing_slices(spaces, run.samples, oof, classes, properties, th)
    step("slices")

    maps = umap_maps(spaces, th, cache_dir)
    step("umap")
    diag["seconds"] = seconds

    found = findings(diag, th)
    document = {"schema_version": FINDINGS_SCHEMA_VERSION, "thresholds": th.to_dict(), "findings": found}
    run_store.write_parquet(run.run_dir / "umap.parquet", maps)
    run_store.write_parquet(run.run_dir / "label_issues.parquet", issues)
    run_store.write_parquet(run.run_dir / "dynamics.parquet", per_image)
    run_store.write_parquet(run.run_dir / "duplicates.parquet", pairs)
    run_store.write_parquet(run.run_dir / "outliers.parquet", ranked)
    run_store.write_parquet(run.run_dir / "image_properties.parquet", properties)
    run_store.write_parquet(run.run_dir / "slices.parquet", members)
    run_store.write_json(run.run_dir / "diagnostics.json", diag)
    run_store.write_json(run.run_dir / "findings.json", document)
    return {**diag, "findings_document": document}


__all__ = ["Thresholds", "run_diagnostics"]
