"""Reading Amazon Reviews 2023 metadata is streamed: time and peak memory of one category's scan.

    .venv/bin/python bench/bench_amazon_meta.py [--records 112590] [--per-class 500] [--keep DIR]

Writes a gzipped meta_<Category>.jsonl of real-shaped records (about 1.9 kB each, like All_Beauty's
213 MB for 112,590 records) into DIR (default: a temporary folder), then scans it as
`train_cli.py amazon` does (no downloads) and prints the seconds, records per second and the growth of
the process's peak memory during the scan, which stays far below the file's size.
"""
from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.sources.amazon import scan_category  # noqa: E402
from core.data.sources.http import new_client  # noqa: E402
from core.data.sources.settings import AmazonSettings, HttpSettings  # noqa: E402

CATEGORY = "Bench_Category"


def record(index: int) -> dict:
    image = f"https://m.media-amazon.com/images/I/{index:08d}Ab+Cd"
    images = [{"thumb": f"{image}{v}._SS40_.jpg", "large": f"{image}{v}.jpg", "variant": name,
               "hi_res": f"{image}{v}X._SL1500_.jpg" if v % 2 else None}
              for v, name in enumerate(["MAIN", "PT01", "PT02", "PT03"])]
    return {"main_category": "All Beauty", "title": f"Product {index} " + "word " * 20, "average_rating": 4.2,
            "rating_number": index % 300, "features": ["feature text " * 8] * 3, "description": ["text " * 60],
            "price": None, "images": images, "videos": [], "store": "Store", "categories": [],
            "details": {"Brand": "X", "Item Weight": "1 ounce"}, "parent_asin": f"B{index:09d}",
            "bought_together": None}


def write_meta(folder: Path, records: int) -> Path:
    path = folder / f"meta_{CATEGORY}.jsonl.gz"
    if not path.exists():
        with gzip.open(path, "wt", compresslevel=6) as handle:
            for index in range(records):
                handle.write(json.dumps(record(index)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=112_590)
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--keep", help="folder for the generated file (reused when present)")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_amazon_"))
    folder.mkdir(parents=True, exist_ok=True)
    path = write_meta(folder, args.records)
    plain_bytes = sum(len(line) for line in gzip.open(path, "rb"))
    settings = AmazonSettings(categories=(CATEGORY,), meta=str(folder), out=str(folder / "out"),
                              per_class=args.per_class)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with new_client(HttpSettings(), 1) as client:
        scan = scan_category(CATEGORY, settings, client)
    seconds = time.perf_counter() - started
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"file: {path.stat().st_size / 1e6:.1f} MB gzipped, {plain_bytes / 1e6:.0f} MB plain, "
          f"{scan.records} records")
    print(f"scan: {seconds:.1f} s, {scan.records / seconds:,.0f} records/s, {len(scan.candidates)} candidates kept")
    print(f"peak memory growth during the scan: {grown / 1024:.0f} MB")


if __name__ == "__main__":
    main()
