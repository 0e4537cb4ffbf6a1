"""From review decisions to a cleaned manifest and review.json; the `clean` command; the cleaned run's link back."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd
import pytest

import train_cli
from core.config import RunConfig
from core.data import cleaning
from core.data.cleaning import Decision
from core.data.dataset import scan_dataset
from core.store import run_store
from core.testing.synthetic import make_synthetic_run

CLASSES = ["class_a", "class_b", "class_c", "class_d"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A synthetic run with a hand-written label_issues.parquet (no cleanlab needed) and planted exact duplicates."""
    runs = tmp_path_factory.mktemp("clean") / "runs"
    run_dir = make_synthetic_run(runs, "20250101-000000-src", 120, 4, 3, 16, seed=5, diagnostics=False)
    samples = run_store.read_table(run_dir, "samples")
    issues = pd.DataFrame({"sample_id": [7, 3, 11], "path": samples.path[[7, 3, 11]].to_list(),
                           "label": samples.label[[7, 3, 11]].to_list(),
                           "suggested_label": ["class_b", "class_c", "class_a"], "quality": [0.02, 0.04, 0.30]})
    run_store.write_parquet(run_dir / "label_issues.parquet", issues)
    return run_dir


def info_of(run_dir: Path) -> dict:
    return run_store.read_json(run_dir / "run.json")


def test_the_review_list_round_trips_through_a_short_url_value() -> None:
    decisions = [Decision(12, "drop"), Decision(40, "relabel", "class_d"), Decision(7, "keep")]
    text = cleaning.encode_review(decisions, CLASSES)
    assert text == "12d,40r3,7k"
    assert cleaning.decode_review(text, CLASSES, n_samples=100) == decisions
    assert cleaning.decode_review("12d,999d,5r9,x,,3q,8k", CLASSES, n_samples=100) == [
        Decision(12, "drop"), Decision(8, "keep")]   # out of range, unknown class and garbage are left out
    assert cleaning.encode_review([Decision(i, "drop") for i in range(cleaning.URL_LIMIT + 1)], CLASSES) is None


def test_adding_to_the_list_replaces_an_earlier_decision_about_the_same_image() -> None:
    decisions = cleaning.add_decisions([], [5, 2], "drop")
    decisions = cleaning.add_decisions(decisions, [2, 9], "relabel", "class_b")
    assert decisions == [Decision(5, "drop"), Decision(2, "relabel", "class_b"), Decision(9, "relabel", "class_b")]
    with pytest.raises(ValueError):
        Decision(1, "relabel")
    with pytest.raises(ValueError):
        Decision(1, "rename")


def test_the_cleaned_manifest_applies_the_choices_and_is_read_by_data_from_anywhere(run, tmp_path) -> None:
    samples, info = run_store.read_table(run, "samples"), info_of(run)
    decisions = [Decision(3, "drop"), Decision(10, "drop"), Decision(4, "relabel", "class_c"), Decision(5, "keep")]
    manifest = cleaning.cleaned_manifest(samples, info["dataset"]["root"], decisions)
    assert list(manifest.columns) == ["path", "label", "group"] and len(manifest) == len(samples) - 2
    root = Path(info["dataset"]["root"])
    expected = samples[~samples.sample_id.isin([3, 10])]
    assert manifest.path.to_list() == [(root / p).as_posix() for p in expected.path]
    labels = dict(zip(expected.sample_id, manifest.label))   # rows stay in sample_id order
    assert labels[4] == "class_c" and labels[5] == samples.label[5]
    assert all(labels[i] == samples.label[i] for i in labels if i != 4)
    saved = tmp_path / "elsewhere" / "cleaned.csv"
    saved.parent.mkdir()
    saved.write_bytes(cleaning.manifest_csv(manifest))
    dataset = scan_dataset(saved)
    assert len(dataset.samples) == len(manifest) and not dataset.skipped
    assert (dataset.samples.label == "class_c").sum() == (manifest.label == "class_c").sum()


def test_a_run_with_superclasses_keeps_them_in_its_cleaned_manifest(run, tmp_path) -> None:
    samples, info = run_store.read_table(run, "samples"), info_of(run)
    hierarchy = {"class_a": "first", "class_b": "first", "class_c": "second", "class_d": "second"}
    relabel = int(samples.index[samples.label == "class_a"][0])
    manifest = cleaning.cleaned_manifest(samples, info["dataset"]["root"], [Decision(relabel, "relabel", "class_c")],
                                         hierarchy)
    assert list(manifest.columns) == ["path", "label", "group", "superclass"]
    assert manifest.superclass[relabel] == "second"   # the new class's superclass
    saved = tmp_path / "cleaned.csv"
    saved.write_bytes(cleaning.manifest_csv(manifest))
    assert scan_dataset(saved).superclasses == hierarchy


def test_review_json_says_what_changed_why_and_for_which_manifest(run) -> None:
    samples, info = run_store.read_table(run, "samples"), info_of(run)
    decisions = [Decision(7, "relabel", "class_b"), Decision(20, "drop")]
    reasons = cleaning.evidence([7, 20], run_store.read_table(run, "label_issues"), None, None)
    csv_bytes, record = cleaning.build_cleaned(info, samples, decisions, reasons)
    assert record["source_run"] == run.name and record["counts"] == {"drop": 1, "relabel": 1, "keep": 0}
    assert record["rows"] == {"source": len(samples), "cleaned": len(samples) - 1}
    assert record["changes"][0] == {"sample_id": 7, "path": samples.path[7], "action": "relabel",
                                    "label": samples.label[7], "new_label": "class_b",
                                    "reason": "cleanlab quality 0.02, suggested class_b"}
    assert record["changes"][1]["reason"] == "reviewed by hand"
    assert record["command"] == cleaning.training_command("cleaned.csv", info["config"])
    import hashlib
    assert record["manifest_sha256"] == hashlib.sha256(csv_bytes).hexdigest()


def test_evidence_names_duplicates_and_outliers() -> None:
    duplicates = pd.DataFrame({"sample_id_a": [1, 2], "sample_id_b": [4, 5], "kind": ["exact", "near"],
                               "similarity": [1.0, 0.91]})
    outliers = pd.DataFrame({"sample_id": [5, 6], "z": [4.2, 0.1], "is_outlier": [True, False]})
    notes = cleaning.evidence([4, 5, 6], None, duplicates, outliers)
    assert notes == {4: "identical file to #1", 5: "near-duplicate (similarity 0.91) of #2; outlier in its class "
                     "(z 4.2)", 6: ""}


def test_rules_drop_low_quality_label_issues_and_all_but_the_first_identical_file(run) -> None:
    samples, issues = run_store.read_table(run, "samples"), run_store.read_table(run, "label_issues")
    repeats = samples[samples.sha256.duplicated(keep="first")].sample_id.to_list()
    assert repeats   # the synthetic run plants identical files
    assert cleaning.rule_decisions(samples, issues, 0.05, False) == [Decision(3, "drop"), Decision(7, "drop")]
    dropped = [d.sample_id for d in cleaning.rule_decisions(samples, issues, None, True)]
    assert dropped == sorted(repeats)
    for sha in samples.sha256[samples.sample_id.isin(dropped)]:
        assert samples[samples.sha256 == sha].sample_id.min() not in dropped   # one copy of each file stays


def test_with_detectors_only_the_agreed_label_issues_are_dropped_and_the_evidence_names_them(run) -> None:
    samples, issues = run_store.read_table(run, "samples"), run_store.read_table(run, "label_issues")
    issues = issues.assign(cleanlab=True, aum_flag=[True, False, True], neighbours_flag=False, detectors=[2, 1, 2],
                           agreed=[True, False, True])
    assert cleaning.rule_decisions(samples, issues, 0.05, False) == [Decision(7, "drop")]   # 3 has cleanlab alone
    assert list(cleaning.suspected_label_errors(issues).sample_id) == [7, 11]
    said = cleaning.evidence([7, 3], issues, None, None)
    assert said[7].startswith("flagged by cleanlab, AUM; cleanlab quality 0.02")
    assert said[3].startswith("flagged by cleanlab; ")
    why = cleaning.rules_outcome(samples, issues, 0.05, False, [Decision(7, "drop")])
    assert "2 of 3 suspected label issues kept (flagged by too few detectors, or label quality 0.05" in why


def test_clean_command_writes_the_manifest_and_review_json_and_leaves_the_run_alone(run, tmp_path, capsys) -> None:
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = tmp_path / "out" / "cleaned.csv"
    code = train_cli.main(["clean", run.name, "--runs-dir", str(run.parent), "--drop-label-issues", "0.05",
                           "--drop-exact-duplicates", "--out", str(out)])
    assert code == 0
    review = json.loads((out.parent / "review.json").read_text())
    samples = run_store.read_table(run, "samples")
    assert review["source_run"] == run.name
    assert review["rules"] == {"drop_label_issues": 0.05, "drop_exact_duplicates": True, "merge_classes": None}
    assert len(pd.read_csv(out)) == len(samples) - review["counts"]["drop"]
    assert f"--data {out}" in capsys.readouterr().out
    assert cleaning.manifest_origin(out) == {"source_run": run.name, "review": str(out.parent / "review.json")}
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("rules, said", [
    (["--drop-label-issues", "0.05", "--drop-exact-duplicates"],
     "1 of 3 suspected label issues kept (label quality 0.05 or more"),
    (["--drop-exact-duplicates"], "3 of 3 suspected label issues kept (no --drop-label-issues given"),
    (["--drop-label-issues", "0.05"], "exact duplicate files kept (no --drop-exact-duplicates given)"),
])
def test_clean_says_which_flagged_images_it_kept_and_why(run, tmp_path, capsys, rules, said) -> None:
    assert train_cli.main(["clean", run.name, "--runs-dir", str(run.parent), *rules,
                           "--out", str(tmp_path / "cleaned.csv")]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    review = json.loads((tmp_path / "review.json").read_text())
    assert f"({review['counts']['drop']} dropped; " in first and said in first


def parsed_training_command(command: str) -> RunConfig:
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train_cli.py"]
    args = vars(train_cli.train_parser().parse_args(argv[2:]))
    assert not args.pop("resume") and not args.pop("prepare_only")
    assert not args.pop("print_id") and not args.pop("assemble_only")
    train_cli.execution_settings(args)
    return RunConfig(**args)


def test_the_printed_training_command_keeps_the_source_runs_settings_runs_folder_and_cache(tmp_path, monkeypatch,
                                                                                           capsys) -> None:
    """Run as printed, the command trains the cleaned manifest like the source run, where Compare finds both."""
    monkeypatch.chdir(tmp_path)
    source = make_synthetic_run(Path("my runs"), "20250101-000000-src", 120, 4, 3, 16, seed=5, diagnostics=False)
    info = info_of(source)
    info["config"].update(cache_dir=str(tmp_path / "my cache"), lr=0.000123456789, use_groups=False)
    run_store.write_json(source / "run.json", info)
    assert train_cli.main(["clean", source.name, "--runs-dir", "my runs", "--drop-exact-duplicates",
                           "--out", "out/cleaned.csv"]) == 0
    command = capsys.readouterr().out.strip().splitlines()[-1].strip()
    expected = RunConfig(**{**info["config"], "data": "out/cleaned.csv", "name": "cleaned", "runs_dir": "my runs"})
    assert parsed_training_command(command) == expected
    assert "--folds 3" in command and f"--cache-dir '{tmp_path / 'my cache'}'" in command


@pytest.mark.parametrize("args, message", [
    (["clean", "no-such-run", "--drop-exact-duplicates"], "no such run"),
    (["clean", "20250101-000000-src"], "nothing to do"),
    (["clean", "20250101-000000-src", "--drop-label-issues", "3"], "--drop-label-issues 3.0"),
    (["clean", "20250101-000000-src", "--drop-exact-duplicates", "--out", "x.txt"], "--out x.txt"),
])
def test_clean_command_bad_input_exits_2_with_one_line(run, args, message, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert train_cli.main([*args, "--runs-dir", str(run.parent)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_clean_command_needs_diagnostics_for_label_issues(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    make_synthetic_run(runs, "20250101-000000-bare", 60, 3, 3, 8, diagnostics=False)
    assert train_cli.main(["clean", "20250101-000000-bare", "--runs-dir", str(runs), "--drop-label-issues", "0.1",
                           "--out", str(tmp_path / "c.csv")]) == 2
    assert "diagnose" in capsys.readouterr().err


def test_an_edited_manifest_or_a_missing_review_links_to_no_source(run, tmp_path) -> None:
    out = tmp_path / "cleaned.csv"
    cleaning.clean_run(run, info_of(run), None, True, out)
    assert cleaning.manifest_origin(out)["source_run"] == run.name
    out.write_text(out.read_text() + "extra.png,class_a,\n")
    assert cleaning.manifest_origin(out) is None
    assert cleaning.manifest_origin(tmp_path / "nothing.csv") is None and cleaning.manifest_origin(None) is None


def test_the_review_table_round_trips_and_flags_a_relabel_without_a_class(run) -> None:
    """Editing happens in this table on the Review page."""
    samples = run_store.read_table(run, "samples")
    decisions = [Decision(7, "relabel", "class_b"), Decision(20, "drop"), Decision(2, "keep")]
    table = cleaning.review_table(decisions, samples, {7: "cleanlab quality 0.02, suggested class_b"})
    assert table.columns.to_list() == ["sample_id", "path", "split", "label", "action", "new_label", "reason",
                                       "remove"]
    assert table.path.to_list() == samples.path[[7, 20, 2]].to_list()
    assert cleaning.decisions_from_table(table) == (decisions, [])
    table.loc[1, "remove"] = True
    table.loc[2, ["action", "new_label"]] = ["relabel", None]
    table.loc[0, "new_label"] = samples.label[7]
    kept, problems = cleaning.decisions_from_table(table)
    assert kept == [Decision(7, "keep")] and problems == ["#2: pick the new class to relabel it to"]


# ---------------------------------------------------------------- merged classes

def test_merge_classes_relabels_both_sides_into_one_class_and_keeps_the_rest(run, tmp_path, capsys) -> None:
    out = tmp_path / "merged.csv"
    assert train_cli.main(["clean", run.name, "--runs-dir", str(run.parent), "--merge-classes", "class_b,class_c",
                           "--out", str(out)]) == 0
    samples, manifest = run_store.read_table(run, "samples"), pd.read_csv(out)
    merged = samples.label.isin(["class_b", "class_c"])
    assert len(manifest) == len(samples)
    assert (manifest.label[merged.to_numpy()] == "class_b+class_c").all()
    assert manifest.label[~merged.to_numpy()].to_list() == samples.label[~merged].to_list()
    review = json.loads((tmp_path / "review.json").read_text())
    assert review["rules"]["merge_classes"] == {"class_b": "class_b+class_c", "class_c": "class_b+class_c"}
    assert review["counts"]["relabel"] == merged.sum()
    assert review["changes"][0]["reason"] == "classes class_b and class_c merged into class_b+class_c"
    said = capsys.readouterr().out
    assert f"{merged.sum()} images relabelled into class_b+class_c" in said and f"--data {out}" in said
    # the cleaned manifest names its source, so a run on it keeps the source's splits
    assert cleaning.manifest_origin(out)["source_run"] == run.name


def test_merges_combine_with_drops_and_take_a_name(run, tmp_path) -> None:
    out = tmp_path / "merged.csv"
    assert train_cli.main(["clean", run.name, "--runs-dir", str(run.parent), "--merge-classes", "class_a,class_d",
                           "--merged-name", "ad", "--drop-label-issues", "0.05", "--out", str(out)]) == 0
    review = json.loads((tmp_path / "review.json").read_text())
    dropped = {c["sample_id"] for c in review["changes"] if c["action"] == "drop"}
    assert dropped == {3, 7}   # a dropped image is not relabelled as well
    assert set(pd.read_csv(out).label) == {"ad", "class_b", "class_c"}
    relabelled = [c for c in review["changes"] if c["action"] == "relabel"]
    assert relabelled and not {c["sample_id"] for c in relabelled} & dropped


def test_several_merges_and_class_names_with_commas() -> None:
    classes = ["red, dark", "red", "blue", "green"]
    where = "see run.json"
    assert cleaning.parse_merge("red, dark,red", classes, where) == ["red, dark", "red"]
    groups = [cleaning.parse_merge("red, dark,red", classes, where), cleaning.parse_merge("blue,green", classes, where)]
    assert cleaning.merge_map(groups, [None, None], classes) == {
        "red, dark": "red, dark+red", "red": "red, dark+red", "blue": "blue+green", "green": "blue+green"}
    assert cleaning.merge_map([["red", "blue"]], ["red"], classes) == {"red": "red", "blue": "red"}
    command = cleaning.merge_command("RUN", [("red, dark", "red")], "reds")
    assert shlex.split(command) == ["python", "train_cli.py", "clean", "RUN", "--merge-classes", "red, dark,red",
                                    "--merged-name", "reds", "--out", "merged.csv"]


@pytest.mark.parametrize("args, message", [
    (["--merge-classes", "class_a,clas_b"], "no class 'clas_b' (did you mean 'class_b'?); the run's classes are "
                                            "listed under \"classes\" in "),
    (["--merge-classes", "class_a,class_a"], "name two or more different classes"),
    (["--merge-classes", "class_a,class_b", "--merge-classes", "class_b,class_c"], "'class_b' is in two merges"),
    (["--merge-classes", "class_a,class_b", "--merged-name", "class_c"], "--merged-name 'class_c' is another class"),
    (["--merged-name", "x", "--drop-exact-duplicates"], "--merged-name names one merge"),
])
def test_merge_classes_bad_input_exits_2_with_one_line(run, args, message, capsys, tmp_path) -> None:
    assert train_cli.main(["clean", run.name, "--runs-dir", str(run.parent), *args,
                           "--out", str(tmp_path / "m.csv")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert not (tmp_path / "m.csv").exists()
