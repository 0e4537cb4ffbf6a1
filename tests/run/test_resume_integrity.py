"""`--resume` finishes a run only on the bytes it was started on: a changed or missing image stops it."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_image

import train_cli
from core.config import RunConfig
from core.run import lifecycle as run_lifecycle
from core.store import hashing


@pytest.fixture
def interrupted_run(tmp_path, folder_dataset) -> Path:
    """A run that was scanned and split, then stopped before any fold (status running, no lock held)."""
    return run_lifecycle.start_run(RunConfig(data=str(folder_dataset), runs_dir=str(tmp_path / "runs"),
                                             weights="none", image_size=32, folds=2, test_size=0, epochs=2))


def resume(run_dir: Path) -> int:
    return train_cli.main(["--resume", run_dir.name, "--runs-dir", str(run_dir.parent)])


def test_a_changed_image_stops_resume_with_one_line_naming_it(interrupted_run, folder_dataset, capsys):
    changed = folder_dataset / "leaf" / "leaf_3.png"
    make_image(changed, (200, 200, 0), seed=999)  # same name, other pixels
    before = (interrupted_run / "run.json").read_text()
    assert resume(interrupted_run) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"error: --resume {interrupted_run.name}: {changed} has changed since the run scanned it; "
                     "restore it, or start a new run on the changed data"]
    assert (interrupted_run / "run.json").read_text() == before  # nothing trained, nothing recorded
    assert not (interrupted_run / "folds").exists()


def test_missing_images_are_named_and_counted(interrupted_run, folder_dataset, capsys):
    for name in ("sky_0.png", "sky_1.png", "sky_2.png"):
        (folder_dataset / "sky" / name).unlink()
    assert resume(interrupted_run) == 2
    assert f"{folder_dataset / 'sky' / 'sky_0.png'} is missing since the run scanned it (and 2 more)" in \
        capsys.readouterr().err


def test_changed_files_hashes_each_file_once_and_keeps_the_order(tmp_path, monkeypatch):
    paths = [tmp_path / f"{i}.bin" for i in range(5)]
    for i, path in enumerate(paths):
        path.write_bytes(bytes([i]) * 100)
    recorded = [hashing.file_sha256(p) for p in paths]
    paths[3].write_bytes(b"other")
    paths[1].unlink()
    reads = []
    real = hashing.file_sha256
    monkeypatch.setattr(hashing, "file_sha256", lambda path: reads.append(path) or real(path))
    assert hashing.changed_files(paths, recorded) == [paths[1], paths[3]]
    assert sorted(reads) == sorted(paths)

