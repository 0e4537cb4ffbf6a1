"""train_cli.py itself: help without the heavy libraries, and a summary that ends with what went wrong."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import train_cli
from core.store import run_store
from core.testing.synthetic import make_synthetic_run

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "sklearn", "pandas", "numpy", "PIL", "streamlit", "umap", "cleanlab", "ray")
HELP_PROBE = """
import json, sys
import train_cli
try:
    train_cli.main(json.loads(sys.argv[1]))
except SystemExit:
    pass
print(json.dumps(sorted(name for name in {heavy} if name in sys.modules)))
"""


@pytest.mark.parametrize("argv", [["--help"], *([name, "--help"] for name in train_cli.COMMANDS)])
def test_help_parses_before_anything_heavy_is_imported(argv):
    """`--help` (and every subcommand's) must not wait for torch: imports come after parsing, inside commands."""
    done = subprocess.run([sys.executable, "-c", HELP_PROBE.format(heavy=HEAVY), json.dumps(argv)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_summary_ends_with_a_diagnostics_failure_and_the_command_that_reruns_them(tmp_path, capsys):
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-x", 60, 3, 3, 16, seed=5, diagnostics=False)
    run_store.update_run_json(run, diagnostics_error="MemoryError: UMAP needs 9 GiB")
    train_cli.print_run_summary(run)
    tail = capsys.readouterr().out.rstrip().splitlines()[-3:]
    assert tail[0] == "diagnostics failed: MemoryError: UMAP needs 9 GiB"
    assert tail[-1].strip() == "once the cause is fixed: python train_cli.py diagnose 20250101-000000-x"


def test_a_summary_without_a_diagnostics_failure_says_nothing_about_them(tmp_path, capsys):
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-y", 60, 3, 3, 16, seed=5, diagnostics=False)
    train_cli.print_run_summary(run)
    assert "diagnostics failed" not in capsys.readouterr().out


def test_the_dashboard_links_printed_after_training_and_after_an_experiment_name_the_same_host(tmp_path, capsys):
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-w", 60, 3, 3, 16, seed=5, diagnostics=False)
    train_cli.print_run_summary(run)
    trained = capsys.readouterr().out
    experiment = train_cli.experiments_page(tmp_path / "runs" / "experiments" / "exp-1", "runs")
    assert f"{train_cli.DASHBOARD_URL}/?run=20250101-000000-w" in trained
    assert f"{train_cli.DASHBOARD_URL}/Experiments?experiment=exp-1" in experiment
    assert train_cli.DASHBOARD_URL == "http://127.0.0.1:8501" and "localhost" not in trained + experiment


def test_a_summary_of_a_run_whose_diagnostics_were_skipped_by_design_reports_no_failure(tmp_path, capsys):
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-v", 60, 3, 3, 16, seed=5, diagnostics=False)
    run_store.update_run_json(run, diagnostics_error=f"{run_store.DIAGNOSTICS_SKIPPED}; compute them with: "
                                                     "python train_cli.py diagnose 20250101-000000-v")
    train_cli.print_run_summary(run)
    assert "diagnostics failed" not in capsys.readouterr().out


def test_the_summary_names_the_metric_of_every_number_and_headlines_the_ensemble_with_its_interval(tmp_path,
                                                                                                   capsys):
    """Percentages with one decimal, gaps in points; the test ensemble (what predict and serve use) with its 95%
    interval and the fold mean beside it; the overfitting finding quotes balanced accuracy, the table's metric."""
    run = make_synthetic_run(tmp_path / "runs", "20250101-000000-z", 200, 3, 5, 16, seed=5)
    metrics = run_store.read_json(run / "metrics.json")
    train_cli.print_run_summary(run)
    lines = capsys.readouterr().out.splitlines()
    plain = next(i for i, line in enumerate(lines) if line.startswith("plain accuracy"))
    assert lines[plain + 1].split()[3:6] == [f"{100 * metrics['summary']['train']['accuracy']['mean']:.1f}%", "±",
                                            f"{100 * metrics['summary']['train']['accuracy']['std']:.1f}"]
    ensemble = metrics["ensemble"]["test"]
    low, high = ensemble["intervals"]["balanced_accuracy"]
    assert (f"  test ensemble (what predict and serve use): {100 * ensemble['balanced_accuracy']:.1f}%, 95% interval "
            f"{100 * low:.1f}–{100 * high:.1f}%; fold models' mean "
            f"{100 * metrics['summary']['test']['balanced_accuracy']['mean']:.1f}%") in lines
    gap = metrics["gaps"]["train_minus_val"]
    assert (f"gap train minus val: {100 * gap['balanced_accuracy']:+.1f} pts balanced accuracy, "
            f"{100 * gap['accuracy']:+.1f} pts plain accuracy") in lines
    [overfitting] = [line for line in lines if "Overfitting:" in line]
    assert (f"balanced accuracy {100 * metrics['summary']['train']['balanced_accuracy']['mean']:.1f}% on train vs "
            f"{100 * metrics['summary']['val']['balanced_accuracy']['mean']:.1f}% on validation") in overfitting

def test_a_mistyped_command_is_one_line_with_the_nearest_command(capsys):
    assert train_cli.main(["reprot", "some-run"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown command 'reprot'; did you mean 'report'?") and "\n" not in error


@pytest.mark.parametrize("argv, message", [
    (["--fold", "3"], "unrecognized arguments: --fold 3"),       # no abbreviation: `fold` is a command
    (["--folds", "x"], "argument --folds: invalid int value: 'x'"),
    (["report"], "the following arguments are required: run_id"),
])
def test_argument_errors_are_one_line_without_the_usage_text(capsys, argv, message):
    assert train_cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and error.endswith("--help)")


@pytest.mark.parametrize("command, message", [([], "no such run"), (["remedies"], "no remedies experiment")])
def test_an_empty_resume_id_is_bad_input_not_a_new_run(tmp_path, folder_dataset, capsys, command, message):
    """`--resume "$ID"` with ID unset in a script must say there is no such run or experiment, not train anew."""
    runs = tmp_path / "runs"
    argv = [*command, "--resume", "", "--data", str(folder_dataset), "--runs-dir", str(runs), "--weights", "none",
            "--image-size", "32", "--folds", "2", "--epochs", "1", "--cache-dir", str(tmp_path / "cache")]
    assert train_cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


def test_redraw_splits_is_a_flag_that_a_written_command_keeps() -> None:
    import dataclasses
    import shlex

    from core.config import RunConfig, command_line
    parsed = vars(train_cli.train_parser().parse_args(["--redraw-splits"]))
    assert parsed["redraw_splits"] is True
    assert vars(train_cli.train_parser().parse_args([]))["redraw_splits"] is False
    command = command_line(dataclasses.replace(RunConfig(), redraw_splits=True))
    assert shlex.split(command)[2:] == ["--redraw-splits"]
    assert "--redraw-splits" not in command_line(RunConfig())


def thin_class_dataset(root: Path, thin: int) -> Path:
    """The three learnable classes of the folder dataset, plus `thin` classes of two images each."""
    from conftest import make_folder_dataset, make_image
    make_folder_dataset(root)
    for c in range(thin):
        for i in range(2):
            make_image(root / f"thin{c}" / f"{i}.png", (120, 120, 20 * c), seed=1000 + 10 * c + i)
    return root


def test_drop_small_classes_is_a_flag_that_a_written_command_keeps() -> None:
    import dataclasses
    import shlex

    from core.config import RunConfig, command_line
    assert vars(train_cli.train_parser().parse_args(["--drop-small-classes"]))["drop_small_classes"] is True
    assert vars(train_cli.train_parser().parse_args([]))["drop_small_classes"] is False
    command = command_line(dataclasses.replace(RunConfig(), drop_small_classes=True))
    assert shlex.split(command)[2:] == ["--drop-small-classes"]


def test_classes_too_small_are_all_refused_at_once_then_left_out_on_request(tmp_path, capsys):
    """Seven thin classes: one line names the first five and counts the rest, the runs folder's small-classes.csv
    lists all seven; --drop-small-classes trains on the other three and records what it left out."""
    data, runs = thin_class_dataset(tmp_path / "data", thin=7), tmp_path / "runs"
    argv = ["--data", str(data), "--runs-dir", str(runs), "--weights", "none", "--image-size", "32", "--folds", "2",
            "--epochs", "1", "--batch-size", "8", "--cache-dir", str(tmp_path / "cache")]
    assert train_cli.main(argv) == 2
    error = capsys.readouterr().err.strip()
    listing = runs / run_store.SMALL_CLASSES_CSV
    assert "\n" not in error and "7 classes are too small for --folds 2" in error and "and 2 more" in error
    assert f"(all listed in {listing})" in error and "--drop-small-classes" in error
    import pandas as pd
    assert sorted(pd.read_csv(listing)["label"]) == [f"thin{c}" for c in range(7)]
    assert run_store.list_runs(runs) == []

    assert train_cli.main([*argv, "--drop-small-classes", "--prepare-only"]) == 0   # the folds would add nothing
    assert "left out 7 classes too small for the folds (14 images" in capsys.readouterr().out
    run_dir = run_store.list_runs(runs)[0].path
    info = json.loads((run_dir / "run.json").read_text())
    assert info["config"]["drop_small_classes"] is True and info["classes"] == ["apple", "leaf", "sky"]
    assert info["dataset"]["dropped_classes"][0] == {"label": "thin0", "images": 2, "units": 2}
    assert len(info["dataset"]["dropped_classes"]) == 7 and info["superclasses"] is None
    assert set(pd.read_parquet(run_dir / "samples.parquet")["label"]) == {"apple", "leaf", "sky"}


def test_preprocessing_and_embedder_are_options_a_written_command_keeps(capsys) -> None:
    import dataclasses

    from core.config import RunConfig, command_line
    parsed = vars(train_cli.train_parser().parse_args(["--preprocessing", "model", "--embedder", "convnext_tiny"]))
    assert (parsed["preprocessing"], parsed["embedder"]) == ("model", "convnext_tiny")
    command = command_line(dataclasses.replace(RunConfig(), preprocessing="model", embedder="convnext_tiny"))
    assert "--preprocessing model --embedder convnext_tiny" in command
    assert train_cli.main(["--preprocessing", "own"]) == 2
    assert "invalid choice: 'own'" in capsys.readouterr().err


def test_ssl_options_are_parsed_and_a_written_command_keeps_them(capsys) -> None:
    from core.config import RunConfig, command_line
    parsed = vars(train_cli.train_parser().parse_args(["--ssl-method", "byol", "--ssl-epochs", "3",
                                                       "--ssl-batch-size", "16", "--ssl-lr", "0.001"]))
    cfg = RunConfig(**{key: parsed[key] for key in ("ssl_method", "ssl_epochs", "ssl_batch_size", "ssl_lr")})
    assert "--ssl-method byol --ssl-epochs 3 --ssl-batch-size 16 --ssl-lr 0.001" in command_line(cfg)
    assert "--ssl" not in command_line(RunConfig())
    assert train_cli.main(["--ssl-method", "dino"]) == 2
    assert "invalid choice: 'dino'" in capsys.readouterr().err


def test_an_unknown_backbone_remedy_is_one_line_before_anything_trains(tmp_path, capsys) -> None:
    assert train_cli.main(["remedies", "--runs-dir", str(tmp_path), "--remedies", "backbone:resnet9000"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: Unknown --remedies backbone:MODEL 'resnet9000'") and "\n" not in error
    assert not any(tmp_path.iterdir())
