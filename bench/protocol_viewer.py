"""A dashboard viewer without a browser: a websocket client that asks the server for a page the way Streamlit's
frontend does, so a bench can put many viewers on one server without their browsers' drawing on the same CPU.

What a browser does when it opens `/Classes?run=ID`, and what this does too: connect to `/_stcore/stream` (the
subprotocol "streamlit"), send one BackMsg `rerun_script` whose ClientState carries the query string and the
page's URL path as `page_name` (no page script hash: the server looks the page up in `st.navigation` by its URL
path, as for a link opened in a new tab), then read ForwardMsgs (new_session, navigation, deltas, ...) until
`script_finished`. The page time is from sending the request to `script_finished`: the server's work on the
page. Then the images the page's deltas point at (`/media/...`, served by the same server while the session
is open) are fetched, as a browser would, and the connection is closed. Nothing is drawn.

An error: an exception element or an error box among the deltas, a page the server did not find, a script
that did not compile, a page that sent no element, an image that did not come, or no `script_finished` in time.
"""
from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass, field

import httpx
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect

FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}


def rerun_request(url: str) -> bytes:
    """The BackMsg a browser sends for the page at `url` (http://host:port/PATH?QUERY) once it is connected."""
    parts = urllib.parse.urlsplit(url)
    message = BackMsg()
    state = message.rerun_script
    state.query_string = parts.query
    state.page_name = parts.path.strip("/")
    state.context_info.url = url
    state.context_info.timezone = "UTC"
    state.context_info.locale = "en-US"
    return message.SerializeToString()


@dataclass
class PageReader:
    """What the ForwardMsgs of one page load say: elements, errors and images seen, and whether the script
    finished. A run ended early for a rerun (`st.rerun`, a query parameter the page set) is read on to the
    run that finishes."""
    elements: int = 0
    errors: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    finished: bool = False

    def read(self, data: bytes) -> None:
        message = ForwardMsg()
        message.ParseFromString(data)
        kind = message.WhichOneof("type")
        if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element)
        elif kind == "page_not_found":
            self.errors.append(f"page not found: {message.page_not_found.page_name!r}")
        elif kind == "script_finished" and message.script_finished in FINISHED:
            if message.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                self.errors.append("the page's script did not compile")
            self.finished = True

    def _element(self, element) -> None:
        self.elements += 1
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.errors.append(f"exception {element.exception.type}: {element.exception.message[:200]}")
        elif kind == "alert" and element.alert.format == Alert.ERROR:
            self.errors.append(f"error box: {element.alert.body[:200]}")
        elif kind == "imgs":
            self.images += [image.url for image in element.imgs.imgs if image.url.startswith("/media/")]


@dataclass
class PageLoad:
    seconds: float          # request sent -> script_finished (or given up)
    elements: int
    images: int
    error: str | None


async def open_page(url: str, timeout_s: float = 60.0) -> PageLoad:
    """Open the page at `url` as a new browser tab would, over Streamlit's websocket; fetch its images."""
    parts = urllib.parse.urlsplit(url)
    reader, started = PageReader(), time.perf_counter()
    try:
        async with connect(f"ws://{parts.netloc}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                           open_timeout=timeout_s) as socket:
            await socket.send(rerun_request(url))
            async with asyncio.timeout(timeout_s):
                while not reader.finished:
                    reader.read(await socket.recv())
            seconds = time.perf_counter() - started
            async with httpx.AsyncClient(base_url=f"{parts.scheme}://{parts.netloc}", timeout=timeout_s) as http:
                for image in reader.images:
                    response = await http.get(image)
                    if response.status_code != 200:
                        reader.errors.append(f"image {image}: HTTP {response.status_code}")
    except Exception as error:  # noqa: BLE001 - any failure to load is an error to count, not a crash
        name = "Timeout" if isinstance(error, TimeoutError) else type(error).__name__
        return PageLoad(time.perf_counter() - started, reader.elements, len(reader.images),
                        f"{url}: {name}: {str(error).splitlines()[0] if str(error) else 'no script_finished'}")
    if not reader.elements:
        reader.errors.append("no element")
    error = f"{url}: {'; '.join(reader.errors[:3])}" if reader.errors else None
    return PageLoad(seconds, reader.elements, len(reader.images), error)
