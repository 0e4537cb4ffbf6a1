"""The class hierarchy of a run whose manifest had a superclass column: headline metrics and confusion a level up,
and how many class errors stay inside the true superclass (metrics.json's "superclass")."""
from __future__ import annotations

import pandas as pd

from core.numbers import percent
from core.views import tables


def superclass_metrics(metrics: dict) -> dict | None:
    """metrics.json's superclass block (compute_metrics' layout over superclasses), None for a flat run."""
    return metrics.get("superclass")


def superclass_names(metrics: dict) -> list[str]:
    block = superclass_metrics(metrics)
    return list(block["classes"]) if block else []


def superclass_cards(metrics: dict) -> list[dict]:
    """The headline cards (`tables.headline_cards`) at the superclass level, titled so."""
    block = superclass_metrics(metrics)
    if not block:
        return []
    return [{**card, "title": f"Superclass {card['title'][0].lower()}{card['title'][1:]}"}
            for card in tables.headline_cards(block)]


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole}" + (f" ({percent(part / whole)})" if whole else "")


def errors_within(metrics: dict) -> str | None:
    """'Of the 300 out-of-fold class errors, 120 (40.0%) stay inside the true superclass; of the test ensemble's 50,
    20 (40.0%).' None for a flat run."""
    block = superclass_metrics(metrics)
    if not block:
        return None
    parts = []
    for where, held_out in (("out-of-fold", block.get("oof", {}).get("val")),
                            ("test ensemble", block.get("ensemble", {}).get("test"))):
        if held_out and "class_errors" in held_out:
            parts.append(f"{where}: {_share(held_out['errors_within_superclass'], held_out['class_errors'])}")
    return "Class errors that stay inside the true superclass, " + "; ".join(parts) + "." if parts else None


def members(metrics: dict) -> pd.DataFrame:
    """One row per superclass: how many classes it holds and their names."""
    block = superclass_metrics(metrics)
    if not block:
        return pd.DataFrame(columns=["superclass", "classes", "members"])
    of_class = pd.Series(block["of_class"])
    grouped = of_class.groupby(of_class.values).apply(lambda s: list(s.index))
    return pd.DataFrame({"superclass": grouped.index, "classes": [len(v) for v in grouped],
                         "members": [", ".join(v) for v in grouped]})
