"""Folds as Ray tasks: on this machine's GPUs and CPUs, or on any cluster Ray can reach.

A task gets only the run directory's path and the fold index; everything else travels through the file
system (the fold job reads the run and writes folds/fold{k}/ in one rename), so a retried task is harmless.
Crashed workers (killed, out of memory) are retried `max_retries` times; a Python error in the job is not
retried and fails the run naming its fold. Results are taken as they finish (ray.wait).

Workers import `core` as the driver does: Ray puts the driver script's folder and working directory on their
path (so on a cluster, every node needs this checkout at the same path, like the runs directory).

A local instance started here is private to this process: every server on the loopback interface, Ray's
token authentication on with a token of its own, its own short temporary folder, and stopped when the block ends.
Joining a cluster whose nodes run without token authentication prints a one-line warning. Fold tasks show no
progress bars (one line per fold reaches the driver's log, not a carriage-return line per bar).
"""
from __future__ import annotations

import functools
import ipaddress
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UserError
from core.run.execution import ExecutionSettings, FoldFailed
from core.run.ray_auth import auth_warning, node_auth_mode
from core.training import fold_job
from core.training.progress import PROGRESS_ENV

# Ray's single-machine mode (its default on macOS and Windows): the node's address is the loopback one and
# every Ray server binds to it. Read when ray is imported, so it is set before the first import.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@functools.cache
def _process_token() -> str:
    """The private instance's authentication token: new for each process, held only in the environment of this
    process and its Ray children (Ray's own default token file is readable by every account). One per process,
    because Ray caches the token it has read."""
    return secrets.token_hex(32)


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def local_ray(num_cpus: float | None = None, num_gpus: float | None = None) -> Iterator[dict]:
    """Start a private Ray instance for this process; yield its address info; stop it and remove its files."""
    # Short on purpose: Ray's unix sockets live under it, and a socket path has at most 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="foldlens-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        token_auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": _process_token()}
        with _environment({**LOOPBACK_ONLY, **token_auth}):
            import ray
            try:
                context = ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                                   _temp_dir=temp_dir)
                node_ip = context.address_info["node_ip_address"]
                if not ipaddress.ip_address(node_ip).is_loopback:  # ray was imported before the setting above
                    raise RuntimeError(f"the local Ray instance took the address {node_ip}, not a loopback one; "
                                       f"import core.run.ray_executor before ray")
                yield context.address_info
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


@contextmanager
def _connection(address: str | None) -> Iterator[str]:
    """Connect as asked and yield how: 'local' (a private instance), 'connected' (this process had already
    called ray.init), 'auto' or 'address' (an existing cluster, left running)."""
    already = sys.modules.get("ray")  # not imported yet: local_ray must import it after its settings
    if address is None and already is not None and already.is_initialized():
        yield "connected"
        return
    if address is None:
        with local_ray():
            yield "local"
        return
    # A loopback-only cluster on this machine: without the same setting, Ray would dial the routable address.
    with _environment(LOOPBACK_ONLY if _is_loopback(address) else {}):
        import ray
    try:
        ray.init(address=address)
    except (ConnectionError, ValueError) as exc:
        raise UserError(f"--ray-address {address}: cannot connect ({exc}); start the cluster with `ray start` "
                        f"or check the address") from exc
    try:
        warning = auth_warning(address, ray.get(ray.remote(node_auth_mode).options(num_cpus=0).remote()))
        if warning:
            print(warning, file=sys.stderr, flush=True)
        yield "auto" if address == "auto" else "address"
    finally:
        ray.shutdown()


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_request_fits(gpus: float, cpus: float, nodes: list[dict]) -> None:
    """Ray leaves a task no node can ever hold pending without a word: refuse such a request at once."""
    alive = [node["Resources"] for node in nodes if node.get("Alive")]
    if any(r.get("GPU", 0) >= gpus and r.get("CPU", 0) >= cpus for r in alive):
        return
    largest = max(alive, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
    raise UserError(f"--gpus-per-fold {gpus:g} --cpus-per-fold {cpus:g}: no node of the Ray cluster has that much "
                    f"(largest: {largest.get('GPU', 0):g} GPUs, {largest.get('CPU', 0):g} CPUs on one node of "
                    f"{len(alive)}); ask for less per fold")


def fold_task(job: Callable[[Path, int], dict], run_dir: str, fold: int) -> dict:
    """What a Ray worker runs: the fold job, without progress bars (they reach the driver as long lines)."""
    os.environ[PROGRESS_ENV] = "folds"
    return job(run_dir, fold)


@dataclass
class RayExecutor:
    gpus_per_fold: float
    cpus_per_fold: float
    max_retries: int
    address_kind: str
    cluster: dict
    job: Callable[[Path, int], dict] = field(default=fold_job.run_fold)  # what each task runs
    name = "ray"

    def describe(self) -> dict:
        return {"executor": self.name, "address": self.address_kind, "gpus_per_fold": self.gpus_per_fold,
                "cpus_per_fold": self.cpus_per_fold, "max_retries": self.max_retries, "cluster": self.cluster}

    def run_folds(self, run_dir: Path, folds: list[int]) -> Iterator[dict]:
        import ray
        task = ray.remote(fold_task).options(num_gpus=self.gpus_per_fold, num_cpus=self.cpus_per_fold,
                                             max_retries=self.max_retries, retry_exceptions=False)
        pending = {task.remote(self.job, str(Path(run_dir).resolve()), k): k for k in folds}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                fold = pending.pop(ready)
                try:
                    summary = ray.get(ready)
                except ray.exceptions.RayTaskError as exc:  # the job raised: its own error, not retried
                    cause = exc.cause
                    raise FoldFailed(fold, f"{type(cause).__name__}: {cause}") from exc
                except ray.exceptions.RayError as exc:  # the worker or its node died, after every retry
                    raise FoldFailed(fold, f"{type(exc).__name__} after {self.max_retries} retries: "
                                           f"{str(exc).splitlines()[0]}") from exc
                yield summary
        finally:
            for ref in pending:  # a failed run stops its other folds now; --resume reruns them
                ray.cancel(ref, force=True)


@contextmanager
def ray_executor(settings: ExecutionSettings) -> Iterator[RayExecutor]:
    """Connect to Ray as the settings ask, check the per-fold request fits a node, yield the executor."""
    with _connection(settings.ray_address) as address_kind:
        import ray
        totals = ray.cluster_resources()
        gpus = settings.gpus_per_fold if settings.gpus_per_fold is not None else (1 if totals.get("GPU") else 0)
        cpus = settings.cpus_per_fold if settings.cpus_per_fold is not None else 1
        nodes = ray.nodes()
        check_request_fits(gpus, cpus, nodes)
        cluster = {"nodes": sum(1 for n in nodes if n.get("Alive")), "CPU": totals.get("CPU", 0),
                   "GPU": totals.get("GPU", 0)}
        yield RayExecutor(gpus, cpus, settings.max_retries, address_kind, cluster)
