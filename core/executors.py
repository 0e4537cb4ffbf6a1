"""Where fold jobs run. An executor takes a run directory and fold indices and yields each fold's summary
(folds/fold{k}/fold.json) as that fold finishes; it only decides where the job runs, never what it does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

from . import fold_job


class FoldExecutor(Protocol):
    name: str

    def run_folds(self, run_dir: Path, folds: list[int]) -> Iterator[dict]:
        """Run every fold in `folds`; yield each one's summary as it finishes (any order)."""
        ...

    def describe(self) -> dict:
        """What run.json records about where the folds ran."""
        ...


class LocalExecutor:
    """In this process, one fold after another: the default, and what needs no cluster."""
    name = "local"

    def run_folds(self, run_dir: Path, folds: list[int]) -> Iterator[dict]:
        for k in folds:
            yield fold_job.run_fold(run_dir, k)

    def describe(self) -> dict:
        return {"executor": self.name}
