"""Amazon Reviews 2023 item metadata -> a grouped image dataset that `train_cli.py --data` reads.

Output: <out>/<Category>/<parent_asin>_<variant>.jpg, manifest.csv (path, label, group = parent_asin, url,
variant, title, sha256) and build.json (the command, counts asked for and obtained, every failure with its
reason). The label is the metadata file's category (the records' own category fields are unreliable), or with
--label-level N the N-th entry of the record's category path, the file's category then its superclass (manifest
column superclass; products without that level are left out). The
metadata (McAuley Lab) carries no licence and is meant for research: a build records URLs and hashes, and the
project never ships the images.
"""
from __future__ import annotations

import csv
import difflib
import hashlib
import heapq
import json
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

import httpx
from tqdm.auto import tqdm

from core.data.sources.http import FetchError, new_client, stream
from core.data.sources.images import fetch_image
from core.data.sources.jsonl import file_chunks, json_objects
from core.data.sources.progress import DownloadProgress
from core.data.sources.settings import AmazonSettings, HttpSettings
from core.errors import UserError
from core.store.heartbeat import heartbeat
from core.store.run_store import atomic_path, write_json

BUILD_FORMAT = "foldlens-amazon-build/1"
META_NAMES = ("meta_{}.jsonl.gz", "meta_{}.jsonl")
MANIFEST_COLUMNS = ["path", "label", "group", "url", "variant", "title", "sha256"]
CATEGORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_&-]*$")
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Photo:
    variant: str
    url: str
    image_ids: frozenset[str]       # the IDs of its large and hi_res files


@dataclass(frozen=True)
class Product:
    parent_asin: str
    title: str
    photos: tuple[Photo, ...]
    subcategory: str | None = None  # --label-level N: the N-th entry of its category path


@dataclass
class CategoryScan:
    """One category's metadata, read once: what was dropped and why, and the sampled candidates in order."""
    category: str
    source: str
    records: int = 0
    malformed_lines: int = 0
    duplicate_records: int = 0
    below_min_ratings: int = 0
    without_images: int = 0
    without_category_level: int = 0   # --label-level N: products whose category path is shorter
    eligible: int = 0
    duplicate_image_ids: list[dict] = field(default_factory=list)
    candidates: list[Product] = field(default_factory=list)


# ---------------------------------------------------------------- settings

def check_settings(settings: AmazonSettings) -> None:
    """Everything that can be refused before a byte is read."""
    if not settings.categories:
        raise UserError("--categories: give at least one, e.g. All_Beauty,Digital_Music,Health_and_Personal_Care")
    for category in settings.categories:
        if not CATEGORY_PATTERN.match(category):
            raise UserError(f"--categories: '{category}' is not a category name (letters, digits, '_', as in "
                            f"meta_<Category>.jsonl)")
    checks = [(settings.per_class is not None and settings.per_class < 1, f"--per-class {settings.per_class}",
               "at least 1"),
              (settings.min_ratings < 0, f"--min-ratings {settings.min_ratings}", "0 or more"),
              (settings.label_level < 0, f"--label-level {settings.label_level}", "0 or more"),
              (settings.concurrency < 1, f"--concurrency {settings.concurrency}", "at least 1"),
              (settings.progress_every_s < 0, f"--progress-every {settings.progress_every_s}", "0 or more"),
              (settings.http.timeout <= 0, f"--timeout {settings.http.timeout:g}", "more than 0 seconds"),
              (settings.http.retries < 0, f"--retries {settings.http.retries}", "0 or more"),
              (settings.http.backoff < 0, f"--backoff {settings.http.backoff:g}", "0 seconds or more")]
    for bad, option, wanted in checks:
        if bad:
            raise UserError(f"{option}: must be {wanted}")
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose a folder for the dataset")
    if (out / "manifest.csv").exists() and not (out / "build.json").exists():
        raise UserError(f"--out {out}: holds a manifest.csv this command did not write; choose another folder")


# ---------------------------------------------------------------- metadata

def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def open_meta(category: str, meta: str, client: httpx.Client, settings: HttpSettings) -> tuple[str, Iterator[bytes]]:
    """The first of meta_<category>.jsonl.gz / .jsonl found under `meta` (folder or base URL), as byte chunks."""
    names = [pattern.format(category) for pattern in META_NAMES]
    if _is_url(meta):
        # One retry at most: someone is waiting to hear whether the address works at all.
        opening = replace(settings, retries=min(settings.retries, 1))
        for name in names:
            url = f"{meta.rstrip('/')}/{name}"
            try:
                return url, stream(client, url, opening)
            except FetchError as exc:
                if exc.status != 404:
                    raise UserError(f"--meta {meta}: no usable answer for {url} ({exc.reason}); check the "
                                    f"address and the connection") from None
        raise UserError(f"--meta {meta}: neither {' nor '.join(names)} is there (HTTP 404); check the base URL "
                        f"and the category name '{category}'")
    folder = Path(meta).expanduser()
    if folder.is_file():
        raise UserError(f"--meta {meta}: is a file; give the folder that holds it (files are found by the name "
                        f"meta_<Category>.jsonl[.gz])")
    if not folder.is_dir():
        raise UserError(f"--meta {meta}: no such folder; give the folder holding meta_<Category>.jsonl[.gz] "
                        f"files, or a base URL serving them")
    for name in names:
        if (folder / name).is_file():
            return str(folder / name), file_chunks(folder / name)
    present = sorted({re.sub(r"^meta_|\.jsonl(\.gz)?$", "", p.name) for p in folder.glob("meta_*.jsonl*")})
    close = difflib.get_close_matches(category, present, n=1)
    hint = f"did you mean {close[0]}?" if close else f"categories there: {', '.join(present) or 'none'}"
    raise UserError(f"--categories {category}: no {' or '.join(names)} in {folder} ({hint})")


def image_entries(images) -> list[dict]:
    """`images` as a list of {thumb, large, hi_res, variant}: raw JSONL has that; `datasets` exports a dict of lists."""
    if isinstance(images, str):  # some exports store nested fields as JSON text
        try:
            images = json.loads(images)
        except ValueError:
            return []
    if isinstance(images, dict):
        columns = {key: value for key, value in images.items() if isinstance(value, list)}
        length = max((len(value) for value in columns.values()), default=0)
        return [{key: value[i] if i < len(value) else None for key, value in columns.items()} for i in range(length)]
    return [entry for entry in images if isinstance(entry, dict)] if isinstance(images, list) else []


def image_id(url: str) -> str:
    """The image's ID in .../images/I/<ID>[.<modifiers>].jpg (IDs may contain '+'); the same file at any size."""
    name = url.split("?", 1)[0].split("#", 1)[0].rsplit("/", 1)[-1]
    return unquote(name).split(".", 1)[0] or url


def _url(value) -> str | None:
    return value.strip() if isinstance(value, str) and _is_url(value.strip()) else None


def choose_photos(images, settings: AmazonSettings) -> list[Photo]:
    preference = ("large", "hi_res") if settings.size == "large" else ("hi_res", "large")
    usable = []  # (index, variant, urls in order of preference) of the entries with a URL
    for index, entry in enumerate(image_entries(images)):
        urls = [url for url in (_url(entry.get(key)) for key in preference) if url]
        if urls:
            usable.append((index, UNSAFE_NAME_CHARS.sub("", str(entry.get("variant") or "")), urls))
    if settings.images == "main":
        main = [item for item in usable if item[1].upper() == "MAIN"]
        usable = (main or usable)[:1]
    photos, used_variants = [], Counter()
    for index, variant, urls in usable:
        variant = variant or f"IMG{index:02d}"
        used_variants[variant] += 1
        if used_variants[variant] > 1:  # a repeated variant name still needs a file name of its own
            variant = f"{variant}-{used_variants[variant]}"
        photos.append(Photo(variant, urls[0], frozenset(image_id(url) for url in urls)))
    return photos


def _ratings(record: dict) -> int:
    try:
        return int(float(record.get("rating_number") or 0))
    except (TypeError, ValueError):
        return 0


def sampling_key(seed: int, parent_asin: str) -> int:
    """A product's place in the sample: reproducible for a seed, whatever the order of the file."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{parent_asin}".encode()).digest()[:8], "big")


def scan_category(category: str, settings: AmazonSettings, client: httpx.Client) -> CategoryScan:
    """Stream one category's metadata once, keeping only the products the sample may need."""
    source, chunks = open_meta(category, settings.meta, client, settings.http)
    scan = CategoryScan(category, source)
    # Spares beyond --per-class stand in for products whose images all fail to download.
    keep = None if settings.per_class is None else 2 * settings.per_class + 10
    kept: list[tuple[int, str, Product]] = []   # a heap of the `keep` smallest keys, as (-key, asin, product)
    seen_products: set[str] = set()
    id_owner: dict[str, str] = {}
    try:
        for record in tqdm(json_objects(chunks), desc=f"{category} metadata", unit=" records", leave=False):
            product = _product(record, scan, seen_products, id_owner, settings)
            if product is None:
                continue
            scan.eligible += 1
            item = (-sampling_key(settings.seed, product.parent_asin), product.parent_asin, product)
            if keep is None or len(kept) < keep:
                heapq.heappush(kept, item)
            else:
                heapq.heappushpop(kept, item)
    except ValueError as exc:  # a broken gzip stream
        raise UserError(f"--meta {source}: {exc}; download the file again") from None
    scan.candidates = [product for _, _, product in sorted(kept, reverse=True)]
    _check_enough(scan, settings)
    return scan


def _product(record: dict | None, scan: CategoryScan, seen_products: set[str], id_owner: dict[str, str],
             settings: AmazonSettings) -> Product | None:
    """The record as a product to sample from, or None (counted in `scan` under its reason)."""
    asin = record.get("parent_asin") if record is not None else None
    if not isinstance(asin, str) or not asin.strip():
        scan.malformed_lines += 1
        return None
    scan.records += 1
    asin = asin.strip()
    if asin in seen_products:
        scan.duplicate_records += 1
        return None
    seen_products.add(asin)
    if _ratings(record) < settings.min_ratings:
        scan.below_min_ratings += 1
        return None
    subcategory = category_level(record, settings.label_level)
    if settings.label_level and subcategory is None:
        scan.without_category_level += 1
        return None
    photos = []
    for photo in choose_photos(record.get("images"), settings):
        taken = sorted(photo.image_ids & id_owner.keys())
        if taken:
            scan.duplicate_image_ids.append({"image_id": taken[0], "parent_asin": asin, "variant": photo.variant,
                                             "url": photo.url, "kept_for": id_owner[taken[0]]})
            continue
        id_owner.update(dict.fromkeys(photo.image_ids, asin))
        photos.append(photo)
    if not photos:
        scan.without_images += 1
        return None
    return Product(asin, " ".join(str(record.get("title") or "").split()), tuple(photos), subcategory)


def category_level(record: dict, level: int) -> str | None:
    """The `level`-th entry (1 = first) of the record's category path, None when it has none that deep."""
    path = record.get("categories")
    if level < 1 or not isinstance(path, list) or len(path) < level:
        return None
    name = " ".join(str(path[level - 1] or "").split())
    return name or None


def _check_enough(scan: CategoryScan, settings: AmazonSettings) -> None:
    if scan.records == 0:
        raise UserError(f"--categories {scan.category}: {scan.source} holds no product records (parent_asin); "
                        f"is it an Amazon Reviews 2023 meta_<Category>.jsonl file?")
    rule = f" and at least {settings.min_ratings} ratings" if settings.min_ratings else ""
    lower = " or lower --min-ratings" if settings.min_ratings else ""
    if scan.eligible == 0:
        raise UserError(f"--categories {scan.category}: no product in {scan.source} has an image URL{rule}; "
                        f"leave the category out{lower}")
    if (settings.per_class or 0) > scan.eligible:
        raise UserError(f"--per-class {settings.per_class}: {scan.category} has {scan.eligible} products with an "
                        f"image{rule}; ask for at most {scan.eligible}{lower}")


# ---------------------------------------------------------------- download

def _file_name(product: Product, photo: Photo) -> str:
    return f"{UNSAFE_NAME_CHARS.sub('-', product.parent_asin)}_{photo.variant}.jpg"


def download_category(scan: CategoryScan, settings: AmazonSettings, client: httpx.Client,
                      pool: ThreadPoolExecutor, stop: threading.Event, progress: DownloadProgress) -> dict:
    """Download candidates in sample order until --per-class products have at least one good image.

    Rounds ask for exactly the products still missing, so the result does not depend on timing: a rerun (or a
    resumed build) makes the same choices.
    """
    out = Path(settings.out)
    asked = settings.per_class or scan.eligible
    rows, failures, obtained, reused = [], [], 0, 0
    queue = iter(scan.candidates)
    progress.start(scan.category, asked)
    with tqdm(total=asked, desc=scan.category, unit=" products") as bar:
        while obtained < asked:
            batch = list(islice(queue, asked - obtained))
            if not batch:
                break
            futures = [[pool.submit(fetch_image, client, photo.url, out / scan.category / _file_name(product, photo),
                                    settings.http, partial(_pause, stop)) for photo in product.photos]
                       for product in batch]
            for product, product_futures in zip(batch, futures):
                good, failed_before = 0, len(failures)
                for photo, future in zip(product.photos, product_futures):
                    where = {"category": scan.category, "parent_asin": product.parent_asin,
                             "variant": photo.variant, "url": photo.url}
                    try:
                        found = future.result()
                    except FetchError as exc:
                        failures.append({**where, "reason": exc.reason, "status": exc.status})
                        continue
                    good += 1
                    reused += found["reused"]
                    rows.append({"path": f"{scan.category}/{_file_name(product, photo)}",
                                 "label": product.subcategory or scan.category,
                                 "group": product.parent_asin, "url": photo.url, "variant": photo.variant,
                                 "title": product.title, "sha256": found["sha256"],
                                 **({"superclass": scan.category} if settings.label_level else {})})
                if good:
                    obtained += 1
                    bar.update()
                progress.product(scan.category, good, len(failures) - failed_before, bool(good))
    progress.finish(scan.category)
    counts = {"meta": scan.source, "records": scan.records, "malformed_lines": scan.malformed_lines,
              "duplicate_records": scan.duplicate_records, "below_min_ratings": scan.below_min_ratings,
              "without_images": scan.without_images, "without_category_level": scan.without_category_level,
              "duplicate_image_ids": len(scan.duplicate_image_ids),
              "eligible_products": scan.eligible, "asked": asked, "obtained": obtained, "images": len(rows),
              "failed_images": len(failures), "reused_images": reused}
    return {"counts": counts, "rows": rows, "failures": failures}


def _pause(stop: threading.Event, seconds: float) -> None:
    """A wait between retries that an interrupted build cuts short."""
    if stop.wait(seconds):
        raise FetchError("build interrupted")


def identical_images(rows: list[dict]) -> list[dict]:
    """Files with the same bytes under different products: a leak across splits if they land apart."""
    by_hash: dict[str, list[dict]] = {}
    for row in rows:
        by_hash.setdefault(row["sha256"], []).append(row)
    return [{"sha256": sha, "paths": [r["path"] for r in same], "groups": sorted({r["group"] for r in same})}
            for sha, same in by_hash.items() if len({r["group"] for r in same}) > 1]


def _start_output(out: Path) -> None:
    """An earlier build's manifest must not pass for this one while it is unfinished."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.csv", "build.json"):
        (out / name).unlink(missing_ok=True)


def qualify_shared_labels(rows: list[dict]) -> list[dict]:
    """A sub-category found under two categories ("Accessories") would be one class in two superclasses: such a
    label becomes "Category / Accessories", one class per category."""
    homes: dict[str, set[str]] = {}
    for row in rows:
        homes.setdefault(row["label"], set()).add(row["superclass"])
    return [{**row, "label": f"{row['superclass']} / {row['label']}"} if len(homes[row["label"]]) > 1 else row
            for row in rows]


def _write_manifest(path: Path, rows: list[dict], hierarchy: bool) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS + (["superclass"] if hierarchy else []))
        writer.writeheader()
        writer.writerows(rows)


def build(settings: AmazonSettings, command: list[str]) -> dict:
    """Read every category's metadata (refusing bad input before writing anything), download, write the outputs.

    Returns the content of build.json.
    """
    check_settings(settings)
    started = time.time()
    out = Path(settings.out)
    with new_client(settings.http, settings.concurrency) as client:
        scans = [scan_category(category, settings, client) for category in dict.fromkeys(settings.categories)]
        _start_output(out)
        results, stop = {}, threading.Event()
        with (heartbeat(out, "amazon", " ".join(command)) as beat,
              ThreadPoolExecutor(max_workers=settings.concurrency) as pool):
            progress = DownloadProgress(settings.progress_every_s, beat.update)
            try:
                for scan in scans:
                    results[scan.category] = download_category(scan, settings, client, pool, stop, progress)
            except BaseException:  # Ctrl-C: drop queued downloads and waits; only requests in flight finish
                stop.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    rows = [row for result in results.values() for row in result["rows"]]
    if settings.label_level:
        rows = qualify_shared_labels(rows)
    info = {
        "format": BUILD_FORMAT,
        "command": command,
        "settings": asdict(settings),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "classes": {category: result["counts"] for category, result in results.items()},
        "failures": [failure for result in results.values() for failure in result["failures"]],
        "duplicate_image_ids": [duplicate for scan in scans for duplicate in scan.duplicate_image_ids],
        "identical_images": identical_images(rows),
    }
    for scan in scans:  # temporary files of downloads an interruption cut short
        for leftover in (out / scan.category).glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
    _write_manifest(out / "manifest.csv", rows, bool(settings.label_level))
    write_json(out / "build.json", info)   # last: its presence marks the build complete
    return info


# ---------------------------------------------------------------- summary

def summary(info: dict) -> str:
    """One screen: counts per category, failures by reason, what was dropped, and the command to train."""
    settings, classes = info["settings"], info["classes"]
    out = Path(settings["out"])
    width = max(len("category"), *(len(name) for name in classes))
    lines = [f"Built {out} in {info['seconds']:g} s from Amazon Reviews 2023 metadata",
             f"(--images {settings['images']}, --size {settings['size']}, --seed {settings['seed']})", "",
             f"{'category':<{width}}  {'products':>9}  {'asked':>6}  {'obtained':>8}  {'images':>6}  "
             f"{'failed':>6}  {'reused':>6}"]
    for name, c in classes.items():
        lines.append(f"{name:<{width}}  {c['eligible_products']:>9}  {c['asked']:>6}  {c['obtained']:>8}  "
                     f"{c['images']:>6}  {c['failed_images']:>6}  {c['reused_images']:>6}")
    short = [f"{name} {c['obtained']} of {c['asked']}" for name, c in classes.items() if c["obtained"] < c["asked"]]
    if short:
        lines += ["", f"Fewer products than asked (no candidates left whose images download): {', '.join(short)}"]
    reasons = Counter(re.split(r" \(|:|,", failure["reason"], maxsplit=1)[0] for failure in info["failures"])
    if reasons:
        lines += ["", "Failed images by reason (each one is listed in build.json):"]
        lines += [f"  {count:>6}  {reason}" for reason, count in reasons.most_common(8)]
        if len(reasons) > 8:
            lines.append(f"  {sum(reasons.values()) - sum(n for _, n in reasons.most_common(8)):>6}  other reasons")
    dropped = {"duplicate records": sum(c["duplicate_records"] for c in classes.values()),
               "images whose ID another product already has": len(info["duplicate_image_ids"]),
               "malformed lines": sum(c["malformed_lines"] for c in classes.values()),
               f"products without a category level {settings.get('label_level', 0)}":
                   sum(c.get("without_category_level", 0) for c in classes.values())}
    if any(dropped.values()):
        lines += ["", "Dropped: " + ", ".join(f"{n} {what}" for what, n in dropped.items() if n)]
    if info["identical_images"]:
        lines += ["", f"Identical images under different products: {len(info['identical_images'])} (listed in "
                      f"build.json; they leak if split apart)"]
    lines += ["", f"Train:  python train_cli.py --data {out / 'manifest.csv'} --folds 5"]
    return "\n".join(lines)
