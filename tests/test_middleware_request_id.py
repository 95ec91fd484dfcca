"""microweb/middleware/request_id.py: the request id and the logging filter.

Each rule is tested alone (a hand-written app through `wsgiref.validate`
via `wsgi_call.call`, or WebTest's lint via `Client`), around every app in
`middleware_apps.APPS` (plain WSGI, Flask, microweb), and inside a microweb
`App` stack with `SecurityHeaders` (``app.use``).
"""

from __future__ import annotations

import contextvars
import io
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask
import pytest
from middleware_apps import APPS
from wsgi_call import call

from microweb import App, Request
from microweb.middleware import Middleware
from microweb.middleware.request_id import (
    ENVIRON_KEY,
    RequestID,
    RequestIDFilter,
    current_request_id,
    new_request_id,
)
from microweb.middleware.security_headers import SecurityHeaders
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

GENERATED = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("tests.request_id")


def reporting(headers: Iterable[tuple[str, str]] = ()) -> WSGIApp:
    """A plain WSGI app whose body is the id it saw in the environ; it logs one line."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        log.warning("handling %s", environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        return [environ.get(ENVIRON_KEY, "<none>").encode()]

    return app


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Log lines formatted with ``%(request_id)s``, through a handler with the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(request_id)s] %(name)s: %(message)s"))
    handler.addFilter(RequestIDFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


# -- Alone: which incoming ids are kept ---------------------------------------------


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("abc", id="word"),
        pytest.param("0f8fad5b-d9cb-469f-a165-70867728950e", id="uuid"),
        pytest.param("req_42.7:retry-1", id="all-punctuation-allowed"),
        pytest.param("a" * 128, id="128-chars"),
        pytest.param("7", id="one-char"),
    ],
)
def test_a_well_formed_incoming_id_is_kept(incoming: str) -> None:
    response = call(RequestID(reporting()), HTTP_X_REQUEST_ID=incoming)
    assert response.body.decode() == incoming
    assert response.header("X-Request-ID") == incoming


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 129, id="129-chars-too-long"),
        pytest.param("x" * 100_000, id="huge"),
        # SECURITY: log injection (a forged second log line) and header injection.
        pytest.param("abc\r\nSet-Cookie: session=evil", id="crlf-header-injection"),
        pytest.param("abc\n2024-01-01 INFO admin logged in", id="lf-log-injection"),
        pytest.param("abc\x1b[2J", id="ansi-escape"),
        pytest.param("abc def", id="space"),
        # RFC 9110 §5.3: two X-Request-ID headers reach the app joined by ",".
        pytest.param("abc, def", id="two-headers-joined"),
        pytest.param('"abc"', id="quotes"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param("%0d%0a", id="percent-encoded"),
        pytest.param("caf\xc3\xa9", id="non-ascii-utf8-as-latin1-pep3333"),
        pytest.param(" abc", id="leading-space"),
        pytest.param("Root=1-6789-abcdef", id="equals-sign"),
    ],
)
def test_anything_else_is_replaced_never_echoed(incoming: str) -> None:
    response = call(RequestID(reporting()), HTTP_X_REQUEST_ID=incoming)
    request_id = response.header("X-Request-ID")
    assert request_id is not None and GENERATED.fullmatch(request_id)
    assert response.body.decode() == request_id
    assert all(incoming not in value for _, value in response.headers if incoming)


def test_without_an_incoming_id_one_is_generated_each_time() -> None:
    layer = RequestID(reporting())
    ids = [call(layer).header("X-Request-ID") for _ in range(200)]
    assert all(i is not None and GENERATED.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_worker_never_hands_out_its_parents_next_ids() -> None:
    """gunicorn forks its workers from one master: ids are drawn in batches, and a
    child that kept its parent's batch would repeat the parent's next ids."""
    new_request_id()  # the parent holds a batch now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a worker
        os.write(write_end, " ".join(new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 1024).decode().split()
    os.close(read_end)
    os.close(write_end)
    parent = [new_request_id() for _ in range(3)]
    assert all(GENERATED.fullmatch(i) for i in child)
    assert not set(child) & set(parent)


def test_ids_stay_unique_across_batches() -> None:
    from microweb.middleware.request_id import BATCH

    ids = [new_request_id() for _ in range(3 * BATCH + 1)]
    assert all(GENERATED.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


# -- Alone: the response header ------------------------------------------------------


@pytest.mark.parametrize(
    "own",
    [
        pytest.param([("X-Request-ID", "app-chose-this")], id="same-case"),
        pytest.param([("x-request-id", "app-chose-this")], id="lower-case"),
        pytest.param(
            [("X-REQUEST-ID", "one"), ("X-Request-Id", "two")], id="two-values-rfc9110-5.3"
        ),
    ],
)
def test_the_id_replaces_one_the_app_set(own: list[tuple[str, str]]) -> None:
    response = call(RequestID(reporting(own)), HTTP_X_REQUEST_ID="incoming-1")
    assert [(n, v) for n, v in response.headers if n.lower() == "x-request-id"] == [
        ("X-Request-ID", "incoming-1")
    ]


def test_other_headers_are_left_alone() -> None:
    app = reporting([("X-Request-Idx", "other"), ("Cache-Control", "no-store")])
    response = call(RequestID(app), HTTP_X_REQUEST_ID="abc")
    assert response.headers == [
        ("Content-Type", "text/plain"),
        ("X-Request-Idx", "other"),
        ("Cache-Control", "no-store"),
        ("X-Request-ID", "abc"),
    ]


def test_a_custom_header_is_read_and_echoed_under_its_own_name() -> None:
    layer = RequestID(reporting(), header="X-Correlation-ID")
    response = call(layer, HTTP_X_CORRELATION_ID="corr-1", HTTP_X_REQUEST_ID="ignored")
    assert response.header("X-Correlation-ID") == "corr-1"
    assert response.header("X-Request-ID") is None
    assert response.body == b"corr-1"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("X Request ID", id="space-rfc9110-5.1"),
        pytest.param("X-Request-ID:", id="colon"),
        pytest.param("X-Request-ID\r\nSet-Cookie", id="crlf"),
        pytest.param("X_Request_ID", id="underscore-ambiguous-in-environ"),
        pytest.param("X-Requést-ID", id="non-ascii"),
        pytest.param(None, id="none"),
        pytest.param(b"X-Request-ID", id="bytes"),
    ],
)
def test_a_bad_header_name_is_a_valueerror_at_construction(header: Any) -> None:
    with pytest.raises(ValueError, match="not a header name"):
        RequestID(reporting(), header=header)


# -- Alone: logging ------------------------------------------------------------------


def test_a_log_line_in_the_handler_carries_the_id(lines: io.StringIO) -> None:
    call(RequestID(reporting()), path="/a", HTTP_X_REQUEST_ID="line-id-1")
    assert lines.getvalue() == "[line-id-1] tests.request_id: handling /a\n"


def test_a_generated_id_is_the_one_in_the_log_line(lines: io.StringIO) -> None:
    request_id = call(RequestID(reporting()), path="/b").header("X-Request-ID")
    assert lines.getvalue() == f"[{request_id}] tests.request_id: handling /b\n"


def test_the_filter_works_with_caplog(caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RequestIDFilter())
    with caplog.at_level(logging.WARNING, logger="tests.request_id"):
        call(RequestID(reporting()), HTTP_X_REQUEST_ID="caplog-id")
    assert [getattr(r, "request_id", None) for r in caplog.records] == ["caplog-id"]


def test_outside_a_request_records_say_dash(lines: io.StringIO) -> None:
    # A fresh context is what a thread or task that served no request has.
    contextvars.Context().run(log.warning, "starting up")
    assert lines.getvalue() == "[-] tests.request_id: starting up\n"


def test_an_explicit_request_id_on_the_record_is_kept(lines: io.StringIO) -> None:
    log.warning("batch job", extra={"request_id": "job-9"})
    assert lines.getvalue() == "[job-9] tests.request_id: batch job\n"


def test_concurrent_requests_in_threads_never_see_each_others_id() -> None:
    """Two requests inside their handlers at the same time, each logging its own id."""
    both_inside = threading.Barrier(2, timeout=5)
    seen: dict[str, str] = {}

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        both_inside.wait()
        seen[environ[ENVIRON_KEY]] = current_request_id.get()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    layer = RequestID(app)
    threads = [
        threading.Thread(target=call, args=(layer,), kwargs={"HTTP_X_REQUEST_ID": name})
        for name in ("thread-a", "thread-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert seen == {"thread-a": "thread-a", "thread-b": "thread-b"}


# -- Around any WSGI app: plain, Flask, microweb ------------------------------------


@pytest.mark.parametrize("factory", [pytest.param(factory, id=name) for name, factory in APPS])
@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        pytest.param({"X-Request-ID": "from-proxy-7"}, True, id="incoming-kept"),
        pytest.param({}, False, id="generated"),
        pytest.param({"X-Request-ID": "bad id\x7f"}, False, id="malformed-replaced"),
    ],
)
def test_around_each_app_the_app_sees_the_id_on_the_response(
    factory: Callable[[], WSGIApp], headers: dict[str, str], kept: bool
) -> None:
    client = Client(RequestID(factory()))
    response = client.get("/notes", headers=headers, status=200)
    request_id = response.headers["X-Request-ID"]
    assert response.json["request_id"] == request_id
    if kept:
        assert request_id == "from-proxy-7"
    else:
        assert GENERATED.fullmatch(request_id)


@pytest.mark.parametrize("factory", [pytest.param(factory, id=name) for name, factory in APPS])
def test_around_each_app_errors_carry_the_id(factory: Callable[[], WSGIApp]) -> None:
    client = Client(RequestID(factory()))
    response = client.get("/error", headers={"X-Request-ID": "err-1"}, status=500)
    assert response.headers["X-Request-ID"] == "err-1"


def test_a_flask_handlers_log_line_carries_the_id(lines: io.StringIO) -> None:
    app = flask.Flask("request_id_test")

    @app.get("/")
    def index() -> str:
        log.warning("in flask, environ says %s", flask.request.environ[ENVIRON_KEY])
        return "ok"

    Client(RequestID(app.wsgi_app)).get("/", headers={"X-Request-ID": "flask-1"})
    assert lines.getvalue() == "[flask-1] tests.request_id: in flask, environ says flask-1\n"


# -- Inside a microweb App, with SecurityHeaders (app.use) -------------------------


def refuse(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("403 Forbidden", [("Content-Type", "text/plain")])
    return [b"no"]


class Gate(Middleware):
    """A middleware answering /gate itself (as TrustedHost answers 400)."""

    def before(self, environ: Environ) -> WSGIApp | None:
        return refuse if environ["PATH_INFO"] == "/gate" else None


def stacked_app() -> App:
    app = App()

    @app.get("/page")
    def page(req: Request) -> dict[str, str]:
        log.warning("page")
        return {"request_id": req.environ[ENVIRON_KEY]}

    @app.get("/stream")
    def stream(req: Request) -> Iterator[str]:
        # Runs while the server iterates the body: after the `after` hooks ran.
        log.warning("streaming")
        yield "chunk"

    @app.get("/crash")
    def crash(req: Request) -> str:
        raise RuntimeError("boom")

    # Added in the "wrong" order on purpose: the stack's ORDER decides.
    app.use(Gate)
    app.use(SecurityHeaders)
    app.use(RequestID)
    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/page", 200, id="200"),
        pytest.param("HEAD", "/page", 200, id="head"),
        pytest.param("OPTIONS", "/page", 204, id="options"),
        pytest.param("GET", "/missing", 404, id="404"),
        pytest.param("DELETE", "/page", 405, id="405"),
        pytest.param("GET", "/crash", 500, id="500"),
        pytest.param("GET", "/gate", 403, id="early-answer-from-inner-middleware"),
    ],
)
def test_in_an_app_stack_every_response_carries_the_id(method: str, path: str, status: int) -> None:
    app = stacked_app()
    assert type(app._stack).__name__ == "HookChain"  # hooks, not nested WSGI calls
    response = Client(app).request(
        path, method=method, headers={"X-Request-ID": "stack-1"}, expect_errors=True
    )
    assert response.status_int == status
    assert response.headers.getall("X-Request-ID") == ["stack-1"]
    assert response.headers["X-Frame-Options"] == "DENY"  # SecurityHeaders ran too


def test_in_an_app_stack_the_handler_reads_it_from_the_environ(lines: io.StringIO) -> None:
    response = Client(stacked_app()).get("/page", status=200)
    request_id = response.headers["X-Request-ID"]
    assert response.json == {"request_id": request_id}
    assert lines.getvalue() == f"[{request_id}] tests.request_id: page\n"


@pytest.mark.parametrize(
    ("path", "line"),
    [
        pytest.param("/stream", "tests.request_id: streaming", id="streamed-body"),
        pytest.param("/crash", "microweb: ", id="microwebs-own-500-log"),
    ],
)
def test_in_an_app_stack_later_log_lines_carry_the_id(
    lines: io.StringIO, path: str, line: str
) -> None:
    Client(stacked_app()).get(path, headers={"X-Request-ID": "late-1"}, expect_errors=True)
    assert lines.getvalue().startswith(f"[late-1] {line}")
