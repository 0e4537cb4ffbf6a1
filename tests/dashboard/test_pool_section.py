"""The Embeddings page with an unlabelled pool: grey hollow points on the backbone map, the picks' gallery."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard_fixtures import open_page, point_dashboard_at

from core.testing.synthetic import make_synthetic_pool, make_synthetic_run
from core.views import pool as pool_views


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runs = tmp_path / "runs"
    run = make_synthetic_run(runs, "20250103-120000-pool", 60, 3, 3, 16, diagnostics=False)
    point_dashboard_at(runs, tmp_path / "cache", monkeypatch)
    return run


def traces(app) -> dict[str, dict]:
    [spec] = [json.loads(c.proto.spec) for c in app.get("plotly_chart") if "embedding, coloured by" in c.proto.spec]
    return {trace.get("name"): trace for trace in spec["data"]}


def test_without_a_pool_the_page_gives_the_command(env):
    app = open_page("Embeddings", run=env.name)
    assert not app.exception
    assert pool_views.POOL_NAME not in traces(app)
    assert any(f"python train_cli.py pool {env.name} --add UNLABELLED_FOLDER" in c.value for c in app.caption)


def test_the_pool_is_drawn_in_hollow_grey_and_the_picks_are_shown(env, tmp_path):
    make_synthetic_pool(env, tmp_path / "inbox", 6, picks=[3, 1])
    app = open_page("Embeddings", run=env.name)
    assert not app.exception
    drawn = traces(app)
    pool, picked = drawn[pool_views.POOL_NAME], drawn[pool_views.PICKED_NAME]
    assert pool["marker"]["symbol"] == "circle-open" and pool["marker"]["color"] == pool_views.POOL_COLOR
    assert len(pool["text"]) == 4 and len(picked["text"]) == 2 and "customdata" not in pool
    assert any("2 pool images to label next" in m.value for m in app.markdown)
    assert any("most typical pool image" in c.value for c in app.caption)
    assert any(m.value.startswith("**#1** predicted") for m in app.markdown)
    other = open_page("Embeddings", run=env.name, space="fold0")
    assert not other.exception and pool_views.POOL_NAME not in traces(other)   # pool features: backbone space only
