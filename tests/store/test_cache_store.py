"""The cache: sizes by kind, pruning by age and by size least recently used first, never an entry used
recently (a live writer's), and a reader's hit counting as a use."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import make_image

import train_cli
from core.data.thumbnails import thumbnail
from core.store import cache_store

DAY = 86400.0


def entry(cache: Path, relative: str, size: int, days_unused: float) -> Path:
    path = cache / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    used = time.time() - days_unused * DAY
    os.utime(path, (used, used))
    return path


@pytest.fixture
def cache(tmp_path) -> Path:
    root = tmp_path / "cache"
    entry(root, "features/k1/ab/old.npy", 4000, 40)
    entry(root, "features/k1/cd/mid.npy", 4000, 10)
    entry(root, "thumbnails/ab/t.png", 300, 35)
    entry(root, "umap/m.npy", 2000, 2)
    entry(root, "gradcam/ef/live.png", 500, 0)   # being written or read by a live writer right now
    return root


def cache_cli(cache: Path, *args: str) -> int:
    return train_cli.main(["cache", *args, "--cache-dir", str(cache)])


def test_the_inventory_gives_files_and_bytes_by_kind(cache, capsys):
    kinds = {k["kind"]: k for k in cache_store.inventory(cache)}
    assert (kinds["features"]["files"], kinds["features"]["bytes"]) == (2, 8000)
    assert (kinds["thumbnails"]["bytes"], kinds["umap"]["bytes"], kinds["gradcam"]["bytes"]) == (300, 2000, 500)
    assert kinds["neighbours"]["files"] == kinds["spaces"]["files"] == 0
    assert cache_cli(cache, "--json") == 0
    assert json.loads(capsys.readouterr().out)["kinds"][0]["bytes"] == 8000
    assert cache_cli(cache) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:3] == ["features", "8.0", "kB"] for line in lines) and lines[-1].split()[0] == "total"


def test_prune_older_than_removes_only_entries_unused_for_longer(cache, capsys):
    assert cache_cli(cache, "prune", "--older-than", "30d") == 0
    assert "removed 2 entries (4.3 kB)" in capsys.readouterr().out
    left = {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}
    assert left == {"features/k1/cd/mid.npy", "umap/m.npy", "gradcam/ef/live.png"}


def test_prune_max_size_removes_least_recently_used_first_and_never_a_recent_entry(cache, capsys):
    doomed, kept = cache_store.prune_plan(cache, max_bytes=3000)
    assert [e.path.name for e in doomed] == ["old.npy", "t.png", "mid.npy"] and kept == []   # oldest first, until it fits
    assert cache_cli(cache, "prune", "--max-size", "0") == 0
    out = capsys.readouterr().out
    assert "removed 4 entries" in out and "kept 1 entries (500 B) used in the last 1 hour(s)" in out
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["live.png"]


def test_a_dry_run_removes_nothing(cache, capsys):
    assert cache_cli(cache, "prune", "--older-than", "1d", "--dry-run") == 0
    assert "would remove 4 entries" in capsys.readouterr().out and len(list(cache.rglob("*.npy"))) == 3


def test_a_cached_thumbnail_read_counts_as_a_use(tmp_path):
    image = tmp_path / "a.png"
    make_image(image, (10, 200, 30), seed=1)
    cached = thumbnail(image, cache_dir=tmp_path / "cache")
    long_ago = time.time() - 60 * DAY
    os.utime(cached, (long_ago, long_ago))
    assert thumbnail(image, cache_dir=tmp_path / "cache") == cached
    assert time.time() - cached.stat().st_mtime < DAY          # no longer a candidate for --older-than 30d
    assert cache_store.prune_plan(tmp_path / "cache", older_than_s=30 * DAY) == ([], [])


@pytest.mark.parametrize("args, words", [(["prune"], "give --older-than AGE"),
                                         (["prune", "--max-size", "lots"], "--max-size lots: give a size"),
                                         (["prune", "--older-than", "30"], "--older-than 30: give an age")])
def test_bad_prune_options_are_one_line_errors(cache, capsys, args, words):
    assert cache_cli(cache, *args) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error


def test_sizes_and_ages_read_as_written():
    assert cache_store.parse_size("5G") == 5 * 10**9 and cache_store.parse_size("1.5GB") == 1_500_000_000
    assert cache_store.parse_age("30d") == 30 * DAY and cache_store.parse_age("90m") == 5400
