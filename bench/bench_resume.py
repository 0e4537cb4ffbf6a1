"""Resume after `kill -9` during feature extraction: start a cold default demo run (`train_cli.py --folds 5`, head
mode, ImageNet weights from TORCH_HOME, an empty feature cache), SIGKILL its process group once part of the
images' features are in the cache, then time `train_cli.py --resume RUN_ID` to completion and print how many
images it computed (the run's own "features: M computed, K from cache" line); then, for comparison in the same
session, time an uninterrupted cold run with another empty cache.

    .venv/bin/python bench/bench_resume.py [--kill-at 0.5] [--no-compare] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES_LINE = re.compile(r"features: (\d+) computed, (\d+) from cache \(([\d.]+) s\)")
POLL_SECONDS, START_TIMEOUT = 0.05, 900


def train_cli(runs_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "train_cli.py", "--runs-dir", str(runs_dir), *args]


def cold(cache_dir: Path) -> tuple[str, ...]:
    """The default demo run's arguments, with this (empty) feature cache."""
    return "--folds", "5", "--cache-dir", str(cache_dir)


def environment(cache_dir: Path) -> dict:
    return {**os.environ, "FOLDLENS_CACHE": str(cache_dir), "TQDM_DISABLE": "1"}


def cached_count(cache_dir: Path) -> int:
    """Images whose features are in the cache (finished files only: writes go through a hidden .tmp file)."""
    return sum(1 for _ in (cache_dir / "features").rglob("*.npy"))


def the_run(runs_dir: Path) -> dict | None:
    """run.json of the only run in runs_dir, once it is written."""
    found = list(runs_dir.glob("*/run.json")) if runs_dir.exists() else []
    return json.loads(found[0].read_text()) if found else None


def kill_during_extraction(runs_dir: Path, cache_dir: Path, share: float) -> tuple[float, int, int, str]:
    """Start a cold run and SIGKILL its process group (DataLoader workers too) once `share` of its images' features
    are cached. Returns (seconds until the kill, images cached at the kill, images in the run, run id)."""
    started = time.perf_counter()
    process = subprocess.Popen(train_cli(runs_dir, *cold(cache_dir)), cwd=ROOT, env=environment(cache_dir),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = None
    while time.perf_counter() - started < START_TIMEOUT and process.poll() is None:
        run = run or the_run(runs_dir)
        if run and cached_count(cache_dir) >= share * run["dataset"]["n_images"]:
            break
        time.sleep(POLL_SECONDS)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if run is None or process.returncode != -signal.SIGKILL:
        raise SystemExit(f"the run ended by itself (exit {process.returncode}) or had not started after "
                         f"{START_TIMEOUT} s: nothing to resume")
    killed_after = time.perf_counter() - started
    return killed_after, cached_count(cache_dir), run["dataset"]["n_images"], run["run_id"]


def timed_run(runs_dir: Path, cache_dir: Path, *args: str) -> tuple[float, int, int, float]:
    """Run to completion. Returns (seconds end to end, images computed, images from the cache, feature seconds)."""
    started = time.perf_counter()
    done = subprocess.run(train_cli(runs_dir, *args), cwd=ROOT, env=environment(cache_dir),
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"train_cli.py {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    computed, from_cache, seconds = FEATURES_LINE.search(done.stdout).groups()
    return wall, int(computed), int(from_cache), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="kill once this share of the images' features is cached (default: %(default)s)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip the uninterrupted cold run")
    parser.add_argument("--workdir", type=Path, default=None, help="for the runs and caches (default: a temp dir)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="foldlens-resume-"))
    runs_dir, cache_dir = workdir / "runs", workdir / "cache"

    killed_after, cached, n_images, run_id = kill_during_extraction(runs_dir, cache_dir, args.kill_at)
    print(f"killed (SIGKILL to the process group) after {killed_after:.1f} s with {cached} of {n_images} images' "
          f"features cached")
    wall, computed, from_cache, seconds = timed_run(runs_dir, cache_dir, "--resume", run_id)
    print(f"resume: {wall:.1f} s end to end; features: {computed} computed, {from_cache} from the cache "
          f"({seconds:.1f} s); {n_images - cached} were not cached at the kill")
    if args.compare:
        wall, computed, _, seconds = timed_run(workdir / "runs-cold", workdir / "cache-cold",
                                                *cold(workdir / "cache-cold"))
        print(f"uninterrupted cold run: {wall:.1f} s end to end; features: {computed} computed ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
