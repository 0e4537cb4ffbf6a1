"""The settings of `train_cli.py serve`, apart from the server so that `serve --help` reads its defaults without
importing torch and FastAPI."""
from __future__ import annotations

from dataclasses import dataclass

from core.config import CONFORMAL_COVERAGE

TOKEN_ENV = "FOLDLENS_API_TOKEN"


@dataclass
class ServeSettings:
    """Limits on one request (recorded in GET /model) and the optional bearer token."""
    max_file_bytes: int = 5 * 1024 * 1024
    max_files: int = 16
    max_pixels: int = 40_000_000      # refused before decoding: a small file can decode to gigabytes
    max_batch: int | None = None      # images of queued requests per forward pass; None: 32 on CUDA, 1 on a CPU
    token: str | None = None
    tta: bool = False
    coverage: float = CONFORMAL_COVERAGE   # prediction sets hold the true class for this share of images
    class_conditional: bool = False        # ... for every class on its own

    def limits(self) -> dict:
        return {"max_file_bytes": self.max_file_bytes, "max_files": self.max_files, "max_pixels": self.max_pixels,
                "max_batch": self.max_batch, "tta": self.tta}
