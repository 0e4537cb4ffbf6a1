"""End to end: run_diagnostics on run directories built with the documented files."""
import json
import subprocess
import sys

import pandas as pd
import pytest
from diagnostics_fixtures import Spec, make_run

from core.analysis.diagnostics import Thresholds, run_diagnostics
from core.analysis.diagnostics.findings import PAGES, PARAMS, SEVERITIES

FILES = {
    "umap.parquet": ["sample_id", "space", "x", "y"],
    "label_issues.parquet": ["sample_id", "path", "split", "label", "suggested_label", "quality",
                             "suggested_confidence", "rank", "part_size", "flagged", "affects_test_metric",
                             "cleanlab", "aum", "aum_flag", "neighbour_share", "neighbour_label", "neighbours_flag",
                             "detectors", "detectors_available", "evidence", "agreed"],
    "dynamics.parquet": ["sample_id", "folds", "confidence", "variability", "correctness", "region", "aum",
                         "aum_flag", "forgetting", "never_learned"],
    "duplicates.parquet": ["sample_id_a", "sample_id_b", "path_a", "path_b", "similarity", "kind",
                           "crosses_folds", "touches_test", "leakage"],
    "outliers.parquet": ["sample_id", "path", "label", "split", "distance", "z", "is_outlier"],
}
QUIET = lambda message: None


def _diagnose(tmp_path_factory, spec):
    run_dir = make_run(tmp_path_factory.mktemp("runs"), spec)
    return run_dir, run_diagnostics(run_dir, log=QUIET)


def _ids(result):
    return {f["id"]: f for f in result["findings_document"]["findings"]}


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):      # the demo set's story: concepts drawn by several artists, grouped folds
    # artist_noise 0.25: siblings at cosine ~0.98, near-duplicates under the threshold calibrated on the data's
    # nearest-neighbour cosines (at 0.6 every image's best neighbour sits at ~0.89: look-alikes, not copies)
    return _diagnose(tmp_path_factory, Spec(spaces=("backbone", "fold0", "fold1", "fold2"), artist_noise=0.25))


@pytest.fixture(scope="module")
def ungrouped(tmp_path_factory):    # the same images, folds that ignore the groups
    return _diagnose(tmp_path_factory, Spec(grouped=False, artist_noise=0.25))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return _diagnose(tmp_path_factory, Spec(grouped=False, artists=1, groups_per_class=(40, 40, 40), class_scale=1.0,
                                            group_scale=1.0))


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    spec = Spec(grouped=False, artists=1, groups_per_class=(60, 60, 60), dim=16, class_scale=1.5, group_scale=1.0,
                flips=6, exact_copies=2, outliers=2, unlearnable="Digital_Music")
    return (*_diagnose(tmp_path_factory, spec), spec)


def test_every_documented_file_is_written_with_its_columns(grouped):
    run_dir, result = grouped
    for name, columns in FILES.items():
        assert list(pd.read_parquet(run_dir / name).columns) == columns, name
    maps = pd.read_parquet(run_dir / "umap.parquet")
    n = len(pd.read_parquet(run_dir / "samples.parquet"))
    assert maps.groupby("space").size().to_dict() == {s: n for s in ("backbone", "fold0", "fold1", "fold2")}
    diagnostics = json.loads((run_dir / "diagnostics.json").read_text())
    assert diagnostics["thresholds"] == Thresholds().to_dict()
    for key in ("overfitting", "imbalance", "confusion", "calibration", "label_issues", "duplicates",
                "outliers", "separability", "seconds"):
        assert key in diagnostics
    document = json.loads((run_dir / "findings.json").read_text())
    assert document["schema_version"] == 1 and document["thresholds"] == Thresholds().to_dict()


def test_findings_are_ranked_and_target_only_known_pages_and_params(grouped, planted):
    for result in (grouped[1], planted[1]):
        found = result["findings_document"]["findings"]
        ranks = [SEVERITIES.index(f["severity"]) for f in found]
        assert ranks == sorted(ranks)
        for f in found:
            assert f["target"]["page"] in PAGES and set(f["target"]["params"]) <= set(PARAMS)
            assert "\n" not in f["title"] and any(ch.isdigit() for ch in f["evidence"])


def test_grouped_folds_show_overfitting_and_contained_near_duplicates_not_leakage(grouped):
    found = _ids(grouped[1])
    assert found["overfitting"]["severity"] in ("medium", "high")
    assert "consistent over 3 folds" in found["overfitting"]["title"]
    assert "duplicates-contained" in found and "leakage" not in found
    assert grouped[1]["duplicates"]["near"]["pairs"] == grouped[1]["duplicates"]["near"]["same_group"] > 0


def test_the_same_pairs_are_leakage_when_folds_ignore_groups(grouped, ungrouped):
    pairs = [set(zip(*pd.read_parquet(d / "duplicates.parquet")[["sample_id_a", "sample_id_b"]].values.T))
             for d in (grouped[0], ungrouped[0])]
    assert pairs[0] == pairs[1]
    found = _ids(ungrouped[1])
    assert found["leakage"]["severity"] == "high" and "cross train and validation" in found["leakage"]["title"]
    assert "overfitting" not in found     # the leak hides the gap: validation sees the same concepts


def test_a_clean_run_gets_one_all_clear_finding_beside_what_it_notes_about_its_small_test_split(clean):
    found = clean[1]["findings_document"]["findings"]
    assert [f["id"] for f in found if f["id"] != "test-support"] == ["all-clear"]
    assert all(f["severity"] == "info" for f in found)


def test_planted_problems_are_each_named(planted):
    run_dir, result, spec = planted
    found = _ids(result)
    assert any("Digital_Music" in (f["target"]["params"].get("class"), f["target"]["params"].get("true"))
               for f in found.values())
    assert "inseparable:Digital_Music" in found
    assert "label-issues" in found
    issues = set(pd.read_parquet(run_dir / "label_issues.parquet")["sample_id"])
    assert len(issues & set(spec.flipped)) >= 5
    exact = pd.read_parquet(run_dir / "duplicates.parquet").query("kind == 'exact'")
    assert len(exact) == 2 and exact["leakage"].any() and found["leakage"]["severity"] == "high"
    assert "outliers" in found


def test_the_package_imports_without_umap_or_cleanlab():
    code = ("import sys; sys.modules['umap'] = None; sys.modules['cleanlab'] = None; "
            "import core.analysis.diagnostics as d;"
            "\ntry:\n d.run_diagnostics('nowhere')\nexcept ImportError as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "umap-learn and cleanlab" in out


def test_planted_flips_on_clean_easy_data_come_first_in_cross_validation_and_in_the_test_split(tmp_path_factory):
    # well separated classes: the models are sure of nearly everything, where cleanlab's filter turns conservative
    spec = Spec(grouped=False, artists=1, groups_per_class=(60, 60, 60), test_groups=15, dim=64, class_scale=3.0,
                group_scale=1.0, flips=9, test_flips=3)
    run_dir, result = _diagnose(tmp_path_factory, spec)
    samples = pd.read_parquet(run_dir / "samples.parquet").set_index("sample_id")
    test_flips = {i for i in spec.flipped if samples.loc[i, "split"] == "test"}
    assert len(test_flips) == 3
    issues = pd.read_parquet(run_dir / "label_issues.parquet")
    for part, flips in (("cv", set(spec.flipped) - test_flips), ("test", test_flips)):
        rows = issues[issues["split"] == part]
        assert set(rows["sample_id"][:len(flips)]) == flips, part
        assert (rows["affects_test_metric"] == (part == "test")).all()
    li = result["label_issues"]
    assert li["test"]["count"] >= 3 and li["test"]["n"] == (samples["split"] == "test").sum()
    finding = _ids(result)["label-issues"]
    assert "in the test split (affects the test metric)" in finding["title"]
    assert "the test metric scores the model against labels in doubt" in finding["evidence"]


def test_kept_training_dynamics_add_aum_to_the_detectors_and_are_written_per_image(tmp_path_factory):
    """Folds that kept their dynamics: dynamics.parquet per trained image, AUM flags the images whose margins
    stayed negative (the planted flips here), and the three detectors agree on them."""
    import numpy as np
    from core.store import run_store
    spec = Spec(grouped=False, artists=1, groups_per_class=(60, 60, 60), dim=64, class_scale=3.0, group_scale=1.0,
                flips=6)
    run_dir = make_run(tmp_path_factory.mktemp("runs"), spec)
    samples = pd.read_parquet(run_dir / "samples.parquet")
    rng = np.random.default_rng(0)
    for fold in range(spec.folds):
        train = samples[(samples["split"] == "cv") & (samples["fold"] != fold)]["sample_id"].to_numpy()
        margin = rng.normal(3, 1, (8, len(train)))
        margin[:, np.isin(train, spec.flipped)] = rng.normal(-2, 1, (8, np.isin(train, spec.flipped).sum()))
        run_store.write_npz(run_store.fold_dir(run_dir, fold) / run_store.DYNAMICS_FILE, sample_id=train,
                            prob=(1 / (1 + np.exp(-margin))).astype(np.float16), margin=margin.astype(np.float16),
                            threshold_aum=rng.normal(-1.5, 0.3, 40).astype(np.float16))
    result = run_diagnostics(run_dir, log=QUIET)
    per_image = pd.read_parquet(run_dir / "dynamics.parquet")
    assert len(per_image) == (samples["split"] == "cv").sum() and (per_image["folds"] == spec.folds - 1).all()
    assert set(per_image.loc[per_image["aum_flag"], "sample_id"]) == set(spec.flipped)
    assert result["dynamics"]["aum_threshold"]["method"] == "threshold samples"
    issues = pd.read_parquet(run_dir / "label_issues.parquet")
    assert set(issues.loc[issues["agreed"], "sample_id"]) >= set(spec.flipped)
    assert issues["agreed"].tolist()[:6] == [True] * 6 and (issues["detectors_available"] == 3).all()
    li = result["label_issues"]
    assert li["detectors"] == ["cleanlab", "AUM", "neighbours"] and li["by_detector"]["AUM"] == 6
    assert "of 3 detectors (cleanlab, AUM, neighbours)" in _ids(result)["label-issues"]["title"]
