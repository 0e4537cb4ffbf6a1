"""A damaged run folder (a truncated parquet, a file that is not JSON or not a JSON object, an embedding cut short
or of the wrong shape, a newer format version) is refused in one line naming the file, by every command that takes
a run; the dashboard shows that run's error and every other run still works."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from dashboard_fixtures import open_page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import train_cli
from core.errors import UserError
from core.store import run_store
from core.store.run_check import DamagedRunError, check_run_files
from core.testing.synthetic import make_synthetic_run

GOOD, BAD = "20250102-000000-good", "20250101-000000-bad"
PARQUET = ["samples.parquet", "predictions.parquet", "history.parquet", "folds/fold0/predictions.parquet",
           "folds/fold1/history.parquet"]
JSON = ["metrics.json", "folds/fold0/fold.json", "run.json"]
NPY = ["embeddings/backbone.npy", "embeddings/fold1.npy"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("damaged") / "runs"
    make_synthetic_run(runs, BAD, 60, 3, 2, 8, seed=5, diagnostics=False)
    return runs


def truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data.rstrip()) * fraction)])


def reshape(path: Path, how: str) -> None:
    array = np.load(path)
    np.save(path, array.ravel() if how == "flat" else array[:-1])


def bump_version(path: Path, version: int) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": version}))


MUTATIONS = st.one_of(
    st.tuples(st.just(truncate), st.sampled_from(PARQUET + JSON + NPY), st.floats(0, 0.99)),
    st.tuples(st.just(lambda path, junk: path.write_bytes(b"\xff" + junk)), st.sampled_from(PARQUET + JSON + NPY),
              st.binary(max_size=64)),
    st.tuples(st.just(lambda path, text: path.write_text(text)), st.sampled_from(JSON),
              st.sampled_from(["[]", "null", '"run"', "3", "[{}]"])),
    st.tuples(st.just(reshape), st.sampled_from(NPY), st.sampled_from(["flat", "short"])),
    st.tuples(st.just(bump_version), st.just("run.json"), st.integers(3, 10**6)))


def damaged_copy(pristine: Path, folder: Path, mutation) -> tuple[Path, str]:
    runs = Path(shutil.copytree(pristine, folder / "runs"))
    change, name, value = mutation
    change(runs / BAD / name, value)
    return runs, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS)
def test_any_damaged_file_is_refused_in_one_line_naming_it(pristine, mutation):
    with tempfile.TemporaryDirectory() as folder:
        runs, name = damaged_copy(pristine, Path(folder), mutation)
        with pytest.raises(UserError) as raised:
            run_store.require_run(runs, BAD)
        message = str(raised.value)
        assert "\n" not in message and BAD in message
        assert (run_store.RUN_JSON if name == "run.json" else str(runs / BAD / name)) in message
        if name != "run.json":
            assert isinstance(raised.value, DamagedRunError)


def test_the_pristine_run_passes(pristine):
    check_run_files(pristine / BAD)
    assert run_store.require_run(pristine, BAD).status == "complete"


@pytest.mark.parametrize("command", [["report"], ["diagnose"], ["clean", "--drop-exact-duplicates"], ["predict", "x"],
                                     ["serve"], ["explain"], ["fold", "0"]])
def test_every_command_that_takes_a_run_refuses_a_damaged_one_with_one_line(pristine, tmp_path, capsys, command):
    runs, _ = damaged_copy(pristine, tmp_path, (truncate, "predictions.parquet", 0.5))
    argv = [command[0], BAD, *command[1:], "--runs-dir", str(runs)]
    assert train_cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith(f"error: run {BAD} is damaged: {runs / BAD / 'predictions.parquet'} "
                                                  "cannot be read (")


@pytest.mark.parametrize("page", [None, "Classes", "Embeddings", "Data"])
def test_the_dashboard_shows_the_damaged_runs_error_and_the_other_run_still_works(pristine, tmp_path, monkeypatch,
                                                                                   page):
    runs, _ = damaged_copy(pristine, tmp_path, (reshape, "embeddings/backbone.npy", "short"))
    make_synthetic_run(runs, GOOD, 60, 3, 2, 8, seed=6, diagnostics=False)
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    bad = open_page(page, run=BAD)
    assert not bad.exception
    assert [t.value for t in bad.title] == [BAD]
    [error] = [e.body for e in bad.error]
    assert error.startswith("**This run cannot be read**") and "backbone.npy" in error and "shape (59, 8)" in error
    good = open_page(page, run=GOOD)
    assert not good.exception and not good.error and good.title[0].value != GOOD

