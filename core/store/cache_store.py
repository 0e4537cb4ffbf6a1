"""The cache under `default_cache_dir()` ($FOLDLENS_CACHE): what it holds by kind, and pruning it least recently
used first.

Every entry is one file, keyed by content, that can be deleted at any time (its reader computes it again). Its
last use is its modification time: a reader that finds an entry touches it (`touch`), so the order does not
depend on atime, which most file systems do not keep. An entry used within `keep_recent_s` is never pruned: a
live writer touches or writes its entries as it goes, so what it is using is recent.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

# what each folder of the cache holds, as `train_cli.py cache` lists it
KINDS = {"features": "backbone features, one file per image and backbone",
         "thumbnails": "thumbnails shown by the dashboard and the report",
         "gradcam": "class activation map overlays (explain, the dashboard)",
         "neighbours": "nearest-neighbour indexes of the Similar images page",
         "spaces": "kNN graphs of the diagnostics (reduced embedding, neighbours, similarities)",
         "umap": "UMAP maps of the diagnostics"}


@dataclass(frozen=True)
class CacheSettings:
    keep_recent_s: float = 3600.0   # never prune an entry used within this (a live writer's are)


@dataclass
class Entry:
    path: Path
    kind: str
    size: int
    used: float   # last use: modification time, seconds since the epoch


def touch(path: Path) -> None:
    """Record a use of a cache entry (its modification time); a read-only cache is still read."""
    try:
        os.utime(path)
    except OSError:
        pass


def entries(cache_dir: Path) -> list[Entry]:
    """Every file in the cache, with its kind (the top folder; `other` for files outside the known folders)."""
    found = []
    root = Path(cache_dir)
    for folder, _, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        kind = relative.parts[0] if relative.parts else "other"
        for name in files:
            path = Path(folder) / name
            try:
                stat = path.lstat()
            except OSError:
                continue
            found.append(Entry(path, kind if kind in KINDS else "other", stat.st_size, stat.st_mtime))
    return found


def inventory(cache_dir: Path) -> list[dict]:
    """Per kind: files, bytes, oldest and newest last use (kinds with nothing cached are listed with zeros)."""
    by_kind: dict[str, list[Entry]] = {kind: [] for kind in KINDS}
    for entry in entries(cache_dir):
        by_kind.setdefault(entry.kind, []).append(entry)
    return [{"kind": kind, "what": KINDS.get(kind, "files outside the known folders"), "files": len(found),
             "bytes": sum(e.size for e in found), "oldest_use": min((e.used for e in found), default=None),
             "newest_use": max((e.used for e in found), default=None)} for kind, found in by_kind.items()]


def prune_plan(cache_dir: Path, older_than_s: float | None = None, max_bytes: int | None = None,
               settings: CacheSettings | None = None, now: float | None = None) -> tuple[list[Entry], list[Entry]]:
    """(entries to remove, entries kept though they qualified because they were used too recently).
    older_than_s: every entry unused for longer; max_bytes: then least recently used first until the cache fits."""
    settings = settings or CacheSettings()
    now = time.time() if now is None else now
    found = sorted(entries(cache_dir), key=lambda e: e.used)   # least recently used first
    recent = {e.path for e in found if now - e.used < settings.keep_recent_s}
    old = [e for e in found if older_than_s is not None and now - e.used > older_than_s]
    doomed = [e for e in old if e.path not in recent]
    kept = [e for e in old if e.path in recent]
    if max_bytes is not None:
        chosen = {e.path for e in doomed}
        left = sum(e.size for e in found) - sum(e.size for e in doomed)
        for entry in found:
            if left <= max_bytes:
                break
            if entry.path in recent:
                kept.append(entry)
            elif entry.path not in chosen:
                doomed.append(entry)
                left -= entry.size
    return doomed, kept


def remove(doomed: list[Entry]) -> int:
    """Delete the entries; returns the bytes freed. Their folders stay (at most 256 shards per kind): a writer
    may be about to put an entry into one, between making it and writing."""
    freed = 0
    for entry in doomed:
        try:
            entry.path.unlink()
            freed += entry.size
        except FileNotFoundError:   # another prune, or a reader replacing it
            continue
    return freed


UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str) -> int:
    """`5G`, `500M`, `1.5GB`, `800k`, `1000` (bytes; decimal units, as `cache` prints them)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text.lower())
    if not match:
        raise UserError(f"--max-size {text}: give a size such as 5G, 500M or 800k")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match:
        raise UserError(f"--older-than {text}: give an age such as 30d, 12h or 90m")
    return float(match.group(1)) * SECONDS[match.group(2)]
