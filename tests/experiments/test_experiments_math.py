"""Remedy definitions, fold-paired effects, intervals and the learning curve, checked against hand computation."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, recall_score

from core.config import RunConfig
from core.errors import UserError
from core.experiments import remedies
from core.experiments.effects import (
    NO_EFFECT,
    EffectSettings,
    _recall_matrix,
    ensemble_difference,
    paired_t_interval,
    remedy_effects,
    verdict,
)
from core.experiments.learning_curve import (
    CurveSettings,
    doubling_gain,
    fit_curve,
    fit_power_law,
    power_law,
    stratified_subset,
)

CLASSES = ["cat", "dog"]


# ---------------------------------------------------------------- remedies

def test_every_remedy_is_a_named_override_of_run_config_fields():
    fields = set(RunConfig().to_dict())
    assert len({r.name for r in remedies.REMEDIES}) == len(remedies.REMEDIES)
    for remedy in remedies.REMEDIES:
        assert set(remedy.overrides) <= fields
        assert remedy.overrides or remedy.drops_label_issues or remedy.uses_pool


def test_selection_by_name_and_unknown_names_are_refused():
    picked = remedies.parse_selection("label-smoothing, balance-weights,label-smoothing")
    assert [r.name for r in picked] == ["label-smoothing", "balance-weights"]
    assert remedies.parse_selection("") is None
    with pytest.raises(UserError, match="no such remedy"):
        remedies.parse_selection("more-epochs")


def test_default_set_in_head_mode_skips_finetune_only_remedies_with_a_reason():
    chosen, skipped = remedies.default_set(RunConfig(weights="none"), "head")
    assert [r.name for r in chosen] == ["balance-weights", "balance-sampler", "label-smoothing", "logit-adjust-loss",
                                        "logit-adjust-posthoc", "drop-label-errors", "self-training",
                                        "other-backbone"]
    reasons = {s["remedy"]: s["reason"] for s in skipped}
    assert set(reasons) == {"stronger-augmentation", "backbone-lr-x3"}
    assert all("finetune" in reason for reason in reasons.values())
    chosen, skipped = remedies.default_set(RunConfig(weights="none"), "finetune")
    assert len(chosen) == len([r for r in remedies.REMEDIES if not r.named_only]) - 1   # not ssl-*
    assert [s["remedy"] for s in skipped] == ["self-training"]   # head mode only: the pool comes as features


def test_a_remedy_the_baseline_already_uses_is_skipped():
    reason = remedies.skip_reason(remedies.remedy_named("balance-weights"), RunConfig(balance="weights"), "head")
    assert reason == "the baseline already uses this setting"


def test_other_backbone_is_skipped_offline_with_the_command_that_fetches_its_weights(monkeypatch):
    other = remedies.remedy_named("other-backbone")
    monkeypatch.setattr(remedies, "imagenet_weights_offline", lambda name: False)
    reason = remedies.skip_reason(other, RunConfig(weights="imagenet"), "head")
    assert "no ImageNet weights for resnet101" in reason and "train_cli.py weights --model resnet101" in reason
    monkeypatch.setattr(remedies, "imagenet_weights_offline", lambda name: True)
    assert remedies.skip_reason(other, RunConfig(weights="imagenet"), "head") is None
    assert "weights of its own" in remedies.skip_reason(other, RunConfig(weights="/w/resnet50.pt"), "head")


def test_remedy_config_applies_the_overrides_and_names_the_run():
    cfg = remedies.remedy_config(RunConfig(name="shoes", lr=0.01), remedies.remedy_named("label-smoothing"))
    assert cfg.label_smoothing == 0.1 and cfg.lr == 0.01 and cfg.name == "shoes-label-smoothing"


# ---------------------------------------------------------------- intervals and verdicts

def test_paired_t_interval_matches_the_textbook_formula():
    differences = np.array([0.1, 0.2, 0.3, np.nan])   # a fold where the metric is undefined is left out
    mean, low, high = paired_t_interval(differences, 0.95)
    half = stats.t.ppf(0.975, 2) * 0.1 / np.sqrt(3)
    assert mean == pytest.approx(0.2) and low == pytest.approx(0.2 - half) and high == pytest.approx(0.2 + half)
    assert np.isnan(paired_t_interval(np.array([0.4]), 0.95)[1])


@pytest.mark.parametrize("low, high, expected", [(-0.05, 0.4, NO_EFFECT), (0.0, 0.1, NO_EFFECT),
                                                 (0.01, 0.1, "better"), (-0.3, -0.01, "worse"),
                                                 (np.nan, np.nan, NO_EFFECT), (None, None, NO_EFFECT)])
def test_an_interval_containing_zero_is_no_measurable_effect(low, high, expected):
    assert verdict(low, high) == expected


def test_bootstrap_recalls_equal_scikit_learn_on_every_resample():
    rng = np.random.default_rng(3)
    labels, predicted = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    picks = rng.integers(0, 40, (5, 40))
    matrix = _recall_matrix(labels, (labels == predicted).astype(float), picks, 3)
    for row, pick in zip(matrix, picks):
        expected = recall_score(labels[pick], predicted[pick], labels=[0, 1, 2], average=None, zero_division=np.nan)
        np.testing.assert_allclose(row, expected)
        assert np.nanmean(row) == pytest.approx(balanced_accuracy_score(labels[pick], predicted[pick]))


# ---------------------------------------------------------------- effects from stored predictions

def write_run(run_dir: Path, images: list[tuple[str, str]], rows: list[tuple]) -> Path:
    """A run with only what effects read: run.json (classes), samples (path per sample id), predictions.
    rows: (path, model, fold, role, label name, predicted name)."""
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"classes": CLASSES}))
    ids = {path: i for i, (path, _) in enumerate(images)}
    pd.DataFrame({"sample_id": range(len(images)), "path": [p for p, _ in images]}).to_parquet(
        run_dir / "samples.parquet")
    pd.DataFrame([{"sample_id": ids[path], "model": model, "fold": fold, "role": role,
                   "label": CLASSES.index(label), "pred": CLASSES.index(pred)}
                  for path, model, fold, role, label, pred in rows]).astype({"fold": "Int64"}).to_parquet(
        run_dir / "predictions.parquet")
    return run_dir


@pytest.fixture
def paired_runs(tmp_path):
    """Two folds of four validation images, three test images. The remedy run lacks b3 (dropped) and has b2
    relabelled: both are left out of the comparison."""
    truth = {"a0": "cat", "a1": "cat", "a2": "dog", "a3": "dog", "b0": "cat", "b1": "cat", "b2": "dog",
             "b3": "dog", "t0": "cat", "t1": "dog", "t2": "dog"}
    fold_of = {p: (0 if p[0] == "a" else 1) for p in truth if p[0] != "t"}
    base_pred = {"a0": "cat", "a1": "dog", "a2": "dog", "a3": "cat", "b0": "cat", "b1": "cat", "b2": "cat",
                 "b3": "dog", "t0": "dog", "t1": "dog", "t2": "cat"}
    remedy_pred = {**base_pred, "a1": "cat", "a3": "dog", "b1": "dog", "t0": "cat"}
    remedy_truth = {**truth, "b2": "cat"}
    del remedy_truth["b3"]

    def rows(labels, preds):
        out = [(p, f"fold{fold_of[p]}", fold_of[p], "val", labels[p], preds[p]) for p in fold_of if p in labels]
        out += [(p, f"fold{k}", k, "train", labels[p], labels[p]) for p in fold_of if p in labels
                for k in (0, 1) if k != fold_of[p]]           # train rows must be ignored
        return out + [(p, "ensemble", None, "test", labels[p], preds[p]) for p in ("t0", "t1", "t2")]
    base = write_run(tmp_path / "base", list(truth.items()), rows(truth, base_pred))
    remedy = write_run(tmp_path / "remedy", list(remedy_truth.items()), rows(remedy_truth, remedy_pred))
    return base, remedy, truth, base_pred, remedy_pred


def test_effects_equal_a_hand_computation_on_the_images_both_runs_evaluate(paired_runs):
    base, remedy, truth, base_pred, remedy_pred = paired_runs
    summary, folds, note = remedy_effects(base, remedy, "fix", EffectSettings(test_bootstrap=200))
    shared = {0: ["a0", "a1", "a2", "a3"], 1: ["b0", "b1"]}   # b2 relabelled, b3 dropped
    expected = []
    for fold, paths in shared.items():
        y = [truth[p] for p in paths]
        expected.append(balanced_accuracy_score(y, [remedy_pred[p] for p in paths])
                        - balanced_accuracy_score(y, [base_pred[p] for p in paths]))
    got = folds[folds.metric == "balanced_accuracy"].sort_values("fold")
    np.testing.assert_allclose(got.difference, expected)
    assert got.n_images.tolist() == [4, 2]
    row = summary.set_index("metric").loc["balanced_accuracy"]
    assert row.difference_mean == pytest.approx(np.mean(expected))
    assert (row.ci_low, row.ci_high) == pytest.approx(paired_t_interval(np.array(expected), 0.95)[1:])
    dog = folds[folds.metric == "recall:dog"].set_index("fold")
    assert dog.loc[0, "difference"] == pytest.approx(0.5) and np.isnan(dog.loc[1, "difference"])  # no dog in fold 1
    test = ["t0", "t1", "t2"]
    assert row.test_difference == pytest.approx(
        balanced_accuracy_score([truth[p] for p in test], [remedy_pred[p] for p in test])
        - balanced_accuracy_score([truth[p] for p in test], [base_pred[p] for p in test]))
    assert note["validation_images_left_out"] == 2 and "both runs evaluate with the same label" in note["compared_on"]


def test_test_difference_interval_brackets_the_point_estimate(paired_runs):
    base, remedy, *_ = paired_runs
    from core.experiments.effects import paired_predictions
    table = ensemble_difference(paired_predictions(base, remedy), CLASSES, EffectSettings(test_bootstrap=300))
    row = table.set_index("metric").loc["balanced_accuracy"]
    assert row.ci_low <= row.difference <= row.ci_high and row.n_images == 3


# ---------------------------------------------------------------- learning curve

def test_learning_curve_subsets_are_stratified_nested_and_seeded():
    labels = np.array([0] * 40 + [1] * 12 + [2] * 3)
    train = np.arange(len(labels))[::1]
    subsets = {f: stratified_subset(train, labels, f, seed=7) for f in (0.25, 0.5, 0.75, 1.0)}
    assert np.bincount(labels[subsets[0.25]]).tolist() == [10, 3, 1]     # at least one of the rarest class
    assert np.bincount(labels[subsets[0.5]]).tolist() == [20, 6, 2]
    assert len(subsets[1.0]) == len(labels)
    assert set(subsets[0.25]) <= set(subsets[0.5]) <= set(subsets[0.75]) <= set(subsets[1.0])
    np.testing.assert_array_equal(subsets[0.5], stratified_subset(train, labels, 0.5, seed=7))
    assert not np.array_equal(subsets[0.5], stratified_subset(train, labels, 0.5, seed=8))


def test_power_law_fit_recovers_a_synthetic_curve_and_its_doubling_gain():
    n = np.array([25.0, 50.0, 75.0, 100.0])
    score = 1 - power_law(n, 0.8, 0.4)
    a, b = fit_power_law(n, score)
    assert a == pytest.approx(0.8, rel=1e-3) and b == pytest.approx(0.4, rel=1e-3)
    assert doubling_gain(a, b, 100) == pytest.approx(0.8 * 100 ** -0.4 * (1 - 2 ** -0.4), rel=1e-3)
    assert fit_power_law(np.array([10.0, 10.0]), np.array([0.5, 0.6])) is None   # one size: nothing to fit


def test_doubling_gain_interval_resamples_folds_around_the_estimate():
    rng = np.random.default_rng(0)
    rows = [{"fold": fold, "fraction": f, "n_train": int(100 * f), "metric": "balanced_accuracy",
             "value": 1 - power_law(100 * f, 0.8, 0.4) + rng.normal(0, 0.01)}
            for fold in range(5) for f in (0.25, 0.5, 0.75, 1.0)]
    fit = fit_curve(pd.DataFrame(rows), "balanced_accuracy", CurveSettings(bootstrap=200))
    assert fit["n_folds"] == 5 and fit["n_train_full"] == 100
    assert fit["ci_low"] <= fit["gain_doubling"] <= fit["ci_high"]
    assert fit["gain_doubling"] == pytest.approx(doubling_gain(0.8, 0.4, 100), abs=0.02)


# ---------------------------------------------------------------- tuning settings

def test_search_space_depends_on_the_mode_and_takes_overrides():
    from core.experiments.tuning import search_space
    assert [p.name for p in search_space("head")] == ["lr", "weight_decay", "label_smoothing", "balance"]
    assert {"backbone_lr_mult", "augment_strength"} <= {p.name for p in search_space("finetune")}
    space = {p.name: p for p in search_space("head", ["lr=1e-5:1e-3", "balance=none|weights"])}
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-5, 1e-3, True)
    assert space["balance"].choices == ("none", "weights")
    for bad in ("lr=0:1", "lr=1e-3", "epochs=1:3", "lr"):
        with pytest.raises(UserError, match="--space"):
            search_space("head", [bad])


def test_best_settings_become_a_train_cli_command_that_parses_back():
    import shlex

    import train_cli
    from core.config import command_line
    params = {"lr": 0.0123456, "balance": "weights", "label_smoothing": 0.0}
    base = RunConfig(data="/d/shoes.csv", folds=3, weights="none", runs_dir="out")
    command = command_line(dataclasses.replace(base, **params), always=params)
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train_cli.py"]
    parsed = vars(train_cli.train_parser().parse_args(argv[2:]))
    assert not parsed.pop("resume") and not parsed.pop("prepare_only")
    assert not parsed.pop("print_id") and not parsed.pop("assemble_only")
    train_cli.execution_settings(parsed)
    cfg = RunConfig(**parsed)
    assert (cfg.data, cfg.folds, cfg.weights, cfg.runs_dir) == ("/d/shoes.csv", 3, "none", "out")
    assert cfg.balance == "weights"
    assert cfg.lr == 0.0123456 and cfg.label_smoothing == 0.0 and "--label-smoothing 0.0" in command
