"""Thumbnails made once and kept in the content-addressed cache (`default_cache_dir()`/thumbnails).

Keyed by the sha256 of the file's bytes and the thumbnail size, so the same image shared by several runs
(or re-scanned) is only resized once, and nothing is ever written into a run directory.
"""
from __future__ import annotations

from pathlib import Path

from core.config import default_cache_dir
from core.data.dataset import load_rgb
from core.store.cache_store import touch
from core.store.hashing import memoised_file_sha256
from core.store.run_store import atomic_path


def image_path(root: str | Path, relative: str) -> Path | None:
    """The file `relative` under the dataset root, or None when it would escape it (`..`, absolute paths,
    symlinks pointing outside) or is not there."""
    base = Path(root).resolve()
    if not relative or Path(relative).is_absolute():
        return None
    try:
        path = (base / relative).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: no such image here
        return None
    return path


def thumbnail(path: Path, size: int = 192, cache_dir: str | Path | None = None) -> Path | None:
    """A PNG thumbnail (longest side `size`) of an image file, decoded as training decodes it (EXIF rotation,
    16-bit scaling, transparency on white); None when the file cannot be decoded."""
    digest = memoised_file_sha256(path)
    # "rgb": thumbnails decoded like training; older ones (plain PIL decoding) are not reused
    target = Path(cache_dir or default_cache_dir()) / "thumbnails" / digest[:2] / f"{digest}_{size}_rgb.png"
    if target.exists():
        touch(target)   # its last use, for `cache prune`
        return target
    try:
        image = load_rgb(path)
    except Exception:  # any decoder failure (as in the scan) means no thumbnail, never a broken page
        return None
    image.thumbnail((size, size))
    with atomic_path(target) as temporary:  # concurrent sessions never read half a thumbnail
        image.save(temporary, format="PNG")
    return target

