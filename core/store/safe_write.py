"""A full disk or a folder we may not write, said in one line naming the path and what to free or fix.

Every atomic write of run_store (and so every run file, cache, download, report and manifest) passes through
`storage_errors`, which turns the operating system's ENOSPC/EDQUOT/EACCES/EPERM/EROFS into a `StorageError`:
a `UserError`, so a command prints that line and exits 2, and the dashboard shows it instead of a traceback.
"""
from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import UserError

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
FORBIDDEN = {errno.EACCES, errno.EPERM, errno.EROFS}


class StorageError(UserError):
    """The machine, not the input: no space left, or no permission to write. Rerunning after the fix finishes."""


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL | FORBIDDEN


def describe(exc: OSError, path: Path | str | None = None) -> str:
    """One line: what failed, the path, and what to free or fix before running the same command again."""
    path = Path(path if path is not None else exc.filename or "?")
    if exc.errno in FULL:
        folder = _existing_parent(path)
        free = shutil.disk_usage(folder).free if folder else None
        left = f" ({free / 1e6:.0f} MB free there)" if free is not None else ""
        return (f"no space left writing {path}{left}: free space on that file system (or point the command at "
                f"another folder), then run the same command again; nothing half-written was kept")
    reason = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
    return (f"cannot write {path} ({reason}): make {_existing_parent(path) or path.parent} writable by this "
            f"user, or point the command at another folder, then run the same command again")


def _existing_parent(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if folder.is_dir():
            return folder
    return None


@contextmanager
def storage_errors(path: Path | str) -> Iterator[None]:
    """Turn a full disk or a refused write inside the block into a StorageError naming `path`."""
    try:
        yield
    except OSError as exc:
        if not is_storage_error(exc):
            raise
        raise StorageError(describe(exc, path)) from exc
