"""End to end through the CLI on tiny datasets: the run directory matches docs/run-format.md."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

import train_cli
from core.evaluate import dense_confusion
from core.training import fold_job

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8"]


def train(runs_dir: Path, data: Path, *extra: str) -> tuple[int, Path | None]:
    code = train_cli.main(["--data", str(data), "--runs-dir", str(runs_dir), *TINY, *extra])
    runs = sorted(runs_dir.iterdir()) if runs_dir.exists() else []
    return code, (runs[-1] if runs else None)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import make_csv_dataset
    root = tmp_path_factory.mktemp("e2e")
    code, run = train(root / "runs", make_csv_dataset(root / "data"), "--name", "tiny")
    assert code == 0
    return run


def test_run_json_records_identity_config_and_environment(finished_run):
    info = json.loads((finished_run / "run.json").read_text())
    assert info["schema_version"] == 2 and info["status"] == "complete" and info["error"] is None
    assert info["run_id"] == finished_run.name and finished_run.name.endswith("-tiny")
    assert info["classes"] == ["apple", "leaf", "sky"] and info["class_counts"] == {"apple": 8, "leaf": 8, "sky": 8}
    assert info["config"]["folds"] == 2 and info["config"]["weights"] == "none"
    assert info["train_mode"] == "head" and "no CUDA" in info["train_mode_reason"]
    assert info["weights"]["source"] == "none" and info["model"]["name"] == "resnet50"
    assert info["dataset"]["groups_used"] and info["folds_done"] == [0, 1] and info["spaces"] == ["backbone"]
    assert {"scan", "features", "fold0", "fold1", "evaluate", "total"} <= set(info["timings"])
    assert {"torch", "torchvision", "numpy"} <= set(info["versions"]) and info["skipped"] == []


def test_samples_table_has_documented_columns_and_group_aware_folds(finished_run):
    samples = pd.read_parquet(finished_run / "samples.parquet")
    assert list(samples.columns) == ["sample_id", "path", "label", "label_index", "group", "split", "fold",
                                     "width", "height", "sha256"]
    assert samples.sample_id.tolist() == list(range(24))
    assert set(samples.split) == {"cv", "test"} and samples[samples.split == "test"].fold.isna().all()
    cv = samples[samples.split == "cv"]
    assert (cv.groupby("group").fold.nunique() == 1).all()
    assert not set(samples[samples.split == "test"].group) & set(cv.group)


def test_predictions_cover_every_role_and_oof_is_complete(finished_run):
    predictions = pd.read_parquet(finished_run / "predictions.parquet")
    samples = pd.read_parquet(finished_run / "samples.parquet")
    assert {"sample_id", "model", "fold", "role", "label", "pred", "confidence", "loss",
            "prob_apple", "prob_leaf", "prob_sky"} <= set(predictions.columns)
    oof = predictions[predictions.role == "val"]
    assert sorted(oof.sample_id) == sorted(samples[samples.split == "cv"].sample_id)
    n_test = (samples.split == "test").sum()
    assert (predictions.model == "ensemble").sum() == n_test
    assert set(predictions.model) == {"fold0", "fold1", "ensemble"}
    probs = predictions[["prob_apple", "prob_leaf", "prob_sky"]].to_numpy()
    assert np.allclose(probs.sum(1), 1, atol=1e-4)


def test_every_metric_equals_scikit_learn_on_predictions(finished_run):
    metrics = json.loads((finished_run / "metrics.json").read_text())
    predictions = pd.read_parquet(finished_run / "predictions.parquet")
    for fold in (0, 1):
        for role in ("train", "val", "test"):
            rows = predictions[(predictions.fold == fold) & (predictions.role == role)]
            m = metrics["folds"][str(fold)][role]
            assert m["accuracy"] == pytest.approx(accuracy_score(rows.label, rows.pred))
            assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(rows.label, rows.pred))
            assert m["macro_f1"] == pytest.approx(f1_score(rows.label, rows.pred, average="macro", zero_division=0))
            assert dense_confusion(m, 3).tolist() == confusion_matrix(rows.label, rows.pred, labels=[0, 1, 2]).tolist()
    values = [metrics["folds"][str(k)]["val"]["balanced_accuracy"] for k in (0, 1)]
    assert metrics["summary"]["val"]["balanced_accuracy"]["mean"] == pytest.approx(np.mean(values))
    assert metrics["summary"]["val"]["balanced_accuracy"]["std"] == pytest.approx(np.std(values))
    ensemble = predictions[predictions.model == "ensemble"]
    assert metrics["ensemble"]["test"]["accuracy"] == pytest.approx(accuracy_score(ensemble.label, ensemble.pred))


def test_history_and_embeddings_and_fold_jobs(finished_run):
    history = pd.read_parquet(finished_run / "history.parquet")
    assert list(history.columns) == ["fold", "epoch", "phase", "loss", "accuracy", "balanced_accuracy", "lr", "is_best"]
    assert set(history.phase) == {"train", "val"} and history.groupby("fold").is_best.sum().tolist() == [2, 2]
    embedding = np.load(finished_run / "embeddings" / "backbone.npy")
    assert embedding.dtype == np.float16 and embedding.shape == (24, 2048)
    for k in (0, 1):
        fold_json = json.loads((finished_run / "folds" / f"fold{k}" / "fold.json").read_text())
        assert fold_json["status"] == "complete" and 1 <= fold_json["best_epoch"] <= 2
        head = fold_job.load_fold_model(finished_run, k)
        assert head.weight.shape == (3, 2048)
    assert not list(finished_run.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_finetune_mode_trains_all_layers_and_stores_each_folds_embedding(tmp_path, folder_dataset):
    code, run = train(tmp_path / "runs", folder_dataset, "--train-mode", "finetune", "--epochs", "1",
                      "--test-size", "0")
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["train_mode"] == "finetune" and info["spaces"] == ["backbone", "fold0", "fold1"]
    assert np.load(run / "embeddings" / "fold1.npy").shape == (18, 2048)
    model = fold_job.load_fold_model(run, 0)
    assert isinstance(model, torch.nn.Module) and model.head.out_features == 3
    assert "test" not in json.loads((run / "metrics.json").read_text())["summary"]


def test_interrupted_run_resumes_only_its_missing_folds(tmp_path, folder_dataset, monkeypatch):
    real_run_fold, calls = fold_job.run_fold, []

    def crash_on_fold_1(run_dir, fold):
        calls.append(fold)
        if fold == 1:
            raise RuntimeError("simulated crash")
        return real_run_fold(run_dir, fold)
    monkeypatch.setattr(fold_job, "run_fold", crash_on_fold_1)
    code, run = train(tmp_path / "runs", folder_dataset, "--test-size", "0")
    info = json.loads((run / "run.json").read_text())
    assert code == 1 and info["status"] == "failed" and "--resume" in info["error"]
    assert info["folds_done"] == [0]  # the finished fold was assembled before the crash
    first = (run / "folds" / "fold0" / "fold.json").stat().st_mtime_ns

    monkeypatch.setattr(fold_job, "run_fold", lambda d, k: calls.append(k) or real_run_fold(d, k))
    assert train_cli.main(["--resume", run.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert calls == [0, 1, 1]
    assert (run / "folds" / "fold0" / "fold.json").stat().st_mtime_ns == first
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_cached_backbone_features_make_a_rerun_do_no_backbone_work(tmp_path, folder_dataset, capsys):
    weights = tmp_path / "random_resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), weights)
    args = ["--weights", str(weights), "--cache-dir", str(tmp_path / "cache")]
    for expected in ("features: 18 computed, 0 from cache", "features: 0 computed, 18 from cache"):
        code = train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(tmp_path / "runs"),
                               *TINY[2:], "--test-size", "0", *args])
        assert code == 0 and expected in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [
    (["--data", "/no/such/dir"], "no such folder"),
    (["--folds", "9"], "needs at least"),
    (["--model", "resnet5O"], "Unknown --model"),
    (["--weights", "/no/such.pth"], "no such file"),
    (["--resume", "nope"], "no such run"),
])
def test_bad_input_exits_2_with_one_line_and_leaves_no_run(tmp_path, folder_dataset, capsys, args, message):
    argv = ["--data", str(folder_dataset), "--runs-dir", str(tmp_path / "runs"), *TINY, *args]
    assert train_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_help_explains_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--folds", "--test-size", "--weights", "--train-mode", "--balance", "--resume", "--no-groups"):
        assert option in text
    assert "default: 5" in text and "default: imagenet" in text


def test_class_names_with_spaces_commas_and_accents_and_just_two_classes(tmp_path):
    from conftest import make_image
    for c, name in enumerate(["hair care", "Café, bar"]):
        for i in range(6):
            make_image(tmp_path / "data" / name / f"{i}.png", (60 + 150 * c, 80, 200 - 150 * c), seed=10 * c + i)
    code, run = train(tmp_path / "runs", tmp_path / "data", "--test-size", "0", "--name", "../odd name..x")
    assert code == 0
    predictions = pd.read_parquet(run / "predictions.parquet")
    assert {"prob_hair care", "prob_Café, bar"} <= set(predictions.columns)
    from core.store import run_store
    assert run_store.find_run(tmp_path / "runs", run.name) is not None  # the odd --name still gives a listable id


def test_diagnose_refuses_an_unfinished_run_and_recomputes_a_finished_one(finished_run, capsys):
    runs_dir = str(finished_run.parent)
    (finished_run / "findings.json").unlink()
    assert train_cli.main(["diagnose", finished_run.name, "--runs-dir", runs_dir]) == 0
    assert (finished_run / "findings.json").exists()
    info = json.loads((finished_run / "run.json").read_text())
    (finished_run / "run.json").write_text(json.dumps({**info, "status": "failed"}))
    try:
        assert train_cli.main(["diagnose", finished_run.name, "--runs-dir", runs_dir]) == 2
        assert "--resume" in capsys.readouterr().err
    finally:
        (finished_run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("page", [None, "Overfitting", "Classes", "Embeddings", "Misclassified", "Data", "Compare"])
def test_every_dashboard_page_reads_a_run_the_pipeline_wrote(finished_run, tmp_path, monkeypatch, page):
    """The contract end to end: pages are drawn from real pipeline output, not only from synthetic runs."""
    from dashboard_fixtures import HOME, PAGES
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(finished_run.parent))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    app = AppTest.from_file(HOME, default_timeout=60)
    app.query_params["run"] = finished_run.name
    if page:
        app.switch_page(PAGES[page])
    app.run()
    assert not app.exception, app.exception
    assert [w.value for w in app.selectbox if w.key == "run"] == [finished_run.name]


def test_identical_files_move_together_without_groups_and_conflicting_labels_are_a_high_finding(tmp_path):
    from conftest import make_folder_dataset
    data = make_folder_dataset(tmp_path / "data", per_class=8)
    shutil.copy(data / "apple" / "apple_0.png", data / "leaf" / "copy_of_apple_0.png")   # one image, two labels
    shutil.copy(data / "sky" / "sky_1.png", data / "sky" / "sky_1_again.png")
    code, run = train(tmp_path / "runs", data, "--test-size", "0.25", "--folds", "3")
    assert code == 0
    samples = pd.read_parquet(run / "samples.parquet")
    for sha, rows in samples.groupby("sha256"):
        assert rows[["split", "fold"]].astype(str).drop_duplicates().shape[0] == 1, rows.path.tolist()
    assert set(samples[samples.split == "test"].label) == {"apple", "leaf", "sky"}
    dataset = json.loads((run / "run.json").read_text())["dataset"]
    units = dataset["split_units"]
    assert dataset["split_warning"] is None and abs(dataset["test_share"] - 0.25) <= 0.05
    assert units["dedup_groups"] == "exact" and units["merged_units"] == 2 and units["samples_in_merged_units"] == 4
    findings = {f["id"]: f for f in json.loads((run / "findings.json").read_text())["findings"]}
    conflict = findings["label-conflicts"]
    assert conflict["severity"] == "high" and conflict["title"] == "The same image is labelled apple and leaf"
    assert "apple/apple_0.png, leaf/copy_of_apple_0.png" in conflict["evidence"]


def test_dedup_groups_near_keeps_near_duplicates_on_one_side_and_records_the_shared_threshold(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    planted = []
    for name in ("a", "b", "c"):
        for i in range(8):   # every image its own random block pattern, two per class with a lightly edited copy
            pixels = np.kron(rng.integers(0, 256, (4, 4, 3)).astype(np.uint8), np.ones((10, 10, 1), np.uint8))
            (tmp_path / "data" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
            if i < 2:
                pixels[:2, :2] = 255 - pixels[:2, :2]
                Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}_edit.png")
                planted.append((f"{name}/{i}.png", f"{name}/{i}_edit.png"))
    code, run = train(tmp_path / "runs", tmp_path / "data", "--dedup-groups", "near", "--test-size", "0.2")
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    units = info["dataset"]["split_units"]
    assert units["dedup_groups"] == "near" and units["near_duplicate_similarity"] == 0.7
    assert units["near_pairs"] >= len(planted) and units["merged_units"] >= 1
    assert "features" in info["timings"] and info["spaces"] == ["backbone"]
    samples = pd.read_parquet(run / "samples.parquet").set_index("path")
    for a, b in planted:
        assert (samples.loc[a, "split"], samples.loc[a, "fold"]) == (samples.loc[b, "split"], samples.loc[b, "fold"])
    diagnostics = json.loads((run / "diagnostics.json").read_text())
    assert diagnostics["thresholds"]["near_duplicate_similarity"] == 0.7
    # the pairs the splits joined (lightly edited copies count as copies, the rest as near) ...
    found = diagnostics["duplicates"]["near"], diagnostics["duplicates"]["copy"]
    assert sum(kind["pairs"] for kind in found) == units["near_pairs"]
    assert sum(kind["leaking"] for kind in found) == 0                         # ... and so none of them leaks
