"""The runs folder as a list: each run's id, name, status as readers should show it (a killed writer's run reads
`stalled`, a replaced fold's `complete` is marked stale), data, mode, headline metrics and size on disk. Shared
by `train_cli.py runs` and the dashboard."""
from __future__ import annotations

import os
from pathlib import Path

from core.store import run_store as store
from core.store.freshness import replaced_folds, stale_note
from core.store.heartbeat import HeartbeatSettings, run_status

COLUMNS = ("run_id", "name", "status", "created", "data", "mode", "folds", "val_bal_acc", "test_bal_acc", "size")


def folder_size(path: Path) -> int:
    """Bytes of every file under `path` (links not followed; files vanishing meanwhile skipped)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def run_row(entry: store.RunEntry, settings: HeartbeatSettings | None = None) -> dict:
    """One run as the list shows it. `note`: why a run is not simply running or complete, with the command
    that goes on from there."""
    info = entry.info or {}
    status, live = run_status(entry, settings)
    config = info.get("config", {})
    metrics = store.read_optional_json(entry.path, "metrics") if entry.info else None
    summary = (metrics or {}).get("summary", {})
    ensemble = (metrics or {}).get("ensemble") or {}
    n_folds = int(config.get("folds", 0))
    note = entry.error if status in ("failed", "damaged", "stopped", "pruned") else None
    if status == "stalled":
        beats = live.stalled
        note = ("; ".join(beat.describe() for beat in beats) if beats else
                "no sign of life since run.json was last written") + \
            f"; resume with: {' or '.join(live.resume) or f'python train_cli.py --resume {entry.run_id}'}"
    elif status == "waiting":
        note = f"prepared for fold jobs: python train_cli.py fold {entry.run_id} K"
    elif status == "running" and live.alive:
        note = "; ".join(beat.describe() for beat in live.alive)
    stale = replaced_folds(entry.path, n_folds) if status == "complete" else []
    if stale:
        note = stale_note(entry.run_id, stale)
    return {"run_id": entry.run_id, "name": config.get("name", ""), "status": status,
            "recorded_status": entry.status, "stale": bool(stale), "created": entry.created,
            "data": info.get("dataset", {}).get("manifest") or info.get("dataset", {}).get("root", ""),
            "mode": info.get("train_mode", ""), "folds": f"{len(info.get('folds_done', []))}/{n_folds}",
            "val_bal_acc": summary.get("val", {}).get("balanced_accuracy", {}).get("mean"),
            "test_bal_acc": ensemble.get("test", {}).get("balanced_accuracy"),
            "size_bytes": folder_size(entry.path), "note": note,
            "writers": [{"writer": b.writer, "host": b.host, "pid": b.pid, "phase": b.phase, "last": b.when,
                         "resume": b.resume, "alive": b in live.alive} for b in live.alive + live.stalled]}


def run_rows(runs_dir: Path, settings: HeartbeatSettings | None = None) -> list[dict]:
    """Every run of the folder, newest first."""
    return [run_row(entry, settings) for entry in store.list_runs(Path(runs_dir))]


def format_rows(rows: list[dict]) -> str:
    """A plain-text table, with each run's note indented under it."""
    def cell(row: dict, column: str) -> str:
        value = row.get(column)
        if column == "size":
            return human_size(row["size_bytes"])
        if column.endswith("bal_acc"):
            return "-" if value is None else f"{100 * value:.1f}%"
        if column == "created":
            return (value or "")[:16].replace("T", " ")
        if column == "data":
            return Path(value).name if value else ""
        return str(value or "")
    table = [[column.replace("_", " ") for column in COLUMNS]] + [[cell(r, c) for c in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = []
    for index, line in enumerate(table):
        lines.append("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip())
        note = rows[index - 1]["note"] if index else None
        if note:
            lines.append(f"    {note}")
    return "\n".join(lines)
