"""A run on a cleaned manifest keeps the splits of the run it was cleaned from (`dataset.derived_from`).

Its images are matched to the source run's by absolute file path and sha256 (the same bytes at the same place);
every shared image keeps its split and fold, new images are placed around them by the content-based draw. So
the two runs are scored on the same test images and the same folds, and a difference between them is the
cleaning's, not a redraw's. `--redraw-splits` draws every split from content instead (with a warning).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.store import run_store as store


@dataclass
class SourceSplits:
    keep: tuple[np.ndarray, np.ndarray] | None   # (split or None, fold) per sample, for assign_splits
    record: dict                                  # run.json dataset.splits_from
    warning: str | None                           # one line for the log, when the source's splits are not used


def _by_file(samples: pd.DataFrame, root: str | Path) -> pd.DataFrame:
    """Samples keyed by absolute path, sha256 and which listing of that file it is (a manifest may list a
    file twice)."""
    files = pd.Series([(Path(root) / p).as_posix() for p in samples["path"]])
    return pd.DataFrame({"file": files, "sha256": samples["sha256"].to_numpy(),
                         "copy": files.groupby(files).cumcount().to_numpy()})


def content_record() -> dict:
    """run.json dataset.splits_from when the splits are drawn from the images' content."""
    return {"method": "content", "source_run": None, "reused": 0, "new": None}


def shared_record(images: int, source_run: str | None) -> dict:
    """run.json dataset.splits_from when the splits were given whole (an experiment's runs share them)."""
    return {"method": "shared", "source_run": source_run, "reused": images, "new": 0}


def source_splits(cfg: RunConfig, samples: pd.DataFrame, root: str | Path, origin: dict | None) -> SourceSplits:
    """The source run's split and fold for every image it shares with `samples` (the run being started on a
    cleaned manifest whose review.json names it: `origin`), or no constraint (with a warning line saying why)
    when there is no source, `cfg.redraw_splits` is set, or the source's splits cannot be reused."""
    if origin is None:
        return SourceSplits(None, content_record(), None)
    source = origin["source_run"]

    def redraw(why: str) -> SourceSplits:
        return SourceSplits(None, {**content_record(), "source_run": source},
                            f"{why}: the splits are drawn anew from the images' content, so this run's scores and "
                            f"{source}'s are measured on different test images and folds")

    if cfg.redraw_splits:
        return redraw("--redraw-splits")
    entry = store.find_run(Path(cfg.runs_dir), source)
    if entry is None or entry.info is None or not (entry.path / "samples.parquet").exists():
        return redraw(f"the source run {source} is not under {cfg.runs_dir}")
    source_cfg = entry.info.get("config") or {}
    if source_cfg.get("folds") != cfg.folds or (source_cfg.get("test_size", 0) > 0) != (cfg.test_size > 0):
        return redraw(f"the source run {source} has --folds {source_cfg.get('folds')} and --test-size "
                      f"{source_cfg.get('test_size')}, this run --folds {cfg.folds} and --test-size {cfg.test_size}")
    theirs = pd.read_parquet(entry.path / "samples.parquet", columns=["path", "sha256", "split", "fold"])
    matched = _by_file(samples, root).merge(
        _by_file(theirs, entry.info["dataset"]["root"]).assign(split=theirs["split"].to_numpy(),
                                                               fold=theirs["fold"].to_numpy()),
        on=["file", "sha256", "copy"], how="left")
    split = matched["split"].astype(object).where(matched["split"].notna(), None).to_numpy()
    fold = matched["fold"].fillna(-1).to_numpy(dtype=np.int64)
    reused = int(pd.notna(matched["split"]).sum())
    return SourceSplits((split, fold), {"method": "source_run", "source_run": source, "reused": reused,
                                        "new": len(samples) - reused}, None)


def describe(record: dict) -> str:
    """The log line: where the splits come from."""
    if record["method"] == "source_run":
        return (f"splits: {record['reused']} images keep their split and fold from {record['source_run']}, "
                f"{record['new']} new ones placed from their content")
    return "splits: drawn from the images' content and --seed (the same images give the same splits in any order)"
