"""The self-supervised remedies (ssl-simclr, ssl-byol): listed, run only when named, skipped with the reason
when they cannot run, and compared fold-paired with the baseline like every remedy."""
from __future__ import annotations

import sys

import pandas as pd
import pytest

import train_cli
from core.config import RunConfig
from core.experiments import remedies
from core.store import run_store
from core.testing.stand_in_weights import place_stand_in_weights


def test_they_are_listed_parsed_and_left_out_of_the_default_set(capsys):
    picked = remedies.parse_selection("ssl-simclr, ssl-byol")
    assert [r.overrides for r in picked] == [{"ssl_method": "simclr"}, {"ssl_method": "byol"}]
    assert remedies.remedy_config(RunConfig(ssl_epochs=2), picked[0]).ssl_method == "simclr"
    chosen, skipped = remedies.default_set(RunConfig(), "finetune")
    names = {r.name for r in chosen} | {s["remedy"] for s in skipped}
    assert not names & {"ssl-simclr", "ssl-byol"}
    assert train_cli.main(["remedies", "--remedies", "list", "--train-mode", "head"]) == 0
    listed = capsys.readouterr().out
    assert "ssl-simclr" in listed and "only when named: it trains the backbone in every fold" in listed


def test_they_are_skipped_without_pretrained_weights_or_without_lightly(monkeypatch):
    simclr = remedies.remedy_named("ssl-simclr")
    assert "--weights none" in remedies.skip_reason(simclr, RunConfig(weights="none"), "head")
    assert remedies.skip_reason(simclr, RunConfig(), "head") is None
    assert remedies.skip_reason(simclr, RunConfig(ssl_method="simclr"), "head") == \
        "the baseline already uses this setting"
    for name in [m for m in sys.modules if m == "lightly" or m.startswith("lightly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightly", None)
    assert "pip install lightly==1.6.0" in remedies.skip_reason(simclr, RunConfig(), "finetune")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> dict:
    from conftest import make_folder_dataset
    root = tmp_path_factory.mktemp("ssl-remedy")
    data = make_folder_dataset(root / "data", per_class=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(root / "torch"))
        place_stand_in_weights("resnet18", 6)
        runs = root / "runs"
        assert train_cli.main(["remedies", "--data", str(data), "--runs-dir", str(runs), "--cache-dir",
                               str(root / "cache"), "--model", "resnet18", "--weights", "imagenet", "--image-size",
                               "32", "--folds", "2", "--epochs", "2", "--batch-size", "8", "--train-mode", "head",
                               "--threads", "1", "--ssl-epochs", "1", "--ssl-batch-size", "4",
                               "--remedies", "ssl-simclr"]) == 0
    document = next(e for e in run_store.list_experiments(runs) if e["kind"] == "remedies")
    return {"runs": runs, "document": document, "folder": runs / "experiments" / document["experiment_id"]}


def test_the_remedy_runs_on_the_baselines_splits_and_gets_fold_paired_effects(experiment):
    document, runs = experiment["document"], experiment["runs"]
    (entry,) = document["runs"]
    assert entry["remedy"] == "ssl-simclr" and entry["status"] == "complete"
    baseline, remedy = runs / document["baseline"], runs / entry["run_id"]
    assert run_store.read_json(baseline / "run.json")["config"]["ssl_method"] == ""
    assert run_store.read_json(remedy / "run.json")["config"]["ssl_method"] == "simclr"
    columns = ["path", "split", "fold"]
    pd.testing.assert_frame_equal(pd.read_parquet(baseline / "samples.parquet", columns=columns),
                                  pd.read_parquet(remedy / "samples.parquet", columns=columns))
    for k in range(2):
        assert run_store.read_json(run_store.fold_dir(remedy, k) / "fold.json")["ssl"]["method"] == "simclr"
    effects = pd.read_parquet(experiment["folder"] / "effects.parquet")
    assert "ssl-simclr" in set(effects.remedy)
    costs = pd.read_parquet(experiment["folder"] / "costs.parquet").set_index("remedy")
    assert costs.at["ssl-simclr", "trained_parameters"] == costs.at["ssl-simclr", "parameters"]   # the backbone too
    assert costs.at["baseline", "trained_parameters"] < costs.at["baseline", "parameters"]
