"""Progress bars of the training path, and the setting that keeps them out of logs.

A bar redraws itself with carriage returns: right in a terminal, but a Ray task's output reaches the driver's
log as one long line per bar, and a scheduler's log file fills the same way. FOLDLENS_PROGRESS=folds keeps
every epoch, batch and feature bar out, leaving the one line per fold the runner prints; the Ray executor
sets it in each fold task.
"""
from __future__ import annotations

import os
from collections.abc import Iterable

from tqdm.auto import tqdm

PROGRESS_ENV = "FOLDLENS_PROGRESS"
MODES = ("bars", "folds")  # bars: the default; folds: no bars, a line per fold


def bars_shown() -> bool:
    """Read at every bar, so a setting made inside a running worker process counts."""
    return os.environ.get(PROGRESS_ENV, "bars") != "folds"


def bar(iterable: Iterable, **options) -> tqdm:
    """tqdm(iterable, **options), disabled when FOLDLENS_PROGRESS=folds."""
    options["disable"] = options.get("disable", False) or not bars_shown()
    return tqdm(iterable, **options)
