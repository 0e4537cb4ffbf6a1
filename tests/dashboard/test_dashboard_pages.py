"""Every dashboard page through Streamlit's AppTest on the fixture runs (see dashboard_fixtures.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_fixtures import (  # noqa: F401
    COMPLETE,
    DAMAGED,
    FAILED,
    HOME,
    OTHER,
    PAGES,
    RUNNING,
    SPARSE,
    SPARSE_IMAGE_SIZE,
    dashboard_env,
    open_page,
    runs_dir,
    share_link_url,
)
from streamlit.testing.v1 import AppTest

from core.store import run_store
from core.store.heartbeat import heartbeat
from dashboard import navigation

REPO = Path(__file__).resolve().parents[2]
# Runs each page's top-level imports (not the page itself) in a fresh interpreter.
PAGE_IMPORTS_PROBE = """
import ast, json, sys
from pathlib import Path
sys.path.insert(0, "dashboard")
for page in sys.argv[1:]:
    for node in ast.parse(Path(page).read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), page, "exec"), {})
print(json.dumps(sorted(name for name in ("torch", "torchvision") if name in sys.modules)))
"""


def test_no_page_imports_torch_before_it_needs_a_model():
    """torch takes a second or more to import, on the first visit of whichever page brings it in. The dashboard
    reads runs; only computing a class activation map that is not cached yet needs a model, and imports it then."""
    pages = [str(p.relative_to(REPO)) for p in [REPO / "dashboard" / "Home.py",
                                                *sorted((REPO / "dashboard" / "app_pages").glob("*.py"))]]
    done = subprocess.run([sys.executable, "-c", PAGE_IMPORTS_PROBE, *pages], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def texts(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption] + [t.value for t in app.title]
                     + [e.body for kind in (app.info, app.warning, app.error) for e in kind])


def widget(app: AppTest, key: str):
    return next(w for kind in (app.selectbox, app.radio) for w in kind if w.key == key)


@pytest.mark.parametrize("page", [None, *PAGES])
@pytest.mark.parametrize("run", [COMPLETE, OTHER, RUNNING, FAILED, SPARSE])
def test_page_renders(dashboard_env, page: str | None, run: str) -> None:
    app = open_page(page, run=run)
    assert not app.exception, app.exception[0].stack_trace
    assert widget(app, "run").value == run
    assert any("Link to this view" in m.value for m in app.sidebar.markdown)


def test_home_shows_headline_findings_and_counts(dashboard_env) -> None:
    app = open_page(None, run=COMPLETE)
    labels = [m.label for m in app.metric]
    # the test ensemble (what predict and serve use) is the headline, its interval and the fold mean beside it
    assert labels == ["Test accuracy", "Test balanced accuracy", "Test macro f1"]
    assert all(m.value.endswith("%") for m in app.metric)
    assert "fold models' mean" in texts(app) and "95% interval" in texts(app)
    assert "Overfitting" in texts(app) and "Findings" in [h.value for h in app.subheader]
    assert "How often this kind of finding is wrong: `docs/findings-error-rates.md#" in texts(app)


def test_a_run_without_test_split_says_so_instead_of_nan(dashboard_env) -> None:
    app = open_page(None, run=SPARSE)
    assert "no test split" in texts(app) and "nan" not in texts(app)
    assert "train−test" in texts(open_page(None, run=COMPLETE))


def test_a_class_missing_from_some_folds_shows_no_made_up_scores(dashboard_env) -> None:
    metrics = run_store.read_json(dashboard_env / SPARSE / "metrics.json")
    assert any(scores["recall"] is None for fold in metrics["folds"].values()
               for scores in fold["val"]["per_class"].values())   # what this run is for
    findings = run_store.read_json(dashboard_env / SPARSE / "findings.json")["findings"]
    for page in ("Overfitting", "Classes"):
        app = open_page(page, run=SPARSE)
        assert not app.exception and "nan" not in texts(app).lower()
    assert "nan" not in open_page("Classes", run=SPARSE).dataframe[0].value.to_string()
    assert not any("NaN" in f["evidence"] or "None" in f["evidence"] for f in findings)


def test_data_page_names_the_runs_image_size(dashboard_env) -> None:
    assert f"model input ({SPARSE_IMAGE_SIZE} px)" in texts(open_page("Data", run=SPARSE, tab="sizes"))


def test_oof_mistakes_offer_only_roles_that_show_each_image_once(dashboard_env) -> None:
    app = open_page("Misclassified", run=COMPLETE, fold="oof", role="train")
    assert not app.exception
    assert widget(app, "role").options == ["val", "test"] and widget(app, "role").value == "val"
    assert widget(open_page("Misclassified", run=COMPLETE, fold="0"), "role").options == ["val", "test", "train"]
    assert widget(open_page("Misclassified", run=SPARSE, fold="oof"), "role").options == ["val"]


def test_status_banners(dashboard_env) -> None:
    with heartbeat(dashboard_env / RUNNING, "run", "resume"):   # its writer is alive (killed, it reads stalled)
        assert "still training" in texts(open_page(None, run=RUNNING))
    assert "This run failed" in texts(open_page("Classes", run=FAILED))
    assert "cannot be read" in texts(open_page(None, run=DAMAGED))


def test_missing_diagnostics_are_explained(dashboard_env) -> None:
    assert "Findings appear once all folds are done" in texts(open_page(None, run=OTHER))
    assert "PCA" in texts(open_page("Embeddings", run=OTHER))
    assert "diagnostics have run" in texts(open_page("Data", run=OTHER, tab="duplicates"))


@pytest.mark.parametrize("bad", ["../x", "/etc", "..%2F..%2Fetc", "no-such-run", "20250103-120000-complete/../x"])
def test_bad_run_names_fall_back_with_a_message(dashboard_env, bad: str) -> None:
    app = open_page("Classes", run=bad)
    assert not app.exception
    assert any("no run called" in w.body for w in app.warning)
    assert widget(app, "run").value == RUNNING  # the newest readable-or-not run is shown instead


def test_query_params_restore_the_view(dashboard_env) -> None:
    app = open_page("Classes", run=COMPLETE, fold="1", scale="row %", true="class_c", pred="class_b")
    assert [widget(app, k).value for k in ("fold", "scale", "true", "pred")] == ["1", "row %", "class_c", "class_b"]
    assert "true class **class_c** predicted as **class_b**" in texts(app)
    app = open_page("Embeddings", run=COMPLETE, space="fold1", color="correct", **{"class": "class_b"})
    assert [widget(app, k).value for k in ("space", "color", "class")] == ["fold1", "correct", "class_b"]
    app = open_page("Misclassified", run=COMPLETE, true="class_a", role="test", fold="0")
    assert [widget(app, k).value for k in ("true", "role", "fold")] == ["class_a", "test", "0"]
    app = open_page("Overfitting", run=COMPLETE, metric="accuracy", fold="2")
    assert widget(app, "metric").value == "accuracy" and widget(app, "fold").value == "2"


def test_every_page_keeps_the_url_path_and_title_it_had_in_the_pages_folder() -> None:
    """Links made when Streamlit listed pages/ by file name (…/Classes?run=…) still open the same page."""
    assert list(navigation.PAGES) == ["Home", "Overfitting", "Classes", "Embeddings", "Misclassified", "Data",
                                      "Compare", "Slices", "Experiments", "Review"]
    assert all(Path(file).stem.split("_", 1)[1] == title for title, file in navigation.PAGES.items() if title != "Home")


def test_finding_links_open_their_page_with_the_run_and_their_parameters(dashboard_env) -> None:
    findings = run_store.read_json(dashboard_env / COMPLETE / "findings.json")["findings"]
    links = [link.proto for link in open_page(None, run=COMPLETE).get("page_link")]
    pages = [f["target"]["page"] for f in findings]
    assert [link.page for link in links] == ["" if page == navigation.HOME else page for page in pages]   # URL paths
    assert all(link.query_string.startswith(f"run={COMPLETE}") for link in links)
    assert f"run={COMPLETE}&fold=oof&tab=label_issues" in [link.query_string for link in links]


def test_finding_tab_names_open_their_tab(dashboard_env) -> None:
    app = open_page("Misclassified", run=COMPLETE, fold="oof", tab="label_issues")
    assert "likely wrong labels first" in texts(app)
    assert "leaking" in texts(open_page("Data", run=COMPLETE, tab="duplicates"))
    assert "far from the rest of their class" in texts(open_page("Data", run=COMPLETE, tab="outliers"))
    assert "where they affect the test metric" in texts(open_page("Data", run=COMPLETE, tab="label_issues"))


def test_the_calibration_tab_shows_temperature_scaling_and_prediction_sets_on_the_test_split(dashboard_env) -> None:
    app = open_page("Misclassified", run=COMPLETE, tab="calibration")
    assert not app.exception
    conformal = run_store.read_json(dashboard_env / COMPLETE / "diagnostics.json")["conformal"]
    assert any("calibrated confidence and prediction sets" in header.value for header in app.subheader)
    assert f"Temperature {conformal['temperature']:.2f}" in texts(app)
    table = app.dataframe[-1].value
    assert table["class"].tolist() == run_store.read_json(dashboard_env / COMPLETE / "run.json")["classes"]
    assert table["coverage"].tolist() == [row["coverage"] for row in conformal["marginal"]["test"]["per_class"]]


def test_share_link_carries_every_choice(dashboard_env) -> None:
    app = open_page("Classes", run=COMPLETE, true="class_d", pred="class_a")
    link = share_link_url(app)
    for part in (f"run={COMPLETE}", "fold=oof", "true=class_d", "pred=class_a"):
        assert part in link


def test_picking_a_pair_updates_the_gallery(dashboard_env) -> None:
    app = open_page("Classes", run=COMPLETE)
    widget(app, "true").select("class_b").run()
    widget(app, "pred").select("class_b").run()
    assert "true class **class_b** predicted as **class_b**" in texts(app)


def test_compare_two_runs(dashboard_env) -> None:
    app = open_page("Compare", run=COMPLETE)
    assert not app.exception
    app.multiselect(key="with").set_value([OTHER]).run()
    assert "Headline metrics" in [h.value for h in app.subheader]
    assert "Confusion difference" in [h.value for h in app.subheader]
    headline = app.dataframe[0].value
    assert list(headline.index) == [COMPLETE, OTHER]
    assert all(cell.endswith("%") for cell in headline["validation balanced accuracy"].str.split(" ± ").str[0])


def test_password_gate(dashboard_env) -> None:
    app = AppTest.from_file(HOME, default_timeout=60)
    app.secrets["password"] = "s3cret"
    app.run()
    assert not app.title and app.text_input(key="password")
    app.text_input(key="password").input("wrong").run()
    assert any("incorrect" in e.body for e in app.error)
    app.text_input(key="password").input("s3cret").run()
    assert [t.value for t in app.title] == ["Overview"]


def test_no_runs_says_how_to_make_one(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(tmp_path / "empty"))
    app = AppTest.from_file(HOME, default_timeout=60).run()
    assert not app.exception and "train_cli.py --folds 5" in texts(app)


def test_home_offers_a_download_report_button(dashboard_env) -> None:
    app = open_page(None, run=COMPLETE)
    button = app.get("download_button")[0]
    assert button.proto.label == "Download report"
    assert not app.exception


def test_home_draws_the_configuration_table_only_once_it_is_opened(dashboard_env) -> None:
    app = open_page(run=COMPLETE)
    assert not app.dataframe   # closed: no table (its scripts are a sizeable part of a page load)
    app.session_state["configuration"] = True
    app.run()
    table = app.dataframe[0].value
    assert {"folds", "seed"} <= set(table.iloc[:, 0])
