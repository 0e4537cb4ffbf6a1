"""A bounded load test of `train_cli.py serve`: latency percentiles, throughput, errors, server memory.

    .venv/bin/python bench/bench_serve.py [RUN_ID] [--runs-dir runs] [--requests 200] [--clients 8] [--rounds 2]
                                          [--max-batch N]

Starts the server as a user would (a uvicorn process on a free loopback port), then sends `--requests`
POST /predict requests, one image each (the run's own images, in turn), from `--clients` concurrent
clients, `--rounds` times. Prints per round: latency p50/p90/p99/max, requests per second, non-200
answers, and the server's resident memory (VmRSS) before and after, so growth between rounds shows.
`--max-batch N` is passed to the server (images of queued requests sharing one forward pass; the server's
default is 1 on a CPU): compare `--max-batch 1` with `--max-batch 32` to see what sharing gains.
Every request has a timeout and the whole test a deadline. Default run: the newest complete run.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.browser_harness import free_port  # noqa: E402
from core.store import run_store  # noqa: E402

DEADLINE_S = 900


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pick_run(runs_dir: Path, run_id: str | None) -> run_store.RunEntry:
    complete = [e for e in run_store.list_runs(runs_dir) if e.status == "complete"]
    entry = next((e for e in complete if e.run_id == run_id), None) if run_id else (complete[0] if complete else None)
    if entry is None:
        sys.exit(f"no complete run {run_id or ''} under {runs_dir}; train one: python train_cli.py --folds 5")
    return entry


def upload_bodies(entry: run_store.RunEntry, count: int = 50) -> list[tuple[str, bytes]]:
    samples = pd.read_parquet(entry.path / "samples.parquet").head(count)
    root = Path(entry.info["dataset"]["root"])
    return [(Path(p).name, (root / p).read_bytes()) for p in samples["path"]]


def one_round(url: str, bodies: list[tuple[str, bytes]], requests: int, clients: int) -> dict:
    def send(i: int) -> tuple[float, int]:
        name, data = bodies[i % len(bodies)]
        started = time.perf_counter()
        try:
            upload = [("files", (name, data, "application/octet-stream"))]
            status = http.post(f"{url}/predict", files=upload).status_code
        except httpx.HTTPError:
            status = -1
        return time.perf_counter() - started, status

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=clients)) as http:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(send, range(requests)))
        wall = time.perf_counter() - started
    latency = np.array([r[0] for r in results]) * 1000
    return {"p50": np.percentile(latency, 50), "p90": np.percentile(latency, 90),
            "p99": np.percentile(latency, 99), "max": latency.max(), "rps": requests / wall, "wall": wall,
            "errors": sum(status != 200 for _, status in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id", nargs="?")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=None)
    args = parser.parse_args()
    entry = pick_run(Path(args.runs_dir), args.run_id)
    bodies = upload_bodies(entry)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(REPO / "train_cli.py"), "serve", entry.run_id, "--port", str(port),
               "--runs-dir", args.runs_dir] + (["--max-batch", str(args.max_batch)] if args.max_batch else [])
    server = subprocess.Popen(command, env={**os.environ, "FOLDLENS_API_TOKEN": ""}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"server did not start: {server.stdout.read().decode()[-2000:]}")
            time.sleep(0.5)
        info = entry.info
        print(f"run {entry.run_id}: {info['train_mode']} mode, {info['config']['folds']} folds, "
              f"{info['model']['name']} at {info['config']['image_size']} px; max batch {args.max_batch or 'default'}; "
              f"{platform.machine()} CPU with {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
              f"(other processes share them)")
        one_round(url, bodies, 2 * args.clients, args.clients)  # warm-up: first-batch allocations
        print(f"server memory after warm-up: {rss_mib(server.pid):.0f} MiB")
        for number in range(1, args.rounds + 1):
            if time.monotonic() > deadline:
                sys.exit("deadline reached")
            before = rss_mib(server.pid)
            r = one_round(url, bodies, args.requests, args.clients)
            after = rss_mib(server.pid)
            print(f"round {number}: {args.requests} requests (1 image each) from {args.clients} clients in "
                  f"{r['wall']:.1f} s: {r['rps']:.1f} requests/s; latency p50 {r['p50']:.0f} ms, p90 {r['p90']:.0f} "
                  f"ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms; non-200 answers {r['errors']}; server memory "
                  f"{before:.0f} -> {after:.0f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
