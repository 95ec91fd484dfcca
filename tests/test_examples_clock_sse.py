"""examples/clock_sse.py under real gunicorn with threaded workers (docs/streaming.md).

The server runs ``--worker-class gthread --threads 4`` with ONE worker, so
the test that holds several streams open at once proves what the docs
claim: a thread per stream, not a process. Events are read as they arrive,
line by line, through `http.client` (which undoes the chunked framing);
nothing waits on a timer. CLOCK_INTERVAL is short so each tick comes fast.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from http.client import HTTPResponse

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]
from servers import TIMEOUT, fetch, serving

from microweb.cli import gunicorn_argv

pytestmark = pytest.mark.e2e

THREADS = 4
EVENT_STREAM = "text/event-stream; charset=utf-8"
GTHREAD = ("--worker-class", "gthread", "--threads", str(THREADS))


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start(
            "examples.clock_sse:app", env={"CLOCK_INTERVAL": "0.05"}, workers=1, args=GTHREAD
        )


@contextmanager
def open_stream(url: str, headers: dict[str, str] | None = None) -> Iterator[HTTPResponse]:
    """GET /clock on a connection of its own, closed (the client leaving) on exit."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        connection.request("GET", "/clock", headers={"Accept": EVENT_STREAM, **(headers or {})})
        yield connection.getresponse()
    finally:
        connection.close()


def read_event(response: HTTPResponse) -> dict[str, str]:
    """The fields of the next block of lines (HTML §9.2.5), up to its blank line."""
    fields: dict[str, str] = {}
    while (line := response.readline()) not in (b"\n", b""):
        name, _, value = line.decode().rstrip("\n").partition(":")
        fields[name] = value.removeprefix(" ")
    return fields


def test_html_9_2_clock_streams_ticks_with_ids(url: str) -> None:
    """HTML §9.2.5/§9.2.6: text/event-stream, a retry first, then events with ids that
    count up; RFC 9112 §7.1: the stream is chunked, with no Content-Length."""
    with open_stream(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == EVENT_STREAM
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert response.headers["Content-Length"] is None
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert read_event(response) == {"retry": "2000"}
        first, second = read_event(response), read_event(response)
    assert (first["id"], second["id"]) == ("1", "2")
    assert first["event"] == second["event"] == "tick"
    assert datetime.fromisoformat(first["data"]) <= datetime.fromisoformat(second["data"])
    assert datetime.fromisoformat(first["data"]).utcoffset() is not None


@pytest.mark.parametrize(
    ("last_id", "first_id"),
    [
        pytest.param("41", "42", id="resumes-after-last-id"),
        pytest.param("not-a-tick", "1", id="unknown-id-starts-over"),
        pytest.param("9" * 300, "1", id="oversized-id-ignored"),
    ],
)
def test_html_9_2_4_reconnect_resumes_from_last_event_id(
    url: str, last_id: str, first_id: str
) -> None:
    """HTML §9.2.4: a reconnecting EventSource sends Last-Event-ID; the clock goes on."""
    with open_stream(url, {"Last-Event-ID": last_id}) as response:
        read_event(response)  # retry
        assert read_event(response)["id"] == first_id


def test_one_gthread_worker_serves_several_streams_at_once(url: str) -> None:
    """docs/streaming.md: with gthread a stream holds a thread, not the worker; one worker
    with 4 threads keeps 3 streams open and still answers a plain request."""
    with ExitStack() as stack:
        streams = [stack.enter_context(open_stream(url)) for _ in range(THREADS - 1)]
        for response in streams:
            read_event(response)  # retry
            assert read_event(response)["event"] == "tick"
        for response in streams:  # every stream is still live
            assert read_event(response)["event"] == "tick"
        assert fetch(url, "GET", "/").status == 200


def test_page_opens_an_event_source(url: str) -> None:
    """The page's script subscribes to /clock; it is HTML in UTF-8."""
    reply = fetch(url, "GET", "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'new EventSource("/clock")' in reply.body
    assert b'addEventListener("tick"' in reply.body


def test_rfc9110_9_3_2_head_on_the_stream_answers_at_once(url: str) -> None:
    """RFC 9110 §9.3.2: HEAD gets the stream's headers and no body (the clock never starts)."""
    reply = fetch(url, "HEAD", "/clock")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == EVENT_STREAM
    assert reply.body == b""


def test_documented_command_selects_gthread() -> None:
    """The command in docs/streaming.md and the example's docstring: `microweb run` passes
    the worker options through, and gunicorn's own parser reads them as meant."""
    options = ["--worker-class", "gthread", "--threads", "16"]
    argv = gunicorn_argv("examples.clock_sse:app", options)
    assert argv[1:3] == ["-m", "gunicorn"]
    parsed = Config().parser().parse_args(argv[3:])
    assert (parsed.worker_class, parsed.threads) == ("gthread", 16)
    assert parsed.args == ["examples.clock_sse:app"]
