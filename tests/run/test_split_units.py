"""Split units: groups, identical files and (on request) near-duplicates move together; --dedup-groups checked."""
import numpy as np
import pandas as pd
import pytest

from core.analysis.diagnostics.thresholds import Thresholds
from core.config import NEAR_DUPLICATE_SIMILARITY, RunConfig
from core.errors import UserError
from core.run.split_units import describe, split_units


def samples_with(sha, groups=None):
    n = len(sha)
    return pd.DataFrame({"path": [f"x/{i}.png" for i in range(n)], "label": "a", "sha256": sha,
                         "group": groups if groups is not None else [None] * n})


def embedding_with_near_pairs(n, pairs, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 64))
    for a, b in pairs:
        x[b] = x[a] + rng.normal(size=64) * 0.05   # centred cosine ~0.999
    return x.astype(np.float16)


def test_identical_files_are_one_unit_even_across_groups_and_without_a_group_column():
    sha = ["h0", "h1", "h0", "h3", "h1", "h5"]
    plain = split_units(samples_with(sha), use_groups=False, dedup="exact")
    assert plain.unit[0] == plain.unit[2] and plain.unit[1] == plain.unit[4]
    assert plain.summary == {"dedup_groups": "exact", "near_duplicate_similarity": None, "near_threshold": None,
                             "near_pairs": None, "units": 4, "merged_units": 2, "samples_in_merged_units": 4, "samples_sharing_a_unit": 4}
    grouped = split_units(samples_with(sha, ["g1", "g1", "g2", "g3", "g4", "g4"]), use_groups=True, dedup="exact")
    # g1 and g2 share a file, g1 and g4 share one: g1, g2, g4 and their members are one unit
    assert len(set(grouped.unit[[0, 1, 2, 4, 5]])) == 1 and grouped.unit[3] != grouped.unit[0]
    assert grouped.summary["merged_units"] == 1 and grouped.summary["samples_in_merged_units"] == 5


def test_dedup_off_keeps_only_the_groups():
    units = split_units(samples_with(["h0", "h0", "h2"]), use_groups=False, dedup="off")
    assert len(set(units.unit)) == 3 and "--dedup-groups off" in describe(units.summary)
    distinct = split_units(samples_with(["h0", "h1", "h2"]), use_groups=False, dedup="exact")
    assert describe(distinct.summary) == "splits: 3 units; no identical files to join"


def test_near_joins_near_identical_embeddings_at_the_diagnostics_threshold_and_records_it():
    n = 60
    pairs = [(0, 1), (1, 2), (10, 11)]    # 0-1-2 chain into one unit
    units = split_units(samples_with([f"h{i}" for i in range(n)]), use_groups=False, dedup="near",
                        embedding=embedding_with_near_pairs(n, pairs))
    assert units.unit[0] == units.unit[1] == units.unit[2] and units.unit[10] == units.unit[11]
    assert units.summary["units"] == n - 3 and units.summary["near_pairs"] == 4   # 0-2 are near too
    assert units.summary["near_duplicate_similarity"] == NEAR_DUPLICATE_SIMILARITY
    assert Thresholds().near_duplicate_similarity == NEAR_DUPLICATE_SIMILARITY   # one setting for both
    assert "near-duplicates (cosine ≥ 0.70, calibrated)" in describe(units.summary) and "2 of them join 5 images" in describe(
        units.summary)


def test_dedup_groups_is_checked_before_the_scan():
    with pytest.raises(UserError, match="--dedup-groups fuzzy: choose one of exact, near, off"):
        RunConfig(dedup_groups="fuzzy").validate()
