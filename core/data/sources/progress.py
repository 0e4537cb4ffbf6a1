"""What a long download says while it runs: images done and failed per category, and the rate, printed as a
line every few seconds (a log file gets them too, where progress bars are off) and into the build's heartbeat."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class CategoryCount:
    asked: int
    products: int = 0
    images: int = 0
    failed: int = 0


@dataclass
class DownloadProgress:
    every_s: float                                   # seconds between printed lines; 0 prints after every product
    on_change: Callable[[str, int, int], None] = lambda phase, done, total: None   # e.g. Heartbeat.update
    write: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)
    counts: dict[str, CategoryCount] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)

    def start(self, category: str, asked: int) -> None:
        self.counts[category] = CategoryCount(asked)

    def product(self, category: str, images: int, failed: int, obtained: bool) -> None:
        count = self.counts[category]
        count.images, count.failed = count.images + images, count.failed + failed
        count.products += obtained
        self.on_change(f"downloading {category}", count.products, count.asked)
        if time.monotonic() - self._last >= self.every_s:
            self.write(self.line(category))
            self._last = time.monotonic()

    def finish(self, category: str) -> None:
        self.write(self.line(category) + " done")
        self._last = time.monotonic()

    def line(self, category: str) -> str:
        count = self.counts[category]
        images = sum(c.images + c.failed for c in self.counts.values())
        rate = images / max(time.monotonic() - self.started, 1e-9)
        return (f"{category}: {count.products} of {count.asked} products, {count.images} images, "
                f"{count.failed} failed ({rate:.1f} images/s)")
