"""Splits hold still (#25): the same images give the same splits from a folder or a CSV in any row order, and a
run on a manifest cleaned from another run keeps that run's test split and folds (unless --redraw-splits)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_folder_dataset
from explain_fixtures import TINY

import train_cli
from core.config import RunConfig
from core.data import cleaning
from core.data.cleaning import Decision
from core.data.dataset import scan_dataset
from core.run.lifecycle import reference_splits
from core.run.source_splits import source_splits
from core.store import run_store

SMALL = RunConfig(weights="none", image_size=32, folds=2)


def splits_by_file(cfg: RunConfig) -> pd.Series:
    root = scan_dataset(cfg.data).root
    table = reference_splits(cfg)
    return pd.Series(list(zip(table.split, table.fold.fillna(-1))),
                     index=[(root / p).as_posix() for p in table.path]).sort_index()


def test_a_folder_and_a_csv_listing_its_files_in_another_order_give_the_same_splits(tmp_path) -> None:
    folder = make_folder_dataset(tmp_path / "data", per_class=8)
    files = sorted(folder.glob("*/*.png"))
    rows = pd.DataFrame({"path": [f.as_posix() for f in files], "label": [f.parent.name for f in files]})
    csv = tmp_path / "listing.csv"
    rows.sample(frac=1, random_state=3).to_csv(csv, index=False)   # absolute paths, shuffled rows
    from_folder = splits_by_file(dataclasses.replace(SMALL, data=str(folder)))
    from_csv = splits_by_file(dataclasses.replace(SMALL, data=str(csv)))
    assert from_csv.equals(from_folder)
    reversed_csv = tmp_path / "reversed.csv"
    rows.iloc[::-1].to_csv(reversed_csv, index=False)
    assert splits_by_file(dataclasses.replace(SMALL, data=str(reversed_csv))).equals(from_folder)


@pytest.fixture(scope="module")
def source_and_cleaned(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny run on a folder, and a manifest cleaned from it (2 images dropped, 1 relabelled) with review.json."""
    root = tmp_path_factory.mktemp("cleaned")
    folder = make_folder_dataset(root / "data", per_class=8)
    runs = root / "runs"
    assert train_cli.main(["--data", str(folder), "--runs-dir", str(runs), *TINY, "--name", "source"]) == 0
    source = next(runs.iterdir())
    info, samples = run_store.read_json(source / "run.json"), run_store.read_table(source, "samples")
    ids = samples.set_index("path").sample_id
    decisions = [Decision(int(ids["apple/apple_0.png"]), "drop"), Decision(int(ids["sky/sky_3.png"]), "drop"),
                 Decision(int(ids["leaf/leaf_1.png"]), "relabel", "sky")]
    csv_bytes, record = cleaning.build_cleaned(info, samples, decisions, {})
    manifest = root / "downloads" / "cleaned.csv"
    cleaning.write_cleaned(manifest, csv_bytes, record)
    return source, manifest


def config(source: Path, manifest: Path, **changes) -> RunConfig:
    return dataclasses.replace(SMALL, **{"data": str(manifest), "runs_dir": str(source.parent), **changes})


def source_by_file(source: Path) -> pd.Series:
    info, samples = run_store.read_json(source / "run.json"), run_store.read_table(source, "samples")
    return pd.Series(list(zip(samples.split, samples.fold.fillna(-1))),
                     index=[(Path(info["dataset"]["root"]) / p).as_posix() for p in samples.path])


def test_a_cleaned_manifest_keeps_the_source_runs_split_and_fold_for_every_shared_image(source_and_cleaned) -> None:
    source, manifest = source_and_cleaned
    dataset = scan_dataset(str(manifest))
    given = source_splits(config(source, manifest), dataset.samples, dataset.root,
                          cleaning.manifest_origin(manifest))
    assert given.warning is None
    assert given.record == {"method": "source_run", "source_run": source.name, "reused": 22, "new": 0}
    # what a run (and a tuning study) on the cleaned manifest draws: the source's, image by image
    cleaned = splits_by_file(config(source, manifest))
    assert len(cleaned) == 22 and cleaned.equals(source_by_file(source).loc[cleaned.index])


def test_redraw_splits_draws_from_content_with_a_warning(source_and_cleaned) -> None:
    source, manifest = source_and_cleaned
    dataset = scan_dataset(str(manifest))
    given = source_splits(config(source, manifest, redraw_splits=True), dataset.samples, dataset.root,
                          cleaning.manifest_origin(manifest))
    assert given.keep is None and given.record["method"] == "content" and given.record["source_run"] == source.name
    assert given.warning.startswith("--redraw-splits: the splits are drawn anew") and "\n" not in given.warning


@pytest.mark.parametrize("change,why", [({"folds": 3}, "--folds 2"), ({"runs_dir": "elsewhere"}, "is not under")])
def test_a_source_that_cannot_give_its_splits_is_named_in_the_warning(source_and_cleaned, change, why) -> None:
    source, manifest = source_and_cleaned
    dataset = scan_dataset(str(manifest))
    given = source_splits(config(source, manifest, **change), dataset.samples, dataset.root,
                          cleaning.manifest_origin(manifest))
    assert given.keep is None and why in given.warning and source.name in given.warning


def test_without_a_source_run_the_splits_are_drawn_from_content(source_and_cleaned) -> None:
    source, manifest = source_and_cleaned
    dataset = scan_dataset(str(manifest))
    given = source_splits(config(source, manifest), dataset.samples, dataset.root, None)
    assert given.keep is None and given.warning is None and given.record["method"] == "content"


def test_the_source_run_records_splits_drawn_from_content(source_and_cleaned) -> None:
    source, _ = source_and_cleaned
    assert run_store.read_json(source / "run.json")["dataset"]["splits_from"] == {
        "method": "content", "source_run": None, "reused": 0, "new": None}
    assert np.isin(run_store.read_table(source, "samples").split, ["cv", "test"]).all()
