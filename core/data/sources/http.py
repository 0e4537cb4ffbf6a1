"""HTTP GET with bounded retries: exponential backoff with jitter on timeouts, dropped connections, 429 and 5xx.

`Retry-After` is honoured (up to `max_wait`); other 4xx answers are final. Every attempt has a deadline for the
whole request, body included, so a server that trickles bytes cannot hold a worker forever.
"""
from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import Callable, Iterator, TypeVar

import httpx

from core.data.sources.settings import HttpSettings

USER_AGENT = ("foldlens-dataset-builder/1 (open-source research tool; builds image datasets from public "
              "metadata; bounded concurrency, backs off on 429/5xx)")
T = TypeVar("T")


class FetchError(Exception):
    """A request that failed for good: `reason` is one line, `status` the last HTTP status if there was one."""

    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.reason, self.status = reason, status


class _StatusError(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.status = response.status_code
        self.retryable = response.status_code == 429 or response.status_code >= 500
        self.retry_after = retry_after_seconds(response.headers.get("Retry-After"))


def new_client(settings: HttpSettings, connections: int) -> httpx.Client:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(timeout=settings.timeout, limits=limits, follow_redirects=True,
                        headers={"User-Agent": USER_AGENT})


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, settings: HttpSettings) -> float:
    """Exponential backoff with 'equal jitter': half the step fixed, half random, so clients spread out."""
    step = min(settings.max_wait, settings.backoff * 2 ** (attempt - 1))
    return step / 2 + random.uniform(0, step / 2)


def with_retries(attempt_once: Callable[[], T], settings: HttpSettings,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `attempt_once` until it succeeds, a final answer comes, or the retries are spent."""
    for attempt in range(1, settings.retries + 2):
        wait = None
        try:
            return attempt_once()
        except _StatusError as exc:
            if not exc.retryable:
                raise FetchError(str(exc), exc.status) from None
            reason, status, wait = str(exc), exc.status, exc.retry_after
        except httpx.UnsupportedProtocol as exc:
            raise FetchError(f"unsupported URL ({exc})") from None
        except httpx.TimeoutException:
            reason, status = f"timed out after {settings.timeout:g} s", None
        except httpx.TransportError as exc:
            reason, status = f"connection failed ({type(exc).__name__}: {exc or 'no detail'})", None
        except httpx.HTTPError as exc:  # a redirect loop, a body that does not decode: not worth a retry
            raise FetchError(f"{type(exc).__name__}: {exc}") from None
        if attempt > settings.retries:
            raise FetchError(f"{reason}, gave up after {attempt} attempts", status)
        if wait is not None and wait > settings.max_wait:
            raise FetchError(f"{reason} with Retry-After {wait:g} s, longer than the {settings.max_wait:g} s "
                             f"allowed", status)
        sleep(backoff_delay(attempt, settings) if wait is None else wait)
    raise AssertionError("unreachable")


def _open(client: httpx.Client, url: str, headers: dict | None = None) -> httpx.Response:
    response = client.send(client.build_request("GET", url, headers=headers), stream=True)
    if response.status_code != 200:
        response.close()
        raise _StatusError(response)
    return response


def _read_body(client: httpx.Client, url: str, settings: HttpSettings) -> tuple[bytes, str]:
    deadline = time.monotonic() + settings.timeout
    response = _open(client, url)
    try:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > settings.max_bytes:
                raise FetchError(f"answer larger than {settings.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"body not complete after {settings.timeout:g} s")
        return bytes(body), response.headers.get("Content-Type", "")
    finally:
        response.close()


def fetch(client: httpx.Client, url: str, settings: HttpSettings,
          sleep: Callable[[float], None] = time.sleep) -> tuple[bytes, str]:
    """The body of `url` and its Content-Type, or FetchError with the reason."""
    try:
        return with_retries(lambda: _read_body(client, url, settings), settings, sleep)
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL ({exc})") from None


def stream(client: httpx.Client, url: str, settings: HttpSettings,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[bytes]:
    """The bytes of `url` exactly as stored (no transfer decoding), chunk by chunk.

    The request is made (with retries) before this returns, so a missing file is a FetchError here.
    """
    try:
        response = with_retries(lambda: _open(client, url, {"Accept-Encoding": "identity"}), settings, sleep)
    except httpx.InvalidURL as exc:
        raise FetchError(f"invalid URL ({exc})") from None
    return _raw_chunks(response)


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_raw()
    except httpx.TransportError as exc:
        raise FetchError(f"connection lost while reading {response.url} ({type(exc).__name__})") from None
    finally:
        response.close()
