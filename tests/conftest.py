"""Shared fixtures: tiny image datasets made on the fly (tests never read ../shared)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASS_COLOURS = {"apple": (200, 30, 30), "leaf": (30, 160, 40), "sky": (40, 90, 220)}


def make_image(path: Path, colour: tuple[int, int, int], seed: int, size: int = 40, fmt: str = "PNG") -> None:
    """A coloured square with noise, so classes are learnable and files differ."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)


def make_folder_dataset(root: Path, per_class: int = 6) -> Path:
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(per_class):
            make_image(root / name / f"{name}_{i}.png", colour, seed=100 * c + i)
    return root


def make_csv_dataset(root: Path, per_class: int = 8, per_group: int = 2) -> Path:
    """Images in groups of `per_group` (think: one product photographed twice) with a CSV manifest."""
    rows = []
    for c, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for i in range(per_class):
            relative = f"images/{name}_{i}.jpg"
            make_image(root / relative, colour, seed=100 * c + i, fmt="JPEG")
            rows.append({"path": relative, "label": name, "group": f"{name}-g{i // per_group}"})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "data")


@pytest.fixture
def csv_dataset(tmp_path: Path) -> Path:
    return make_csv_dataset(tmp_path / "data")
