"""Downloads retry what may pass on a second try, with bounded waits, and give up on the rest at once."""
import time

import pytest
from loopback_server import Answer, LoopbackServer

from core.data.sources.http import FetchError, fetch, new_client, retry_after_seconds
from core.data.sources.settings import HttpSettings

FAST = HttpSettings(timeout=0.3, retries=3, backoff=1.0, max_wait=10.0)


@pytest.fixture
def server():
    with LoopbackServer() as running:
        yield running


def get(server, path, settings=FAST):
    """The body (or the FetchError) and the waits between attempts, without really waiting."""
    waits = []
    with new_client(settings, 2) as client:
        try:
            result = fetch(client, server.url + path, settings, sleep=waits.append)[0]
        except FetchError as exc:
            result = exc
    return result, waits


def test_503_and_429_are_retried_after_what_retry_after_says(server):
    server.routes["/a"] = [Answer(503, headers={"Retry-After": "7"}), Answer(429, headers={"Retry-After": "3"}),
                           Answer(200, b"ok")]
    assert get(server, "/a") == (b"ok", [7.0, 3.0])


def test_server_errors_back_off_exponentially_with_jitter_then_give_up(server):
    server.routes["/a"] = [Answer(500)]
    error, waits = get(server, "/a")
    assert isinstance(error, FetchError) and error.status == 500 and "gave up after 4 attempts" in error.reason
    assert server.requests["/a"] == 4 and len(waits) == 3
    for attempt, wait in enumerate(waits):
        assert 2 ** attempt / 2 <= wait <= 2 ** attempt


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_other_client_errors_are_final(server, status):
    server.routes["/a"] = [Answer(status), Answer(200, b"ok")]
    error, waits = get(server, "/a")
    assert error.reason == f"HTTP {status}" and server.requests["/a"] == 1 and waits == []


def test_a_retry_after_beyond_max_wait_gives_up_instead_of_waiting(server):
    server.routes["/a"] = [Answer(503, headers={"Retry-After": "3600"}), Answer(200, b"ok")]
    error, waits = get(server, "/a")
    assert "Retry-After 3600 s" in error.reason and server.requests["/a"] == 1 and waits == []


def test_a_slow_answer_times_out_and_is_retried_a_bounded_number_of_times(server):
    server.routes["/a"] = [Answer(200, b"late", delay=1.0)]
    started = time.monotonic()
    error, waits = get(server, "/a")
    assert "timed out after 0.3 s" in error.reason and server.requests["/a"] == 4 and len(waits) == 3
    assert time.monotonic() - started < 4 * 1.0


def test_a_body_that_trickles_in_is_cut_off_at_the_timeout(server):
    server.routes["/a"] = [Answer(200, b"x" * 50, trickle=0.05)]   # each byte in time, the whole too late
    error, _ = get(server, "/a", HttpSettings(timeout=0.5, retries=0))
    assert "timed out" in error.reason and server.requests["/a"] == 1


def test_a_reset_connection_is_retried_then_reported(server):
    server.routes["/a"] = [Answer(reset=True), Answer(200, b"ok")]
    body, waits = get(server, "/a")
    assert body == b"ok" and len(waits) == 1
    server.routes["/b"] = [Answer(reset=True)]
    error, waits = get(server, "/b")
    assert "connection failed" in error.reason and server.requests["/b"] == 4


def test_requests_name_the_tool_in_their_user_agent(server):
    server.routes["/a"] = [Answer(200, b"ok")]
    get(server, "/a")
    assert all(agent.startswith("foldlens-dataset-builder/") for agent in server.user_agents)


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    assert retry_after_seconds("120") == 120.0
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= retry_after_seconds(future) <= 61
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_a_redirect_loop_is_a_failure_not_a_crash(server):
    server.routes["/a"] = [Answer(302, headers={"Location": "/a"})]
    error, waits = get(server, "/a")
    assert "TooManyRedirects" in error.reason and waits == [] and server.requests["/a"] <= 21
