"""The settings of a dataset build, kept apart from the builders so `train_cli.py amazon --help` reads its
defaults without importing them (and numpy, pandas and Pillow with them)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpSettings:
    timeout: float = 20.0          # seconds for one attempt, body included
    retries: int = 3               # attempts after the first, for timeouts, connection errors, 429 and 5xx
    backoff: float = 1.0           # seconds before the first retry; doubles each retry, with jitter
    max_wait: float = 60.0         # longest single wait; a longer Retry-After gives up instead
    max_bytes: int = 50_000_000    # larger answers are refused (an image here is well under 5 MB)


@dataclass(frozen=True)
class AmazonSettings:
    categories: tuple[str, ...]
    meta: str                       # folder holding meta_<Category>.jsonl[.gz], or the base URL serving them
    out: str
    per_class: int | None = None    # products per category; None = every product with an image
    images: str = "main"            # main: the MAIN image (else the first) of each product; all: every image
    size: str = "large"             # large (~500 px) or hi_res (up to 1500 px); the other one when missing
    seed: int = 0
    min_ratings: int = 0            # keep products with at least this many ratings
    label_level: int = 0            # 0: label = the file's category; N: the N-th entry of the record's category
                                    # path, with the file's category as its superclass
    concurrency: int = 8            # downloads at once
    progress_every_s: float = 10.0  # seconds between progress lines (images done, failed, rate) on stderr
    http: HttpSettings = field(default_factory=HttpSettings)
