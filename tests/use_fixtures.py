"""Tiny trained runs (random weights, 32 px, 2 folds) whose fold models predict, serve and report use."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from conftest import make_csv_dataset

import train_cli

TINY = ["--weights", "none", "--image-size", "32", "--folds", "2", "--batch-size", "8", "--num-workers", "0"]


def train_tiny(runs_dir: Path, data: Path, name: str, *extra: str) -> Path:
    code = train_cli.main(["--data", str(data), "--runs-dir", str(runs_dir), "--name", name, *TINY, *extra])
    assert code == 0
    return next(runs_dir.glob(f"*-{name}"))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"head": run, "finetune": run} in one runs folder, trained on the same 24-image grouped dataset."""
    root = tmp_path_factory.mktemp("use")
    data = make_csv_dataset(root / "data")
    return {"head": train_tiny(root / "runs", data, "head", "--train-mode", "head", "--epochs", "3"),
            "finetune": train_tiny(root / "runs", data, "finetune", "--train-mode", "finetune", "--epochs", "1")}


def huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG of a few hundred bytes whose header claims width x height pixels: what a decompression bomb shows
    a decoder before it allocates anything."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit greyscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000)))
            + chunk(b"IEND", b""))
