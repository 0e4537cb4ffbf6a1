"""Failing slices: a planted kind of image whose labels are random is found, described and linked; a run
without one finds none."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from diagnostics_fixtures import Spec, make_run

from core.analysis.diagnostics import run_diagnostics
from core.store import run_store

LEARNABLE = {"class_scale": 3.0, "group_scale": 1.0}   # a low run error, so a failing group stands out


def test_a_planted_kind_with_random_labels_is_found_as_a_slice(tmp_path: Path) -> None:
    spec = Spec(noisy_kind=30, **LEARNABLE)
    run = make_run(tmp_path, spec)
    diag = run_diagnostics(run, log=lambda line: None)
    found = diag["slices"]["found"]
    assert len(found) == 1
    top = found[0]
    members = pd.read_parquet(run / "slices.parquet")
    members = set(members[members["slice"] == top["slice"]]["sample_id"])
    assert len(members & set(spec.kind)) >= 0.9 * len(spec.kind) and len(members - set(spec.kind)) <= 3
    assert top["error"] > 2 * top["run_error"] and all(e > top["run_error"] for e in top["fold_errors"].values())
    assert len(top["examples"]) == 12 and set(top["examples"]) <= members
    assert top["description"].startswith(f"{top['size']} similar images") and "wrong" in top["description"]
    finding = next(f for f in diag["findings_document"]["findings"] if f["id"] == f"slice:{top['slice']}")
    assert finding["target"] == {"page": "Slices", "params": {"slice": top["slice"], "space": "backbone"}}


def test_a_run_without_a_failing_kind_has_no_slice(tmp_path: Path) -> None:
    run = make_run(tmp_path, Spec(**LEARNABLE))
    run_diagnostics(run, log=lambda line: None)
    diag = run_store.read_json(run / "diagnostics.json")
    assert diag["slices"]["found"] == [] and len(pd.read_parquet(run / "slices.parquet")) == 0
    assert not any(f["id"].startswith("slice:") for f in run_store.read_json(run / "findings.json")["findings"])
