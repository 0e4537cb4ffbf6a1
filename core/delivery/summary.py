"""The plain-text summary a finished run prints."""
from __future__ import annotations

from pathlib import Path

from core.store import run_store as store

ROLES = ("train", "val", "test")


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _mean_std(summary: dict, metric: str) -> str:
    return " ".join(f"{100 * summary[r][metric]['mean']:4.1f}±{100 * summary[r][metric]['std']:<3.0f}"
                    if r in summary else "   -   " for r in ROLES)


def summary_table(run_dir: Path) -> str:
    """Balanced accuracy per fold and role, mean ± std, the test ensemble; plain accuracy's means (the metric
    the overfitting finding quotes); the gaps in both; the findings. Every number names its metric."""
    run_dir = Path(run_dir)
    info = store.read_json(run_dir / store.RUN_JSON)
    metrics = store.read_json(run_dir / "metrics.json")
    summary, ensemble = metrics["summary"], metrics.get("ensemble")
    lines = [f"balanced accuracy   {'train':>7} {'val':>7} {'test':>7}"]
    for fold, roles in metrics["folds"].items():
        cells = (_pct(roles.get(r, {}).get("balanced_accuracy")) for r in ROLES)
        lines.append(f"fold {fold:<14} " + " ".join(f"{cell:>7}" for cell in cells))
    for metric, title in (("balanced_accuracy", None), ("accuracy", "plain accuracy")):
        if title:
            lines.append(f"{title:<19} {'train':>7} {'val':>7} {'test':>7}")
        lines.append(f"mean ± std          {_mean_std(summary, metric)}")
        if ensemble:
            lines.append(f"test ensemble       {'':>7} {'':>7} {_pct(ensemble['test'][metric]):>7}")
    for name, gap in metrics.get("gaps", {}).items():
        lines.append(f"gap {name.replace('_', ' ')}: {100 * gap['balanced_accuracy']:+.1f} points balanced accuracy, "
                     f"{100 * gap['accuracy']:+.1f} points plain accuracy")
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
