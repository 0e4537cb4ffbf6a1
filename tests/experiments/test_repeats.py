"""Repeated k-fold (`--repeats R`): R runs with the folds drawn anew and one test split, and the spread over them."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_folder_dataset
from dashboard_fixtures import HOME
from explain_fixtures import TINY
from streamlit.testing.v1 import AppTest

import train_cli
from core.experiments.repeats import repeat_scores, spread
from core.store import run_store
from core.views.experiments import repeat_spread


def scores(val: float, test: float | None) -> dict:
    metrics = {"oof": {"val": {"accuracy": val, "balanced_accuracy": val, "macro_f1": val}}}
    if test is not None:
        metrics["ensemble"] = {"test": {"accuracy": test, "balanced_accuracy": test, "macro_f1": test}}
    return metrics


def test_spread_is_mean_sample_std_min_and_max_over_the_repeats() -> None:
    table = repeat_scores({0: scores(0.6, 0.5), 1: scores(0.8, 0.7), 2: scores(0.7, 0.9)})
    assert table["repeat"].to_list() == [0, 1, 2] and table["test balanced_accuracy"].to_list() == [0.5, 0.7, 0.9]
    summary = spread(table)
    assert summary["val accuracy"]["mean"] == pytest.approx(0.7)
    assert summary["val accuracy"]["std"] == pytest.approx(0.1)          # ddof 1: sqrt((0.01 + 0.01 + 0) / 2)
    assert (summary["test macro_f1"]["min"], summary["test macro_f1"]["max"]) == (0.5, 0.9)
    rows = repeat_spread(summary)
    assert rows.columns.to_list() == ["score", "mean", "std", "min", "max"] and len(rows) == 6


def test_without_a_test_split_only_validation_scores_are_shown() -> None:
    summary = spread(repeat_scores({0: scores(0.6, None), 1: scores(0.8, None)}))
    assert math.isnan(summary["test accuracy"]["mean"])
    assert repeat_spread(summary)["score"].to_list() == ["val accuracy", "val balanced_accuracy", "val macro_f1"]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("repeats")
    folder = make_folder_dataset(root / "data", per_class=8)
    runs = root / "runs"
    assert train_cli.main(["--data", str(folder), "--runs-dir", str(runs), *TINY, "--repeats", "2",
                           "--name", "r"]) == 0
    return runs, run_store.list_experiments(runs)[0]


def test_repeats_train_runs_on_one_test_split_with_folds_drawn_anew(repeated) -> None:
    runs, experiment = repeated
    assert experiment["kind"] == "repeats" and experiment["status"] == "complete" and experiment["repeats"] == 2
    tables = []
    for entry in experiment["runs"]:
        info = run_store.read_json(runs / entry["run_id"] / "run.json")
        assert info["config"]["repeat"] == entry["repeat"] and info["experiment"]["id"] == experiment["experiment_id"]
        tables.append(run_store.read_table(runs / entry["run_id"], "samples").set_index("path"))
    first, second = tables[0], tables[1].loc[tables[0].index]
    assert (first.split == second.split).all()
    assert (first.fold.fillna(-1) != second.fold.fillna(-1)).any()
    scores_table = pd.read_parquet(Path(experiment["path"]) / "repeats.parquet")
    assert scores_table["repeat"].to_list() == [0, 1]
    assert experiment["spread"]["val balanced_accuracy"]["mean"] == pytest.approx(
        scores_table["val balanced_accuracy"].mean())


def test_repeats_below_two_are_refused_with_one_line(tmp_path, capsys) -> None:
    assert train_cli.main(["--data", str(tmp_path), "--runs-dir", str(tmp_path / "runs"), "--repeats", "0"]) == 2
    assert "--repeats 0" in capsys.readouterr().err


def test_experiments_page_shows_the_spread_and_links_every_repeat(repeated, tmp_path, monkeypatch) -> None:
    runs, experiment = repeated
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    app = AppTest.from_file(HOME, default_timeout=60)
    app.query_params["experiment"] = experiment["experiment_id"]
    app.switch_page("app_pages/8_Experiments.py")   # a page without a run (PAGES holds the run pages)
    app.run()
    assert not app.exception, app.exception
    assert f"Repeated k-fold: {experiment['experiment_id']}" in [h.value for h in app.subheader]
    shown = app.dataframe[0].value
    assert "val balanced_accuracy" in shown["score"].to_list()
    assert any("The std is how far one draw of the folds may move" in c.value for c in app.caption)
