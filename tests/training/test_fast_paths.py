"""CUDA's fast paths (torch.compile of the training forward, bf16 autocast, channels_last) chosen per device,
and each run on the CPU through --cpu-fast-paths: one finetune fold per path, its metrics close to the eager
fold's, so the branches a GPU user takes have executed before one does."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import train_cli
from core.config import RunConfig
from core.errors import UserError
from core.store import run_store
from core.training.device import COMPILE_MIN_IMAGES, FastPaths, choose_fast_paths
from core.training.fold_job import fit_parts, fold_parts, load_run_inputs

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
# The smallest finetune fold: resnet18 at 16 px, 9 training images, one step per epoch, two epochs.
TINY = ["--model", "resnet18", "--weights", "none", "--image-size", "16", "--folds", "2", "--epochs", "2",
        "--batch-size", "8", "--train-mode", "finetune", "--test-size", "0", "--num-workers", "0", "--threads", "1"]


def test_cuda_takes_bf16_and_channels_last_and_compiles_long_runs_or_when_asked():
    assert choose_fast_paths(CUDA, "auto", "", COMPILE_MIN_IMAGES - 1) == FastPaths(False, True, True)
    assert choose_fast_paths(CUDA, "auto", "", COMPILE_MIN_IMAGES) == FastPaths(True, True, True)
    assert choose_fast_paths(CUDA, "on", "", 1).compile and not choose_fast_paths(CUDA, "off", "", 10**9).compile


def test_the_cpu_takes_only_the_paths_named_and_compile_off_still_wins():
    assert choose_fast_paths(CPU, "auto", "", 10**9) == FastPaths()
    assert choose_fast_paths(CPU, "auto", "bf16, channels_last") == FastPaths(False, True, True)
    assert choose_fast_paths(CPU, "auto", "compile") == FastPaths(compile=True)
    assert choose_fast_paths(CPU, "off", "compile") == FastPaths()


def test_an_unknown_fast_path_is_a_one_line_error():
    with pytest.raises(UserError, match="--cpu-fast-paths compile,fp8: unknown fp8; name any of compile, bf16"):
        RunConfig(cpu_fast_paths="compile,fp8").validate()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from conftest import make_folder_dataset
    root = tmp_path_factory.mktemp("fast")
    data = make_folder_dataset(root / "data")
    assert train_cli.main(["--data", str(data), *TINY, "--prepare-only", "--cache-dir", str(root / "cache"),
                           "--runs-dir", str(root / "runs")]) == 0
    (run_dir,) = (root / "runs").iterdir()
    return run_dir


def fold_with(run_dir, paths: str, copy_to):
    """Fold 0 of a copy of the run whose recorded setting is --cpu-fast-paths `paths`."""
    run_copy = shutil.copytree(run_dir, copy_to)
    info = json.loads((run_copy / "run.json").read_text())
    info["config"]["cpu_fast_paths"] = paths
    run_store.write_json(run_copy / "run.json", info)
    _, _, samples = load_run_inputs(run_copy)
    result, probs, embedding, _ = fit_parts(run_copy, 0, fold_parts(samples, 0))
    return pd.DataFrame(result.history), probs, embedding


@pytest.fixture(scope="module")
def eager(prepared, tmp_path_factory):
    return fold_with(prepared, "", tmp_path_factory.mktemp("eager") / "run")


# fp32 paths (compile, channels_last) only sum in another order: measured 2e-5 relative on losses and 1e-6 on
# probabilities here, so 1e-3 leaves 50x room and still fails a path that silently ran in lower precision.
# bf16 keeps 8 significant bits (rounding 0.4%); through 20 layers and two optimiser steps the losses moved
# 1.2% and probabilities 0.0035 here, so 5% and 0.02 leave 4-6x room and still catch a wrong-class or broken
# backward (whose losses differ by tens of percent). Balanced accuracy is not compared: with 9 validation images
# of a barely trained network one flipped argmax moves it by 0.11.
@pytest.mark.parametrize("paths, rtol, atol", [("channels_last", 1e-3, 1e-3), ("bf16", 0.05, 0.02),
                                               ("compile", 1e-3, 1e-3)])
def test_a_finetune_fold_on_a_fast_path_matches_the_eager_fold(prepared, eager, tmp_path, capsys, paths, rtol, atol):
    history, probs, embedding = fold_with(prepared, paths, tmp_path / "run")
    took = FastPaths(**{paths: True}).describe()
    assert f"fold 0: images read through a DataLoader, {took}" in capsys.readouterr().out
    eager_history, eager_probs, eager_embedding = eager
    assert history.epoch.tolist() == eager_history.epoch.tolist()
    np.testing.assert_allclose(history.loss, eager_history.loss, rtol=rtol)
    np.testing.assert_allclose(probs, eager_probs, atol=atol)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(embedding, eager_embedding, atol=atol * np.abs(eager_embedding).max() * 5)
