"""Classes a run left out because they were too small for the folds (`--drop-small-classes`), for Home and Data."""
from __future__ import annotations

import pandas as pd

NAMED = 5   # classes named in the one-line summary; the Data page's table lists them all


def dropped_classes(info: dict) -> pd.DataFrame:
    """One row per class left out: class, images, units (groups of the split, or images when ungrouped)."""
    rows = info.get("dataset", {}).get("dropped_classes") or []
    return pd.DataFrame([{"class": r["label"], "images": r["images"], "units": r["units"]} for r in rows],
                        columns=["class", "images", "units"])


def dropped_summary(info: dict) -> str | None:
    """'2 classes (5 images) left out, too small for the folds: a (2), b (3)' with 'and N more' past NAMED;
    None when the run kept every class."""
    table = dropped_classes(info)
    if table.empty:
        return None
    n = len(table)
    named = ", ".join(f"{name} ({images})" for name, images in zip(table["class"][:NAMED], table["images"][:NAMED]))
    more = f" and {n - NAMED} more" if n > NAMED else ""
    return (f"{n} class{'' if n == 1 else 'es'} ({int(table['images'].sum())} images) left out, too small for the "
            f"folds (--drop-small-classes): {named}{more}.")
