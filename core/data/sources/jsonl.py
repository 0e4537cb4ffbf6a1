"""JSON Lines streamed from chunks of bytes, gzip or plain: a file of hundreds of MB is never held whole."""
from __future__ import annotations

import json
import zlib
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

GZIP_MAGIC = b"\x1f\x8b"
PIECE_BYTES = 1 << 20


def file_chunks(path: Path, size: int = PIECE_BYTES) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(size), b"")


def inflate_if_gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress when the bytes start as gzip (whatever the file is called); pass them through otherwise."""
    chunks = iter(chunks)
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        yield first
        yield from chunks
        return
    inflater, fed = _gunzip(), False
    for chunk in chain([first], chunks):
        while chunk:
            fed = True
            try:  # bounded output: a highly compressed chunk must not inflate to hundreds of MB at once
                yield inflater.decompress(chunk, PIECE_BYTES)
            except zlib.error as exc:
                raise ValueError(f"not a valid gzip stream ({exc})") from None
            chunk = inflater.unconsumed_tail
            if inflater.eof:  # concatenated gzip members are one stream, as gzip -d reads them
                chunk, inflater, fed = inflater.unused_data, _gunzip(), False
    if fed and not inflater.eof:
        raise ValueError("the gzip stream ends early (truncated download?)")


def _gunzip():
    return zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def json_objects(chunks: Iterable[bytes]) -> Iterator[dict | None]:
    """One dict per non-blank line; None for a line that is not a JSON object (counted by the caller)."""
    for line in split_lines(inflate_if_gzip(chunks)):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        yield record if isinstance(record, dict) else None
