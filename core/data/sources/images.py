"""Download one image to its final name, accepting it only after a full decode (the scanner's rules)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import httpx

from core.data.dataset import inspect_bytes, inspect_file
from core.data.sources.http import FetchError, fetch
from core.data.sources.settings import HttpSettings
from core.store.run_store import atomic_path


def fetch_image(client: httpx.Client, url: str, target: Path, settings: HttpSettings,
                sleep: Callable[[float], None] = time.sleep) -> dict:
    """sha256, width, height and `reused` of the image at `target`, downloaded unless a usable copy is there.

    Written under a temporary name and renamed, so an interrupted build leaves only whole, verified files and a
    rerun downloads nothing twice. Raises FetchError with the reason when the image cannot be had.
    """
    if target.is_file():
        found = inspect_file(target)
        if "reason" not in found:
            return {**found, "reused": True}
    data, content_type = fetch(client, url, settings, sleep)
    found = inspect_bytes(data)
    if "reason" in found:
        media_type = content_type.split(";")[0].strip()
        sent = f"; the server sent {media_type}" if media_type and not media_type.startswith("image/") else ""
        raise FetchError(found["reason"] + sent)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return {**found, "reused": False}
