"""Small things a page says: why the diagnostics are missing, what a mistake count is out of, and what adding
many images to the review list proposes."""
from __future__ import annotations

import pytest
from dashboard_fixtures import COMPLETE, HOME, SPARSE, dashboard_env, open_page, runs_dir  # noqa: F401
from streamlit.testing.v1 import AppTest

from core.store import run_store
from core.testing.synthetic import make_synthetic_run

TRIAL, BROKEN = "20250102-000000-trial", "20250101-000000-broken"


@pytest.fixture(scope="module")
def trial_runs(tmp_path_factory: pytest.TempPathFactory):
    """A tuning trial (diagnostics skipped on purpose, as `tune` records it) and a run whose diagnostics failed."""
    runs = tmp_path_factory.mktemp("trials") / "runs"
    trial = make_synthetic_run(runs, TRIAL, 60, 3, 3, 16, seed=5, diagnostics=False)
    run_store.update_run_json(trial, diagnostics_error=f"{run_store.DIAGNOSTICS_SKIPPED}; compute them with: "
                                                       f"python train_cli.py diagnose {TRIAL}",
                              experiment={"kind": "tune", "id": "search", "role": "trial", "trial": 0})
    broken = make_synthetic_run(runs, BROKEN, 60, 3, 3, 16, seed=6, diagnostics=False)
    run_store.update_run_json(broken, diagnostics_error="MemoryError: UMAP needs 9 GiB")
    return runs


def open_run(runs, monkeypatch, run: str, page: str | None = None, **params: str) -> AppTest:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs))
    app = AppTest.from_file(HOME, default_timeout=60)
    for key, value in {"run": run, **params}.items():
        app.query_params[key] = value
    if page:
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception[0].stack_trace
    return app


@pytest.mark.parametrize("page, params", [(None, {}), ("app_pages/5_Data.py", {"tab": "duplicates"}),
                                          ("app_pages/4_Misclassified.py", {})])
def test_a_tuning_trial_says_its_diagnostics_were_skipped_without_a_red_failure(trial_runs, monkeypatch, page,
                                                                                params):
    trial = open_run(trial_runs, monkeypatch, TRIAL, page, **params)
    assert not [e.body for e in trial.error]
    said = [i.body for i in trial.info] + [c.value for c in trial.caption]
    assert any("made without diagnostics" in text and f"diagnose {TRIAL}" in text for text in said)
    broken = open_run(trial_runs, monkeypatch, BROKEN, page, **params)   # a real failure still is one
    assert any("The diagnostics failed" in e.body and "MemoryError" in e.body for e in broken.error)


def test_mistakes_of_one_true_class_are_counted_out_of_that_classs_images(dashboard_env) -> None:  # noqa: F811
    samples = run_store.read_table(dashboard_env / COMPLETE, "samples")
    n_class = int(((samples["label"] == "class_b") & (samples["split"] == "cv")).sum())
    app = open_page("Misclassified", run=COMPLETE, true="class_b")
    [caption] = [c.value for c in app.caption if " wrong of " in c.value]
    assert f" wrong of {n_class} images of **class_b** (" in caption
    everything = [c.value for c in open_page("Misclassified", run=COMPLETE).caption if " wrong of " in c.value]
    assert f" wrong of {len(samples[samples['split'] == 'cv'])} predictions (" in everything[0]


def test_adding_many_images_proposes_a_drop_only_where_the_evidence_is_for_one(dashboard_env) -> None:  # noqa: F811
    """Mistakes are the model's, not wrong labels: adding all of them proposes no change; a label-issue list
    proposes each image's suggested class; exact duplicates propose dropping the second copy."""
    assert open_page("Misclassified", run=COMPLETE).radio(key="wrong-all-action").value == "keep"
    assert open_page("Classes", run=COMPLETE).radio(key="cell-all-action").value == "keep"
    issues = open_page("Misclassified", run=COMPLETE, tab="label_issues")
    assert issues.radio(key="issues-all-action").value == "suggested"
    assert open_page("Data", run=COMPLETE, tab="duplicates").radio(key="dup-exact-action").value == "drop"


def test_the_class_count_chart_names_a_test_split_only_for_a_run_with_one(dashboard_env) -> None:  # noqa: F811
    def title(run: str) -> str:
        [chart] = [c.proto.spec for c in open_page(None, run=run).get("plotly_chart") if "Images per class" in
                   c.proto.spec]
        return chart

    assert "pale = test split" in title(COMPLETE) and "pale = test split" not in title(SPARSE)
