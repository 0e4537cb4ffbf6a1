"""Content hashes: the identity of images, weights files and cached artifacts."""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks so large checkpoints need no large buffer."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def memoised_file_sha256(path: str | Path) -> str:
    """file_sha256, read once per process while the file's (path, mtime, size) stay the same: a gallery page or
    a neighbour lookup asks again on every rerun."""
    stat = Path(path).stat()
    return _memoised(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=65536)
def _memoised(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


def changed_files(paths: list[Path], recorded: list[str]) -> list[Path]:
    """The paths whose bytes no longer have their recorded sha256 (missing files included), in order.

    Each file is read once; threads overlap the reads (hashlib releases the GIL on large buffers)."""
    def changed(path: Path, sha: str) -> bool:
        try:
            return file_sha256(path) != sha
        except OSError:
            return True
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        flags = list(pool.map(changed, paths, recorded))
    return [path for path, flag in zip(paths, flags) if flag]
