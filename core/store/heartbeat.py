"""Signs of life of a long-running writer (a run, a fold job, remedies, tune, amazon, explain), and how a reader
tells a live writer from one killed by SIGKILL, an out-of-memory kill or a lost machine.

A writer holds `heartbeat(folder, ...)` while it works: a daemon thread rewrites FOLDER/heartbeat[-NAME].json
atomically every `interval_s` (time, host, pid, what it is doing, progress, the command that resumes it). A
writer that ends, normally or by an exception, removes its file; only a killed one leaves it behind, and a
reader finds it older than `stall_after_s`: `stalled`. Readers compare the time written in the file with their
own clock and never probe locks, so this works for a runs folder on a shared file system read from another
machine (whose clocks are kept in step, e.g. by NTP).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core.store.run_store import RUN_JSON, RunEntry, atomic_path, read_json

HEARTBEAT_PREFIX = "heartbeat"   # FOLDER/heartbeat.json (the folder's main writer), heartbeat-NAME.json (others)


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_s: float = 5.0       # how often a writer rewrites its heartbeat
    stall_after_s: float = 60.0   # a writer silent for longer reads `stalled` (twelve missed beats)


@dataclass
class Beat:
    """One writer's last sign of life, as a reader sees it."""
    path: Path
    writer: str
    time: float               # seconds since the epoch, the writer's clock
    host: str
    pid: int
    phase: str
    progress: dict
    resume: str
    age_s: float = 0.0

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="seconds")

    def describe(self) -> str:
        """e.g. `fold 2 of 5 (training) on gpu7 pid 4242, silent since 2026-12-03T12:00:00+00:00`"""
        done, total = self.progress.get("done"), self.progress.get("total")
        progress = f" {done} of {total}" if done is not None and total is not None else ""
        return (f"{self.writer}: {self.phase}{progress} on {self.host} pid {self.pid}, last sign of life "
                f"{self.when} ({_duration(self.age_s)} ago)")


@dataclass
class Liveness:
    """What the heartbeats of a folder say: `alive` (a writer beat recently), `stalled` (every writer left
    a heartbeat older than the threshold: killed) or `none` (no writer has one)."""
    state: str
    alive: list[Beat] = field(default_factory=list)
    stalled: list[Beat] = field(default_factory=list)

    @property
    def resume(self) -> list[str]:
        return sorted({beat.resume for beat in self.stalled if beat.resume})


class Heartbeat:
    """A writer's heartbeat: `update()` what it is doing; the thread writes it every interval."""

    def __init__(self, path: Path, writer: str, resume: str, settings: HeartbeatSettings):
        self.path, self.settings = Path(path), settings
        self._record = {"writer": writer, "host": socket.gethostname(), "pid": os.getpid(), "phase": "starting",
                        "progress": {}, "resume": resume,
                        "started": datetime.now(UTC).isoformat(timespec="seconds")}
        self.enabled = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {writer}", daemon=True)

    def update(self, phase: str | None = None, done: int | None = None, total: int | None = None) -> None:
        """What the writer does now; written at once (a phase change is news), then every interval."""
        with self._lock:
            if phase is not None:
                self._record["phase"] = phase
            if done is not None or total is not None:
                self._record["progress"] = {"done": done, "total": total}
        self._try_beat()

    def beat(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            record = {**self._record, "time": time.time()}
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(record) + "\n")

    def _try_beat(self) -> None:
        try:
            self.beat()
        except OSError:  # a full disk or a lost mount must not stop the writer's work; readers see it stall
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval_s):
            self._try_beat()

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # never hide why the writer ended; a heartbeat left behind reads stalled, harmlessly
            pass


def heartbeat_path(folder: Path, name: str = "") -> Path:
    return Path(folder) / (f"{HEARTBEAT_PREFIX}-{name}.json" if name else f"{HEARTBEAT_PREFIX}.json")


@contextmanager
def heartbeat(folder: Path, writer: str, resume: str, name: str = "", settings: HeartbeatSettings | None = None,
              optional: bool = False) -> Iterator[Heartbeat]:
    """Beat in FOLDER while the block runs. writer: what it is (`run`, `fold 2`, ...); resume: the command that
    finishes its work if it is killed; name: a second writer's own file (a fold job beside the run's);
    optional: a writer whose output lives elsewhere (explain, into the cache) still works in a folder it may not
    write, without a heartbeat."""
    beat = Heartbeat(heartbeat_path(folder, name), writer, resume, settings or HeartbeatSettings())
    try:
        beat.start()
    except OSError:
        if not optional:
            raise
        beat.enabled = False   # update() then writes nothing
        yield beat
        return
    try:
        yield beat
    finally:
        beat.stop()


def read_beats(folder: Path, now: float | None = None) -> list[Beat]:
    """Every heartbeat in `folder` (unreadable ones skipped: a reader never fails on them)."""
    now = time.time() if now is None else now
    beats = []
    for path in sorted(Path(folder).glob(f"{HEARTBEAT_PREFIX}*.json")):
        try:
            record = read_json(path)
            beats.append(Beat(path, str(record["writer"]), float(record["time"]), str(record.get("host", "?")),
                              int(record.get("pid", 0)), str(record.get("phase", "")),
                              dict(record.get("progress") or {}), str(record.get("resume", "")),
                              max(0.0, now - float(record["time"]))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return beats


def liveness(folder: Path, settings: HeartbeatSettings | None = None, now: float | None = None) -> Liveness:
    settings = settings or HeartbeatSettings()
    beats = read_beats(folder, now)
    alive = [b for b in beats if b.age_s <= settings.stall_after_s]
    stalled = [b for b in beats if b.age_s > settings.stall_after_s]
    return Liveness("alive" if alive else "stalled" if stalled else "none", alive, stalled)


def clear_stalled(folder: Path, settings: HeartbeatSettings | None = None) -> None:
    """Remove heartbeats their writers left when killed (a resumed run takes over their work)."""
    for beat in liveness(folder, settings).stalled:
        beat.path.unlink(missing_ok=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ---------------------------------------------------------------- a run's status, as readers show it

RUN_STATUSES = ("running", "stalled", "waiting", "complete", "failed", "stopped", "pruned", "damaged")


def derived_status(recorded: str, folder: Path, record: Path, prepared: bool = False,
                   settings: HeartbeatSettings | None = None, now: float | None = None) -> tuple[str, Liveness]:
    """The recorded status of a run, experiment or study (`record`: its run.json or experiment.json), except
    that a `running` one nobody beats for reads `stalled` (its writer was killed), or `waiting` when `prepared`
    (a run made with --prepare-only whose fold jobs have not started). Derived at read time: a reader never
    rewrites the record."""
    settings = settings or HeartbeatSettings()
    now = time.time() if now is None else now
    live = liveness(folder, settings, now)
    if recorded != "running" or live.state == "alive":
        return recorded, live
    if live.state == "stalled":
        return "stalled", live
    if prepared:
        return "waiting", live
    try:   # no heartbeat at all: just started, or written by a foldlens that did not beat and then killed
        silent = now - Path(record).stat().st_mtime
    except OSError:
        return "stalled", live
    return ("running" if silent <= settings.stall_after_s else "stalled"), live


def run_status(entry: RunEntry, settings: HeartbeatSettings | None = None,
               now: float | None = None) -> tuple[str, Liveness]:
    """A listed run's status as readers show it (see `derived_status`)."""
    return derived_status(entry.status, entry.path, entry.path / RUN_JSON,
                          bool((entry.info or {}).get("prepared_for_fold_jobs")), settings, now)
