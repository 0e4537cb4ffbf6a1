"""A disk that fills up (or a folder that turns read-only) at a chosen write: every atomic write of the run store
ends in os.replace (a file) or os.rename (a folder), so failing those from the first write whose destination
matches on, until `free()`, is what a full file system does to foldlens."""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest


class Faults:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.code: int | None = None
        self.trigger: Callable[[Path], bool] = lambda path: False
        self.failing = False
        self.hits: list[Path] = []
        for name in ("replace", "rename"):
            real = getattr(os, name)
            monkeypatch.setattr(os, name, self._wrap(real))

    def _wrap(self, real):
        def move(src, dst, *args, **kwargs):
            if self.code is not None and (self.failing or self.trigger(Path(dst))):
                self.failing = True
                self.hits.append(Path(dst))
                raise OSError(self.code, os.strerror(self.code), str(src))
            return real(src, dst, *args, **kwargs)
        return move

    def fill_at(self, trigger: Callable[[Path], bool], code: int = errno.ENOSPC) -> None:
        """From the first write whose destination `trigger` accepts on, every write fails with `code`."""
        self.code, self.trigger, self.failing = code, trigger, False

    def free(self) -> None:
        self.code, self.failing = None, False


def one_error_line(err: str) -> str:
    """The one `error:` line a command ended with (progress bars may come before it; no traceback)."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and [line for line in lines if "error:" in line] == lines[-1:], err
    return lines[-1][lines[-1].index("error: "):]


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders of atomic writes (`.NAME.HEX.tmp`) anywhere under `folder`."""
    return [path for path in Path(folder).rglob(".*.tmp")]
