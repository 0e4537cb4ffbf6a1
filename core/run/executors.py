"""Where fold jobs run. An executor takes a run directory and fold indices and yields each fold's summary
(folds/fold{k}/fold.json) as that fold finishes; it only decides where the job runs, never what it does.

Ray is imported only for `ray`.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.run.execution import ExecutionSettings, FoldExecutor, FoldFailed
from core.training import fold_job


class LocalExecutor:
    """In this process, one fold after another: the default, and what needs no cluster."""
    name = "local"

    def run_folds(self, run_dir: Path, folds: list[int]) -> Iterator[dict]:
        for k in folds:
            try:
                summary = fold_job.run_fold(run_dir, k)
            except Exception as exc:
                raise FoldFailed(k, f"{type(exc).__name__}: {exc}") from exc
            yield summary

    def describe(self) -> dict:
        return {"executor": self.name}


@contextmanager
def open_executor(settings: ExecutionSettings) -> Iterator[FoldExecutor]:
    """The executor the settings ask for, ready to run folds; a Ray connection is closed (and a local Ray
    instance stopped) when the block ends. Checks that fail without data happen here, before any run starts."""
    settings.validate()
    if settings.executor == "local":
        yield LocalExecutor()
        return
    from core.run.ray_executor import ray_executor
    with ray_executor(settings) as executor:
        yield executor
