"""`train_cli.py predict`: the run's fold models as an ensemble, agreeing with the run's own test ensemble."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from use_fixtures import huge_png, tiny_runs  # noqa: F401  (session fixture)

import train_cli
from core.analysis import ood
from core.delivery import predict
from core.evaluate import prob_column


def run_predict(run: Path, tmp_path: Path, *inputs: str, extra: tuple[str, ...] = ()) -> tuple[int, pd.DataFrame]:
    out = tmp_path / "predictions.csv"
    code = train_cli.main(["predict", run.name, *inputs, "--out", str(out), "--runs-dir", str(run.parent), *extra])
    return code, (pd.read_csv(out) if out.exists() else None)


def stored_test_ensemble(run: Path) -> tuple[list[str], pd.DataFrame]:
    """The run's test images (absolute paths) and its stored test-ensemble rows, in sample order."""
    root = Path(json.loads((run / "run.json").read_text())["dataset"]["root"])
    samples = pd.read_parquet(run / "samples.parquet")
    ensemble = pd.read_parquet(run / "predictions.parquet").query("model == 'ensemble'").sort_values("sample_id")
    paths = [str(root / p) for p in samples.set_index("sample_id").loc[ensemble.sample_id, "path"]]
    return paths, ensemble


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_predict_on_the_test_split_reproduces_the_runs_test_ensemble(mode, tiny_runs, tmp_path,  # noqa: F811
                                                                     capsys):
    run = tiny_runs[mode]
    paths, ensemble = stored_test_ensemble(run)
    assert len(paths) >= 2
    code, table = run_predict(run, tmp_path, *paths)
    assert code == 0
    classes = ["apple", "leaf", "sky"]
    assert list(table.columns) == ["path", "prediction", "confidence", *map(prob_column, classes), "error",
                                   "in_run_split", "ood_score", "ood_threshold", "out_of_distribution"]
    assert table["path"].tolist() == paths and table["error"].isna().all()
    assert (table["in_run_split"] == "test").all()   # held out from every fold model: nothing to warn about
    stored = ensemble[[prob_column(c) for c in classes]].to_numpy()
    np.testing.assert_allclose(table[[prob_column(c) for c in classes]].to_numpy(), stored, atol=1e-4)
    assert table["prediction"].tolist() == [classes[i] for i in ensemble["pred"]]
    output = capsys.readouterr()
    assert Path(paths[0]).name in output.out and "warning" not in output.err


def test_images_the_run_trained_on_are_marked_and_warned_about_in_one_line(tiny_runs, tmp_path,  # noqa: F811
                                                                         capsys):
    run = tiny_runs["head"]
    root = Path(json.loads((run / "run.json").read_text())["dataset"]["root"])
    samples = pd.read_parquet(run / "samples.parquet")
    cv = [str(root / p) for p in samples.path[samples.split == "cv"][:2]]
    test = str(root / samples.path[samples.split == "test"].iloc[0])
    renamed = tmp_path / "renamed.png"   # the same bytes under another name are still an image it trained on
    renamed.write_bytes(Path(cv[0]).read_bytes())
    new = tmp_path / "new.png"
    Image.new("RGB", (40, 30), (90, 90, 200)).save(new)
    code, table = run_predict(run, tmp_path, *cv, str(renamed), test, str(new))
    assert code == 0
    assert table["in_run_split"].fillna("").tolist() == ["cv", "cv", "cv", "test", ""]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")
                and "out of distribution" not in line]
    assert warnings == ["warning: 3 of the 5 files are images the run trained on (cross-validation split, "
                        "in_run_split = cv): every fold model but one saw them in training, so their predictions "
                        "are optimistic"]


def test_a_folder_is_searched_and_unreadable_files_are_listed_with_their_reason(tiny_runs, tmp_path,  # noqa: F811
                                                                               capsys):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "red.png")
    Image.new("RGB", (40, 30), (30, 160, 40)).save(folder / "sub" / "green.jpg")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "huge.png").write_bytes(huge_png())   # 30000 x 30000 in its header: refused before decoding
    code, table = run_predict(tiny_runs["head"], tmp_path, str(folder), str(tmp_path / "missing.jpg"))
    assert code == 0
    errors = dict(zip(table["path"].map(lambda p: Path(p).name), table["error"]))
    assert set(errors) == {"red.png", "green.jpg", "notes.txt", "empty.png", "huge.png", "missing.jpg"}
    assert pd.isna(errors["red.png"]) and pd.isna(errors["green.jpg"])
    assert errors["notes.txt"] == "not an image (format not recognised)"
    assert errors["empty.png"] == "unreadable: empty file" and errors["missing.jpg"] == "file not found"
    assert errors["huge.png"].startswith("decompression bomb refused: ") and "900000000 pixels" in errors["huge.png"]
    assert table.loc[table["error"].notna(), "prediction"].isna().all()
    output = capsys.readouterr()
    assert "4 files could not be classified" in output.out and "Traceback" not in output.out + output.err


def test_tta_is_the_mean_over_the_image_and_its_mirror(tiny_runs):  # noqa: F811
    ensemble = predict.load_ensemble(tiny_runs["finetune"])
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain, mirrored = ensemble.probabilities(images), ensemble.probabilities(images.flip(-1))
    with_tta = ensemble.probabilities(images, tta=True)
    np.testing.assert_allclose(with_tta, (plain + mirrored) / 2, atol=1e-6)
    assert not np.allclose(plain, mirrored, atol=1e-4)  # the mirror does change the prediction
    np.testing.assert_allclose(with_tta.sum(1), 1.0, atol=1e-5)


def test_an_unknown_run_or_no_files_is_bad_input(tiny_runs, tmp_path, capsys):  # noqa: F811
    run = tiny_runs["head"]
    assert train_cli.main(["predict", "no-such-run", str(tmp_path), "--runs-dir", str(run.parent)]) == 2
    (tmp_path / "empty").mkdir()
    assert train_cli.main(["predict", run.name, str(tmp_path / "empty"), "--runs-dir", str(run.parent)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0].startswith("error: run no-such-run: no such run") and "no files found" in errors[1]


def test_nothing_classifiable_or_a_folder_as_out_is_bad_input_and_writes_nothing(tiny_runs, tmp_path,  # noqa: F811
                                                                                  capsys):
    run = tiny_runs["head"]
    (tmp_path / "notes.jpg").write_text("not an image")
    code, table = run_predict(run, tmp_path, str(tmp_path / "notes.jpg"), str(tmp_path / "missing.png"))
    assert code == 2 and table is None
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: predict: none of the 2 files")
    assert train_cli.main(["predict", run.name, str(tmp_path / "notes.jpg"), "--out", str(tmp_path),
                           "--runs-dir", str(run.parent)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {tmp_path} is a folder; give the path of a file to write"


def test_coverage_adds_each_images_prediction_set_and_calibrated_confidence(tiny_runs, tmp_path):  # noqa: F811
    from core.analysis.confidence import load_confidence
    run = tiny_runs["head"]
    paths, _ = stored_test_ensemble(run)
    (tmp_path / "notes.jpg").write_text("not an image")
    code, table = run_predict(run, tmp_path, *paths, str(tmp_path / "notes.jpg"), extra=("--coverage", "0.8"))
    assert code == 0
    assert list(table.columns[-3:]) == ["prediction_set", "set_size", "calibrated_confidence"]
    done, failed = table[table["error"].isna()], table[table["error"].notna()]
    sets = done["prediction_set"].str.split("|")
    assert (sets.str[0] == done["prediction"]).all()               # most probable first: the prediction leads
    assert (sets.str.len() == done["set_size"]).all()
    assert failed[["prediction_set", "set_size", "calibrated_confidence"]].isna().all().all()
    classes = ["apple", "leaf", "sky"]
    confidence = load_confidence(run, classes, 0.8)
    probs = done[[prob_column(c) for c in classes]].to_numpy()
    assert sets.tolist() == confidence.labels(confidence.sets(probs), probs)
    np.testing.assert_allclose(done["calibrated_confidence"], confidence.calibrated(probs).max(1), rtol=1e-6)


def test_classes_with_too_few_calibration_images_are_in_every_set_and_named_in_a_warning(tiny_runs, tmp_path,  # noqa: F811
                                                                                        capsys):
    run = tiny_runs["head"]
    paths, _ = stored_test_ensemble(run)
    code, table = run_predict(run, tmp_path, *paths, extra=("--coverage", "0.95", "--class-conditional"))
    assert code == 0 and (table["set_size"] == 3).all()      # a handful of out-of-fold images per class
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert warning == [("warning: too few out-of-fold images to bound apple, leaf, sky at coverage 0.95: every "
                        "prediction set holds them")]


def test_raps_sets_are_fitted_with_the_settings_given(tiny_runs, tmp_path):  # noqa: F811
    from core.analysis.confidence import load_confidence
    from core.config import SetSettings
    run = tiny_runs["head"]
    paths, _ = stored_test_ensemble(run)
    code, table = run_predict(run, tmp_path, *paths, extra=("--coverage", "0.6", "--set-method", "raps",
                                                            "--raps-lambda", "0.2", "--raps-k-reg", "1"))
    assert code == 0
    classes = ["apple", "leaf", "sky"]
    confidence = load_confidence(run, classes, 0.6, settings=SetSettings("raps", 0.2, 1))
    probs = table[[prob_column(c) for c in classes]].to_numpy()
    assert table["prediction_set"].str.split("|").tolist() == confidence.labels(confidence.sets(probs), probs)
    assert confidence.describe()["method"] == "raps" and confidence.describe()["raps_lambda"] == 0.2


def test_set_settings_without_coverage_are_a_mistake_said_in_one_line(tiny_runs, tmp_path, capsys):  # noqa: F811
    run = tiny_runs["head"]
    code, table = run_predict(run, tmp_path, str(tmp_path), extra=("--set-method", "raps"))
    assert code == 2 and table is None
    assert capsys.readouterr().err.strip() == (
        "error: --set-method, --raps-lambda and --raps-k-reg shape prediction sets, which predict makes only with "
        "--coverage: add e.g. --coverage 0.9")


@pytest.mark.parametrize("option, value, message", [
    ("--raps-lambda", "-1", "--raps-lambda -1.0: give a penalty of 0 or more (e.g. 0.05)"),
    ("--raps-lambda", "nan", "--raps-lambda nan: give a penalty of 0 or more (e.g. 0.05)"),
    ("--raps-k-reg", "-2", "--raps-k-reg -2: give a number of classes, 0 or more (e.g. 1)")])
def test_bad_raps_settings_are_one_line_of_bad_input(option, value, message, tiny_runs, tmp_path,  # noqa: F811
                                                     capsys):
    run = tiny_runs["head"]
    code, table = run_predict(run, tmp_path, str(tmp_path), extra=("--coverage", "0.9", "--set-method", "raps",
                                                                   option, value))
    assert code == 2 and table is None
    assert capsys.readouterr().err.strip() == f"error: {message}"


@pytest.mark.parametrize("value", ["1.5", "0", "ninety"])
def test_a_coverage_outside_zero_to_one_is_one_line_of_bad_input(value, tiny_runs, tmp_path, capsys):  # noqa: F811
    run = tiny_runs["head"]
    code, table = run_predict(run, tmp_path, str(tmp_path), extra=("--coverage", value))
    assert code == 2 and table is None
    error = capsys.readouterr().err.strip()
    assert error == (f"error: --coverage {value}: give the share of images whose set should hold the true class, "
                     f"strictly between 0 and 1 (e.g. 0.9)")


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_the_ood_score_of_an_image_is_its_distance_in_the_models_own_feature_spaces(mode, tiny_runs,  # noqa: F811
                                                                                  tmp_path):
    """Predicting the run's test images scores them as the reference scores their stored features: the features
    predict computes on the way to the probabilities (head: the heads' inputs, backbone.npy; finetune: each fold
    network's own, fold{k}.npy) are the spaces the reference was built in."""
    run = tiny_runs[mode]
    paths, ensemble = stored_test_ensemble(run)
    code, table = run_predict(run, tmp_path, *paths)
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    spaces = ood.serving_spaces(info, info["folds_done"])
    assert spaces == (["backbone"] if mode == "head" else [f"fold{k}" for k in info["folds_done"]])
    reference = ood.load_reference(run, spaces)
    rows = ensemble["sample_id"].to_numpy()
    stored = {space: np.load(run / "embeddings" / f"{space}.npy")[rows] for space in spaces}
    np.testing.assert_allclose(table["ood_score"], reference.scores(stored), atol=2e-3)
    assert (table["ood_threshold"] == reference.threshold).all()
    assert table["out_of_distribution"].tolist() == (table["ood_score"] > reference.threshold).tolist()


def test_an_image_out_of_distribution_says_so_in_place_of_its_class(tiny_runs, tmp_path, capsys,  # noqa: F811
                                                                    monkeypatch):
    def strict(run_dir, spaces):   # a threshold no image is under: every readable image is out of distribution
        return dataclasses.replace(ood.load_reference(run_dir, spaces), threshold=-1.0)
    monkeypatch.setattr(predict, "load_reference", strict)
    new = tmp_path / "new.png"
    Image.new("RGB", (40, 30), (90, 90, 200)).save(new)
    (tmp_path / "notes.jpg").write_text("not an image")
    code, table = run_predict(tiny_runs["head"], tmp_path, str(new), str(tmp_path / "notes.jpg"))
    assert code == 0
    assert table["out_of_distribution"].iloc[0] == True and pd.isna(table["out_of_distribution"].iloc[1])
    assert pd.isna(table["ood_score"].iloc[1])   # an unreadable file has no score, only its reason
    output = capsys.readouterr()
    assert f"OUT OF DISTRIBUTION (unlike the training images; model's guess: {table['prediction'][0]})" in output.out
    assert "warning: 1 of the 1 images are out of distribution" in output.err
