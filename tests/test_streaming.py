"""microweb/streaming.py: Server-Sent Events (HTML Living Standard §9.2).

What the browser makes of our bytes is checked with `interpret`, a small
transcription of §9.2.5 (parsing) and §9.2.6 (interpreting): an event we
format must come out of it exactly as the handler gave it. Requests go
through `microweb.testing.Client` (WSGI lint on); tests that watch the body
iterator itself (laziness, close) run the app under `wsgiref.validate`.
"""

from __future__ import annotations

import http.client
import inspect
import io
import logging
import re
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from servers import TIMEOUT, GunicornServer

import microweb.streaming
from microweb import App, Request
from microweb.response import to_response
from microweb.streaming import (
    EVENT_STREAM,
    HEARTBEAT,
    MAX_ID_LENGTH,
    Event,
    EventStream,
    format_event,
    last_event_id,
)
from microweb.testing import Client

# -- A reference reader: §9.2.5 and §9.2.6, as a browser applies them ---------


def interpret(stream: bytes) -> tuple[list[dict[str, str]], str, int | None]:
    """(dispatched events as {"type", "data", "id"}, last event id, retry) for `stream`."""
    events: list[dict[str, str]] = []
    data, kind, last_id, retry = "", "", "", None
    text = stream.decode("utf-8").removeprefix("\ufeff")
    for line in re.split(r"\r\n|\r|\n", text)[:-1]:  # the text after the last break is dropped
        if line == "":  # dispatch (§9.2.6)
            if data:
                events.append({"type": kind or "message", "data": data[:-1], "id": last_id})
            data, kind = "", ""
            continue
        if line.startswith(":"):
            continue  # a comment
        name, colon, value = line.partition(":")
        value = value.removeprefix(" ") if colon else ""
        if name == "data":
            data += value + "\n"
        elif name == "event":
            kind = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return events, last_id, retry


# -- Helpers --------------------------------------------------------------------


def build_environ(method: str = "GET", **headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": "/"}
    environ["QUERY_STRING"] = ""
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return environ


def sse_app(make: Callable[[], Any]) -> App:
    app = App()

    @app.get("/")
    def stream(req: Request) -> Any:
        return make()

    return app


def run(app: App, method: str = "GET") -> tuple[list[tuple[str, list[tuple[str, str]]]], Any]:
    """Call `app` under the validator: (start_response calls, app_iter)."""
    calls: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append((status, headers))
        return lambda data: None

    return calls, validator(app)(build_environ(method), start_response)


class Source:
    """A generator of events that records how far it ran and whether its finally ran."""

    def __init__(self, *events: Event) -> None:
        self.produced: list[Event] = []
        self.finished = False
        self.generator: Generator[Event, None, None] = self._run(events)

    def _run(self, events: tuple[Event, ...]) -> Generator[Event, None, None]:
        try:
            for event in events:
                self.produced.append(event)
                yield event
        finally:
            self.finished = True

    @property
    def closed(self) -> bool:
        return inspect.getgeneratorstate(self.generator) == inspect.GEN_CLOSED


# -- The wire format: §9.2.5 / §9.2.6 -------------------------------------------


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        pytest.param("hello", b"data: hello\n\n", id="str-is-data"),
        pytest.param("", b"data: \n\n", id="empty-data-still-dispatches"),
        pytest.param("a\nb", b"data: a\ndata: b\n\n", id="lf-splits-data"),
        pytest.param("a\r\nb", b"data: a\ndata: b\n\n", id="crlf-splits-data"),
        pytest.param("a\rb", b"data: a\ndata: b\n\n", id="lone-cr-splits-data"),
        pytest.param("a\n", b"data: a\ndata: \n\n", id="trailing-newline-kept"),
        pytest.param(" x", b"data:  x\n\n", id="leading-space-kept"),
        pytest.param("a\u2028b\x0bc", "data: a\u2028b\x0bc\n\n".encode(), id="only-cr-lf-break"),
        pytest.param("é ☃", "data: é ☃\n\n".encode(), id="utf-8"),
        pytest.param(
            {"id": "7", "event": "note", "data": "x"},
            b"id: 7\nevent: note\ndata: x\n\n",
            id="all-fields",
        ),
        pytest.param({"id": 42, "data": "x"}, b"id: 42\ndata: x\n\n", id="int-id"),
        pytest.param({"id": ""}, b"id: \n\n", id="empty-id-resets"),
        pytest.param({"retry": 2500}, b"retry: 2500\n\n", id="retry-alone"),
        pytest.param(
            {"data": "x", "retry": 0, "id": "a"}, b"id: a\nretry: 0\ndata: x\n\n", id="retry-zero"
        ),
    ],
)
def test_html_9_2_5_event_format(event: str | dict[str, Any], wire: bytes) -> None:
    """HTML §9.2.5: field lines "name: value", a blank line ends the event; data is split at
    CRLF, LF or CR only (§9.2.5 end-of-line), one data line per line."""
    assert format_event(event) == wire


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("plain", id="plain"),
        pytest.param("", id="empty"),
        pytest.param("\n", id="just-a-newline"),
        pytest.param("two\nlines", id="two-lines"),
        pytest.param("trailing\n\n", id="two-trailing-newlines"),
        pytest.param("crlf\r\nand\rcr", id="mixed-breaks-become-lf"),
        pytest.param("  spaced  ", id="spaces"),
        pytest.param(": not a comment", id="looks-like-comment"),
        pytest.param("data: nested", id="looks-like-field"),
        pytest.param("\ufeffbom", id="bom-in-data"),
        pytest.param('{"json": [1, 2]}', id="json-text"),
    ],
)
def test_html_9_2_6_data_survives_the_browsers_reading(data: str) -> None:
    """HTML §9.2.6: what the browser dispatches is the data we were given (line breaks
    normalised to LF, which is all the format can carry)."""
    event = {"event": "update", "id": "9", "data": data}
    events, last_id, _ = interpret(b": opening comment\n\n" + format_event(event))
    expected = re.sub(r"\r\n|\r", "\n", data)
    assert events == [{"type": "update", "data": expected, "id": "9"}]
    assert last_id == "9"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        pytest.param({"event": "a\nb", "data": "x"}, ValueError, id="event-with-lf"),
        pytest.param({"event": "a\rb", "data": "x"}, ValueError, id="event-with-cr"),
        pytest.param({"event": 5, "data": "x"}, ValueError, id="event-not-str"),
        pytest.param({"event": "tick"}, ValueError, id="event-without-data-is-lost"),
        pytest.param({"id": "a\nb", "data": "x"}, ValueError, id="id-with-lf"),
        pytest.param({"id": "a\0b", "data": "x"}, ValueError, id="id-with-nul-ignored-by-9.2.6"),
        pytest.param({"id": "a\x1bb", "data": "x"}, ValueError, id="id-with-control"),
        pytest.param({"id": "x" * (MAX_ID_LENGTH + 1)}, ValueError, id="id-too-long"),
        pytest.param({"id": "é" * (MAX_ID_LENGTH // 2 + 1)}, ValueError, id="id-too-many-bytes"),
        pytest.param({"id": True, "data": "x"}, TypeError, id="id-bool"),
        pytest.param({"id": 1.5, "data": "x"}, TypeError, id="id-float"),
        pytest.param({"retry": -1}, ValueError, id="retry-negative"),
        pytest.param({"retry": "5"}, ValueError, id="retry-str"),
        pytest.param({"retry": 1.5}, ValueError, id="retry-float"),
        pytest.param({"retry": True}, ValueError, id="retry-bool"),
        pytest.param({"data": b"x"}, TypeError, id="data-bytes"),
        pytest.param({"data": {"a": 1}}, TypeError, id="data-dict-needs-json-dumps"),
        pytest.param({"date": "typo"}, ValueError, id="unknown-field"),
        pytest.param({}, ValueError, id="empty-event"),
        pytest.param(b"data", TypeError, id="bytes-event"),
        pytest.param(42, TypeError, id="int-event"),
    ],
)
def test_html_9_2_6_events_browsers_would_misread_are_refused(event: Any, error: type) -> None:
    """HTML §9.2.5/§9.2.6: a CR or LF in a field value would end the line early (the rest
    becomes another field: an injection); an id with NUL is ignored; retry is digits only."""
    with pytest.raises(error):
        format_event(event)


# -- The response -----------------------------------------------------------------


def test_event_stream_response_headers_and_body() -> None:
    """HTML §9.2.5 (text/event-stream, UTF-8); RFC 9111 §5.2.2.4 no-cache; no Content-Length
    (RFC 9112 §7.1: the server frames the body); nginx told not to buffer."""
    events: list[Event] = ["one", {"id": 2, "data": "two"}]
    app = sse_app(lambda: EventStream(iter(events), retry=1000))
    res = Client(app).get("/", status=200)
    assert res.headers["Content-Type"] == EVENT_STREAM
    assert res.headers["Cache-Control"] == "no-cache"
    assert res.headers["X-Accel-Buffering"] == "no"
    assert res.body == b"retry: 1000\n\ndata: one\n\nid: 2\ndata: two\n\n"
    calls, app_iter = run(app)
    app_iter.close()
    assert calls[0][0] == "200 OK"
    assert "content-length" not in {name.lower() for name, _ in calls[0][1]}


def test_to_response_passes_an_event_stream_through_unchanged() -> None:
    """EventStream is a microweb.response.Stream, so the handler's object is what is sent."""
    stream = EventStream(iter(["x"]))
    assert to_response(stream) is stream


def test_events_are_formatted_one_at_a_time() -> None:
    """RFC 9112 §7.1: nothing is buffered; one next() on the body produces one event."""
    source = Source("one", "two", "three")
    _, app_iter = run(sse_app(lambda: EventStream(source.generator)))
    try:
        assert next(app_iter) == b"data: one\n\n"
        assert source.produced == ["one"]
        assert next(app_iter) == b"data: two\n\n"
        assert source.produced == ["one", "two"]
    finally:
        app_iter.close()


@pytest.mark.parametrize("reads", [pytest.param(0, id="unread"), pytest.param(1, id="mid-stream")])
def test_pep3333_close_stops_the_events_generator(reads: int) -> None:
    """PEP 3333: the server calls close() when the client goes away; the handler's
    generator is closed, so its finally (unsubscribe, release a cursor) runs."""
    source = Source("one", "two")
    _, app_iter = run(sse_app(lambda: EventStream(source.generator)))
    for _ in range(reads):
        next(app_iter)
    app_iter.close()
    assert source.closed
    assert source.finished == (reads > 0)  # a generator that never started has no finally to run
    assert len(source.produced) == reads


def test_close_reaches_an_iterable_and_the_iterator_it_made() -> None:
    """PEP 3333 close(): an events object whose __iter__ returns a generator is closed too."""

    class Feed:
        def __init__(self) -> None:
            self.source = Source("a", "b")
            self.closed = False

        def __iter__(self) -> Generator[Event, None, None]:
            return self.source.generator

        def close(self) -> None:
            self.closed = True

    feed = Feed()
    _, app_iter = run(sse_app(lambda: EventStream(feed)))
    next(app_iter)
    app_iter.close()
    assert feed.closed and feed.source.finished


def test_rfc9110_9_3_2_head_sends_headers_and_never_iterates() -> None:
    """RFC 9110 §9.3.2: HEAD gets GET's headers and no body; the source is closed unread."""
    source = Source("never")
    calls, app_iter = run(sse_app(lambda: EventStream(source.generator, retry=5)), "HEAD")
    assert b"".join(app_iter) == b""
    app_iter.close()
    assert source.produced == [] and source.closed
    assert ("Content-Type", EVENT_STREAM) in calls[0][1]
    res = Client(sse_app(lambda: EventStream(iter(["x"])))).head("/", status=200)
    assert res.body == b"" and res.headers["Cache-Control"] == "no-cache"


def test_a_bad_event_cuts_the_stream_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The status line is already sent when a bad event turns up: the stream is cut (the
    client sees it end without its last chunk), logged, and the source is still closed."""
    caplog.set_level(logging.ERROR, logger="microweb")
    source = Source("fine", {"event": "two\nlines", "data": "x"})
    _, app_iter = run(sse_app(lambda: EventStream(source.generator)))
    assert next(app_iter) == b"data: fine\n\n"
    with pytest.raises(ValueError, match="event type"):
        next(app_iter)
    app_iter.close()
    assert source.finished
    assert any("cut short" in r.getMessage() for r in caplog.records)


def test_gzip_leaves_an_event_stream_alone_and_lazy() -> None:
    """RFC 9110 §8.4.1: GZip skips text/event-stream (docs/streaming.md, "Compression and
    SSE"): events arrive as sent, one at a time, and close() still reaches the source."""
    gzip = pytest.importorskip("microweb.middleware.gzip")
    source = Source("one", "two")
    calls: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append((status, headers))
        return lambda data: None

    wrapped = validator(gzip.GZip(sse_app(lambda: EventStream(source.generator)), minimum_size=0))
    app_iter = wrapped(build_environ(Accept_Encoding="gzip"), start_response)
    assert next(app_iter) == b"data: one\n\n"
    assert source.produced == ["one"]
    app_iter.close()
    assert source.finished
    assert "content-encoding" not in {name.lower() for name, _ in calls[0][1]}


# -- Heartbeats: a None from the source is "nothing yet" -----------------------------


@pytest.mark.parametrize(
    ("heartbeat", "silence", "chunk"),
    [
        pytest.param(None, 3600.0, b"", id="no-heartbeat-empty-chunk"),
        pytest.param(15.0, 14.9, b"", id="too-soon"),
        pytest.param(15.0, 15.0, HEARTBEAT, id="due"),
        pytest.param(0.0, 0.0, HEARTBEAT, id="zero-every-none"),
    ],
)
def test_html_9_2_7_heartbeat_comment_after_silence(
    heartbeat: float | None, silence: float, chunk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTML §9.2.7: a comment line every ~15 s keeps proxies from dropping an idle stream;
    a None when no comment is due is an empty chunk (PEP 3333 allows it), so the server
    gets control back."""
    now = [1000.0]
    monkeypatch.setattr(microweb.streaming, "monotonic", lambda: now[0])
    _, app_iter = run(
        sse_app(lambda: EventStream(iter(["first", None, "last"]), heartbeat=heartbeat))
    )
    assert next(app_iter) == b"data: first\n\n"
    now[0] += silence
    assert next(app_iter) == chunk
    assert next(app_iter) == b"data: last\n\n"
    app_iter.close()
    events, _, _ = interpret(b"data: first\n\n" + chunk + b"data: last\n\n")
    assert [e["data"] for e in events] == ["first", "last"]  # a comment dispatches nothing


def test_heartbeat_clock_restarts_after_each_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """A heartbeat is due after `heartbeat` seconds without *any* output, events included."""
    now = [0.0]
    monkeypatch.setattr(microweb.streaming, "monotonic", lambda: now[0])
    stream = EventStream(iter([None, "e", None, None]), heartbeat=10)
    chunks = stream.chunks
    assert isinstance(chunks, Iterable)
    body = iter(chunks)
    now[0] = 10
    assert next(body) == HEARTBEAT
    now[0] = 15
    assert next(body) == b"data: e\n\n"
    now[0] = 24
    assert next(body) == b""
    now[0] = 25
    assert next(body) == HEARTBEAT


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"heartbeat": -1}, id="negative-heartbeat"),
        pytest.param({"retry": -5}, id="negative-retry"),
        pytest.param({"retry": "3000"}, id="retry-str"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventStream(iter([]), **options)


# -- Last-Event-ID: HTML §9.2.4 ------------------------------------------------------


def latin1(text: str) -> str:
    """A header value as PEP 3333 puts it in the environ: its bytes, read as latin-1."""
    return text.encode().decode("latin-1")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("42", "42", id="number"),
        pytest.param("", "", id="empty-reset-by-server"),
        pytest.param(latin1("é-1"), "é-1", id="utf-8"),
        pytest.param("x" * MAX_ID_LENGTH, "x" * MAX_ID_LENGTH, id="longest"),
        pytest.param("x" * (MAX_ID_LENGTH + 1), None, id="too-long"),
        pytest.param("\xff\xfe", None, id="not-utf-8"),
        pytest.param("\u2603", None, id="not-latin-1-in-environ"),
        pytest.param("a\x01b", None, id="control-char"),
        pytest.param("a\tb", None, id="tab"),
        pytest.param("a\x7fb", None, id="del"),
    ],
)
def test_html_9_2_4_last_event_id(header: str | None, expected: str | None) -> None:
    """HTML §9.2.4: a reconnecting EventSource sends the last id as Last-Event-ID (UTF-8);
    anything we would never have sent as an id is treated as absent."""
    environ = build_environ()
    if header is not None:
        environ["HTTP_LAST_EVENT_ID"] = header
    assert last_event_id(Request(environ)) == expected


@pytest.mark.parametrize(
    "event_id",
    [
        pytest.param("1", id="digits"),
        pytest.param("chat-9f2e:17", id="punctuation"),
        pytest.param("é☃", id="non-ascii"),
        pytest.param("é" * (MAX_ID_LENGTH // 2), id="longest-in-bytes"),
    ],
)
def test_html_9_2_4_every_id_we_send_comes_back(event_id: str) -> None:
    """An id format_event accepts is one last_event_id accepts when the browser returns it."""
    _, sent, _ = interpret(format_event({"id": event_id, "data": "x"}))
    environ = build_environ()
    environ["HTTP_LAST_EVENT_ID"] = latin1(sent)
    assert last_event_id(Request(environ)) == event_id


# -- a stream on a worker that cannot hold one --------------------------------------

SYNC_WARNING = "EventStream on gunicorn's sync worker"


def read_one_tick(url: str) -> None:
    """Open /clock, read up to the first event, and leave (the client closes)."""
    connection = http.client.HTTPConnection(*_host_port(url), timeout=TIMEOUT)
    try:
        connection.request("GET", "/clock")
        response = connection.getresponse()
        assert response.status == 200
        while response.readline() not in (b"\n", b""):
            pass
    finally:
        connection.close()


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "warnings"),
    [
        pytest.param((), 1, id="sync-warns-once"),
        pytest.param(("--worker-class", "gthread", "--threads", "2"), 0, id="gthread-silent"),
    ],
)
def test_an_event_stream_on_a_sync_worker_names_the_fix_once(
    args: tuple[str, ...], warnings: int, tmp_path: Path
) -> None:
    server = GunicornServer(
        "examples.clock_sse:app", tmp_path / "log", env={"CLOCK_INTERVAL": "0.05"},
        workers=1, args=args,
    )  # fmt: skip
    try:
        url = server.start()
        read_one_tick(url)
        read_one_tick(url)
    finally:
        server.stop()
    log = server.log()
    assert log.count(SYNC_WARNING) == warnings, log
    if warnings:
        assert "--worker-class gthread" in log
