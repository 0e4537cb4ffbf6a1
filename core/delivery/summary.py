"""The plain-text summary a finished run prints."""
from __future__ import annotations

from pathlib import Path

from core.numbers import interval, percent, spread
from core.store import run_store as store
from core.views.tables import gap_text, headline_table

ROLES = ("train", "val", "test")
METRICS = (("balanced_accuracy", "balanced accuracy"), ("accuracy", "plain accuracy"))
CELL = 14


def _row(title: str, cells) -> str:
    return f"{title:<19}" + "".join(f"{cell:>{CELL}}" for cell in cells)


def summary_table(run_dir: Path) -> str:
    """Balanced accuracy per fold and role, mean ± std; the test ensemble (what predict and serve use) with its 95%
    interval and the fold models' mean beside it; validation's interval; plain accuracy likewise; the gaps in
    points, marked when chance alone can make them; the findings. Every number names its metric."""
    run_dir = Path(run_dir)
    info = store.read_json(run_dir / store.RUN_JSON)
    metrics = store.read_json(run_dir / "metrics.json")
    table = headline_table(metrics).set_index("metric")
    lines = [_row("balanced accuracy", ROLES)]
    for fold, roles in metrics["folds"].items():
        lines.append(_row(f"fold {fold}", (percent(roles.get(r, {}).get("balanced_accuracy")) for r in ROLES)))
    for key, title in METRICS:
        row = table.loc[key]
        if key != METRICS[0][0]:
            lines.append(_row(title, ROLES))
        lines.append(_row("mean ± std", (spread(row[f"{r}_mean"], row[f"{r}_std"]) for r in ROLES)))
        if row.val_low == row.val_low:   # not NaN: the run has intervals
            lines.append(f"  validation (pooled out-of-fold): 95% interval {interval([row.val_low, row.val_high])}")
        if row.test_ensemble == row.test_ensemble:
            lines.append(f"  test ensemble (what predict and serve use): {percent(row.test_ensemble)}, 95% interval "
                         f"{interval([row.test_low, row.test_high])}; fold models' mean {percent(row.test_mean)}")
    for gap, high in (("train_minus_val", "val_high"), ("train_minus_test", "test_high")):
        if gap in metrics.get("gaps", {}):
            parts = (f"{gap_text(table.loc[key, gap], table.loc[key, 'train_mean'], table.loc[key, high])} {title}"
                     for key, title in METRICS)
            lines.append(f"gap {gap.replace('_', ' ')}: {', '.join(parts)}")
    if info["skipped"]:
        lines.append(f"skipped files: {len(info['skipped'])} (listed in run.json and on the dashboard's Data page)")
    findings = store.read_optional_json(run_dir, "findings")
    if findings:
        lines.append("findings:")
        lines += [f"  [{f['severity']}] {f['title']}" for f in findings["findings"]]
    return "\n".join(lines)


def diagnostics_failure(run_dir: Path) -> str | None:
    """What to tell the user last when the run's diagnostics failed: the recorded error and the command."""
    info = store.read_json(Path(run_dir) / store.RUN_JSON)
    error = info.get("diagnostics_error")
    if not error or store.diagnostics_skipped(info):
        return None
    return (f"diagnostics failed: {error}\n  the run is complete, but it has no findings, label issues, duplicates, "
            f"outliers, calibration or UMAP maps;\n  once the cause is fixed: python train_cli.py diagnose "
            f"{Path(run_dir).name}")
