"""What every executor shares: its protocol, the settings of where folds run, and the error a failed fold
raises. Where folds run is not a model setting: ExecutionSettings stay out of RunConfig, a resumed run may use
another executor, and run.json's `execution` records the latest attempt's."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from core.errors import UserError

EXECUTORS = ("local", "ray")


class FoldExecutor(Protocol):
    name: str

    def run_folds(self, run_dir: Path, folds: list[int]) -> Iterator[dict]:
        """Run every fold in `folds`; yield each one's summary as it finishes (any order)."""
        ...

    def describe(self) -> dict:
        """What run.json records about where the folds ran."""
        ...


class FoldFailed(RuntimeError):
    """A fold job raised: the message names the fold and the job's own error."""

    def __init__(self, fold: int, reason: str):
        super().__init__(f"fold {fold} failed: {reason}")
        self.fold = fold


@dataclass(frozen=True)
class ExecutionSettings:
    executor: str = "local"               # local | ray
    ray_address: str | None = None        # None: a private local Ray instance; "auto": the cluster `ray start` made
    gpus_per_fold: float | None = None    # None: 1 when the Ray cluster has GPUs, else 0
    cpus_per_fold: float | None = None    # None: 1 (Ray's default for a task)
    max_retries: int = 2                  # Ray: reruns of a fold whose worker died (crash, out of memory)

    def validate(self) -> None:
        if self.executor not in EXECUTORS:
            raise UserError(f"--executor {self.executor}: choose one of {', '.join(EXECUTORS)}")
        ray_only = {"--ray-address": self.ray_address, "--gpus-per-fold": self.gpus_per_fold,
                    "--cpus-per-fold": self.cpus_per_fold}
        for name, value in ray_only.items():
            if value is not None and self.executor != "ray":
                raise UserError(f"{name} {value}: only used with --executor ray")
        for name, value in (("--gpus-per-fold", self.gpus_per_fold), ("--cpus-per-fold", self.cpus_per_fold)):
            if value is not None and value < 0:
                raise UserError(f"{name} {value}: must not be negative")
        if self.max_retries < 0:
            raise UserError(f"max_retries {self.max_retries}: must not be negative")
