"""Classes the data cannot separate (AppTest): the Classes page lists the found pairs and shows both sides of one;
the Review page offers the merge as a command to copy, which runs as printed; the run is left as it was."""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
from dashboard_fixtures import open_page, point_dashboard_at

import train_cli
from core.store import run_store
from core.testing.synthetic import make_synthetic_run

RUN = "20250110-120000-overlap"


@pytest.fixture(scope="module")
def overlap_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic run whose diagnostics.json says class_b and class_c overlap (written by hand: no cleanlab)."""
    runs_dir = tmp_path_factory.mktemp("overlap") / "runs"
    run_dir = make_synthetic_run(runs_dir, RUN, 160, 4, 3, 16, seed=3, files_per_class=2, epochs=3,
                                 diagnostics=False)
    pair = {"a": "class_b", "b": "class_c", "a_index": 1, "b_index": 2, "images": 70, "overlapping": 28.0,
            "share": 0.4, "joint_probability": 0.2, "a_as_b": 15, "b_as_a": 12, "confused": 27, "errors": 30,
            "expected": 9.5, "p_value": 1e-9, "fold_shares": {"0": 0.3, "1": 0.4, "2": 0.5}, "fold_min": 0.3,
            "fold_max": 0.5, "folds_with_overlap": 3, "significant": True}
    run_store.write_json(run_dir / "diagnostics.json",
                         {"overlapping_classes": {"pairs": [pair], "found": 1, "tested": 6, "n_folds": 3}})
    return runs_dir


@pytest.fixture()
def env(overlap_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    point_dashboard_at(overlap_runs, tmp_path / "cache", monkeypatch)
    return overlap_runs


def test_classes_lists_the_pairs_and_shows_both_sides_of_one(env: Path) -> None:
    app = open_page("Classes", run=RUN, true="class_b", pred="class_c", sides="both")
    assert not app.exception, app.exception
    assert "Classes the data cannot separate" in [h.value for h in app.subheader]
    [table] = [d.value for d in app.dataframe if "class A" in d.value.columns]
    assert table[["class A", "class B"]].values.tolist() == [["class_b", "class_c"]]
    assert table["images"][0] == f"./Classes?run={RUN}&true=class_b&pred=class_c&sides=both"
    assert table["merge"][0] == f"./Review?run={RUN}&merge_a=class_b&merge_b=class_c"
    rows = run_store.read_table(env / RUN, "predictions")
    oof = rows[(rows.model != "ensemble") & (rows.role == "val")]
    either = int((((oof.label == 1) & (oof.pred == 2)) | ((oof.label == 2) & (oof.pred == 1))).sum())
    said = next(c.value for c in app.caption if "predicted as" in c.value)
    assert said.startswith(f"{either} image") and "of **class_c** predicted as **class_b**" in said
    # one side alone, as before
    one = open_page("Classes", run=RUN, true="class_b", pred="class_c")
    assert any("with true class **class_b** predicted as" in c.value for c in one.caption)


def test_review_offers_the_merge_command_and_it_runs_as_printed(env: Path, tmp_path: Path, monkeypatch) -> None:
    before = {p: p.read_bytes() for p in (env / RUN).rglob("*") if p.is_file()}
    app = open_page("Review", run=RUN)   # an empty review list still offers the merge, the found pair first
    assert not app.exception, app.exception
    assert "The review list is empty" in app.info[0].value
    assert [app.selectbox(key=k).value for k in ("merge_a", "merge_b")] == ["class_b", "class_c"]
    assert any("cannot separate these two" in m.value and "40.0%" in m.value for m in app.markdown)
    app.text_input[0].set_value("bc").run()
    command = app.code[0].value
    argv = shlex.split(command)
    assert argv[:4] == ["python", "train_cli.py", "clean", RUN]
    assert argv[4:8] == ["--merge-classes", "class_b,class_c", "--merged-name", "bc"]
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(argv[2:]) == 0
    assert set(pd.read_csv(tmp_path / "merged.csv").label) == {"class_a", "bc", "class_d"}
    assert {p: p.read_bytes() for p in (env / RUN).rglob("*") if p.is_file()} == before


def test_review_picks_the_pair_from_the_url_and_refuses_one_class(env: Path) -> None:
    app = open_page("Review", run=RUN, merge_a="class_a", merge_b="class_d")
    assert "--merge-classes class_a,class_d" in app.code[0].value
    assert not any("cannot separate" in m.value for m in app.markdown)
    same = open_page("Review", run=RUN, merge_a="class_a", merge_b="class_a")
    assert not same.code and any("two different classes" in i.value for i in same.info)
