"""A run of many classes: the Classes page opens on the most confused pairs and a limited clustered matrix, and
per-class charts show the worst classes unless asked for all."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard_fixtures import PAGES, open_page, point_dashboard_at, share_link_url

from core.testing.synthetic import make_synthetic_run
from core.views.figures import OTHER_CLASSES, OTHER_COLOR, WORST_SHOWN

MANY, FEW = "20250110-120000-many", "20250110-120000-few"
N_CLASSES = 30


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("many") / "runs"
    make_synthetic_run(runs_dir, MANY, 300, N_CLASSES, 3, 16, seed=5, files_per_class=2, epochs=3, diagnostics=False)
    make_synthetic_run(runs_dir, FEW, 90, 3, 3, 16, seed=6, files_per_class=2, epochs=3, diagnostics=False)
    return runs_dir


@pytest.fixture()
def env(many_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    point_dashboard_at(many_runs, tmp_path / "cache", monkeypatch)
    return many_runs


def test_many_classes_open_on_the_confused_pairs_each_linking_to_its_images(env: Path) -> None:
    app = open_page("Classes", run=MANY)
    assert not app.exception
    pairs = app.dataframe[0].value
    assert list(pairs.columns[:3]) == ["true", "predicted", "count"] and pairs["count"].is_monotonic_decreasing
    first = pairs.iloc[0]
    assert first["images"] == (f"./Misclassified?run={MANY}&fold=oof&role=val&true={first['true']}"
                               f"&pred={first['predicted']}")
    # the gallery below opens on the most confused pair
    assert [app.selectbox(key=k).value for k in ("true", "pred")] == [first["true"], first["predicted"]]
    [matrix] = [c for c in app.get("plotly_chart") if "most involved in errors" in c.proto.spec]
    assert "other" in matrix.proto.spec
    assert app.get("download_button")   # the full matrix as CSV


def test_per_class_scores_show_the_worst_classes_with_a_toggle_for_all(env: Path) -> None:
    app = open_page("Classes", run=MANY)
    toggle = app.toggle(key="scores_all")
    assert f"the {WORST_SHOWN} classes of lowest recall" in _specs(app)
    toggle.set_value(True).run()
    assert f"the {WORST_SHOWN} classes of lowest recall" not in _specs(app)


def test_scores_against_training_images_are_two_traces_on_a_log_axis(env: Path) -> None:
    app = open_page("Classes", run=MANY)
    [spec] = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if "against training images" in c.proto.spec]
    assert [trace["name"] for trace in spec["data"]] == ["recall", "precision"]
    assert spec["layout"]["xaxis"]["type"] == "log"
    assert len({row[0] for row in spec["data"][0]["customdata"]}) == N_CLASSES   # a mark per class, named on hover
    assert spec["layout"].get("showlegend") is not False   # two entries, never one per class


def test_few_classes_keep_the_clickable_matrix(env: Path) -> None:
    app = open_page("Classes", run=FEW)
    assert not app.exception and not app.get("download_button") and not app.toggle
    assert "most involved in errors" not in _specs(app)
    assert "click to show" in _specs(app)   # the full matrix, a marker on every cell


def test_overfitting_shows_the_largest_gaps_unless_asked_for_all(env: Path) -> None:
    app = open_page("Overfitting", run=MANY)
    assert not app.exception and app.toggle(key="gap_all").value is False
    assert len(_gap_bars(app)) == WORST_SHOWN
    app.toggle(key="gap_all").set_value(True).run()
    assert len(_gap_bars(app)) == N_CLASSES


def _gap_bars(app) -> list[str]:
    [gaps] = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Recall gap by class" in c.proto.spec]
    return gaps["data"][0]["y"]


def _specs(app) -> str:
    return " ".join(chart.proto.spec for chart in app.get("plotly_chart"))


def test_a_focused_pair_filters_the_classes_tables_and_opens_its_cell(env: Path) -> None:
    first = open_page("Classes", run=MANY).dataframe[0].value.iloc[0]
    pair = f"{first['true']} ↔ {first['predicted']}"
    app = open_page("Classes", run=MANY, focus=pair)
    assert not app.exception and app.selectbox(key="focus").value == pair
    pairs, per_class = (frame.value for frame in app.dataframe[:2])
    assert set(pairs["true"]) | set(pairs["predicted"]) == {first["true"], first["predicted"]}
    assert sorted(per_class.index) == sorted([first["true"], first["predicted"]])
    assert [app.selectbox(key=k).value for k in ("true", "pred")] == [first["true"], first["predicted"]]
    app.selectbox(key="focus").set_value("all").run()
    assert len(app.dataframe[1].value) == N_CLASSES
    app.selectbox(key="focus").set_value("class_002").run()   # a new focus opens its class's cell
    assert app.selectbox(key="true").value == "class_002" and "focus=class_002" in share_link_url(app)


def test_the_map_shows_the_focus_in_colour_and_the_rest_in_grey(env: Path) -> None:
    app = open_page("Embeddings", run=MANY, focus="class_002")
    assert not app.exception
    [scatter] = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    names = [trace["name"] for trace in scatter["data"]]
    assert names[0] == OTHER_CLASSES and "class_002" in names
    colours = {trace["name"]: trace["marker"]["color"] for trace in scatter["data"]}
    assert colours[OTHER_CLASSES] == OTHER_COLOR and colours["class_002"] != OTHER_COLOR
    options = app.selectbox(key="focus").options
    assert options[0] == "all" and " ↔ " in options[1] and options[-1] == "class_029"


def _visit(app, page: str):
    """Open another page as the sidebar's menu does: its link carries no URL parameters."""
    for key in list(app.query_params):
        del app.query_params[key]
    app.switch_page(PAGES[page])
    return app.run()


def test_the_focus_follows_the_reader_to_the_runs_other_pages(env: Path) -> None:
    app = open_page("Classes", run=MANY, focus="class_002")
    assert not app.exception and app.selectbox(key="focus").value == "class_002"
    _visit(app, "Overfitting")
    assert not app.exception and app.selectbox(key="focus").value == "class_002"
    bars = _gap_bars(app)
    assert "class_002" in bars and len(bars) in (WORST_SHOWN, WORST_SHOWN + 1)   # shown wherever it ranks
    [gaps] = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Recall gap by class" in c.proto.spec]
    colours = dict(zip(bars, gaps["data"][0]["marker"]["color"]))
    assert colours["class_002"] != OTHER_COLOR and {c for n, c in colours.items() if n != "class_002"} == {OTHER_COLOR}
    app = open_page("Classes", run=MANY)
    pair = app.selectbox(key="focus").options[1]   # the most confused pair, picked here
    app.selectbox(key="focus").set_value(pair).run()
    _visit(app, "Misclassified")
    assert not app.exception   # its class filters open on the pair's mistakes one way
    assert [app.selectbox(key=k).value for k in ("true", "pred")] == pair.split(" ↔ ")
    _visit(app, "Embeddings")
    assert not app.exception and app.selectbox(key="focus").value == pair
    assert "focus=" + pair.split(" ↔ ")[0] in share_link_url(app)


def test_a_focus_set_to_all_or_made_for_another_run_is_not_carried(env: Path) -> None:
    app = open_page("Embeddings", run=MANY, focus="class_002")
    app.selectbox(key="focus").set_value("all").run()
    _visit(app, "Misclassified")
    assert [app.selectbox(key=k).value for k in ("true", "pred")] == ["all", "all"]
    app = open_page("Overfitting", run=MANY, focus="class_002")
    _visit(app, "Misclassified")
    assert app.selectbox(key="true").value == "class_002"   # carried within the run
    app = open_page("Overfitting", run=MANY, focus="class_002")
    app.selectbox(key="run").set_value(FEW).run()   # another run: the focus stays with its own
    _visit(app, "Misclassified")
    assert not app.exception and [app.selectbox(key=k).value for k in ("true", "pred")] == ["all", "all"]
