"""`train_cli.py pool`: unlabelled images added to a finished run, and which of them to label next."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_image
from use_fixtures import tiny_runs  # noqa: F401  (session fixture)

import train_cli
from core.delivery import pool as pool_module
from core.delivery import predict
from core.evaluate import prob_column
from core.store import run_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"


def own_copy(run: Path, tmp_path: Path) -> Path:
    """The session's tiny run copied, so a pool added here leaves the shared one as it was."""
    return Path(shutil.copytree(run, tmp_path / "runs" / run.name))


def labelled_image(run: Path, index: int = 0) -> Path:
    info = json.loads((run / "run.json").read_text())
    return Path(info["dataset"]["root"]) / pd.read_parquet(run / "samples.parquet")["path"].iloc[index]


def make_inbox(folder: Path, run: Path, n: int = 6) -> Path:
    for i in range(n):
        make_image(folder / f"new_{i}.png", (40 * i % 255, 120, 200 - 20 * i), seed=900 + i)
    (folder / "sub").mkdir()
    shutil.copy(folder / "new_0.png", folder / "sub" / "again.png")
    shutil.copy(labelled_image(run), folder / "already_labelled.jpg")
    (folder / "notes.jpg").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    return folder


def test_pool_add_scans_like_the_data_joins_identical_files_and_scores_with_the_fold_ensemble(tiny_runs,  # noqa: F811
                                                                                            tmp_path, capsys):
    run = own_copy(tiny_runs["head"], tmp_path)
    inbox = make_inbox(tmp_path / "inbox", run)
    assert train_cli.main(["pool", run.name, "--add", str(inbox), "--runs-dir", str(run.parent)]) == 0
    printed = capsys.readouterr().out
    assert f"skipped {inbox / 'notes.jpg'}: not an image (format not recognised)" in printed
    assert f"skipped {inbox / 'empty.png'}: unreadable: empty file" in printed
    stored = run_store.read_pool(run)
    table = stored.table
    assert list(table.columns) == pool_module.TABLE_COLUMNS and table["pool_id"].tolist() == list(range(7))
    assert stored.info["n_files"] == 10 and stored.info["n_images"] == 7 and len(stored.info["skipped"]) == 2
    joined = table.set_index("path").loc[str(inbox / "new_0.png"), "copies"]
    assert list(joined) == [str(inbox / "sub" / "again.png")]              # identical files: one row
    same = table.set_index("path").loc[str(inbox / "already_labelled.jpg")]
    assert same["labelled_sample_id"] == 0 and stored.info["identical_to_labelled"] == 1
    backbone = run_store.read_embedding(run, "backbone")
    assert stored.features.shape == (7, backbone.shape[1])
    assert np.allclose(stored.features[table["labelled_sample_id"].notna().to_numpy()][0], backbone[0], atol=1e-2)
    # the fold heads on the cached features = the ensemble on the image files (predict's path)
    files = predict.predict_files(predict.load_ensemble(run, ood=False), [Path(p) for p in table["path"]], {})
    classes = stored.info["classes"]
    assert np.allclose(stored.probabilities, files[[prob_column(c) for c in classes]].to_numpy(), atol=1e-3)
    assert (table["prediction"] == files["prediction"]).all()
    assert {p.name for p in (run / "pool").iterdir()} == set(run_store.POOL_FILES.values()) - {"picks.parquet"}

    more = tmp_path / "more"
    make_image(more / "extra.png", (10, 10, 10), seed=77)
    shutil.copy(inbox / "new_1.png", more / "new_1_again.png")             # already pooled: not a new row
    assert train_cli.main(["pool", run.name, "--add", str(more), str(inbox), "--runs-dir", str(run.parent)]) == 0
    grown = run_store.read_pool(run)
    assert len(grown.table) == 8 and grown.table["path"].iloc[:7].tolist() == table["path"].tolist()
    by_path = grown.table.set_index("path")["copies"]
    assert list(by_path[str(inbox / "new_1.png")]) == [str(more / "new_1_again.png")]
    assert list(by_path[str(inbox / "new_0.png")]) == list(joined) and len(grown.info["skipped"]) == 2
    assert grown.info["inputs"] == [str(inbox), str(more), str(inbox)] and grown.info["n_files"] == 22
    assert np.array_equal(grown.features[:7], stored.features) and grown.ids.tolist() == list(range(8))


def test_pool_of_a_finetune_run_scores_with_the_fold_networks(tiny_runs, tmp_path):  # noqa: F811
    run = own_copy(tiny_runs["finetune"], tmp_path)
    inbox = tmp_path / "inbox"
    for i in range(4):
        make_image(inbox / f"new_{i}.png", (200, 40 * i, 30), seed=500 + i)
    record = pool_module.build_pool(run, [str(inbox)])
    stored = run_store.read_pool(run)
    assert record["train_mode"] == "finetune" and stored.probabilities.shape == (4, len(record["classes"]))
    assert np.allclose(stored.probabilities.sum(axis=1), 1, atol=1e-4)


def test_pool_from_a_csv_keeps_its_labels_as_the_known_truth(tiny_runs, tmp_path):  # noqa: F811
    run = own_copy(tiny_runs["head"], tmp_path)
    for i in range(3):
        make_image(tmp_path / "csv" / f"img_{i}.png", (90, 30 * i, 60), seed=300 + i)
    (tmp_path / "csv" / "pool.csv").write_text("path,label\nimg_0.png,apple\nimg_1.png,\nimg_2.png,sky\n")
    pool_module.build_pool(run, [str(tmp_path / "csv" / "pool.csv")])
    table = run_store.read_pool(run).table
    assert table["known_label"].fillna("-").tolist() == ["apple", "-", "sky"]


def test_near_duplicates_of_labelled_images_are_marked_by_the_calibrated_rule():
    rng = np.random.default_rng(0)
    labelled = rng.normal(size=(40, 32)).astype(np.float32)
    pool = np.vstack([labelled[3] + 0.01 * rng.normal(size=32), rng.normal(size=(30, 32))]).astype(np.float32)
    partner, similarity, cut = pool_module.near_labelled(labelled, pool)
    assert partner[0] == 3 and similarity[0] >= cut and (partner[1:] == -1).all()


def test_picks_are_distinct_eligible_pool_images_written_to_the_csv_and_the_run(tiny_runs, tmp_path,  # noqa: F811
                                                                               capsys):
    run = own_copy(tiny_runs["head"], tmp_path)
    pool_module.build_pool(run, [str(make_inbox(tmp_path / "inbox", run, n=10))])
    table = run_store.read_pool(run).table
    excluded = set(table.loc[table["labelled_sample_id"].notna() | table["near_labelled_sample_id"].notna(),
                             "pool_id"])
    assert excluded                                                           # the copy of a labelled image
    out = tmp_path / "to_label.csv"
    for strategy in ("typiclust", "badge"):
        argv = ["pool", run.name, "--budget", "4", "--strategy", strategy, "--out", str(out),
                "--runs-dir", str(run.parent)]
        assert train_cli.main(argv) == 0
        picks = pd.read_csv(out)
        assert list(picks.columns) == pool_module.PICK_COLUMNS and len(picks) == 4
        assert picks["pool_id"].is_unique and not excluded & set(picks["pool_id"])
        assert (picks["strategy"] == strategy).all() and picks["rank"].tolist() == [1, 2, 3, 4]
        assert run_store.read_picks(run)["pool_id"].tolist() == picks["pool_id"].tolist()
    assert "4 images to label next (badge), best first:" in capsys.readouterr().out


def test_pool_command_errors_are_one_line(tiny_runs, tmp_path, capsys):  # noqa: F811
    run = own_copy(tiny_runs["head"], tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    calls = [["pool", "no-such-run", "--budget", "3"], ["pool", run.name, "--budget", "3"],
             ["pool", run.name, "--budget", "0"], ["pool", run.name],
             ["pool", run.name, "--add", str(tmp_path / "empty")],
             ["pool", run.name, "--add", str(tmp_path / "bad.csv")],
             ["pool", run.name, "--budget", "2", "--strategy", "nope"],
             ["pool", run.name, "--budget", "2", "--out", str(tmp_path)]]
    for argv in calls:
        assert train_cli.main([*argv, "--runs-dir", str(run.parent)]) == 2, argv
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == len(calls) and all(line.startswith("error: ") for line in errors)
    assert "run no-such-run: no such run" in errors[0]
    assert f"run {run.name} has no unlabelled pool yet; add one with: python train_cli.py pool {run.name} --add" \
        in errors[1]
    assert "--budget 0: must be a positive whole number" in errors[2]
    assert "pool: nothing to do" in errors[3]
    assert "pool: no files found" in errors[4]
    assert "bad.csv: no path column" in errors[5]
    assert "invalid choice: 'nope'" in errors[6]
    assert "is a folder" in errors[7]
    assert not (run / "pool").exists()


def test_run_format_documents_every_pool_file_and_column():
    text = DOC.read_text()
    section = text[text.index("## pool/"):]
    for name in run_store.POOL_FILES.values():
        assert f"pool/{name}" in text and f"`{name}`" in section, name
    for column in {*pool_module.TABLE_COLUMNS, *pool_module.PICK_COLUMNS}:
        assert f"`{column}`" in section, column


def test_a_training_run_given_unlabelled_images_has_its_pool_when_it_completes(tmp_path, capsys):
    from conftest import make_csv_dataset
    from use_fixtures import train_tiny
    data = make_csv_dataset(tmp_path / "data")
    for i in range(3):
        make_image(tmp_path / "inbox" / f"new_{i}.png", (60 * i, 100, 100), seed=40 + i)
    missing = ["--data", str(data), "--runs-dir", str(tmp_path / "runs"), "--unlabelled", str(tmp_path / "nope")]
    assert train_cli.main(missing) == 2
    assert f"--unlabelled {tmp_path / 'nope'}: no such folder or CSV file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()                                 # refused before training
    run = train_tiny(tmp_path / "runs", data, "withpool", "--train-mode", "head", "--epochs", "1",
                     "--unlabelled", str(tmp_path / "inbox"))
    assert run_store.read_pool(run).info["n_images"] == 3
    assert f"pool of {run.name}: 3 distinct images from 3 files" in capsys.readouterr().out
