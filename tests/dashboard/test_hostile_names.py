"""Hostile class names (HTML, markdown images and links, path separators, control characters, 300 characters) in a
run: every page renders without an exception, and none of them reaches a markdown element as markup (only as a
literal code span), so nothing is injected and nothing is fetched from elsewhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from dashboard_fixtures import HOME, PAGES, open_page
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from core.store import run_store
from core.testing.synthetic import make_synthetic_run
from dashboard import formatting  # the function the pages call

RUN = "20250101-000000-hostile"
HOSTILE = ["<script>alert(1)</script>", "![pixel](http://127.0.0.1:9/p.png)", "../x/..\\y", "tab\there\x07bell",
           "[click](javascript:alert(1))", "w" * 300]
MARKUP = ["<script", "<img", "](http", "](javascript"]


FILES = "20250101-000000-files"   # a run whose image paths are hostile file names (none of them on disk)


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("hostile") / "runs"
    make_synthetic_run(runs, RUN, 90, n_folds=2, dim=8, seed=3, class_names=HOSTILE)
    files = make_synthetic_run(runs, FILES, 90, n_folds=2, dim=8, seed=3, class_names=HOSTILE)
    samples = run_store.read_table(files, "samples")
    names = [f"{HOSTILE[i % len(HOSTILE)]}/{i}\x1b[2J<img src=x onerror=alert(1)>.png" for i in range(len(samples))]
    run_store.write_parquet(files / "samples.parquet", samples.assign(path=names))
    return runs


def as_markup(text: str) -> str:
    """What Markdown reads as markup: the text without its code spans and backslash-escaped characters (both
    show literally)."""
    return re.sub(r"\\.", "", re.sub(r"(`+)(.+?)\1", "", text, flags=re.DOTALL))


def markdown_bodies(app) -> list[str]:
    """Every element whose text Streamlit renders as markdown."""
    bodies = [m.value for m in app.markdown] + [c.value for c in app.caption]
    bodies += [e.body for kind in (app.info, app.warning, app.error, app.success) for e in kind]
    bodies += [t.value for t in app.title] + [h.value for h in app.header] + [s.value for s in app.subheader]
    return bodies


TABS = [("Misclassified", "label_issues"), ("Data", "label_issues"), ("Data", "outliers"), ("Data", "properties"),
        ("Data", "duplicates"), ("Data", "skipped")]


@pytest.mark.parametrize("run", [RUN, FILES])
@pytest.mark.parametrize("page, tab", [(None, None), *[(p, None) for p in PAGES], *TABS])
def test_hostile_class_and_file_names_render_as_text_on_every_page(hostile_runs, tmp_path, monkeypatch, page, tab,
                                                                   run):
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(hostile_runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    app = open_page(page, run=run, **({"tab": tab} if tab else {}))
    assert not app.exception, app.exception
    leaks = [body for body in markdown_bodies(app) if any(m in as_markup(body) for m in MARKUP)]
    assert not leaks


@given(st.text())
def test_plain_text_escapes_every_markup_character_and_keeps_the_text(text):
    shown = formatting.plain(text)
    assert not re.search(r"[\x00-\x1f\x7f]", shown)
    assert re.sub(r"\\(.)", r"\1", shown) == re.sub(r"[\x00-\x1f\x7f]+", " ", text)   # unescaped: the same text
    bare = re.sub(r"\\.", "", shown)   # what is left once every escaped character is taken out
    assert not re.search(r"[\\`*\[\]()<>!#|~:$&]", bare)
    assert all(match.start() > 0 and bare[match.start() - 1].isalnum() and bare[match.end():match.end() + 1].isalnum()
               for match in re.finditer("_", bare))   # an underscore left bare sits inside a word


# Every URL parameter a page reads (links.choice/tabs/pager keys, the review list, the run picker's neighbours).
PARAMS = ["tab", "true", "pred", "fold", "role", "scale", "class", "experiment", "metric", "property", "by", "space",
          "color", "slice", "gap_metric", "page", "with", "review", "source", "cam", "sides", "merge_a", "merge_b"]
VALUES = ["<script>alert(1)</script>", "-1", "99999999999999999999", "", "../../etc/passwd", "%00\x00\x1b[31m",
          "a" * 5000, "1,2,x,,drop", "[click](javascript:alert(1))", "NaN", "0.5", "review:1:2:3"]


@pytest.mark.parametrize("shift", [0, 7])
@pytest.mark.parametrize("page", [None, *PAGES])
def test_hostile_url_parameters_never_break_a_page(hostile_runs, tmp_path, monkeypatch, page, shift):
    """Each parameter gets another hostile value (two rotations), on a run whose class names are hostile too."""
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(hostile_runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    app = AppTest.from_file(HOME, default_timeout=60)
    app.query_params["run"] = RUN
    for i, key in enumerate(PARAMS):   # set one by one: `page` is also open_page's own argument
        app.query_params[key] = VALUES[(i + shift) % len(VALUES)]
    if page:
        app.switch_page(PAGES[page])
    app.run()
    assert not app.exception, app.exception
    assert not [body for body in markdown_bodies(app) if any(m in as_markup(body) for m in MARKUP)]
