"""A full disk or a folder we may not write, at each write point a command has: one line naming the path and what
to free or fix, exit 2, nothing half-written that a reader would take for complete, and the same command (or
`fold` again, for a fold job) finishes once there is space again."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from storage_faults import Faults, leftovers, one_error_line

import train_cli
from core.config import RunConfig
from core.run import lifecycle
from core.store import run_store
from core.testing.synthetic import make_synthetic_run

RUN = "20250101-000000-disk"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("disk") / "runs"
    run_dir = make_synthetic_run(runs, RUN, 60, 3, 3, 16, seed=5, diagnostics=False)
    samples = run_store.read_table(run_dir, "samples")
    run_store.write_parquet(run_dir / "label_issues.parquet", pd.DataFrame({
        "sample_id": [3], "path": [samples.path[3]], "label": [samples.label[3]], "suggested_label": ["x"],
        "quality": [0.01]}))
    return runs


@pytest.fixture
def faults(monkeypatch) -> Faults:
    return Faults(monkeypatch)


@pytest.fixture
def runs(source, tmp_path) -> Path:
    """A fresh copy of the run per test: a failed write must not leak into the next test."""
    return Path(shutil.copytree(source, tmp_path / "runs"))


def test_a_report_on_a_full_disk_is_one_line_and_no_file_until_there_is_space(runs, tmp_path, faults, capsys):
    out = tmp_path / "out" / "report.html"
    argv = ["report", RUN, "--runs-dir", str(runs), "--out", str(out)]
    faults.fill_at(lambda path: path == out)
    assert train_cli.main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: no space left writing {out} (") and "free space on that file system" in line
    assert not out.exists() and not leftovers(tmp_path / "out")
    faults.free()
    assert train_cli.main(argv) == 0 and out.stat().st_size > 0


@pytest.mark.parametrize("code, words", [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_a_folder_we_may_not_write_names_the_folder_to_make_writable(runs, tmp_path, faults, capsys, code, words):
    out = tmp_path / "out" / "report.html"
    faults.fill_at(lambda path: path == out, code)
    assert train_cli.main(["report", RUN, "--runs-dir", str(runs), "--out", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == (f"error: cannot write {out} ({words}): make {out.parent} writable by this user, or point the "
                    "command at another folder, then run the same command again")


@pytest.mark.parametrize("full", ["review.json", "cleaned.csv"])
def test_a_cleaned_manifest_is_never_there_without_its_review(runs, tmp_path, faults, capsys, full):
    out = tmp_path / "out" / "cleaned.csv"
    argv = ["clean", RUN, "--runs-dir", str(runs), "--drop-label-issues", "0.05", "--out", str(out)]
    faults.fill_at(lambda path: path.name == full)
    assert train_cli.main(argv) == 2
    assert f"no space left writing {out.parent / full}" in one_error_line(capsys.readouterr().err)
    assert not out.exists() and not leftovers(tmp_path / "out")
    faults.free()
    assert train_cli.main(argv) == 0 and out.exists() and (out.parent / "review.json").exists()


@pytest.mark.parametrize("full", ["diagnostics.json"])
def test_diagnostics_on_a_full_disk_stop_with_one_line_and_rerun_once_there_is_space(runs, faults, capsys, full):
    run_dir = runs / RUN
    faults.fill_at(lambda path: path.name == full)
    assert train_cli.main(["diagnose", RUN, "--runs-dir", str(runs)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"error: no space left writing {run_dir / full}" in line or \
        f"error: no space left writing {run_dir / 'run.json'}" in line   # recording the failure needs space too
    assert not (run_dir / "diagnostics.json").exists() and not leftovers(run_dir)
    assert run_store.read_run_entry(run_dir).status == "complete"   # the trained run is untouched
    faults.free()
    assert train_cli.main(["diagnose", RUN, "--runs-dir", str(runs)]) == 0
    assert (run_dir / "diagnostics.json").exists() and (run_dir / "findings.json").exists()


def test_a_fold_job_on_a_full_disk_leaves_no_fold_folder_and_runs_again(tmp_path, folder_dataset, faults, capsys):
    run_dir = lifecycle.prepare(RunConfig(data=str(folder_dataset), runs_dir=str(tmp_path / "runs"), weights="none",
                                          image_size=32, folds=2, test_size=0, epochs=1, batch_size=8))
    argv = ["fold", run_dir.name, "0", "--runs-dir", str(run_dir.parent)]
    fold0 = run_store.fold_dir(run_dir, 0)
    faults.fill_at(lambda path: path == fold0)
    assert train_cli.main(argv) == 2
    assert f"error: no space left writing {fold0} (" in one_error_line(capsys.readouterr().err)
    assert not fold0.exists() and not leftovers(run_dir)
    faults.free()
    assert train_cli.main(argv) == 0 and (fold0 / "fold.json").exists()


def test_a_runs_folder_we_may_not_write_stops_training_before_any_work_with_one_line(tmp_path, folder_dataset,
                                                                                    monkeypatch, capsys):
    """The run's own folder is made with mkdir, outside the atomic writes: main still says it in one line."""
    real_mkdir = Path.mkdir

    def refused(self, *args, **kwargs):
        if self.parent == tmp_path / "runs":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)
    monkeypatch.setattr(Path, "mkdir", refused)
    assert train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(tmp_path / "runs"), "--weights", "none",
                           "--image-size", "32", "--folds", "2", "--test-size", "0"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot write {tmp_path / 'runs'}/") and "(permission denied)" in line


# ---------------------------------------------------------------- a real small file system

ON_A_SMALL_DISK = r"""
set -e
mount -t tmpfs -o size=16m tmpfs "$1"
head -c 16700000 /dev/zero > "$1/filler"         # leaves about 70 kB: less than the report needs
set +e
"$2" train_cli.py report "$3" --runs-dir "$4" --out "$1/report.html" 2> "$5/first.err"; echo $? > "$5/first.rc"
ls -A "$1" > "$5/left.txt"
rm "$1/filler"
"$2" train_cli.py report "$3" --runs-dir "$4" --out "$1/report.html" 2> "$5/second.err"; echo $? > "$5/second.rc"
test -s "$1/report.html"; echo $? > "$5/written.rc"
"""


def test_a_report_on_a_real_full_tmpfs_and_again_once_space_is_freed(runs, tmp_path):
    """A 16 MB tmpfs mounted in a private mount namespace (`unshare -m`, so nothing stays mounted if the test
    dies): the first report fails with one line, leaves only the filler, and the second one, after freeing
    space, writes the report."""
    disk, notes = tmp_path / "disk", tmp_path / "notes"
    disk.mkdir(), notes.mkdir()
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {disk}"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here (uid {os.getuid()}): {probe.stderr.strip()[:200]}")
    subprocess.run(["unshare", "-m", "sh", "-c", ON_A_SMALL_DISK, "sh", str(disk), sys.executable, RUN, str(runs),
                    str(notes)], cwd=REPO, check=True, timeout=300)
    assert (notes / "first.rc").read_text().strip() == "2"
    line = one_error_line((notes / "first.err").read_text())
    assert line.startswith(f"error: no space left writing {disk / 'report.html'} (0 MB free there)")
    assert (notes / "left.txt").read_text().split() == ["filler"]     # no partial report, no temporary file
    assert (notes / "second.rc").read_text().strip() == "0" and (notes / "written.rc").read_text().strip() == "0"


def test_training_on_a_full_disk_stops_with_one_line_and_resume_finishes_once_there_is_space(
        tmp_path, folder_dataset, faults, capsys):
    """The disk fills up as fold 1's outputs are renamed into place, and stays full: recording the failure in
    run.json fails too, so the line names run.json; what was printed before it gives the --resume command."""
    runs = tmp_path / "runs"
    faults.fill_at(lambda path: path.name == "fold1" and path.parent.name == "folds")
    assert train_cli.main(["--data", str(folder_dataset), "--runs-dir", str(runs), "--weights", "none",
                           "--image-size", "32", "--folds", "2", "--epochs", "1", "--batch-size", "8",
                           "--test-size", "0"]) == 2
    [run_dir] = list(runs.iterdir())
    printed = capsys.readouterr()
    line = one_error_line(printed.err)
    assert line.startswith("error: no space left writing ") and str(run_dir) in line
    assert f"finish it with: python train_cli.py --resume {run_dir.name}" in printed.out + printed.err
    assert not run_store.fold_dir(run_dir, 1).exists() and not leftovers(run_dir)
    assert run_store.read_run_entry(run_dir).status != "complete"
    faults.free()
    assert train_cli.main(["--resume", run_dir.name, "--runs-dir", str(runs)]) == 0
    assert run_store.read_run_entry(run_dir).status == "complete"
    assert (run_store.fold_dir(run_dir, 1) / "fold.json").exists() and (run_dir / "diagnostics.json").exists()
