"""The review list across pages (AppTest): adding from galleries and tables, the URL, the Review page, the
per-image dialog with similar images, and a run folder left byte for byte as it was."""
from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from dashboard_fixtures import COMPLETE, PAGES, dashboard_env, open_page, runs_dir, share_link_url  # noqa: F401
from streamlit.testing.v1 import AppTest

from core.data import cleaning
from core.store import run_store


def add(app: AppTest, key: str, action: str = "drop", label: str | None = None) -> AppTest:
    app.radio(key=f"{key}-action").set_value(action).run()
    if label:
        app.selectbox(key=f"{key}-label").set_value(label).run()
    app.button(key=f"{key}-add").click().run()
    assert not app.exception, app.exception[0].stack_trace
    return app


def review_param(app: AppTest) -> str:
    return app.query_params.get("review") or ""


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_an_empty_review_page_says_how_to_fill_it(dashboard_env) -> None:
    app = open_page("Review", run=COMPLETE)
    assert not app.exception and "The review list is empty" in app.info[0].value


def test_a_gallery_adds_all_its_images_with_one_action_and_the_review_page_lists_them(dashboard_env) -> None:
    app = add(open_page("Misclassified", run=COMPLETE), "wrong-all", "relabel", "class_b")
    items = review_param(app).split(",")
    assert len(items) > 10 and all(item.endswith("r1") for item in items)   # class_b is class index 1
    assert f"{len(items)} images on the review list" in app.success[0].value
    assert "review=" + items[0] in share_link_url(app)   # in the link to copy
    review = open_page("Review", run=COMPLETE, review=review_param(app))
    assert not review.exception
    # a class_b image "relabelled" to class_b keeps its label: the Review page counts it as a keep
    samples = run_store.read_table(dashboard_env / COMPLETE, "samples").set_index("sample_id")
    own = sum(samples.label[int(item[:-2])] == "class_b" for item in items)
    assert metrics(review) == {"Images on the list": str(len(items)), "Drop": "0",
                               "Relabel": str(len(items) - own), "Keep": str(own)}


def test_classes_cell_and_data_tables_add_to_the_list_carried_by_the_url(dashboard_env) -> None:
    app = add(open_page("Classes", run=COMPLETE, true="class_a", pred="class_b"), "cell-all")
    cell = review_param(app)
    assert cell and all(item.endswith("d") for item in cell.split(","))
    app = add(open_page("Data", run=COMPLETE, tab="label_issues", review=cell), "issues-add", "suggested")
    issues = run_store.read_table(dashboard_env / COMPLETE, "label_issues")
    classes = run_store.read_json(dashboard_env / COMPLETE / "run.json")["classes"]
    relabels = {f"{i}r{classes.index(label)}" for i, label in zip(issues.sample_id, issues.suggested_label)}
    assert relabels <= set(review_param(app).split(","))   # each image to its own suggested class
    app = add(open_page("Data", run=COMPLETE, tab="label_issues", review=review_param(app)), "issues-add", "keep")
    items = review_param(app).split(",")
    # one decision per image, in order of first addition; a later action on the same image replaces the earlier
    assert [item[:-1] for item in items[:len(cell.split(","))]] == [item[:-1] for item in cell.split(",")]
    assert {f"{i}k" for i in issues.sample_id} <= set(items)
    app = add(open_page("Data", run=COMPLETE, tab="duplicates", review=review_param(app)), "dup-exact")
    duplicates = run_store.read_table(dashboard_env / COMPLETE, "duplicates")
    exact_b = duplicates.sample_id_b[duplicates.kind == "exact"]
    assert {f"{i}d" for i in exact_b} <= set(review_param(app).split(","))
    review = open_page("Review", run=COMPLETE, review=review_param(app))
    assert metrics(review)["Images on the list"] == str(len(review_param(app).split(",")))
    table = review.dataframe[0].value
    assert set(table.sample_id) == {int(item[:-1]) for item in review_param(app).split(",")}
    assert any("cleanlab quality" in reason for reason in table.reason)
    # the source run's settings, into the runs folder it was found in, where Compare finds both runs
    [command] = [c.value for c in review.main.code if "--data" in c.value]
    source = run_store.read_json(dashboard_env / COMPLETE / "run.json")["config"]
    assert command == cleaning.training_command("cleaned.csv", source, dashboard_env)
    argv = shlex.split(command)
    assert argv[argv.index("--runs-dir") + 1] == str(dashboard_env)
    assert len(review.get("download_button")) == 2


def test_a_stale_or_edited_review_link_never_breaks_a_page(dashboard_env) -> None:
    app = open_page("Review", run=COMPLETE, review="3d,99999d,zz,4r77,5k")
    assert not app.exception and metrics(app)["Images on the list"] == "2"


def test_the_review_dialog_shows_evidence_and_similar_images_from_the_cache(dashboard_env, tmp_path) -> None:
    app = open_page("Misclassified", run=COMPLETE)
    app.button(key="review-wrong-0").click().run()
    assert not app.exception and "Similar images" in [h.value for h in app.subheader]
    assert any("12 nearest images in the backbone space" in c.value for c in app.caption)
    assert list((tmp_path / "cache" / "neighbours").rglob("*.faiss"))


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_using_the_dashboard_leaves_the_run_folder_byte_for_byte_unchanged(dashboard_env) -> None:
    run = dashboard_env / COMPLETE
    before = file_hashes(run)
    app = add(open_page("Misclassified", run=COMPLETE), "wrong-all")
    app.button(key="review-wrong-0").click().run()   # the dialog: evidence and similar images (index built)
    assert "Similar images" in [h.value for h in app.subheader]
    for page in PAGES:
        assert not open_page(page, run=COMPLETE, review=review_param(app)).exception
    assert file_hashes(run) == before


def test_the_link_to_a_long_review_list_carries_every_image_with_its_commas_unescaped(dashboard_env) -> None:
    """The sidebar's link is one line of link text however long the list (a box showing it filled the sidebar)."""
    n = min(150, len(run_store.read_table(dashboard_env / COMPLETE, "samples")))
    review = ",".join(f"{i}d" for i in range(n))
    assert f"review={review}" in share_link_url(open_page("Review", run=COMPLETE, review=review))
