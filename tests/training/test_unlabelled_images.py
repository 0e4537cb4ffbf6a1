"""Which unlabelled images a fold's self-supervised step learns from: the pool of its run, or of the baseline its
remedy experiment shares splits with, never an image that is (or nearly is) a labelled one."""
from pathlib import Path

from core.store import run_store
from core.testing.synthetic import make_synthetic_pool, make_synthetic_run
from core.training.run_inputs import unlabelled_images


def _info(run_dir: Path) -> dict:
    return run_store.read_json(run_dir / run_store.RUN_JSON)


def test_a_run_without_a_pool_adds_no_unlabelled_images(tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "plain", train_mode="head", diagnostics=False)
    assert unlabelled_images(run, _info(run)) == []


def test_the_runs_own_pool_less_images_identical_to_labelled_ones(tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "pooled", train_mode="head", diagnostics=False)
    make_synthetic_pool(run, tmp_path / "inbox", n=6)        # pool_0 is identical to labelled sample 0
    assert unlabelled_images(run, _info(run)) == [tmp_path / "inbox" / f"pool_{i}.png" for i in range(1, 6)]


def test_a_remedy_run_learns_from_its_baselines_pool(tmp_path):
    baseline = make_synthetic_run(tmp_path / "runs", "base", train_mode="head", diagnostics=False)
    make_synthetic_pool(baseline, tmp_path / "inbox", n=4)
    remedy = make_synthetic_run(tmp_path / "runs", "remedy", train_mode="head", diagnostics=False)
    info = {**_info(remedy), "experiment": {"kind": "remedies", "role": "remedy", "splits_from": "base"}}
    assert unlabelled_images(remedy, info) == [tmp_path / "inbox" / f"pool_{i}.png" for i in range(1, 4)]
    other = {**info, "experiment": {"kind": "remedies", "role": "remedy", "splits_from": "missing"}}
    assert unlabelled_images(remedy, other) == []
