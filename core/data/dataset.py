"""Find the dataset's images, decode each once, and keep what is readable (with the reasons for what is not)."""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from core.errors import UserError

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Smaller is a placeholder, not a photo: web shops answer a missing image with e.g. a 1x1 pixel.
MIN_IMAGE_SIDE = 10
OPTIONAL_COLUMNS = ("group", "superclass")   # a manifest's columns besides path and label
# decode_bytes refuses images above Image.MAX_IMAGE_PIXELS itself; PIL's own warning would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class Dataset:
    root: Path                      # samples.path is relative to this folder
    manifest: str | None            # the CSV it came from, None for a CLASS/IMAGE folder
    samples: pd.DataFrame           # path, label, group, width, height, sha256 (readable images only)
    classes: list[str]
    has_groups: bool
    skipped: list[dict] = field(default_factory=list)   # {path, reason}
    superclasses: dict[str, str] | None = None          # class -> superclass (a manifest's superclass column)


# ---------------------------------------------------------------- decoding

def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit and float are rescaled, transparency is put on white."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        if image.mode in SIXTEEN_BIT_MODES:
            values = values / 257.0
        else:  # 32-bit int or float: stretch the observed range
            low, high = float(values.min()), float(values.max())
            values = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("RGB")


def decode_bytes(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode fully (so truncation is caught now), first frame only, EXIF rotation applied.

    Images above `max_pixels` (default PIL's Image.MAX_IMAGE_PIXELS) are refused before decoding."""
    if not data:
        raise ValueError("empty file")
    image = Image.open(io.BytesIO(data))
    # Above MAX_IMAGE_PIXELS PIL only warns; a bomb must be refused before it is decoded. (Checked here
    # rather than with warnings filters, which are process-wide and the scan decodes in threads.)
    limit = max_pixels or Image.MAX_IMAGE_PIXELS
    if limit and image.width * image.height > limit:
        raise Image.DecompressionBombError(f"{image.width}x{image.height} pixels exceeds the limit of {limit}")
    image.seek(0)
    image.load()
    return to_rgb(ImageOps.exif_transpose(image))


def load_rgb(path: str | os.PathLike) -> Image.Image:
    return decode_bytes(Path(path).read_bytes())


def failure_reason(exc: Exception) -> str:
    """One line saying why a file is not a usable image (the `reason` of skipped files)."""
    if isinstance(exc, Image.DecompressionBombError):
        return f"decompression bomb refused: {exc}"
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image (format not recognised)"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    text = str(exc) or type(exc).__name__
    return f"truncated: {text}" if "truncated" in text.lower() else f"unreadable: {text}"


def inspect_bytes(data: bytes) -> dict:
    """sha256, width and height of a usable image, or the reason it is not one."""
    try:
        width, height = decode_bytes(data).size
    except Exception as exc:  # any decoder failure skips one file, never the run
        return {"reason": failure_reason(exc)}
    if min(width, height) < MIN_IMAGE_SIDE:
        return {"reason": f"placeholder: {width}x{height} pixels (under {MIN_IMAGE_SIDE} on a side)"}
    return {"sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height}


def inspect_file(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except Exception as exc:
        return {"reason": failure_reason(exc)}
    return inspect_bytes(data)


# ---------------------------------------------------------------- listing

def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _list_folder(root: Path) -> pd.DataFrame:
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and not _is_hidden(relative):
                rows.append({"path": relative.as_posix(), "label": class_dir.name, "group": None,
                             "superclass": None})
    return pd.DataFrame(rows, columns=["path", "label", *OPTIONAL_COLUMNS])


def _list_manifest(csv_path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise UserError(f"--data {csv_path}: cannot read it as CSV ({exc}); expected columns path,label[,group]")
    missing = [c for c in ("path", "label") if c not in table.columns]
    if missing:
        raise UserError(f"--data {csv_path}: missing column(s) {', '.join(missing)}; "
                        f"expected path,label and optionally group (found: {', '.join(table.columns)})")
    for optional in OPTIONAL_COLUMNS:
        if optional not in table.columns:
            table[optional] = None
        else:
            table[optional] = table[optional].str.strip().replace("", None)
    table["label"] = table["label"].str.strip()
    return table[["path", "label", *OPTIONAL_COLUMNS]]


def superclass_map(samples: pd.DataFrame, data: str | os.PathLike) -> dict[str, str] | None:
    """class -> superclass from the superclass column (None when no row has one). A row without a superclass
    takes its class's; a class with none at all, or with two, is refused."""
    given = samples.dropna(subset=["superclass"])
    if given.empty:
        return None
    per_class = given.groupby("label")["superclass"].unique()
    for label, names in per_class.items():
        if len(names) > 1:
            first, second = sorted(names)[:2]
            raise UserError(f"--data {data}: class '{label}' has two superclasses, '{first}' and '{second}'; "
                            f"give every row of a class the same superclass")
    without = sorted(set(samples["label"]) - set(per_class.index))
    if without:
        raise UserError(f"--data {data}: class '{without[0]}' has no superclass"
                        f"{f' (nor do {len(without) - 1} other classes)' if len(without) > 1 else ''}; fill the "
                        f"superclass column for every class, or leave it empty everywhere")
    return {label: str(names[0]) for label, names in sorted(per_class.items())}


def _rebase(listing: pd.DataFrame, csv_dir: Path) -> tuple[Path, pd.DataFrame]:
    """Manifest paths may be absolute or climb out with '..': root them at the folder they all share."""
    absolute = [os.path.normpath(os.path.join(csv_dir, p)) for p in listing.path]
    root = Path(os.path.commonpath([str(csv_dir), *(os.path.dirname(a) for a in absolute)]))
    return root, listing.assign(path=[Path(a).relative_to(root).as_posix() for a in absolute])


def scan_dataset(data: str | os.PathLike, workers: int = 4) -> Dataset:
    """List the dataset (folder or CSV manifest) and decode every image once."""
    source = Path(data).expanduser()
    if source.is_dir():
        root, manifest, listing = source.resolve(), None, _list_folder(source)
    elif source.is_file():
        manifest = str(source.resolve())
        root, listing = _rebase(_list_manifest(source), source.resolve().parent)
    else:
        raise UserError(f"--data {data}: no such folder or CSV file; give a folder laid out CLASS/IMAGE "
                        f"or a CSV with path,label[,group] columns")
    if listing.empty:
        what = "no class sub-folders with files" if manifest is None else "no rows"
        raise UserError(f"--data {data}: {what} found; expected a folder laid out CLASS/IMAGE "
                        f"(one sub-folder per class) or a CSV with path,label[,group] rows")

    skipped = [{"path": p, "reason": "empty label"} for p in listing.loc[listing.label == "", "path"]]
    listing = listing[listing.label != ""].reset_index(drop=True)
    paths = [root / p for p in listing.path]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without holding the GIL
        results = list(tqdm(pool.map(inspect_file, paths), total=len(paths), desc="scan", unit="img",
                            leave=False))
    good = [i for i, r in enumerate(results) if "reason" not in r]
    skipped += [{"path": listing.path[i], "reason": r["reason"]} for i, r in enumerate(results) if "reason" in r]
    samples = listing.iloc[good].reset_index(drop=True)
    for key in ("width", "height", "sha256"):
        samples[key] = [results[i][key] for i in good]
    if samples.empty:
        raise UserError(f"--data {data}: none of the {len(listing)} files could be read as an image")
    classes = sorted(samples.label.unique())
    if len(classes) < 2:
        raise UserError(f"--data {data}: found only class '{classes[0]}'; a classifier needs at least two classes")
    return Dataset(root=root, manifest=manifest, samples=samples, classes=classes,
                   has_groups=bool(samples.group.notna().any()), skipped=skipped,
                   superclasses=superclass_map(samples, data))


def label_conflicts(samples: pd.DataFrame) -> list[dict]:
    """Identical files (same sha256) filed under different labels, one entry per file content:
    {sha256, labels (sorted), sample_ids, paths}; samples is indexed by sample_id."""
    repeated = samples[samples["sha256"].duplicated(keep=False)]
    return [{"sha256": sha, "labels": sorted(rows["label"].unique()), "sample_ids": rows.index.tolist(),
             "paths": rows["path"].tolist()}
            for sha, rows in repeated.groupby("sha256", sort=False) if rows["label"].nunique() > 1]
