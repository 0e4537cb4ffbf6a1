"""The bench's protocol viewer (bench/protocol_viewer.py): the request it sends, what it reads from the server's
messages, and one page of a real server read through it; the server settings the bench showed matter."""
from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from dashboard_fixtures import COMPLETE, DAMAGED, runs_dir  # noqa: F401  (session fixture)
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.browser_harness import REPO, serve_dashboard
from bench.protocol_viewer import PageReader, open_page, rerun_request


def test_the_request_names_the_page_by_its_url_path_with_its_query() -> None:
    message = BackMsg()
    message.ParseFromString(rerun_request("http://127.0.0.1:8501/Classes?run=abc&focus=cat"))
    assert message.WhichOneof("type") == "rerun_script"
    assert (message.rerun_script.page_name, message.rerun_script.query_string) == ("Classes", "run=abc&focus=cat")
    message.ParseFromString(rerun_request("http://127.0.0.1:8501/?run=abc"))
    assert message.rerun_script.page_name == ""   # Home, the default page


def element_message(kind: str) -> bytes:
    message = ForwardMsg()
    element = message.delta.new_element
    if kind == "exception":
        element.exception.type, element.exception.message = "KeyError", "'cat'"
    elif kind in ("error", "info"):
        element.alert.body = "something"
        element.alert.format = Alert.ERROR if kind == "error" else Alert.INFO
    elif kind == "image":
        element.imgs.imgs.add().url = "/media/abc.jpg"
        element.imgs.imgs.add().url = "data:image/png;base64,AAAA"   # nothing to fetch
    else:
        element.markdown.body = "# Classes"
    return message.SerializeToString()


def finished_message(status: int) -> bytes:
    message = ForwardMsg()
    message.script_finished = status
    return message.SerializeToString()


def test_the_reader_counts_elements_and_images_and_takes_exceptions_and_error_boxes_for_errors() -> None:
    reader = PageReader()
    for kind in ("markdown", "info", "image", "error", "exception"):
        reader.read(element_message(kind))
    assert reader.elements == 5
    assert reader.images == ["/media/abc.jpg"]
    assert reader.errors == ["error box: something", "exception KeyError: 'cat'"]
    assert not reader.finished


def test_the_reader_reads_on_past_a_run_ended_for_a_rerun() -> None:
    reader = PageReader()
    reader.read(finished_message(ForwardMsg.FINISHED_EARLY_FOR_RERUN))
    assert not reader.finished
    reader.read(finished_message(ForwardMsg.FINISHED_SUCCESSFULLY))
    assert reader.finished and not reader.errors
    reader = PageReader()
    reader.read(finished_message(ForwardMsg.FINISHED_WITH_COMPILE_ERROR))
    assert reader.finished and reader.errors == ["the page's script did not compile"]


def test_a_page_read_over_the_protocol_runs_its_script_and_a_damaged_run_reads_as_an_error(
        runs_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    with serve_dashboard(runs_dir, tmp_path / "cache") as url:
        page = asyncio.run(open_page(f"{url}/Classes?run={COMPLETE}"))
        damaged = asyncio.run(open_page(f"{url}/Classes?run={DAMAGED}"))
    assert page.error is None
    assert page.elements > 10 and page.images > 0   # the class table, charts and example tiles, and their images
    assert damaged.error and "error box" in damaged.error


def test_the_project_server_does_no_per_page_housekeeping_meant_for_editing() -> None:
    """Watching the sources and a full garbage collection after every script run were most of the server's CPU
    per page load with many viewers (bench/bench_viewers.py --clients protocol)."""
    settings = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["fileWatcherType"] == "none"
    assert settings["runner"]["postScriptGC"] is False
