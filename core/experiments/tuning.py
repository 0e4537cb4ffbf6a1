"""Hyperparameter search with Optuna (ask/tell): every trial an ordinary k-fold run on the same CV-only splits.

Only this driver process writes the study (SQLite in RUNS_DIR/experiments/STUDY/study.db). Trials never see the
test split: their runs hold the CV images only. When the search ends, the best trial's settings are trained
once more on the same splits with the test images included, the only run of the study that evaluates the test
split. See docs/run-format.md ("Experiments") and the README ("Tuning").
"""
from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pandas as pd

from core.config import RunConfig, command_line
from core.errors import UserError
from core.numbers import metric_name, percent, significant
from core.run.execution import FoldExecutor
from core.run.lifecycle import StopRun, complete_run, reference_splits, start_run
from core.store import run_store as store
from core.store.heartbeat import clear_stalled, heartbeat
from core.store.run_store import EXPERIMENT_SCHEMA_VERSION
from core.training.device import pick_device, resolve_train_mode

METRICS = ("balanced_accuracy", "accuracy", "macro_f1")
STUDY_FILE = "study.db"


@dataclass(frozen=True)
class Param:
    """One searched RunConfig field: a float range (log-uniform when `log`) or a list of choices."""
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str, ...] | None = None
    modes: tuple[str, ...] = ("head", "finetune")

    def describe(self) -> str:
        if self.choices:
            return f"{self.name}={'|'.join(self.choices)}"
        return f"{self.name}={self.low:g}:{self.high:g}{' (log)' if self.log else ''}"


# The search space: the settings block for tuning (override a range with --space NAME=LOW:HIGH or NAME=a|b).
SEARCH_SPACE: tuple[Param, ...] = (
    Param("lr", 1e-4, 3e-2, log=True),
    Param("weight_decay", 1e-6, 1e-2, log=True),
    Param("label_smoothing", 0.0, 0.2),
    Param("balance", choices=("none", "weights", "sampler")),
    Param("backbone_lr_mult", 0.01, 1.0, log=True, modes=("finetune",)),
    Param("augment_strength", 0.0, 2.0, modes=("finetune",)),
)


@dataclass(frozen=True)
class PrunerSettings:
    """MedianPruner on the running mean after each fold: a trial stops when it is below the median of earlier
    trials at the same fold count, once 5 trials finished and from the second fold on."""
    n_startup_trials: int = 5
    n_warmup_steps: int = 1


def search_space(mode: str, overrides: list[str] | None = None) -> list[Param]:
    """The space for this training mode, with `NAME=LOW:HIGH` / `NAME=a|b` overrides applied."""
    space = {p.name: p for p in SEARCH_SPACE if mode in p.modes}
    known = {p.name: p for p in SEARCH_SPACE}
    for text in overrides or []:
        name, _, value = text.partition("=")
        if name not in known or not value:
            raise UserError(f"--space {text}: use NAME=LOW:HIGH or NAME=a|b with NAME one of {', '.join(known)}")
        base = known[name]
        if base.choices:
            space[name] = dataclasses.replace(base, choices=tuple(value.split("|")))
            continue
        try:
            low, high = (float(v) for v in value.split(":"))
        except ValueError:
            raise UserError(f"--space {text}: {name} takes a range LOW:HIGH, e.g. {base.describe()}") from None
        if not low <= high or (base.log and low <= 0):
            raise UserError(f"--space {text}: need LOW <= HIGH{' and LOW > 0 (log scale)' if base.log else ''}")
        space[name] = dataclasses.replace(base, low=low, high=high)
    return list(space.values())


def sample(trial, space: list[Param]) -> dict:
    return {p.name: (trial.suggest_categorical(p.name, list(p.choices)) if p.choices else
                     trial.suggest_float(p.name, p.low, p.high, log=p.log)) for p in space}


def _objective(metrics: dict, metric: str) -> float:
    return float(metrics["summary"]["val"][metric]["mean"])


class PrunedRun(StopRun):
    """The pruner stopped this trial: its run is left with status `pruned`."""
    status = "pruned"


class Study:
    """The driver: one Optuna study, its folder, its splits; asks, runs and tells trials."""

    def __init__(self, cfg: RunConfig, name: str, metric: str, space_overrides: list[str] | None,
                 log: Callable[[str], None] = print, seed: int = 0):
        import optuna

        if metric not in METRICS:
            raise UserError(f"--metric {metric}: choose one of {', '.join(METRICS)}")
        if not store.RUN_ID_PATTERN.match(name):
            raise UserError(f"--study {name}: use letters, digits, '.', '_' and '-' only")
        cfg.validate()
        self.cfg, self.metric, self.log = cfg, metric, log
        self.mode, _ = resolve_train_mode(cfg.train_mode, pick_device())
        self.space = search_space(self.mode, space_overrides)
        self.folder = store.experiments_root(Path(cfg.runs_dir)) / name
        self.name = name
        self.lock = threading.Lock()  # trials in threads share the driver's storage: one call at a time
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._prepare_folder()
        self.storage = optuna.storages.RDBStorage(f"sqlite:///{self.folder / STUDY_FILE}")
        pruner = PrunerSettings()
        self.study = optuna.create_study(
            study_name=name, storage=self.storage, direction="maximize", load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=pruner.n_startup_trials,
                                               n_warmup_steps=pruner.n_warmup_steps))

    # ------------------------------------------------------------ folder and splits

    def _prepare_folder(self) -> None:
        """experiment.json and splits.parquet on the first call; on a rerun, check it is the same search."""
        document_path = self.folder / "experiment.json"
        if document_path.exists():
            recorded = store.read_json(document_path)
            for key in ("data", "folds", "seed", "test_size", "use_groups", "dedup_groups"):   # what shaped the splits
                if recorded["config"].get(key) != getattr(self.cfg, key):
                    raise UserError(f"--study {self.name}: that study was made with {key}="
                                    f"{recorded['config'][key]!r}; pick another --study NAME for new settings")
            if recorded["metric"] != self.metric:
                raise UserError(f"--study {self.name}: that study optimises {recorded['metric']}; pick another "
                                f"--study NAME for --metric {self.metric}")
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        store.write_parquet(self.folder / "splits.parquet", reference_splits(self.cfg))
        store.write_json(document_path, {
            "schema_version": EXPERIMENT_SCHEMA_VERSION, "experiment_id": self.name, "kind": "tune",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "status": "running",
            "train_mode": self.mode, "config": self.cfg.to_dict(), "metric": self.metric,
            "space": [dataclasses.asdict(p) for p in self.space], "pruner": dataclasses.asdict(PrunerSettings()),
            "storage": STUDY_FILE, "best": None})

    def splits(self, with_test: bool) -> pd.DataFrame:
        table = pd.read_parquet(self.folder / "splits.parquet")
        return table if with_test else table[table.split == "cv"]

    # ------------------------------------------------------------ trials

    def recover_interrupted(self) -> int:
        """Trials left RUNNING by a crashed driver: marked FAIL and queued again with the same settings."""
        from optuna.trial import TrialState

        stale = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for trial in stale:
            self.storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            self.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        return len(stale)

    def finished(self) -> int:
        """Trials that count towards --trials: complete, pruned, or failed by an error (not by a crash)."""
        from optuna.trial import TrialState
        with self.lock:
            trials = self.study.get_trials(deepcopy=False)
        return sum(1 for t in trials
                   if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                   or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")))

    def run_trial(self, trial, executor: FoldExecutor | None) -> None:
        """One k-fold run; reports the running mean after each fold, and stops when the pruner says so."""
        from optuna.trial import TrialState

        params = sample(trial, self.space)
        cfg = dataclasses.replace(self.cfg, **params, name=f"{self.name}-trial{trial.number}")
        record = {"experiment": {"kind": "tune", "id": self.name, "role": "trial", "trial": trial.number,
                                 "params": params, "metric": self.metric}}
        started = time.perf_counter()
        with self.lock:
            trial.set_user_attr("status", "running")
        run_dir = start_run(cfg, splits=self.splits(with_test=False), record=record)
        with self.lock:
            trial.set_user_attr("run_id", run_dir.name)
        values: list[float] = []

        def on_fold(summary: dict, metrics: dict) -> None:
            values.append(float(metrics["folds"][str(summary["fold"])]["val"][self.metric]))
            running_mean = sum(values) / len(values)
            with self.lock:
                trial.report(running_mean, step=len(values))
                prune = len(values) < cfg.folds and trial.should_prune()  # a finished trial is not cut short
            if prune:
                raise PrunedRun(f"pruned by study {self.name}: running mean {percent(running_mean)} after "
                                f"{len(values)} folds is below the median of earlier trials at that point")

        try:
            complete_run(run_dir, started, executor, on_fold=on_fold, diagnose=False)
        except PrunedRun:
            with self.lock:
                self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"trial {trial.number}: pruned after {len(values)} folds ({run_dir.name})")
            return
        except Exception as exc:
            with self.lock:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                self.study.tell(trial, state=TrialState.FAIL)
            self.log(f"trial {trial.number}: failed: {type(exc).__name__}: {exc}")
            return
        value = _objective(store.read_json(run_dir / "metrics.json"), self.metric)
        with self.lock:
            self.study.tell(trial, value)
        self.log(f"trial {trial.number}: {metric_name(self.metric)} {percent(value)} ({run_dir.name}, "
                 f"{rounded(params)})")

    def optimize(self, n_trials: int, executor: FoldExecutor | None = None, max_concurrent: int = 1) -> None:
        """Run trials until the study has `n_trials` finished ones. Concurrent trials (threads in this process,
        each sending its folds through `executor`) only with an executor that runs folds elsewhere (Ray): the
        local one would make them compete for this process's cores."""
        workers = max_concurrent if executor is not None and executor.name != "local" else 1
        if workers <= 1:
            while self.finished() < n_trials:
                self.run_trial(self.study.ask(), executor)
                self.write_results(None, complete=False)  # the dashboard follows the study trial by trial
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            running: set = set()
            while self.finished() + len(running) < n_trials or running:
                while len(running) < workers and self.finished() + len(running) < n_trials:
                    with self.lock:
                        trial = self.study.ask()
                    running.add(pool.submit(self.run_trial, trial, executor))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                self.write_results(None, complete=False)

    # ------------------------------------------------------------ results

    def trials_table(self) -> pd.DataFrame:
        """One row per trial: number, state, value, run id, params (param_<name>), retry and error notes."""
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                         "run_id": t.user_attrs.get("run_id"), "error": t.user_attrs.get("error"),
                         "retry_of": t.user_attrs.get("retry_of"),
                         "folds_reported": len(t.intermediate_values),
                         **{f"param_{k}": v for k, v in t.params.items()}})
        return pd.DataFrame(rows)

    def evaluate_best(self, executor: FoldExecutor | None = None) -> dict | None:
        """Train the best trial's settings again on the same splits with the test images: the one run of this
        study that looks at the test split, made after the choice. Skipped when the best did not change."""
        from optuna.trial import TrialState

        if not self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return None
        best = self.study.best_trial
        document = store.read_json(self.folder / "experiment.json")
        previous = document.get("best") or {}
        command = suggested_command(self.cfg, best.params)
        result = {"trial": best.number, "value": best.value, "params": best.params,
                  "trial_run_id": best.user_attrs.get("run_id"), "command": command,
                  "test_run_id": previous.get("test_run_id") if previous.get("trial") == best.number else None}
        if self.cfg.test_size > 0 and result["test_run_id"] is None:
            cfg = dataclasses.replace(self.cfg, **best.params, name=f"{self.name}-best-trial{best.number}-test")
            record = {"experiment": {"kind": "tune", "id": self.name, "role": "best-trial-test",
                                     "trial": best.number, "params": best.params, "metric": self.metric}}
            started = time.perf_counter()
            run_dir = complete_run(start_run(cfg, splits=self.splits(with_test=True), record=record), started,
                                   executor)
            result["test_run_id"] = run_dir.name
        if result["test_run_id"]:
            metrics = store.read_json(Path(self.cfg.runs_dir) / result["test_run_id"] / "metrics.json")
            result["test"] = {"label": "test split, best trial only (evaluated once, after the choice)",
                              "ensemble": metrics.get("ensemble", {}).get("test", {}).get(self.metric),
                              "fold_mean": metrics["summary"].get("test", {}).get(self.metric, {}).get("mean")}
        return result

    def write_results(self, best: dict | None, complete: bool) -> None:
        """trials.parquet and experiment.json for the dashboard (best=None keeps the recorded best)."""
        with self.lock:
            table = self.trials_table()
        store.write_parquet(self.folder / "trials.parquet", table)
        document = store.read_json(self.folder / "experiment.json")
        document.update(status="complete" if complete else "running", trials=self.finished())
        if best is not None:
            document["best"] = best
        store.write_json(self.folder / "experiment.json", document)


def rounded(params: dict) -> dict:
    """Searched floats to 3 significant digits, as printed: the search cannot tell --lr 0.0022881136684755237
    from 0.00229, and a person copies what it prints."""
    return {name: significant(value) if isinstance(value, float) else value for name, value in params.items()}


def suggested_command(cfg: RunConfig, params: dict) -> str:
    """The command that trains the best setting, rounded as printed."""
    rounded_params = rounded(params)
    return command_line(dataclasses.replace(cfg, **rounded_params, name="best"), always=rounded_params)


def format_best(best: dict | None, metric: str) -> str:
    if best is None:
        return "no trial completed, so there is no best setting yet"
    name = metric_name(metric)
    lines = [(f"best trial {best['trial']}: validation {name} {percent(best['value'])} (mean over folds; "
              f"optimistic, since it was selected as the best of many)"), f"  settings: {rounded(best['params'])}",
             f"  its run: {best['trial_run_id']}"]
    test = best.get("test")
    if test:
        lines.append(f"  {test['label']}: ensemble {name} {percent(test['ensemble'])} (run {best['test_run_id']})")
    lines.append(f"train it with:\n  {best['command']}")
    return "\n".join(lines)


def tune(cfg: RunConfig, n_trials: int, metric: str = "balanced_accuracy", study_name: str = "tune",
         space_overrides: list[str] | None = None, executor: FoldExecutor | None = None, max_concurrent: int = 1,
         log: Callable[[str], None] = print, resume: str = "") -> Path:
    """Create or resume the study, run it to `n_trials` finished trials, evaluate the best on test once.
    resume: the command that resumes it, for its heartbeat (a rerun of the command that started it)."""
    if n_trials < 1:
        raise UserError(f"--trials {n_trials}: at least 1")
    if max_concurrent < 1:
        raise UserError(f"--max-concurrent {max_concurrent}: at least 1")
    folder = store.experiments_root(Path(cfg.runs_dir)) / study_name
    folder.mkdir(parents=True, exist_ok=True)
    # one driver per study: any RUNNING trial found now was left by a crash
    with store.run_lock(folder, "study"), heartbeat(folder, "tune", resume or f"python train_cli.py tune --study "
                                                    f"{study_name} --trials {n_trials}") as beat:
        clear_stalled(folder)
        study = Study(cfg, study_name, metric, space_overrides, log)
        recovered = study.recover_interrupted()
        if recovered:
            log(f"study {study_name}: {recovered} trials left running by an interrupted driver marked failed; "
                f"retrying them")
        log(f"study {study_name}: {study.finished()} of {n_trials} trials done; space: "
            f"{', '.join(p.describe() for p in study.space)}")
        beat.update("trials", study.finished(), n_trials)
        try:
            study.optimize(n_trials, executor, max_concurrent)
        finally:
            study.write_results(None, complete=False)
        beat.update("the best trial on test")
        best = study.evaluate_best(executor)
        study.write_results(best, complete=True)
        log(format_best(best, metric))
    return study.folder
