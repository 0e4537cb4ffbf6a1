"""The long-tail remedies: logit-adjusted loss (trained) and post hoc logit adjustment (the baseline's fold models,
nothing retrained), compared fold-paired like every remedy, and predict applying the adjustment."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.evaluate import prob_column
from core.experiments.remedies import remedy_named
from core.store import run_store
from core.training.logit_adjust import adjust_probabilities, log_prior, posthoc_offset
from core.training.run_inputs import fold_parts

TINY = ["--weights", "none", "--image-size", "32", "--folds", "3", "--epochs", "3", "--batch-size", "8",
        "--train-mode", "head"]
CLASSES = ["apple", "leaf", "sky"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    from conftest import CLASS_COLOURS, make_folder_dataset, make_image
    root = tmp_path_factory.mktemp("tail")
    data = make_folder_dataset(root / "data", per_class=6)
    for i in range(18):   # apple is the head, leaf and sky the tail
        make_image(root / "data" / "apple" / f"more_{i}.png", CLASS_COLOURS["apple"], seed=700 + i)
    runs = root / "runs"
    assert train_cli.main(["remedies", "--data", str(data), "--runs-dir", str(runs), "--cache-dir",
                           str(root / "cache"), *TINY, "--remedies", "logit-adjust-posthoc,logit-adjust-loss"]) == 0
    document = next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")
    return {"runs": runs, "document": document,
            "baseline": runs / document["baseline"],
            **{entry["remedy"]: runs / entry["run_id"] for entry in document["runs"]}}


def test_both_remedies_are_listed_and_run_in_head_mode(experiment, capsys):
    assert train_cli.main(["remedies", "--remedies", "list", "--weights", "none", "--train-mode", "head"]) == 0
    listed = capsys.readouterr().out
    assert "logit-adjust-loss" in listed and "logit-adjust-posthoc" in listed
    assert remedy_named("logit-adjust-posthoc").posthoc and not remedy_named("logit-adjust-loss").posthoc
    assert {e["remedy"]: e["status"] for e in experiment["document"]["runs"]} == {
        "logit-adjust-posthoc": "complete", "logit-adjust-loss": "complete"}
    config = run_store.read_json(experiment["logit-adjust-loss"] / "run.json")["config"]
    assert config["logit_adjust_loss"] == 1.0 and config["logit_adjust_posthoc"] == 0.0


def test_posthoc_reuses_the_baselines_folds_shifted_by_each_folds_training_prior(experiment):
    base, run = experiment["baseline"], experiment["logit-adjust-posthoc"]
    info = run_store.read_json(run / "run.json")
    assert info["status"] == "complete" and info["config"]["logit_adjust_posthoc"] == 1.0
    assert (run / "findings.json").exists()
    samples = pd.read_parquet(run / "samples.parquet")
    base_paths = pd.read_parquet(base / "samples.parquet").set_index("sample_id").path
    for k in range(3):
        fold = run_store.read_json(run_store.fold_dir(run, k) / "fold.json")
        assert fold["derived_from"] == {"run": base.name, "fold": k, "logit_adjust_posthoc": 1.0}
        pd.testing.assert_frame_equal(pd.read_parquet(run_store.fold_dir(run, k) / "history.parquet"),
                                      pd.read_parquet(run_store.fold_dir(base, k) / "history.parquet"))
        offset = posthoc_offset(log_prior(samples.label_index.to_numpy()[fold_parts(samples, k)["train"]], 3), 1.0)
        assert offset[1] > offset[0]   # the tail gains
        heads = [torch.load(run_store.fold_dir(r, k) / "model.pt", weights_only=True)["head"] for r in (base, run)]
        torch.testing.assert_close(heads[1]["bias"], heads[0]["bias"] + offset)
        torch.testing.assert_close(heads[1]["weight"], heads[0]["weight"])
        # every stored probability is the adjusted head's, matched by path
        mine = pd.read_parquet(run_store.fold_dir(run, k) / "predictions.parquet")
        theirs = pd.read_parquet(run_store.fold_dir(base, k) / "predictions.parquet")
        mine = mine.assign(path=samples.set_index("sample_id").path.loc[mine.sample_id].to_numpy())
        theirs = theirs.assign(path=base_paths.loc[theirs.sample_id].to_numpy())
        joined = mine.merge(theirs, on=["path", "role"], suffixes=("", "_base"))
        assert len(joined) == len(mine) == len(theirs)
        columns = [prob_column(c) for c in CLASSES]
        expected = adjust_probabilities(joined[[c + "_base" for c in columns]].to_numpy(), offset.numpy())
        np.testing.assert_allclose(joined[columns].to_numpy(), expected, atol=1e-6)


def test_both_are_compared_fold_paired_in_the_effects(experiment):
    effects = pd.read_parquet(Path(experiment["document"]["path"]) / "effects.parquet")
    assert set(effects.remedy) == {"logit-adjust-posthoc", "logit-adjust-loss"}
    assert set(effects.metric) == {"balanced_accuracy", *(f"recall:{c}" for c in CLASSES)}
    assert (effects[effects.metric == "balanced_accuracy"].n_folds == 3).all()


def test_predict_on_the_posthoc_run_applies_the_adjustment_like_its_test_ensemble(experiment, tmp_path):
    run = experiment["logit-adjust-posthoc"]
    root = Path(run_store.read_json(run / "run.json")["dataset"]["root"])
    samples = pd.read_parquet(run / "samples.parquet").set_index("sample_id")
    ensemble = pd.read_parquet(run / "predictions.parquet").query("model == 'ensemble'").sort_values("sample_id")
    paths = [str(root / p) for p in samples.loc[ensemble.sample_id, "path"]]
    out = tmp_path / "predictions.csv"
    assert train_cli.main(["predict", run.name, *paths, "--out", str(out), "--runs-dir", str(run.parent)]) == 0
    columns = [prob_column(c) for c in CLASSES]
    np.testing.assert_allclose(pd.read_csv(out)[columns].to_numpy(), ensemble[columns].to_numpy(), atol=1e-4)


def test_a_fold_trained_with_the_setting_ends_as_the_derived_one(experiment, tmp_path):
    """The fold job applies --logit-adjust-posthoc after training: retraining the baseline's fold 0 with it gives
    the head and probabilities the remedy derived without training."""
    import shutil

    from core.training.fold_job import run_fold
    copy = tmp_path / experiment["baseline"].name
    shutil.copytree(experiment["baseline"], copy)
    info = run_store.read_json(copy / "run.json")
    info["config"]["logit_adjust_posthoc"] = 1.0
    run_store.write_json(copy / "run.json", info)
    run_fold(copy, 0, replace=True)
    derived = run_store.fold_dir(experiment["logit-adjust-posthoc"], 0)
    trained = torch.load(run_store.fold_dir(copy, 0) / "model.pt", weights_only=True)["head"]
    torch.testing.assert_close(trained["bias"], torch.load(derived / "model.pt", weights_only=True)["head"]["bias"])
    paths = pd.read_parquet(copy / "samples.parquet").set_index("sample_id").path
    derived_paths = pd.read_parquet(experiment["logit-adjust-posthoc"] / "samples.parquet").set_index("sample_id").path
    mine = pd.read_parquet(run_store.fold_dir(copy, 0) / "predictions.parquet")
    theirs = pd.read_parquet(derived / "predictions.parquet")
    columns = [prob_column(c) for c in CLASSES]
    joined = mine.assign(path=paths.loc[mine.sample_id].to_numpy()).merge(
        theirs.assign(path=derived_paths.loc[theirs.sample_id].to_numpy()), on=["path", "role"])
    assert len(joined) == len(mine)
    np.testing.assert_allclose(joined[[c + "_x" for c in columns]].to_numpy(),
                               joined[[c + "_y" for c in columns]].to_numpy(), atol=1e-5)
