"""`remedies` and `tune` end to end through the CLI on a tiny dataset, and the Experiments page on their output."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from streamlit.testing.v1 import AppTest

import train_cli
from core.experiments.remedy_runs import recompute_effects
from core.experiments.tuning import sample, search_space
from core.store import run_store

TINY = ["--weights", "none", "--image-size", "32", "--folds", "3", "--epochs", "3", "--batch-size", "8"]
HOME = str(Path(__file__).resolve().parents[2] / "dashboard" / "Home.py")
PAGE = "app_pages/8_Experiments.py"


def dataset_with_label_errors(root: Path) -> Path:
    """Eight images per class, plus two sky-coloured images filed as apple: likely label errors."""
    from conftest import CLASS_COLOURS, make_folder_dataset, make_image
    make_folder_dataset(root, per_class=8)
    for i in range(2):
        make_image(root / "apple" / f"really_sky_{i}.png", CLASS_COLOURS["sky"], seed=900 + i)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("experiments")
    data = dataset_with_label_errors(root / "data")
    runs = root / "runs"
    common = ["--data", str(data), "--runs-dir", str(runs), "--cache-dir", str(root / "cache"), *TINY]
    assert train_cli.main(["remedies", *common, "--remedies", "balance-weights,drop-label-errors"]) == 0
    assert train_cli.main(["tune", *common, "--trials", "2", "--study", "search"]) == 0
    return {"runs": runs, "common": common, "data": data}


def remedies_experiment(runs: Path) -> dict:
    return next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")


def info(runs: Path, run_id: str) -> dict:
    return run_store.read_json(runs / run_id / "run.json")


def splits_by_path(runs: Path, run_id: str) -> pd.DataFrame:
    return pd.read_parquet(runs / run_id / "samples.parquet", columns=["path", "split", "fold"]).set_index("path")


# ---------------------------------------------------------------- remedies

def test_remedy_runs_are_ordinary_runs_on_the_baselines_splits(workspace):
    runs = workspace["runs"]
    experiment = remedies_experiment(runs)
    baseline = splits_by_path(runs, experiment["baseline"])
    by_remedy = {r["remedy"]: r for r in experiment["runs"]}
    assert set(by_remedy) == {"balance-weights", "drop-label-errors"}
    assert all(r["status"] == "complete" for r in by_remedy.values())
    for remedy, entry in by_remedy.items():
        run = info(runs, entry["run_id"])
        assert run["status"] == "complete" and (runs / entry["run_id"] / "findings.json").exists()
        assert run["experiment"] == {"kind": "remedies", "id": experiment["experiment_id"], "role": "remedy",
                                     "remedy": remedy, "splits_from": experiment["baseline"],
                                     "left_out": entry.get("dropped", {}).get("count", 0)}
        own = splits_by_path(runs, entry["run_id"])
        pd.testing.assert_frame_equal(own, baseline.loc[own.index])     # same split and fold for every image
    assert info(runs, by_remedy["balance-weights"]["run_id"])["config"]["balance"] == "weights"
    assert info(runs, experiment["baseline"])["experiment"]["role"] == "baseline"
    assert not any(entry.run_id == "experiments" for entry in run_store.list_runs(runs))


def test_drop_label_errors_leaves_out_exactly_the_recorded_list(workspace):
    runs = workspace["runs"]
    experiment = remedies_experiment(runs)
    entry = next(r for r in experiment["runs"] if r["remedy"] == "drop-label-errors")
    dropped = pd.read_parquet(Path(experiment["path"]) / "dropped_label_errors.parquet")
    flagged = pd.read_parquet(runs / experiment["baseline"] / "label_issues.parquet")
    assert len(dropped) == entry["dropped"]["count"] > 0
    assert set(dropped.path) == set(flagged.path[flagged.agreed])   # what the detectors agree on
    kept = set(splits_by_path(runs, entry["run_id"]).index)
    assert kept == set(splits_by_path(runs, experiment["baseline"]).index) - set(dropped.path)


def test_effects_are_recomputable_from_the_stored_predictions(workspace):
    experiment = remedies_experiment(workspace["runs"])
    stored = pd.read_parquet(Path(experiment["path"]) / "effects.parquet")
    summary, per_fold, notes = recompute_effects(workspace["runs"], experiment)
    pd.testing.assert_frame_equal(summary, stored)
    pd.testing.assert_frame_equal(per_fold, pd.read_parquet(Path(experiment["path"]) / "effects_folds.parquet"))
    document = run_store.read_json(Path(experiment["path"]) / "effects.json")
    assert document["comparisons"] == notes
    dropped = next(n for n in notes if n["remedy"] == "drop-label-errors")
    assert dropped["validation_images_left_out"] > 0
    assert set(stored.verdict) <= {"no measurable effect", "better", "worse"}
    assert set(stored.metric) == {"balanced_accuracy", "recall:apple", "recall:leaf", "recall:sky"}


def test_learning_curve_retrains_each_fold_on_growing_shares_with_validation_unchanged(workspace):
    experiment = remedies_experiment(workspace["runs"])
    folder = Path(experiment["path"])
    predictions = pd.read_parquet(folder / "learning_curve_predictions.parquet")
    table = pd.read_parquet(folder / "learning_curve.parquet")
    assert sorted(table.fraction.unique()) == [0.25, 0.5, 0.75, 1.0] and sorted(table.fold.unique()) == [0, 1, 2]
    for fold, part in predictions.groupby("fold"):
        sizes = part.groupby("fraction").n_train.first()
        assert sizes.is_monotonic_increasing
        validated = [set(rows.sample_id) for _, rows in part.groupby("fraction")]
        assert all(ids == validated[0] for ids in validated)        # the same validation images at every size
    fits = run_store.read_json(folder / "learning_curve_fit.json")["fits"]
    assert [f["metric"] for f in fits][0] == "balanced_accuracy"


def test_remedies_list_and_bad_names(workspace, capsys):
    assert train_cli.main(["remedies", "--remedies", "list", "--weights", "none"]) == 0
    assert "drop-label-errors" in capsys.readouterr().out
    assert train_cli.main(["remedies", "--remedies", "more-epochs", "--weights", "none"]) == 2
    assert "no such remedy" in capsys.readouterr().err


def one_remedy(runs: Path, workspace: dict) -> list[str]:
    """`remedies` of balance-weights alone on the workspace's dataset, into `runs` (features from its cache)."""
    return ["remedies", "--data", str(workspace["data"]), "--runs-dir", str(runs),
            "--cache-dir", str(workspace["runs"].parent / "cache"), *TINY, "--remedies", "balance-weights"]


def test_an_interrupted_experiment_resumes_keeping_what_it_finished(workspace, tmp_path, monkeypatch, capsys):
    """Ctrl-C after a remedy's first fold: the experiment records how to finish it; --resume keeps the baseline
    as it is, gives the remedy run it had started its missing folds (no new run), then the curve and effects."""
    from core.experiments import remedy_runs as experiments
    runs = tmp_path / "runs"
    real_complete_run = experiments.complete_run

    def interrupted_after_a_remedys_first_fold(run_dir, started, executor=None):
        def ctrl_c(summary, metrics):
            raise KeyboardInterrupt
        remedy = run_store.read_json(run_dir / "run.json")["experiment"]["role"] == "remedy"
        return real_complete_run(run_dir, started, executor, on_fold=ctrl_c if remedy else None)
    monkeypatch.setattr(experiments, "complete_run", interrupted_after_a_remedys_first_fold)
    assert train_cli.main(one_remedy(runs, workspace)) == 130   # Ctrl-C: 128 + SIGINT
    monkeypatch.undo()

    experiment = remedies_experiment(runs)
    resume = ["remedies", "--resume", experiment["experiment_id"], "--runs-dir", str(runs)]
    assert experiment["status"] == "failed" and " ".join(resume[:3]) in experiment["error"]
    remedy_run = experiment["runs"][0]["run_id"]
    assert info(runs, remedy_run)["folds_done"] == [0]
    baseline_record = (runs / experiment["baseline"] / "run.json").read_bytes()
    run_folders = sorted(p.name for p in runs.iterdir())
    app = open_experiments(runs, monkeypatch, experiment=experiment["experiment_id"])
    assert not app.exception and " ".join(resume[:3]) in app.warning[0].body

    assert train_cli.main(resume) == 0
    experiment = remedies_experiment(runs)
    assert experiment["status"] == "complete" and experiment["error"] is None
    assert sorted(p.name for p in runs.iterdir()) == run_folders
    assert (runs / experiment["baseline"] / "run.json").read_bytes() == baseline_record
    assert experiment["runs"][0]["run_id"] == remedy_run and experiment["runs"][0]["status"] == "complete"
    assert info(runs, remedy_run)["status"] == "complete" and info(runs, remedy_run)["folds_done"] == [0, 1, 2]
    effects = pd.read_parquet(Path(experiment["path"]) / "effects.parquet")
    assert set(effects.remedy) == {"balance-weights"}
    assert (Path(experiment["path"]) / "learning_curve_fit.json").exists()

    assert train_cli.main(resume) == 2
    assert "already complete" in capsys.readouterr().err
    assert train_cli.main(["remedies", "--resume", "nope", "--runs-dir", str(runs)]) == 2
    assert "no remedies experiment" in capsys.readouterr().err
    assert train_cli.main([*resume, "--remedies", "label-smoothing"]) == 2   # not a way to add remedies
    assert "drop --remedies" in capsys.readouterr().err


def interrupted_after_its_baseline(runs: Path, workspace: dict, monkeypatch) -> dict:
    """A remedies experiment stopped by Ctrl-C after its baseline, before its remedy run was created."""
    from core.experiments import remedy_runs as experiments
    real_start_run = experiments.start_run

    def ctrl_c_at_the_first_remedy(cfg, splits=None, record=None):
        if record["experiment"]["role"] == "remedy":
            raise KeyboardInterrupt
        return real_start_run(cfg, splits=splits, record=record)
    with monkeypatch.context() as patch:
        patch.setattr(experiments, "start_run", ctrl_c_at_the_first_remedy)
        assert train_cli.main(one_remedy(runs, workspace)) == 130
    experiment = remedies_experiment(runs)
    assert experiment["status"] == "failed" and experiment["runs"][0]["run_id"] is None
    return experiment


def test_a_resumed_experiment_trains_its_remedies_in_the_mode_it_started_in(workspace, tmp_path, monkeypatch):
    """Resumed where --train-mode auto picks another mode (a CUDA machine), the remedies still train in the
    baseline's mode: a remedy is only comparable to a baseline trained the same way."""
    from core.run import lifecycle as run_lifecycle
    runs = tmp_path / "runs"
    experiment = interrupted_after_its_baseline(runs, workspace, monkeypatch)
    assert experiment["train_mode"] == "head"
    real_resolve = run_lifecycle.resolve_train_mode
    monkeypatch.setattr(run_lifecycle, "resolve_train_mode", lambda requested, device: (
        ("finetune", "auto: CUDA is available") if requested == "auto" else real_resolve(requested, device)))
    assert train_cli.main(["remedies", "--resume", experiment["experiment_id"], "--runs-dir", str(runs)]) == 0
    experiment = remedies_experiment(runs)
    assert experiment["status"] == "complete"
    assert info(runs, experiment["runs"][0]["run_id"])["train_mode"] == info(runs, experiment["baseline"])[
        "train_mode"] == "head"


def test_a_remedy_that_failed_is_retried_by_resume_and_joins_the_effects(workspace, tmp_path, monkeypatch, capsys):
    """A remedy failing does not stop the experiment, which completes without it and says how to retry it;
    --resume trains that remedy again (its run's missing folds) and adds it to the effects."""
    from core.experiments import remedy_runs as experiments
    runs = tmp_path / "runs"
    real_complete_run = experiments.complete_run

    def out_of_memory_in_the_remedy(run_dir, started, executor=None):
        if run_store.read_json(run_dir / "run.json")["experiment"]["role"] == "remedy":
            raise RuntimeError("CUDA out of memory")
        return real_complete_run(run_dir, started, executor)
    with monkeypatch.context() as patch:
        patch.setattr(experiments, "complete_run", out_of_memory_in_the_remedy)
        assert train_cli.main(one_remedy(runs, workspace)) == 0
    experiment = remedies_experiment(runs)
    resume = ["remedies", "--resume", experiment["experiment_id"], "--runs-dir", str(runs)]
    assert experiment["status"] == "complete" and experiment["runs"][0]["status"] == "failed"
    said = capsys.readouterr()
    assert f"retry it with: python train_cli.py {' '.join(resume)}" in said.out + said.err

    assert train_cli.main(resume) == 0
    experiment = remedies_experiment(runs)
    assert experiment["status"] == "complete" and experiment["runs"][0]["status"] == "complete"
    assert info(runs, experiment["runs"][0]["run_id"])["status"] == "complete"
    effects = pd.read_parquet(Path(experiment["path"]) / "effects.parquet")
    assert set(effects.remedy) == {"balance-weights"}


def test_a_second_resume_of_an_experiment_being_written_is_refused_naming_the_experiment(tmp_path, capsys):
    from core.config import RunConfig
    runs = tmp_path / "runs"
    folder = run_store.experiments_root(runs) / "20250101-000000-remedies"
    folder.mkdir(parents=True)
    document = {"schema_version": 1, "experiment_id": folder.name, "kind": "remedies", "status": "failed",
                "error": "interrupted", "train_mode": "head", "config": RunConfig(runs_dir=str(runs)).to_dict(),
                "planned": [], "baseline": None, "runs": [], "skipped": [], "timings": {}}
    run_store.write_json(folder / "experiment.json", document)
    with run_store.run_lock(folder):   # held as by the first `remedies --resume`
        assert train_cli.main(["remedies", "--resume", folder.name, "--runs-dir", str(runs)]) == 2
    error = capsys.readouterr().err
    assert f"experiment {folder.name} is being written by process" in error and error.count("\n") == 1
    assert run_store.read_json(folder / "experiment.json") == document


# ---------------------------------------------------------------- tune

def study(runs: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name,
                             storage=f"sqlite:///{run_store.experiments_root(runs) / name / 'study.db'}")


def test_trials_never_see_the_test_split_and_the_best_is_tested_once(workspace):
    runs = workspace["runs"]
    document = run_store.read_json(run_store.experiments_root(runs) / "search" / "experiment.json")
    best = document["best"]
    for trial in study(runs, "search").trials:
        run_id = trial.user_attrs["run_id"]
        assert set(pd.read_parquet(runs / run_id / "predictions.parquet").role) == {"train", "val"}
        assert info(runs, run_id)["experiment"]["trial"] == trial.number
        assert "train_cli.py diagnose" in info(runs, run_id)["diagnostics_error"]   # skipped for trials
    tested = pd.read_parquet(runs / best["test_run_id"] / "predictions.parquet")
    assert "test" in set(tested.role)
    assert info(runs, best["test_run_id"])["experiment"]["role"] == "best-trial-test"
    assert best["test"]["label"].startswith("test split, best trial only")
    assert best["command"].startswith("python train_cli.py") and "--lr" in best["command"]
    # same splits and seed: the test run repeats the chosen trial's validation score
    trial_metrics = run_store.read_json(runs / best["trial_run_id"] / "metrics.json")
    test_metrics = run_store.read_json(runs / best["test_run_id"] / "metrics.json")
    assert (test_metrics["summary"]["val"]["balanced_accuracy"]["mean"]
            == pytest.approx(trial_metrics["summary"]["val"]["balanced_accuracy"]["mean"]))


def test_rerunning_resumes_and_retries_a_trial_left_running_by_a_crash(workspace, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(workspace["runs"], runs)
    common = [*workspace["common"], "--runs-dir", str(runs)]
    crashed = study(runs, "search").ask()         # what a killed driver leaves: a RUNNING trial with its settings
    crashed_params = sample(crashed, search_space("head"))
    assert train_cli.main(["tune", *common, "--trials", "3", "--study", "search"]) == 0
    trials = study(runs, "search").trials
    assert trials[crashed.number].state == TrialState.FAIL and trials[crashed.number].user_attrs["interrupted"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == crashed.number)
    assert retry.state == TrialState.COMPLETE and retry.params == crashed_params
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_a_pruned_trial_stops_early_and_its_run_says_so(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    runs = tmp_path / "runs"
    assert train_cli.main(["tune", *workspace["common"], "--runs-dir", str(runs), "--trials", "1",
                           "--study", "pruned"]) == 0
    (trial,) = study(runs, "pruned").trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
    run = info(runs, trial.user_attrs["run_id"])
    assert run["status"] == "pruned" and run["folds_done"] == [0] and "pruned by study pruned" in run["error"]


def test_concurrent_trials_run_through_the_given_executor(workspace, tmp_path):
    from core.config import RunConfig
    from core.experiments.tuning import tune
    from core.run.executors import LocalExecutor

    class ElsewhereExecutor(LocalExecutor):   # stands in for Ray: an executor that is not the local loop
        name = "elsewhere"

    cfg = RunConfig(data=str(workspace["data"]), runs_dir=str(tmp_path / "runs"), weights="none", image_size=32,
                    folds=3, epochs=2, batch_size=8, test_size=0, cache_dir=str(tmp_path / "cache"))
    tune(cfg, 3, study_name="threads", executor=ElsewhereExecutor(), max_concurrent=2, log=lambda _: None)
    trials = study(tmp_path / "runs", "threads").trials
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    runs = [info(tmp_path / "runs", t.user_attrs["run_id"]) for t in trials]
    assert all(run["status"] == "complete" and run["execution"]["executor"] == "elsewhere" for run in runs)
    assert len({run["run_id"] for run in runs}) == 3


def test_tune_refuses_bad_input_with_one_line(workspace, capsys):
    common = workspace["common"]
    assert train_cli.main(["tune", *common, "--trials", "1", "--study", "search", "--folds", "4"]) == 2
    assert "that study was made with folds=3" in capsys.readouterr().err
    assert train_cli.main(["tune", *common, "--trials", "1", "--space", "lr=1:0.1"]) == 2
    assert "LOW <= HIGH" in capsys.readouterr().err


# ---------------------------------------------------------------- dashboard

def open_experiments(runs: Path, monkeypatch, **params: str) -> AppTest:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs))
    app = AppTest.from_file(HOME, default_timeout=120)
    for key, value in params.items():
        app.query_params[key] = value
    app.switch_page(PAGE)
    return app.run()


def test_experiments_page_shows_remedy_effects_curve_and_runs(workspace, monkeypatch):
    experiment = remedies_experiment(workspace["runs"])
    app = open_experiments(workspace["runs"], monkeypatch, experiment=experiment["experiment_id"],
                           metric="recall:sky")
    assert not app.exception, app.exception[0].stack_trace
    assert app.selectbox(key="experiment").value == experiment["experiment_id"]
    assert app.radio(key="metric").value == "recall:sky"
    figures = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert any("Effect on recall of sky" in spec for spec in figures)
    assert any("fitted power law" in spec for spec in figures)
    shown = "\n".join(c.value for c in app.caption)
    assert "drop-label-errors** compared on the" in shown
    assert any("Link to this view" in m.value for m in app.sidebar.markdown)


def test_experiments_page_shows_the_study_with_optunas_figures(workspace, monkeypatch):
    app = open_experiments(workspace["runs"], monkeypatch, experiment="search")
    assert not app.exception, app.exception[0].stack_trace
    text = "\n".join(m.value for m in app.markdown)
    assert "optimistic" in text and "test split, best trial only" in text
    assert len(app.get("plotly_chart")) >= 2        # optimisation history and parallel coordinates at least
    assert app.code[0].value.startswith("python train_cli.py")


def test_experiments_page_without_experiments_or_with_an_unknown_one(workspace, monkeypatch, tmp_path):
    app = open_experiments(tmp_path, monkeypatch)
    assert not app.exception and "No experiments" in app.info[0].body
    app = open_experiments(workspace["runs"], monkeypatch, experiment="nope")
    assert not app.exception and "no experiment called" in app.warning[0].body
    np.testing.assert_equal(len(app.selectbox), 1)


@pytest.mark.parametrize("page", ["Home.py", "app_pages/1_Overfitting.py", "app_pages/2_Classes.py",
                                  "app_pages/3_Embeddings.py", "app_pages/4_Misclassified.py", "app_pages/5_Data.py",
                                  "app_pages/6_Compare.py", "app_pages/7_Slices.py", "app_pages/9_Review.py"])
def test_every_page_works_on_a_trial_run_without_diagnostics(workspace, monkeypatch, page):
    run_id = study(workspace["runs"], "search").trials[0].user_attrs["run_id"]
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(workspace["runs"]))
    app = AppTest.from_file(HOME, default_timeout=120)
    app.query_params["run"] = run_id
    if page != "Home.py":
        app.switch_page(page)
    app.run()
    assert not app.exception, app.exception[0].stack_trace
    assert app.selectbox(key="run").value == run_id
