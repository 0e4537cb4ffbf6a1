"""A run trained on a cleaned manifest knows its source run, and the two compare image by image."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

import train_cli
from core import cleaned_compare, run_store
from test_pipeline import TINY


def samples(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": np.arange(len(rows)), "path": [r[0] for r in rows],
                         "label": [r[1] for r in rows], "split": [r[2] for r in rows]})


def oof(frame: pd.DataFrame, predicted: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": frame.sample_id, "true_name": frame.label, "pred_name": predicted})


def test_images_are_matched_by_file_and_named_relabelled_dropped_or_unchanged() -> None:
    a = samples([("x/1.png", "cat", "cv"), ("x/2.png", "cat", "cv"), ("x/3.png", "dog", "test"),
                 ("x/4.png", "dog", "cv")])
    b = samples([("1.png", "dog", "cv"), ("3.png", "dog", "cv"), ("4.png", "dog", "cv")])   # other root, same files
    changes = cleaned_compare.image_changes(a, "/data", b, "/data/x")
    assert changes[["file", "change"]].astype(str).values.tolist() == [
        ["/data/x/1.png", "relabelled"], ["/data/x/2.png", "dropped"], ["/data/x/3.png", "unchanged"],
        ["/data/x/4.png", "unchanged"]]
    assert cleaned_compare.change_counts(changes) == {"relabelled": 1, "dropped": 1, "added": 0, "unchanged": 2}


def test_scores_on_unchanged_images_use_only_images_both_runs_cross_validated() -> None:
    a = samples([("1.png", "cat", "cv"), ("2.png", "cat", "cv"), ("3.png", "dog", "cv"), ("4.png", "dog", "test")])
    b = samples([("1.png", "dog", "cv"), ("3.png", "dog", "cv"), ("4.png", "dog", "cv"), ("2.png", "cat", "cv")])
    changes = cleaned_compare.image_changes(a, "/d", b, "/d")
    oof_a = oof(a[a.split == "cv"], ["cat", "dog", "cat"])          # 2.png wrong-> dog, 3.png wrong -> cat
    oof_b = oof(b, ["dog", "dog", "dog", "cat"])
    scores = cleaned_compare.unchanged_scores(changes, oof_a, oof_b, "A", "B").set_index("run")
    # unchanged and cross-validated in both: 2.png (cat) and 3.png (dog); 4.png is test in A, 1.png relabelled
    assert scores["images"].to_list() == [2, 2]
    assert scores.at["A", "accuracy"] == 0.0 and scores.at["B", "accuracy"] == 1.0


def test_pairs_are_found_from_the_cleaned_runs_record() -> None:
    infos = {"src": {"dataset": {"derived_from": None}}, "clean": {"dataset": {"derived_from": {"source_run": "src"}}},
             "orphan": {"dataset": {"derived_from": {"source_run": "gone"}}}, "old": {}}
    assert cleaned_compare.cleaning_pairs(infos) == [("src", "clean")]


def test_per_class_side_by_side_keeps_fold_spread() -> None:
    fold = {"val": {"per_class": {"cat": {"precision": 1.0, "recall": 0.5, "f1": 0.6}}}}
    metrics = {"classes": ["cat"], "folds": {"0": fold, "1": {"val": {"per_class": {"cat": {
        "precision": 1.0, "recall": 1.0, "f1": 1.0}}}}}, "oof": {"val": {"per_class": {"cat": {"support": 4}}}}}
    table = cleaned_compare.per_class_side_by_side({"A": metrics}, "recall")
    assert table.values.tolist() == [["cat", "A", 0.75, 0.25, 4]]


def test_clean_then_train_records_the_source_run(tmp_path) -> None:
    """The loop from the command line: train, clean, train on the cleaned manifest, and the pair is found."""
    from conftest import make_csv_dataset
    manifest = make_csv_dataset(tmp_path / "data")
    shutil.copy(tmp_path / "data" / "images" / "apple_0.jpg", tmp_path / "data" / "images" / "apple_copy.jpg")
    with open(manifest, "a") as handle:
        handle.write("images/apple_copy.jpg,apple,apple-g9\n")
    runs = tmp_path / "runs"
    assert train_cli.main(["--data", str(manifest), "--runs-dir", str(runs), *TINY, "--name", "dirty"]) == 0
    source = next(runs.iterdir())
    cleaned = tmp_path / "somewhere" / "cleaned.csv"
    assert train_cli.main(["clean", source.name, "--runs-dir", str(runs), "--drop-exact-duplicates",
                           "--out", str(cleaned)]) == 0
    assert train_cli.main(["--data", str(cleaned), "--runs-dir", str(runs), *TINY, "--name", "cleaned"]) == 0
    target = next(p for p in runs.iterdir() if p.name.endswith("cleaned"))
    info = run_store.read_json(target / "run.json")
    assert info["dataset"]["derived_from"]["source_run"] == source.name
    assert run_store.read_json(source / "run.json")["dataset"]["derived_from"] is None
    changes = cleaned_compare.image_changes(
        run_store.read_table(source, "samples"), run_store.read_json(source / "run.json")["dataset"]["root"],
        run_store.read_table(target, "samples"), info["dataset"]["root"])
    assert cleaned_compare.change_counts(changes)["dropped"] == 1
    assert changes[changes.change == "dropped"].file.str.endswith(("apple_0.jpg", "apple_copy.jpg")).all()
