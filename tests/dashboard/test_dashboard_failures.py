"""Failures that show: a diagnostics failure, an unreadable secrets file, a hostile run name in the URL, and a
dashboard open to the network without a password are each said plainly, never silently worked around."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from dashboard_fixtures import HOME, PAGES, REPO, open_page
from streamlit import config as st_config
from streamlit.runtime.secrets import secrets_singleton
from streamlit.testing.v1 import AppTest

from core.store import run_store
from core.testing.synthetic import make_synthetic_run
from dashboard import access, formatting  # the same functions the pages call

BROKEN = "20250101-000000-broken"
ERROR = "MemoryError: UMAP of backbone needs 9 GiB"
COMMAND = f"python train_cli.py diagnose {BROKEN}"


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory) -> Path:
    """One complete run whose diagnostics step failed: run.json records why, no diagnostics files exist."""
    runs = tmp_path_factory.mktemp("broken") / "runs"
    run = make_synthetic_run(runs, BROKEN, 60, 3, 3, 16, seed=5, diagnostics=False)
    run_store.update_run_json(run, diagnostics_error=ERROR)
    return runs


@pytest.fixture
def env(broken_runs, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FOLDLENS_RUNS_DIR", str(broken_runs))
    monkeypatch.setenv("FOLDLENS_CACHE", str(tmp_path / "cache"))
    return broken_runs


@pytest.fixture
def option(request):
    """Set Streamlit config options for one test, restored afterwards."""
    saved = {}

    def set_option(key: str, value) -> None:
        saved.setdefault(key, st_config.get_option(key))
        st_config.set_option(key, value)
        secrets_singleton._reset()
    yield set_option
    for key, value in saved.items():
        st_config.set_option(key, value)
    secrets_singleton._reset()  # parsed secrets are kept until a file changes: never pass them to the next test



def shown(app: AppTest) -> str:
    return "\n".join([m.value for m in app.markdown] + [c.value for c in app.caption]
                     + [e.body for kind in (app.info, app.warning, app.error) for e in kind])


# ---------------------------------------------------------------- a diagnostics failure

@pytest.mark.parametrize("page,params", [
    (None, {}), ("Embeddings", {}), ("Misclassified", {"tab": "mistakes"}), ("Misclassified", {"tab": "label_issues"}),
    ("Misclassified", {"tab": "calibration"}), ("Data", {"tab": "duplicates"}), ("Data", {"tab": "label_issues"}),
    ("Data", {"tab": "outliers"})])
def test_every_view_that_needs_the_diagnostics_shows_their_recorded_failure_and_the_command(env, page, params):
    app = open_page(page, run=BROKEN, **params)
    assert not app.exception
    errors = [e.body for e in app.error]
    assert len(errors) == 1 and "The diagnostics failed" in errors[0]
    assert ERROR in errors[0] and f"`{COMMAND}`" in errors[0]
    assert "once the diagnostics have run" not in shown(app) and "appear once" not in shown(app)


def test_embeddings_say_the_pca_map_stands_in_for_the_missing_umap(env):
    assert "quick PCA projection" in open_page("Embeddings", run=BROKEN).error[0].body


# ---------------------------------------------------------------- the secrets file

def test_an_unreadable_secrets_file_shows_only_that_it_cannot_be_read(env, tmp_path, option):
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('password = "unterminated\n')
    option("secrets.files", [str(secrets)])
    for page in (None, "Classes"):
        app = open_page(page, run=BROKEN)
        assert not app.exception
        assert [e.body.split("**")[1] for e in app.error] == ["The secrets file cannot be read"]
        assert str(secrets) in app.error[0].body
        assert not app.title and not app.selectbox and not app.text_input and not app.sidebar.warning
        assert not app.metric and not app.markdown


def test_a_readable_secrets_file_with_a_password_asks_for_it(env, tmp_path, option):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('password = "s3cret"\n')
    option("secrets.files", [str(secrets)])
    app = open_page(None, run=BROKEN)
    assert app.text_input(key="password") and not app.title and not app.error


@pytest.mark.parametrize("text, why", [
    ('passwd = "s3cret"\n', f"there is no `password` key (found: {formatting.literal('passwd')})"),
    ('password = ""\n', "`password` is empty"),
    ('password = "   "\n', "`password` is empty"),
    ('password = 1234\n', "`password` must be a quoted string"),
    ('[dashboard]\npassword = "s3cret"\n', f"`password` is inside the [{formatting.literal('dashboard')}] section"),
    ("# the password goes here\n", "there is no `password` key (found: nothing)"),
])
@pytest.mark.parametrize("page", [None, "Classes"])
def test_a_secrets_file_without_a_usable_password_stops_every_page(env, tmp_path, option, text, why, page):
    """A new user's slips (a misspelt key, an empty value, the key under a section) never serve the runs without
    a password: the page says which file and which key it expects, and shows nothing else."""
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(text)
    option("secrets.files", [str(secrets)])
    option("server.address", "127.0.0.1")
    app = open_page(page, run=BROKEN)
    assert not app.exception
    [error] = [e.body for e in app.error]
    assert error.startswith("**No usable password in the secrets file**") and why in error
    assert formatting.literal(str(secrets)) in error and '`password = "choose-a-long-one"`' in error
    assert not app.title and not app.selectbox and not app.text_input and not app.metric and not app.markdown


def test_no_secrets_file_means_no_password(env, tmp_path, option):
    option("secrets.files", [str(tmp_path / "absent" / "secrets.toml")])
    option("server.address", "127.0.0.1")
    app = open_page(None, run=BROKEN)
    assert [t.value for t in app.title] == ["Overview"] and not app.text_input


# ---------------------------------------------------------------- a run name from the URL

HOSTILE = ["`x` [click](https://example.com) **bold**", "``double``:red[alarm]", "line\n\nbreak _a_", "plain"]


@pytest.mark.parametrize("text", HOSTILE)
def test_literal_makes_any_text_one_code_span(text):
    """CommonMark: a code span opens and closes with the same number of backticks, which must differ from every
    backtick run inside; one space on both sides is stripped; a blank line would end the paragraph."""
    span = formatting.literal(text)
    fence = re.match(r"`+", span).group()
    assert span.startswith(fence + " ") and span.endswith(" " + fence) and "\n" not in span
    inside = span[len(fence) + 1:-len(fence) - 1]
    assert fence not in re.findall(r"`+", inside)
    assert inside == re.sub(r"\s*\n+\s*", " ", text) or inside == text.replace("\n", " ")


def test_a_run_name_from_the_url_is_shown_literally(env):
    requested = HOSTILE[0]
    app = open_page("Classes", run=requested)
    warning = next(w.body for w in app.warning if "no run called" in w.body)
    assert f"no run called {formatting.literal(requested)} in the runs folder" in warning


# ---------------------------------------------------------------- who can reach the dashboard

def test_the_project_serves_on_loopback_unless_told_otherwise():
    settings = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "127.0.0.1"


@pytest.mark.parametrize("address,public", [(None, True), ("", True), ("0.0.0.0", True), ("::", True),
                                            ("192.168.1.20", True), ("myhost.example", True),
                                            ("127.0.0.1", False), ("127.0.1.1", False), ("::1", False),
                                            ("[::1]", False), ("::ffff:127.0.0.1", False),
                                            ("localhost", False)])
def test_serves_beyond_loopback(address, public):
    assert access.serves_beyond_loopback(address) is public


@pytest.mark.parametrize("page", [None, "Overfitting", "Compare"])
def test_every_page_warns_when_open_to_the_network_without_a_password(env, option, tmp_path, page):
    option("secrets.files", [str(tmp_path / "absent.toml")])
    option("server.address", "0.0.0.0")
    app = open_page(page, run=BROKEN)
    assert any("Open to the network, no password" in w.body for w in app.sidebar.warning)
    option("server.address", "127.0.0.1")
    assert not open_page(page, run=BROKEN).sidebar.warning


def test_no_network_warning_behind_a_password(env, option):
    option("server.address", "0.0.0.0")
    app = AppTest.from_file(HOME, default_timeout=60)
    app.secrets["password"] = "s3cret"
    app.run()
    assert not app.sidebar.warning and app.text_input(key="password")


# ---------------------------------------------------------------- a full disk under the dashboard's caches

def test_a_full_thumbnail_cache_stops_the_page_with_one_line_not_a_traceback(env, tmp_path, monkeypatch):
    from storage_faults import Faults
    Faults(monkeypatch).fill_at(lambda path: "thumbnails" in path.parts)
    app = open_page("Misclassified", run=BROKEN)
    assert not app.exception
    [stopped] = [e.body for e in app.error if e.body.startswith("**This page stopped**: ")]
    assert f"no space left writing {tmp_path / 'cache' / 'thumbnails'}" in stopped
