"""A dashboard served on a free loopback port and a headless Chromium: shared by the browser test and
bench/bench_browser.py, so both wait for the same thing ("drawn") in the same way."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Drawn: the script run has finished (the app's script state; the "running" indicator only shows after a
# delay, so alone it can pass before a slow page has sent its charts), no loading skeletons, and every chart
# container (Plotly or Vega-Lite) has drawn its plot.
DRAWN = """() => document.querySelector('[data-testid="stApp"]')?.dataset.testScriptState === 'notRunning'
  && !document.querySelector('[data-testid="stStatusWidget"]')
  && !document.querySelector('[data-testid="stSkeleton"]')
  && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(c => c.querySelector('.main-svg'))
  && [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].every(c => c.querySelector('canvas, svg'))
  && [...document.images].every(i => i.complete)"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_dashboard(runs_dir: Path, cache_dir: Path, start_timeout_s: float = 60.0) -> Iterator[str]:
    """`streamlit run dashboard/Home.py` on 127.0.0.1; yields its URL, stops it afterwards."""
    with serve_streamlit("dashboard/Home.py", ["--runs-dir", str(runs_dir)], {"FOLDLENS_CACHE": str(cache_dir)},
                         start_timeout_s) as url:
        yield url


@contextmanager
def serve_streamlit(script: str, script_args: list[str] | None = None, env: dict[str, str] | None = None,
                    start_timeout_s: float = 60.0) -> Iterator[str]:
    """`streamlit run SCRIPT -- SCRIPT_ARGS` (a path from the repository root) on 127.0.0.1; yields its URL,
    stops it afterwards."""
    port = free_port()
    # The server's output goes to a file, not a pipe nobody reads: a long bench logs enough to fill a pipe,
    # and a server blocked on a full pipe stops answering.
    log = tempfile.TemporaryFile()
    # The `streamlit` command beside this Python, as `make demo` runs it: unlike `python -m streamlit`, it does
    # not put the working folder on the import path, so a page that imports core too early fails here as well.
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("streamlit")), "run", script, "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--", *(script_args or [])],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_timeout_s
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    process.wait()
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_until_drawn(page, timeout_ms: float = 60000) -> None:
    """After a navigation or a rerun: the page's script ran and every chart and image is drawn."""
    page.wait_for_selector('[data-testid="stAppViewContainer"] h1', timeout=timeout_ms)
    page.wait_for_function(DRAWN, timeout=timeout_ms, polling=50)
