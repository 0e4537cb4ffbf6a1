"""Drift of new images from a run's training images: property tests, the classifier two-sample test, the verdict."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance
from use_fixtures import tiny_runs  # noqa: F401  (session fixture)

import train_cli
from core.analysis.drift import DriftSettings, classifier_test, compare, look_alike_groups, property_shifts
from core.store import run_store


def properties(rng: np.random.Generator, n: int, brightness: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({"brightness": rng.normal(brightness, 0.08, n), "contrast": rng.normal(0.2, 0.04, n),
                         "blur": rng.lognormal(5, 0.8, n), "aspect_ratio": rng.choice([1.0, 4 / 3], n),
                         "short_side": rng.choice([224.0, 320.0, 480.0], n)})


def embeddings(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    centres = np.random.default_rng(99).normal(0, 1, (4, 128))   # the same classes on both sides
    rows = centres[rng.integers(0, 4, n)] + rng.normal(0, 1.0, (n, 128))
    rows[:, :8] += shift
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sample_from_the_training_distribution_is_no_drift(seed):
    rng = np.random.default_rng(seed)
    result = compare(properties(rng, 400), properties(rng, 60), embeddings(rng, 400), embeddings(rng, 60))
    assert result["drifted"] is False
    assert result["verdict"].startswith("No drift detected: the 60 new images")
    assert not any(row["drifted"] for row in result["properties"])
    assert 0.3 < result["classifier"]["auc"] < 0.7 and result["classifier"]["p"] > 0.01


def test_darkened_images_are_drift_and_the_verdict_names_brightness():
    rng = np.random.default_rng(0)
    result = compare(properties(rng, 400), properties(rng, 60, brightness=0.3), embeddings(rng, 400),
                     embeddings(rng, 60, shift=1.0))
    assert result["drifted"] is True
    drifted = [row["property"] for row in result["properties"] if row["drifted"]]
    assert drifted == ["brightness"]
    assert "Shifted: brightness lower (median 0.29" in result["verdict"]
    assert result["classifier"]["auc"] > 0.8 and "tells them apart (AUC" in result["verdict"]


def test_many_images_with_a_negligible_shift_are_not_called_drift():
    """Significant is not enough: KS D must reach min_ks (with 5000 images a 0.01 shift has p < 0.01)."""
    rng = np.random.default_rng(5)
    shifts = property_shifts(properties(rng, 5000), properties(rng, 5000, brightness=0.51), DriftSettings())
    brightness = shifts.set_index("property").loc["brightness"]
    assert brightness["p_adjusted"] < 0.01 and brightness["ks"] < 0.2 and not brightness["drifted"]


def test_the_classifier_test_is_skipped_with_fewer_new_images_than_two_folds_need():
    rng = np.random.default_rng(0)
    assert classifier_test(embeddings(rng, 50), embeddings(rng, 1)) is None
    result = compare(properties(rng, 50), properties(rng, 1), embeddings(rng, 50), embeddings(rng, 1))
    assert result["classifier"] is None and "too few images for the classifier test" in result["verdict"]


def test_the_classifier_names_the_property_that_drives_it():
    """New images differ only in brightness, and their features carry it: brightness leads the drivers."""
    rng = np.random.default_rng(4)
    train, new = properties(rng, 300), properties(rng, 60, brightness=0.25)
    both = pd.concat([train, new], ignore_index=True)
    features = embeddings(rng, 360)
    features[:, 0] += 6 * both["brightness"].to_numpy()   # a feature that follows brightness
    # images counted one by one (look_alike above any cosine): these blobs of 4 classes chain into a few groups
    result = compare(train, new, features[:300], features[300:], DriftSettings(look_alike=1.1))
    assert result["drivers"][0]["property"] == "brightness" and result["drivers"][0]["spearman"] < -0.2
    assert "Its score follows brightness most" in result["verdict"]


def grouped(seed: int, groups: int, per_group: int = 3, dark: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(properties, embeddings, group id) of images that come in look-alike groups: each group is one item (its
    own point in feature space and its own brightness), its images near-identical variants of it."""
    rng = np.random.default_rng(seed)
    items = rng.normal(0, 1, (groups, 128))
    group = np.repeat(np.arange(groups), per_group)
    features = items[group] + rng.normal(0, 0.35, (len(group), 128))
    features[:, :8] -= 12 * dark
    item_brightness = rng.uniform(0.3, 0.7, groups)
    props = pd.DataFrame({"brightness": item_brightness[group] + rng.normal(0, 0.01, len(group)) - dark,
                          "contrast": rng.normal(0.2, 0.04, len(group))})
    return props, features, group


def split_by_group(props, features, group, new_groups: int):
    new = group >= group.max() + 1 - new_groups
    return props[~new].reset_index(drop=True), props[new].reset_index(drop=True), features[~new], features[new], group[~new]


def test_look_alike_groups_find_the_items_and_join_known_groups():
    props, features, group = grouped(0, 20)
    found = look_alike_groups(features)
    assert len(np.unique(found)) == 20 and all(len(np.unique(found[group == g])) == 1 for g in range(20))
    known = np.where(group < 2, "a", None).astype(object)   # the first two items share a group column value
    assert len(np.unique(look_alike_groups(features, known))) == 19


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_groups_from_the_same_population_are_no_drift(seed):
    """A split by group (like a run's test split): counted image by image, both tests call it drift; by group,
    neither does, and the verdict says how many groups the new images form."""
    train_p, new_p, train_x, new_x, train_g = split_by_group(*grouped(seed, 60), new_groups=12)
    naive = compare(train_p, new_p, train_x, new_x, DriftSettings(look_alike=1.1))   # no grouping: every image alone
    assert naive["drifted"] is True
    result = compare(train_p, new_p, train_x, new_x, DriftSettings(), train_g)
    assert result["drifted"] is False and result["groups_new"] == 12
    assert result["verdict"].startswith("No drift detected: the 36 new images (in 12 look-alike groups) look like")
    assert result["classifier"]["groups_new"] == 12 and result["classifier"]["auc"] < 0.7
    brightness = next(row for row in result["properties"] if row["property"] == "brightness")
    assert brightness["groups_new"] == 12 and brightness["ks_images"] >= brightness["ks"] * 0.5


def test_darkened_new_groups_are_drift():
    train_p, _, train_x, _, train_g = split_by_group(*grouped(4, 60), new_groups=12)
    _, new_p, _, new_x, _ = split_by_group(*grouped(4, 60, dark=0.25), new_groups=12)
    result = compare(train_p, new_p, train_x, new_x, DriftSettings(), train_g)
    assert result["drifted"] is True and result["verdict"].startswith("Drift: the 36 new images (in 12 look-alike")
    assert [row["property"] for row in result["properties"] if row["drifted"]] == ["brightness"]
    assert result["classifier"]["auc"] > 0.9 and result["classifier"]["p"] < 0.01


# ---------------------------------------------------------------- `train_cli.py drift` on a trained run

def run_images(run: Path) -> list[Path]:
    root = Path(json.loads((run / "run.json").read_text())["dataset"]["root"])
    return [root / p for p in pd.read_parquet(run / "samples.parquet")["path"]]


def test_drift_command_finds_darkened_images_writes_the_result_and_lists_unreadable_files(tiny_runs, tmp_path,  # noqa: F811
                                                                                         capsys):
    run = tiny_runs["head"]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for path in run_images(run):
        with Image.open(path) as image:
            ImageEnhance.Brightness(image).enhance(0.35).save(inbox / path.name)
    (inbox / "notes.jpg").write_text("not an image")
    (inbox / "empty.png").write_bytes(b"")
    out = tmp_path / "drift.json"
    code = train_cli.main(["drift", run.name, str(inbox), "--out", str(out), "--runs-dir", str(run.parent)])
    assert code == 0
    printed = capsys.readouterr().out
    # the tiny run's synthetic images look alike to the backbone: its 24 darkened copies form a few look-alike
    # groups, too few for a test by group to call drift; the images themselves have all moved
    verdict = next(line for line in printed.splitlines() if "new images (in " in line)
    assert verdict.startswith(("Drift: the 24 new images (in ", "No drift detected: the 24 new images (in "))
    brightness = next(row for row in run_store.latest_drift(run)["properties"] if row["property"] == "brightness")
    assert brightness["ks_images"] > 0.9 and brightness["median_new"] < brightness["median_train"]
    assert f"skipped {inbox / 'empty.png'}: unreadable: empty file" in printed
    assert f"skipped {inbox / 'notes.jpg'}: not an image (format not recognised)" in printed
    latest = run_store.latest_drift(run)
    assert latest == json.loads(out.read_text()) and latest["groups_new"] < 24
    assert latest["inputs"] == [str(inbox)] and latest["n_files"] == 26 and len(latest["unreadable"]) == 2
    assert [p.suffix for p in (run / "drift").iterdir()] == [".json"]   # one result, no temporary left


def test_drift_command_bad_arguments_are_one_line_errors(tiny_runs, tmp_path, capsys):  # noqa: F811
    run = tiny_runs["head"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.jpg").write_text("not an image")
    calls = [["drift", "no-such-run", str(tmp_path)], ["drift", run.name, str(tmp_path / "empty")],
             ["drift", run.name, str(tmp_path / "notes.jpg")], ["drift", run.name],
             ["drift", run.name, str(tmp_path / "notes.jpg"), "--out", str(tmp_path)]]
    for argv in calls:
        assert train_cli.main([*argv, "--runs-dir", str(run.parent)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == len(calls) and all(line.startswith("error: ") for line in errors)
    assert "run no-such-run: no such run" in errors[0] and "drift: no files found" in errors[1]
    assert "drift: 0 readable images among 1 files (" in errors[2] and "not an image" in errors[2]
    assert "the following arguments are required: IMAGE_OR_FOLDER" in errors[3]
    assert "is a folder" in errors[4]


def test_the_verdict_describes_the_three_largest_shifts_and_names_the_others():
    rng = np.random.default_rng(6)
    train, new = properties(rng, 300), properties(rng, 60, brightness=0.2)
    new["contrast"] += 0.1
    new["blur"] *= 5
    new["short_side"] = 64.0
    result = compare(train, new, embeddings(rng, 300), embeddings(rng, 60))
    shifted = [row["property"] for row in sorted(result["properties"], key=lambda r: -r["ks"]) if row["drifted"]]
    assert len(shifted) == 4
    described, named = result["verdict"].split("; also ")
    assert all(f"{name} " in described for name in shifted[:3]) and named.startswith(f"{shifted[3]}.")
