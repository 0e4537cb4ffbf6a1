"""The self-training remedy: per-class pseudo-label thresholds, pseudo-labels from each fold's own head entering
that fold's training part only, skipped without a pool, and a head-mode experiment that records them."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.config import RunConfig
from core.experiments import self_training
from core.experiments.remedies import default_set
from core.store import run_store
from core.training import fold_job
from core.training.run_inputs import fold_parts, load_run_inputs

TINY = ["--weights", "none", "--image-size", "32", "--folds", "3", "--epochs", "3", "--batch-size", "8",
        "--train-mode", "head", "--test-size", "0.2"]


def test_per_class_thresholds_stop_the_majority_class_taking_the_pool():
    """A model trained on 70/30 data that calls 90 of 100 pool images the majority class: one global cut gives
    the majority 90% of the pseudo-labels; the per-class rule holds it to its quota and keeps the minority's."""
    rng = np.random.default_rng(0)
    majority = np.linspace(0.6, 0.99, 90)
    minority = rng.uniform(0.55, 0.8, 10)
    probabilities = np.concatenate([np.stack([majority, 1 - majority], 1), np.stack([1 - minority, minority], 1)])
    prior, eligible = np.array([0.7, 0.3]), np.ones(100, bool)
    global_cut = probabilities.max(1) >= 0.5
    assert (probabilities[global_cut].argmax(1) == 0).mean() == pytest.approx(0.9)

    chosen, table = self_training.select_pseudo_labels(probabilities, prior, eligible,
                                                       self_training.SelfTrainingSettings(0.5, 0.5))
    taken = np.bincount(chosen[chosen >= 0], minlength=2)
    assert table.quota.tolist() == [35, 15] and taken.tolist() == [35, 10]
    assert taken[0] / taken.sum() < 0.8                               # not 90%: the majority did not swallow it
    assert set(np.flatnonzero(chosen == 1)) == set(range(90, 100))    # the minority keeps all its candidates
    # the majority's threshold is its own: its 35 most confident, above anything the minority needs
    assert table.threshold[0] == pytest.approx(np.sort(majority)[-35]) and table.threshold[1] == 0.5
    assert (probabilities[chosen == 0, 0] >= table.threshold[0]).all()

    blocked = eligible.copy()
    blocked[::2] = False
    chosen, _ = self_training.select_pseudo_labels(probabilities, prior, blocked)
    assert (chosen[~blocked] == -1).all()          # identical to / near a labelled image: never pseudo-labelled


def test_extra_training_images_enter_the_training_part_only(tiny_head_run, monkeypatch):
    """fit_parts with pseudo-labelled extras: the training batches hold them, validation never does, and the
    probabilities and dynamics returned cover the run's own samples."""
    run = tiny_head_run
    _, _, samples = load_run_inputs(run)
    parts = fold_parts(samples, 0)
    features = run_store.read_embedding(run, "backbone")
    marker = np.full((4, features.shape[1]), 1000.0, np.float32)
    seen = {}
    real_fit = fold_job.fit

    def spy(model, groups, train_batches, val_batches, *args, **kwargs):
        seen.setdefault("train", [b[0] for b in train_batches])
        seen.setdefault("val", [b[0] for b in val_batches])
        return real_fit(model, groups, train_batches, val_batches, *args, **kwargs)
    monkeypatch.setattr(fold_job, "fit", spy)
    result, probs, _, _ = fold_job.fit_parts(run, 0, parts, fold_job.ExtraTraining(marker, np.array([0, 1, 2, 0])))
    train, val = torch.cat(seen["train"]), torch.cat(seen["val"])
    assert int((train[:, 0] == 1000).sum()) == 4 and len(train) == len(parts["train"]) + 4
    assert not (val == 1000).any() and len(val) == len(parts["val"])
    assert len(probs) == len(samples) and result.dynamics["margin"].shape[1] == len(parts["train"])


@pytest.fixture(scope="module")
def tiny_head_run(experiment) -> Path:
    return experiment["baseline"]


def make_pool(folder: Path, baseline: Path) -> Path:
    """A CSV pool with known labels: new images of each class, plus copies of the baseline's validation and test
    images (which must never be pseudo-labelled)."""
    from conftest import CLASS_COLOURS, make_image
    rows = []
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(8):
            path = folder / f"{name}_{i}.png"
            make_image(path, colour, seed=5000 + 50 * c + i)
            rows.append({"path": path.name, "label": name})
    info = run_store.read_json(baseline / "run.json")
    samples = pd.read_parquet(baseline / "samples.parquet")
    for i, row in enumerate(samples[(samples.split != "cv") | (samples.fold == 0)].itertuples()):
        shutil.copy(Path(info["dataset"]["root"]) / row.path, folder / f"held_{i}.png")
        rows.append({"path": f"held_{i}.png", "label": row.label})
    pd.DataFrame(rows).to_csv(folder / "pool.csv", index=False)
    return folder / "pool.csv"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    """A head-mode experiment asked for self-training without a pool (skipped), then resumed with
    `--unlabelled` (the pool is added to its baseline, and self-training runs)."""
    from conftest import make_folder_dataset
    root = tmp_path_factory.mktemp("selftrain")
    data = make_folder_dataset(root / "data", per_class=7)
    runs = root / "runs"
    assert train_cli.main(["remedies", "--data", str(data), "--runs-dir", str(runs), "--cache-dir",
                           str(root / "cache"), *TINY, "--remedies", "self-training"]) == 0
    first = next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")
    baseline = runs / first["baseline"]
    csv = make_pool(root / "inbox", baseline)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert train_cli.main(["remedies", "--resume", first["experiment_id"], "--runs-dir", str(runs),
                               "--unlabelled", str(csv)]) == 0
    document = next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")
    return {"runs": runs, "first": first, "document": document, "baseline": baseline, "printed": printed.getvalue(),
            "run": runs / document["runs"][0]["run_id"] if document["runs"] else None}


def test_without_a_pool_self_training_is_skipped_with_how_to_add_one(experiment):
    skipped = {s["remedy"]: s["reason"] for s in experiment["first"]["skipped"]}
    assert "no unlabelled pool" in skipped["self-training"]
    assert f"train_cli.py pool {experiment['baseline'].name} --add DIR_OR_CSV" in skipped["self-training"]
    assert experiment["first"]["runs"] == []
    chosen, skipped = default_set(RunConfig(weights="none"), "finetune")
    assert "self-training" not in [r.name for r in chosen]
    assert "finetune mode is not supported" in {s["remedy"]: s["reason"] for s in skipped}["self-training"]


def test_head_mode_self_training_records_pseudo_labels_per_fold_and_class(experiment):
    document, run = experiment["document"], experiment["run"]
    assert [(e["remedy"], e["status"]) for e in document["runs"]] == [("self-training", "complete")]
    assert all(s["remedy"] != "self-training" for s in document["skipped"])
    assert run_store.read_json(run / "run.json")["status"] == "complete"
    per_class, record = run_store.read_self_training(run)
    assert list(per_class.columns) == self_training.PER_CLASS_COLUMNS
    assert sorted(per_class.fold.unique()) == [0, 1, 2] and set(per_class["class"]) == {"apple", "leaf", "sky"}
    assert per_class.pseudo_labels.sum() > 0 and (per_class.pseudo_labels <= per_class.quota).all()
    assert record["baseline"] == experiment["baseline"].name and record["known_labels"] > 0
    known = per_class[per_class.known > 0]
    assert ((known.accuracy >= 0) & (known.accuracy <= 1)).all() and (known.known <= known.pseudo_labels).all()
    pseudo = pd.read_parquet(run_store.self_training_path(run, "pseudo_labels"))
    assert (pseudo.groupby(["fold", "pseudo_label"]).size().sort_index()
            == per_class.set_index(["fold", "class"]).pseudo_labels[lambda s: s > 0].sort_index()).all()
    # never an image identical to one the runs validate or test on
    assert not pseudo.path.str.contains("held_").any()
    for k in range(3):
        fold = run_store.read_json(run_store.fold_dir(run, k) / "fold.json")
        assert fold["extra_training_images"] == int((pseudo.fold == k).sum())
    printed = experiment["printed"]
    assert "self-training pseudo-labels" in printed and "correct of" in printed
    effects = pd.read_parquet(run_store.experiments_root(experiment["runs"]) / document["experiment_id"]
                              / "effects.parquet")
    assert "self-training" in set(effects.remedy)


def test_each_folds_pseudo_labels_come_from_its_own_head(experiment):
    run, baseline = experiment["run"], experiment["baseline"]
    pseudo = pd.read_parquet(run_store.self_training_path(run, "pseudo_labels"))
    pool = run_store.read_pool(baseline)
    classes = run_store.read_json(run / "run.json")["classes"]
    for k in range(3):
        mine = pseudo[pseudo.fold == k]
        probs = self_training.fold_probabilities(baseline, k, pool.features[mine.pool_id.to_numpy()])
        assert [classes[i] for i in probs.argmax(1)] == mine.pseudo_label.tolist()
        assert np.allclose(probs.max(1), mine.confidence, atol=1e-5)


def test_experiments_view_shows_pseudo_labels_per_class(experiment):
    from core.views import experiments as views
    document = run_store.find_experiment(experiment["runs"], experiment["document"]["experiment_id"])
    run_id, per_class, record = views.self_training_run(document, experiment["runs"])
    assert run_id == experiment["run"].name and record["rule"] == self_training.RULE
    shown = views.pseudo_labels_view(per_class)
    assert list(shown["class"]) == ["apple", "leaf", "sky"]
    assert shown["pseudo-labels"].tolist() == per_class.groupby("class").pseudo_labels.sum().tolist()
    assert all(len(cell.split(" / ")) == 3 for cell in shown["pseudo-labels per fold"])
    assert views.self_training_run(experiment["first"] | {"runs": []}, experiment["runs"]) is None


def test_a_complete_experiment_resumes_for_self_training_once_its_baseline_can_have_a_pool(tmp_path):
    from core.experiments.remedy_runs import _pool_can_come
    from core.testing.synthetic import make_synthetic_pool, make_synthetic_run
    baseline = make_synthetic_run(tmp_path / "runs", "base", train_mode="head", diagnostics=False)
    document = {"baseline": "base", "planned": ["self-training"],
                "skipped": [{"remedy": "self-training", "reason": "no pool"}]}
    assert not _pool_can_come(document, tmp_path / "runs", adding=False)
    assert _pool_can_come(document, tmp_path / "runs", adding=True)         # remedies --resume --unlabelled
    make_synthetic_pool(baseline, tmp_path / "inbox")
    assert _pool_can_come(document, tmp_path / "runs", adding=False)        # pool --add, then remedies --resume
    assert not _pool_can_come({**document, "skipped": []}, tmp_path / "runs", adding=True)   # nothing waits
