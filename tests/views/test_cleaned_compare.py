"""A run trained on a cleaned manifest knows its source run, and the two compare image by image."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dashboard_fixtures import open_page, point_dashboard_at
from explain_fixtures import TINY

import train_cli
from core.data import cleaning
from core.evaluate import dense_confusion
from core.data.cleaning import Decision
from core.store import run_store
from core.views import cleaned_compare


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
    assert cleaned_compare.change_counts(changes) == {"relabelled": 1, "merged": 0, "dropped": 1, "added": 0,
                                                      "unchanged": 2}


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


def test_split_moves_count_shared_images_that_changed_split_or_fold() -> None:
    a = samples([("1.png", "cat", "cv"), ("2.png", "cat", "cv"), ("3.png", "dog", "test"), ("4.png", "dog", "cv")])
    a["fold"] = pd.array([0, 1, None, 1], dtype="Int64")
    b = samples([("1.png", "cat", "cv"), ("2.png", "dog", "cv"), ("3.png", "dog", "cv"), ("5.png", "dog", "cv")])
    b["fold"] = pd.array([0, 0, 1, 1], dtype="Int64")
    moves = cleaned_compare.split_moves(cleaned_compare.image_changes(a, "/d", b, "/d"))
    # shared: 1 (same), 2 (relabelled, fold 1 -> 0), 3 (test -> cv); 4 dropped and 5 added are not shared
    assert moves == {"shared": 3, "moved_split": 1, "moved_fold": 1}
    assert "1 changed split (cv/test) and 1 changed fold" in cleaned_compare.moves_sentence(moves)
    kept = {"shared": 3, "moved_split": 0, "moved_fold": 0}
    assert cleaned_compare.moves_sentence(kept).startswith("All 3 images the two runs share kept their split and fold")


def test_like_for_like_denominator_says_what_it_leaves_out() -> None:
    a = samples([("1.png", "cat", "cv"), ("2.png", "cat", "cv"), ("3.png", "dog", "cv"), ("4.png", "dog", "test"),
                 ("6.png", "dog", "cv")])
    b = samples([("1.png", "dog", "cv"), ("3.png", "dog", "cv"), ("4.png", "dog", "cv"), ("2.png", "cat", "cv"),
                 ("5.png", "cat", "cv")])
    changes = cleaned_compare.image_changes(a, "/d", b, "/d")
    oof_a, oof_b = oof(a[a.split == "cv"], ["cat"] * 4), oof(b, ["cat"] * 5)
    denominator = cleaned_compare.like_for_like_denominator(changes, oof_a, oof_b)
    assert denominator == {"images": 2, "merged": 0, "relabelled": 1, "dropped": 1, "added": 1,
                           "not_cross_validated_by_both": 1}
    assert denominator["images"] == cleaned_compare.unchanged_scores(changes, oof_a, oof_b, "A", "B")["images"][0]
    caption = cleaned_compare.denominator_caption(denominator)
    assert caption.startswith("Scored on 2 images") and "1 relabelled, 1 dropped, 1 added" in caption


def merged_samples() -> tuple[pd.DataFrame, pd.DataFrame]:
    """cat and dog merged into cat+dog; one owl relabelled to cat+dog by hand (not a merge: owl is still a class)."""
    a = samples([("1.png", "cat", "cv"), ("2.png", "dog", "cv"), ("3.png", "dog", "cv"), ("4.png", "owl", "cv"),
                 ("5.png", "owl", "cv"), ("6.png", "cat", "cv")])
    b = samples([("1.png", "cat+dog", "cv"), ("2.png", "cat+dog", "cv"), ("3.png", "cat+dog", "cv"),
                 ("4.png", "owl", "cv"), ("5.png", "cat+dog", "cv")])
    return a, b


def test_merged_classes_are_read_from_the_two_runs_and_their_images_counted_as_merged() -> None:
    a, b = merged_samples()
    merges = cleaned_compare.class_merges(a, "/d", ["cat", "dog", "owl"], b, "/d", ["cat+dog", "owl"])
    assert merges == {"cat": "cat+dog", "dog": "cat+dog"}
    changes = cleaned_compare.image_changes(a, "/d", b, "/d", merges)
    assert cleaned_compare.change_counts(changes) == {"relabelled": 1, "merged": 3, "dropped": 1, "added": 0,
                                                      "unchanged": 1}
    # merged into one of its own classes ("dog" takes cat in): dog keeps its name, cat's images are merged
    b_kept = b.assign(label=b.label.replace("cat+dog", "dog"))
    assert cleaned_compare.class_merges(a, "/d", ["cat", "dog", "owl"], b_kept, "/d", ["dog", "owl"]) == {
        "cat": "dog", "dog": "dog"}
    # a class renamed alone is no merge, and an ordinary cleaning has none
    renamed = b.assign(label=b.label.replace("owl", "bird"))
    assert "owl" not in cleaned_compare.class_merges(a, "/d", ["cat", "dog", "owl"], renamed, "/d",
                                                     ["cat+dog", "bird"])
    assert cleaned_compare.class_merges(a, "/d", ["cat", "dog", "owl"], a, "/d", ["cat", "dog", "owl"]) == {}


def test_like_for_like_scores_read_the_sources_merged_classes_as_one() -> None:
    a, b = merged_samples()
    merges = cleaned_compare.class_merges(a, "/d", ["cat", "dog", "owl"], b, "/d", ["cat+dog", "owl"])
    changes = cleaned_compare.image_changes(a, "/d", b, "/d", merges)
    # the source splits cat from dog at random (2 of 3 wrong between them) but never calls them owl
    oof_a = oof(a, ["dog", "cat", "dog", "owl", "owl", "cat"])
    oof_b = oof(b, ["cat+dog", "cat+dog", "cat+dog", "owl", "owl"])
    scores = cleaned_compare.unchanged_scores(changes, oof_a, oof_b, "A", "B", merges).set_index("run")
    # scored: 1, 2, 3 (merged) and 4 (unchanged); 5 was relabelled by hand, 6 dropped
    assert scores["images"].to_list() == [4, 4]
    assert scores.at["A", "accuracy"] == 1.0 and scores.at["B", "accuracy"] == 1.0
    without = cleaned_compare.unchanged_scores(changes, oof_a, oof_b, "A", "B").set_index("run")
    assert without.at["A", "accuracy"] == 0.5   # on its own classes, its split of cat from dog counts against it
    denominator = cleaned_compare.like_for_like_denominator(changes, oof_a, oof_b)
    assert denominator["images"] == 4 and denominator["merged"] == 3
    assert "4 images, 3 of them in merged classes" in cleaned_compare.denominator_caption(denominator)


def test_the_sources_confusion_is_summed_into_the_merged_classes_in_the_cleaned_runs_order() -> None:
    metrics = {"classes": ["cat", "dog", "owl"], "oof": {"val": {"confusion": [[5, 4, 1], [3, 6, 0], [0, 2, 8]]}}}
    merged = cleaned_compare.merged_metrics(metrics, {"cat": "cat+dog", "dog": "cat+dog"}, ["owl", "cat+dog"])
    assert merged["classes"] == ["owl", "cat+dog"]
    assert dense_confusion(merged["oof"]["val"], 2).tolist() == [[8, 2], [1, 18]]
    assert cleaned_compare.merged_metrics(metrics, {}, ["cat", "dog"]) is None   # owl has no place


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


@pytest.fixture(scope="module")
def cleaned_pair(tmp_path_factory) -> tuple[Path, Path]:
    """The loop for real: train on a manifest with a copied file, review (drop the copy, relabel one image) as
    the Review page would, save both downloads in a folder, train on the cleaned manifest from the CLI."""
    from conftest import make_csv_dataset
    root = tmp_path_factory.mktemp("loop")
    manifest = make_csv_dataset(root / "data")
    shutil.copy(root / "data" / "images" / "apple_0.jpg", root / "data" / "images" / "apple_copy.jpg")
    with open(manifest, "a") as handle:
        handle.write("images/apple_copy.jpg,apple,apple-g9\n")
    runs = root / "runs"
    assert train_cli.main(["--data", str(manifest), "--runs-dir", str(runs), *TINY, "--name", "dirty"]) == 0
    source = next(runs.iterdir())
    info, samples = run_store.read_json(source / "run.json"), run_store.read_table(source, "samples")
    copy = int(samples.sample_id[samples.path == "images/apple_copy.jpg"].iloc[0])
    leaf = int(samples.sample_id[samples.path == "images/leaf_1.jpg"].iloc[0])
    decisions = [Decision(copy, "drop"), Decision(leaf, "relabel", "sky")]
    csv_bytes, record = cleaning.build_cleaned(info, samples, decisions, {})
    cleaned = root / "downloads" / "cleaned.csv"
    cleaning.write_cleaned(cleaned, csv_bytes, record)
    assert train_cli.main(["--data", str(cleaned), "--runs-dir", str(runs), *TINY, "--name", "cleaned"]) == 0
    return source, next(p for p in runs.iterdir() if p.name.endswith("cleaned"))


def test_a_run_trained_on_a_cleaned_manifest_records_its_source(cleaned_pair) -> None:
    source, target = cleaned_pair
    info = run_store.read_json(target / "run.json")
    assert info["dataset"]["derived_from"]["source_run"] == source.name
    assert run_store.read_json(source / "run.json")["dataset"]["derived_from"] is None
    changes = cleaned_compare.image_changes(
        run_store.read_table(source, "samples"), run_store.read_json(source / "run.json")["dataset"]["root"],
        run_store.read_table(target, "samples"), info["dataset"]["root"])
    assert cleaned_compare.change_counts(changes) == {"relabelled": 1, "merged": 0, "dropped": 1, "added": 0,
                                                      "unchanged": len(changes) - 2}
    assert changes.file[changes.change == "dropped"].str.endswith("apple_copy.jpg").all()
    assert changes[changes.change == "relabelled"][["label_a", "label_b"]].values.tolist() == [["leaf", "sky"]]
    # the cleaned rerun is measured on the source's test images and folds: every shared image kept both
    assert cleaned_compare.split_moves(changes) == {"shared": len(changes) - 1, "moved_split": 0, "moved_fold": 0}
    assert info["dataset"]["splits_from"] == {"method": "source_run", "source_run": source.name,
                                              "reused": len(changes) - 1, "new": 0}
    assert run_store.read_json(source / "run.json")["dataset"]["splits_from"]["method"] == "content"


def test_compare_page_recognises_the_pair_and_scores_unchanged_images(cleaned_pair, tmp_path, monkeypatch) -> None:
    source, target = cleaned_pair
    point_dashboard_at(target.parent, tmp_path / "cache", monkeypatch)
    app = open_page("Compare", run=target.name)
    assert not app.exception, app.exception
    assert app.multiselect(key="with").value == [source.name]   # the pair is picked by default
    assert "What the cleaning did" in [h.value for h in app.subheader]
    text = "\n".join(m.value for m in app.markdown)
    assert f"**{target.name}** was trained on a manifest cleaned from **{source.name}**" in text
    assert "1 images relabelled, 1 dropped" in text
    assert any("changes what is measured" in w.body for w in app.warning)
    assert "kept their split and fold: both runs are measured on the same test images" in text
    assert any(c.value.startswith("Scored on ") and "Left out: 1 relabelled, 1 dropped" in c.value
               for c in app.caption)
    scores = app.dataframe[0].value
    assert scores.index.to_list() == [source.name, target.name] and (scores["images"] > 0).all()


@pytest.fixture(scope="module")
def merged_pair(cleaned_pair, tmp_path_factory) -> tuple[Path, Path]:
    """The source of `cleaned_pair` with leaf and sky merged by `clean --merge-classes`, trained from the CLI."""
    source, _ = cleaned_pair
    out = tmp_path_factory.mktemp("merge") / "merged.csv"
    assert train_cli.main(["clean", source.name, "--runs-dir", str(source.parent), "--merge-classes", "leaf,sky",
                           "--out", str(out)]) == 0
    assert train_cli.main(["--data", str(out), "--runs-dir", str(source.parent), *TINY, "--name", "merged"]) == 0
    return source, next(p for p in source.parent.iterdir() if p.name.endswith("merged"))


def test_compare_page_scores_a_merged_rerun_on_the_merged_classes(merged_pair, tmp_path, monkeypatch) -> None:
    source, target = merged_pair
    info = run_store.read_json(target / "run.json")
    assert info["classes"] == ["apple", "leaf+sky"]
    assert info["dataset"]["splits_from"]["method"] == "source_run" and info["dataset"]["splits_from"]["new"] == 0
    point_dashboard_at(target.parent, tmp_path / "cache", monkeypatch)
    app = open_page("Compare", run=target.name)
    assert not app.exception, app.exception
    assert app.multiselect(key="with").value == [source.name]
    text = "\n".join(m.value for m in app.markdown)
    assert "16 merged (leaf and sky into leaf+sky), 0 images relabelled, 0 dropped" in text
    scored = next(c.value for c in app.caption if c.value.startswith("Scored on "))
    assert "of them in merged classes" in scored
    scores = app.dataframe[0].value
    assert scores.index.to_list() == [source.name, target.name] and (scores["images"] > 8).all()
    assert not any("cannot be subtracted" in i.body for i in app.info)
    assert any("merged classes are summed into their merged class" in c.value for c in app.caption)
