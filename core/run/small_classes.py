"""Classes too small for the folds: refused all at once (one line, the full list in a file of the runs folder), or
left out of the run on request (`--drop-small-classes`), recorded in run.json's dataset.dropped_classes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from core.config import RunConfig
from core.data.dataset import Dataset
from core.data.splits import (
    NAMED_SMALL_CLASSES,
    check_enough_per_class,
    needed_units,
    small_classes,
    small_classes_message,
)
from core.errors import UserError
from core.run.split_units import split_units
from core.store import run_store as store


def exact_units(cfg: RunConfig, dataset: Dataset, use_groups: bool):
    """The units a split moves whole before any features: near-duplicates only ever join more, so a class too
    small now stays too small."""
    return split_units(dataset.samples, use_groups, "off" if cfg.dedup_groups == "off" else "exact").unit


def trainable_classes(cfg: RunConfig, dataset: Dataset, use_groups: bool) -> tuple[Dataset, list[dict]]:
    """The dataset with every class the folds can hold, and the classes left out ({label, images, units}).

    Without cfg.drop_small_classes a small class refuses the run: one line naming the first few, and when there
    are more, RUNS_DIR/small-classes.csv listing them all."""
    unit = exact_units(cfg, dataset, use_groups)
    grouped = len(set(unit)) < len(unit)
    small = small_classes(dataset.samples.label, unit, cfg.folds, cfg.test_size)
    if small.empty:
        check_enough_per_class(dataset.samples.label, unit, cfg.folds, cfg.test_size)   # the test split's own check
        return dataset, []
    if not cfg.drop_small_classes:
        listed_in = None
        if len(small) > NAMED_SMALL_CLASSES:
            listed_in = Path(cfg.runs_dir) / store.SMALL_CLASSES_CSV
            store.write_csv(listed_in, small.assign(needed=needed_units(cfg.folds, cfg.test_size)))
        raise UserError(small_classes_message(small, cfg.folds, cfg.test_size, grouped,
                                              None if listed_in is None else str(listed_in), can_drop=True))
    kept_classes = [c for c in dataset.classes if c not in set(small.label)]
    if len(kept_classes) < 2:
        raise UserError(f"--drop-small-classes: {len(small)} of the {len(dataset.classes)} classes are too small for "
                        f"--folds {cfg.folds}, which leaves {len(kept_classes)}; a classifier needs at least two: "
                        f"add images or lower --folds")
    keep = dataset.samples.label.isin(kept_classes).to_numpy()
    samples = dataset.samples[keep].reset_index(drop=True)
    check_enough_per_class(samples.label, unit[keep], cfg.folds, cfg.test_size)
    superclasses = (None if dataset.superclasses is None else
                    {c: s for c, s in dataset.superclasses.items() if c in kept_classes})
    kept = dataclasses.replace(dataset, samples=samples, classes=kept_classes, superclasses=superclasses)
    dropped = [{"label": str(r.label), "images": int(r.images), "units": int(r.units)} for r in small.itertuples()]
    return kept, dropped


def describe(dropped: list[dict]) -> str:
    """The log line of a run that left classes out."""
    named = ", ".join(f"{d['label']} ({d['images']})" for d in dropped[:NAMED_SMALL_CLASSES])
    more = f" and {len(dropped) - NAMED_SMALL_CLASSES} more" if len(dropped) > NAMED_SMALL_CLASSES else ""
    images = sum(d["images"] for d in dropped)
    return (f"data: left out {len(dropped)} class{'es' if len(dropped) != 1 else ''} too small for the folds "
            f"({images} images; --drop-small-classes): {named}{more}")
