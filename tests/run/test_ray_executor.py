"""Folds as Ray tasks, on ONE local Ray instance shared by the whole test session (starting one costs ~10 s and
each worker's first `import torch` ~9 s): 2 CPUs and one declared logical GPU, so the default of one GPU per fold
is exercised on a machine without one. The instance is started by the same code as `--executor ray`.
"""
from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pandas as pd
import psutil
import pytest

import train_cli
from core.config import RunConfig
from core.run import lifecycle as run_lifecycle
from core.run.execution import ExecutionSettings, FoldFailed
from core.run.executors import open_executor
from core.training import fold_job

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--epochs", "2", "--batch-size", "8"]


@pytest.fixture(scope="session")
def ray_cluster():
    from core.run.ray_executor import local_ray
    with local_ray(num_cpus=2, num_gpus=1) as address_info:
        yield address_info
        ray_processes = psutil.Process().children(recursive=True)
    # Stopping the instance leaves nothing running.
    _, alive = psutil.wait_procs(ray_processes, timeout=30)
    assert not alive, f"still running after the Ray instance stopped: {[p.name() for p in alive]}"


@pytest.fixture
def no_diagnostics(monkeypatch):
    """Diagnostics run in the driver whatever the executor; skipping them keeps these tests about folds."""
    monkeypatch.setattr(run_lifecycle, "run_diagnostics_step", lambda run_dir: None)


def tiny_config(data: Path, runs_dir: Path) -> RunConfig:
    return RunConfig(data=str(data), runs_dir=str(runs_dir), weights="none", image_size=32, folds=2, epochs=2,
                     batch_size=8, train_mode="head", cache_dir=str(runs_dir.parent / "cache"))


def run_info(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def test_the_local_instance_listens_on_loopback_only_with_token_authentication(ray_cluster):
    processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
    listening = [(p.name(), c.laddr) for p in processes for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert {"gcs_server", "raylet"} <= {name for name, _ in listening}
    assert [(name, address) for name, address in listening if not is_loopback(address.ip)] == []
    from ray._raylet import AuthenticationMode, get_authentication_mode  # no public reader of the mode
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    # The token is the instance's own, not Ray's default file (which every account can read).
    (gcs,) = [p for p in processes if p.name() == "gcs_server"]
    token = gcs.environ()["RAY_AUTH_TOKEN"]
    default_file = Path.home() / ".ray" / "auth_token"
    assert len(token) == 64 and (not default_file.exists() or default_file.read_text().strip() != token)


# Fine-tuning is where the thread count changes the numbers (head mode trains one small linear layer).
@pytest.mark.parametrize("mode", [["--train-mode", "head"],
                                  ["--train-mode", "finetune", "--epochs", "1", "--image-input", "resident"]],
                         ids=["head", "finetune"])
def test_either_executor_writes_the_same_fold_results(ray_cluster, no_diagnostics, folder_dataset, tmp_path, mode):
    runs = {}
    for executor in ("local", "ray"):
        runs_dir = tmp_path / executor
        assert train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(runs_dir), *TINY, *mode,
                               "--executor", executor, "--cache-dir", str(tmp_path / "cache")]) == 0
        (runs[executor],) = runs_dir.iterdir()
    local, ray = runs["local"], runs["ray"]
    assert json.loads((ray / "metrics.json").read_text()) == json.loads((local / "metrics.json").read_text())
    for name in ("predictions.parquet", "history.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(ray / name), pd.read_parquet(local / name))
    assert run_info(local)["execution"] == {"executor": "local"}
    execution = run_info(ray)["execution"]
    assert execution["executor"] == "ray" and execution["address"] == "connected"
    assert execution["gpus_per_fold"] == 1 and execution["cpus_per_fold"] == 1  # the cluster declares one GPU
    assert run_info(ray)["config"]["threads"] == run_info(local)["config"]["threads"] > 0


def exit_in_fold_1_once(marker: Path):
    """A fold job whose worker dies (as when it is killed or runs out of memory) the first time fold 1 runs,
    after leaving a half-written fold folder behind."""
    def job(run_dir: str, fold: int) -> dict:
        if fold == 1 and not marker.exists():
            marker.touch()
            (Path(run_dir) / "folds" / ".fold1.0123456789abcdef.tmp").mkdir(parents=True)
            os._exit(1)
        return fold_job.run_fold(run_dir, fold)
    return job


def test_a_fold_whose_worker_dies_is_retried_and_the_run_completes(ray_cluster, no_diagnostics, folder_dataset,
                                                                     tmp_path):
    marker = tmp_path / "worker-died"
    with open_executor(ExecutionSettings(executor="ray")) as executor:
        executor.job = exit_in_fold_1_once(marker)
        run_dir = run_lifecycle.run_new(tiny_config(folder_dataset, tmp_path / "runs"), executor)
    info = run_info(run_dir)
    assert marker.exists() and info["status"] == "complete" and info["folds_done"] == [0, 1]
    assert sorted(p.name for p in (run_dir / "folds").iterdir()) == ["fold0", "fold1"]  # nothing half-written


def raise_in_fold_1(calls: Path):
    def job(run_dir: str, fold: int) -> dict:
        with open(calls, "a") as handle:
            handle.write(f"{fold}\n")
        if fold == 1:
            raise ValueError("fold 1 has no images of class sky")
        return fold_job.run_fold(run_dir, fold)
    return job


def test_a_python_error_fails_the_run_naming_its_fold_and_resume_finishes_it(ray_cluster, no_diagnostics,
                                                                              folder_dataset, tmp_path):
    calls = tmp_path / "calls"
    with open_executor(ExecutionSettings(executor="ray")) as executor:
        executor.job = raise_in_fold_1(calls)
        with pytest.raises(FoldFailed, match="fold 1 failed: ValueError: fold 1 has no images of class sky"):
            run_lifecycle.run_new(tiny_config(folder_dataset, tmp_path / "runs"), executor)
    assert calls.read_text().split().count("1") == 1  # an error in the job is not retried
    (run_dir,) = (tmp_path / "runs").iterdir()
    info = run_info(run_dir)
    assert info["status"] == "failed" and "fold 1 failed: ValueError" in info["error"] and "--resume" in info["error"]

    assert train_cli.main(["--resume", run_dir.name, "--runs-dir", str(tmp_path / "runs"), "--executor", "ray"]) == 0
    info = run_info(run_dir)
    assert info["status"] == "complete" and info["folds_done"] == [0, 1] and info["execution"]["executor"] == "ray"


@pytest.mark.parametrize("request_option", [["--gpus-per-fold", "2"], ["--cpus-per-fold", "3"]])
def test_a_request_no_node_can_hold_fails_at_once_with_one_line(ray_cluster, folder_dataset, tmp_path, capsys,
                                                                 request_option):
    code = train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(tmp_path / "runs"), *TINY,
                           "--executor", "ray", *request_option])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error and "no node of the Ray cluster has that much" in error
    assert "largest: 1 GPUs, 2 CPUs" in error and not (tmp_path / "runs").exists()  # refused before the run began
