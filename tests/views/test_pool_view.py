"""The unlabelled pool shaped for the Embeddings page: its place on the map, the picks' gallery rows."""
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import make_image

from core.store import run_store
from core.testing.synthetic import make_synthetic_pool, make_synthetic_run
from core.views import pool as pool_views


def test_a_pool_image_is_placed_by_its_nearest_labelled_images_not_between_distant_ones():
    labelled = np.array([[1, 0, 0], [0.9, 0.44, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    coords = pd.DataFrame({"sample_id": [3, 2, 1, 0], "x": [30.0, 20.0, 1.0, 0.0], "y": [0.0, 0.0, 1.0, 0.0]})
    xy = pool_views.place_on_map(labelled, np.array([[1, 0.01, 0], [0, 0, 2]], np.float32), coords, k=3)
    assert np.allclose(xy[0], [0.0, 0.0], atol=0.2)        # beside sample 0, not pulled toward 20 or 30
    assert np.allclose(xy[1], [30.0, 0.0], atol=0.2)


def pool_run(tmp_path: Path, picks: list[int] | None = None) -> Path:
    run = make_synthetic_run(tmp_path / "runs", "20250103-120000-pool", 60, 3, 3, 16, diagnostics=False)
    make_synthetic_pool(run, tmp_path / "inbox", 6, picks)
    return run


def test_pool_points_mark_the_picks_and_say_what_each_image_is(tmp_path):
    run = pool_run(tmp_path)
    assert pool_views.pool_points(run, None) is None
    coords = pd.DataFrame({"sample_id": range(60), "x": np.arange(60.0), "y": np.zeros(60)})
    points = pool_views.pool_points(run, coords)
    assert len(points) == 6 and not points["picked"].any()
    run = pool_run(tmp_path / "again", picks=[2, 4])
    points = pool_views.pool_points(run, coords)
    table = run_store.read_pool(run).table
    assert points["picked"].tolist() == [False, False, True, False, True, False]
    assert points["hover"].iloc[2] == (f"pool image 2: pool_2.png<br>predicted {table['prediction'].iloc[2]} "
                                       f"({table['confidence'].iloc[2]:.0%})")
    summary = pool_views.pool_summary(run_store.read_pool(run).info)
    assert summary.startswith("Unlabelled pool: 6 distinct images from 7 files (1 unreadable skipped; 1 identical to")


def test_the_gallery_opens_only_files_the_pool_lists(tmp_path):
    run = pool_run(tmp_path, picks=[1, 3])
    outside = tmp_path / "elsewhere.png"
    make_image(outside, (1, 2, 3), seed=1)
    picks = run_store.read_picks(run)
    picks.loc[1, "path"] = str(outside)
    gallery = pool_views.picks_gallery(picks, run_store.read_pool(run).table)
    assert gallery["file"].tolist() == [picks["path"].iloc[0], None]
    assert pool_views.picks_gallery(None, run_store.read_pool(run).table) is None
