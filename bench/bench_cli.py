#!/usr/bin/env python
"""Wall time of `train_cli.py --help` and of every subcommand's `--help`, each in a fresh interpreter (target:
under 2 s: arguments are parsed before torch and the rest of core are imported).

  python bench/bench_cli.py [--repeat 3]       prints the best of N runs per command
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import train_cli  # noqa: E402  (cheap: it imports only the config dataclass and the error type)


def wall_seconds(arguments: list[str], repeat: int) -> float:
    """Best wall time of `python ARGUMENTS` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, *arguments], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best is printed")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores; python {sys.version.split()[0]}")
    baseline = wall_seconds(["-c", "pass"], args.repeat)
    print(f"python -c pass                        {baseline:5.2f} s  (interpreter start-up, for scale)")
    for argv in (["--help"], *([name, "--help"] for name in train_cli.COMMANDS)):
        best = wall_seconds(["train_cli.py", *argv], args.repeat)
        print(f"train_cli.py {' '.join(argv):24s} {best:5.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
