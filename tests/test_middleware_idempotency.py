"""microweb/middleware/idempotency.py: the ``Idempotency-Key`` header.

Section numbers are those of draft-ietf-httpapi-idempotency-key-header-07
(§2.1 Syntax, §2.2 Uniqueness of Idempotency Key, §2.3 Idempotency Key
Validity and Expiry, §2.4 Idempotency Fingerprint, §2.6 Idempotency
Enforcement, §2.7 Error Handling, §5 Security Considerations); RFC 9110
where it decides. Every in-process request goes
through WebTest's lint (`Client`) or `wsgiref.validate` (`wsgi_call.call`,
for chunked bodies and concurrent requests), around a hand-written WSGI
app, the Flask app and the microweb App of `middleware_apps.APPS`, and a
microweb App with ``app.use(Idempotency, ...)``. Stores are real
(`MemoryStore` with a fake clock, `SQLiteStore`; the e2e also `RedisStore`);
a failing store is an SQLite file whose write lock another connection holds.

At the bottom, an e2e test: 20 concurrent POSTs with one key against 4
gunicorn workers run the handler exactly once.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import flask
import pytest
from middleware_apps import APPS
from servers import TIMEOUT, StartServer, fetch
from store_outages import LockedSQLite, locked_sqlite
from wsgi_call import Raw, call

from microweb import App, Request, Response
from microweb.middleware import GZip
from microweb.middleware.idempotency import Idempotency, parse_key
from microweb.stores import MemoryStore, SQLiteStore
from microweb.stores.base import STORE_RETRY_AFTER
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
BODY = b'{"amount": 10}'
WAIT = 10.0  # seconds: a bound on waiting for another thread, never a delay


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Counting:
    """Wraps an app and counts the requests that reach it (i.e. the handler runs)."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.runs = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.runs += 1
        return self.app(environ, start_response)


class Echo:
    """A hand-written app: 201 with the run number and the body it read, and a cookie."""

    def __init__(self, status: str = "201 Created") -> None:
        self.status = status
        self.runs = 0
        self.closed = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.runs += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        got = environ["wsgi.input"].read(length)
        body = json.dumps({"run": self.runs, "body": got.decode("latin-1")}).encode()
        start_response(
            self.status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Location", "/orders/1"),
                ("Set-Cookie", f"run={self.runs}"),
                ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        )
        return self.Body([body], self)

    class Body:
        def __init__(self, chunks: list[bytes], echo: Echo) -> None:
            self.chunks, self.echo = chunks, echo

        def __iter__(self) -> Iterator[bytes]:
            return iter(self.chunks)

        def close(self) -> None:
            self.echo.closed += 1


def headers_of(raw: Raw | Any) -> list[tuple[str, str]]:
    """A response's headers, comparable between the original and a replay."""
    pairs = raw.headers if isinstance(raw, Raw) else raw.headerlist
    skip = {"idempotent-replayed", "content-length", "date", "set-cookie"}
    return sorted((n.lower(), v) for n, v in pairs if n.lower() not in skip)


def post(client: Client, body: bytes = BODY, key: str | None = KEY, **headers: str) -> Any:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(
        "/orders", body, headers=headers, content_type="application/json", expect_errors=True
    )


def key_environ(key: str = KEY, **extra: Any) -> dict[str, Any]:
    return {"HTTP_IDEMPOTENCY_KEY": key, "CONTENT_TYPE": "application/json", **extra}


# -- options are checked at construction ------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"methods": ("GET",)}, id="9.2.1-safe-method"),
        pytest.param({"methods": "POST"}, id="a-string-not-a-list"),
        pytest.param({"methods": ()}, id="no-methods"),
        pytest.param({"ttl": 0}, id="ttl-zero"),
        pytest.param({"lock_ttl": -1}, id="lock-ttl-negative"),
        pytest.param({"max_body": -1}, id="max-body-negative"),
        pytest.param({"fail_open": "yes"}, id="fail-open-not-bool"),
    ],
)  # fmt: skip
def test_bad_options_fail_at_startup(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Idempotency(Echo(), store=MemoryStore(), **options)


# -- §2.1: the key's syntax; §5: validated before anything else ---------------------------
# NOTE: §2.1 allows only the sf-string; the bare form and the 1-255 limit are ours.


@pytest.mark.parametrize(
    ("value", "key"),
    [
        pytest.param('"abc"', "abc", id="2.1-sf-string"),
        pytest.param("abc", "abc", id="lenient-bare-token"),
        pytest.param(KEY, KEY, id="lenient-bare-uuid-starting-with-a-digit"),
        pytest.param(f'"{KEY}"', KEY, id="2.1-quoted-uuid"),
        pytest.param(' "abc"\t', "abc", id="rfc9110-5.5-ows-trimmed"),
        pytest.param('"a b"', "a b", id="space-inside-quotes"),
        pytest.param(r'"a\"b\\c"', 'a"b\\c', id="rfc8941-3.3.3-escapes"),
        pytest.param("k" * 255, "k" * 255, id="255-characters"),
        pytest.param("", None, id="empty"),
        pytest.param('""', None, id="empty-sf-string"),
        pytest.param("k" * 256, None, id="256-characters"),
        pytest.param(f'"{"k" * 256}"', None, id="256-characters-quoted"),
        pytest.param('"abc', None, id="unterminated"),
        pytest.param(r'"a\nb"', None, id="rfc8941-bad-escape"),
        pytest.param("a b", None, id="bare-space"),
        pytest.param("a\x01b", None, id="control-character"),
        pytest.param("caf\xc3\xa9", None, id="non-ascii"),
        pytest.param('"a", "b"', None, id="two-keys"),
        pytest.param('"abc";p=1', None, id="parameters"),
    ],
)  # fmt: skip
def test_key_syntax(value: str, key: str | None) -> None:
    assert parse_key(value) == key


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="too-long"),
        pytest.param("a\x7fb", id="non-printable"),
        pytest.param('"unterminated', id="bad-sf-string"),
    ],
)
def test_5_malformed_key_is_400_and_the_handler_does_not_run(value: str) -> None:
    echo = Echo()
    response = call(Idempotency(echo, store=MemoryStore()), "POST", "/orders", BODY,
                    **key_environ(value))  # fmt: skip
    assert response.status_code == 400 and echo.runs == 0
    assert response.header("Content-Type") == "application/problem+json"
    assert json.loads(response.body)["status"] == 400


# -- §2.6: first request runs, a retry is replayed -----------------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS)
def test_first_runs_and_a_retry_is_replayed(name: str, factory: Callable[[], WSGIApp]) -> None:
    app = Counting(factory())
    client = Client(Idempotency(app, store=MemoryStore()))
    first = post(client)
    assert first.status_int == 200 and app.runs == 1
    again = post(client)
    assert app.runs == 1, "the handler ran again"
    assert (again.status, again.body) == (first.status, first.body)
    assert headers_of(again) == headers_of(first)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Content-Length"] == str(len(first.body))


@pytest.mark.parametrize(("name", "factory"), APPS)
def test_2_7_same_key_other_payload_is_422(name: str, factory: Callable[[], WSGIApp]) -> None:
    app = Counting(factory())
    client = Client(Idempotency(app, store=MemoryStore()))
    post(client)
    other = post(client, b'{"amount": 1000}')
    assert other.status_int == 422 and app.runs == 1
    assert other.headers["Content-Type"] == "application/problem+json"
    assert json.loads(other.body)["status"] == 422


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        pytest.param("PATCH", "/orders", "", id="other-method"),
        pytest.param("POST", "/orders/2", "", id="other-path"),
        pytest.param("POST", "/orders", "dry_run=1", id="other-query"),
    ],
)
def test_2_4_the_fingerprint_covers_method_path_and_query(
    method: str, path: str, query: str
) -> None:
    echo = Echo()
    app = Idempotency(echo, store=MemoryStore())
    assert call(app, "POST", "/orders", BODY, **key_environ()).status_code == 201
    response = call(app, method, path, BODY, **key_environ(QUERY_STRING=query))
    assert response.status_code == 422 and echo.runs == 1


@pytest.mark.parametrize(("name", "factory"), APPS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_pass_through_untouched(
    name: str, factory: Callable[[], WSGIApp], method: str
) -> None:
    app = Counting(factory())
    client = Client(Idempotency(app, store=MemoryStore()))
    for _ in range(2):
        response = client.request(
            "/orders", method=method, headers={"Idempotency-Key": KEY}, expect_errors=True
        )
        assert response.status_int == 200 and "Idempotent-Replayed" not in response.headers
    assert app.runs == 2


def test_a_stream_of_another_method_is_not_buffered() -> None:
    """GET passes through as it is: the app's own iterable reaches the server."""
    handed: list[Iterable[bytes]] = []

    def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        body = iter([b"a", b"b"])
        handed.append(body)
        return body

    result = Idempotency(stream, store=MemoryStore())(
        {"REQUEST_METHOD": "GET", "HTTP_IDEMPOTENCY_KEY": KEY}, lambda *a: None
    )
    assert result is handed[0]


def test_a_replay_is_the_recorded_response_minus_cookie_and_date() -> None:
    """Set-Cookie is a credential and Date is the server's (RFC 9110 §6.6.1): not replayed."""
    echo = Echo()
    client = Client(Idempotency(echo, store=MemoryStore()))
    first = post(client)
    again = post(client)
    assert first.status_int == again.status_int == 201 and echo.runs == 1
    assert first.headers["Set-Cookie"] == "run=1" and "Set-Cookie" not in again.headers
    assert "Date" not in again.headers
    assert again.headers["Location"] == "/orders/1" and again.body == first.body


def test_the_record_is_written_before_start_response() -> None:
    """Once the client can see the answer, a retry must find it recorded."""
    store = MemoryStore()
    seen: list[bytes | None] = []

    def server_start(status: str, headers: Any, exc_info: Any = None) -> Any:
        (entry,) = store._data
        seen.append(store.get(entry))
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/orders", "CONTENT_LENGTH": str(len(BODY)),
        "wsgi.input": io.BytesIO(BODY), "HTTP_IDEMPOTENCY_KEY": KEY,
    }  # fmt: skip
    body = Idempotency(Echo(), store=store)(environ, server_start)
    assert seen[0] is not None and seen[0].startswith(b"done ")
    assert base64.b64decode(json.loads(seen[0][len(b"done ") :])["body"]) == b"".join(body)


def test_rfc9110_8_6_a_replayed_204_has_no_content_length() -> None:
    app = App()

    @app.post("/orders")
    def create(req: Request) -> None:
        return None

    app.use(Idempotency, store=MemoryStore())
    client = Client(app)
    assert post(client).status_int == 204
    again = post(client)
    assert again.status_int == 204 and "Content-Length" not in again.headers
    assert again.headers["Idempotent-Replayed"] == "true"


def test_write_callable_and_chunks_are_recorded_in_order() -> None:
    """PEP 3333: data passed to write() precedes the iterable's."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        return iter([b"two,", b"three"])

    client = Client(Idempotency(app, store=MemoryStore()))
    assert post(client).body == post(client).body == b"one,two,three"


def test_start_response_with_exc_info_replaces_the_first_status() -> None:
    """PEP 3333: a second start_response with exc_info, before anything is sent, wins."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise LookupError("no such order")
        except LookupError:
            import sys

            start_response("404 Not Found", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"gone"]

    client = Client(Idempotency(app, store=MemoryStore()))
    first, again = post(client), post(client)
    assert (first.status_int, again.status_int, again.body) == (404, 404, b"gone")
    assert again.headers["Idempotent-Replayed"] == "true"


# -- the app receives the exact body --------------------------------------------------------


def plain_echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def flask_echo() -> WSGIApp:
    app = flask.Flask("idempotency_echo")

    @app.post("/orders")
    def echo() -> Any:
        return flask.Response(flask.request.get_data(), mimetype="application/octet-stream")

    return app.wsgi_app


def microweb_echo() -> WSGIApp:
    app = App()

    @app.post("/orders")
    def echo(req: Request) -> bytes:
        return req.body

    return app


ECHOES = [
    pytest.param(lambda: plain_echo, id="plain"),
    pytest.param(flask_echo, id="flask"),
    pytest.param(microweb_echo, id="microweb"),
]
PAYLOAD = bytes(range(256)) * 300  # 76,800 bytes: every byte value, more than one read


@pytest.mark.parametrize("factory", ECHOES)
@pytest.mark.parametrize(
    "framing",
    [
        pytest.param({}, id="content-length"),
        pytest.param({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
                     id="rfc9112-7.1-chunked-input-terminated"),
        # NOTE: Werkzeug reads nothing of a chunked body unless the server says
        # wsgi.input_terminated; the body put back has a length, and no chunked.
        pytest.param({"HTTP_TRANSFER_ENCODING": "chunked"}, id="rfc9112-7.1-chunked"),
    ],
)  # fmt: skip
def test_the_app_reads_the_exact_body(
    factory: Callable[[], WSGIApp], framing: dict[str, Any]
) -> None:
    app = Idempotency(factory(), store=MemoryStore())

    def send() -> Raw:
        extra = key_environ(CONTENT_TYPE="application/octet-stream")
        if not framing:
            return call(app, "POST", "/orders", PAYLOAD, **extra)
        return call(
            app, "POST", "/orders", **extra, **framing, **{"wsgi.input": io.BytesIO(PAYLOAD)}
        )

    response = send()
    assert response.status_code == 200 and response.body == PAYLOAD
    replay = send()
    assert replay.body == PAYLOAD and replay.header("Idempotent-Replayed") == "true"


@pytest.mark.parametrize(
    ("size", "chunked", "status"),
    [
        pytest.param(100, False, 201, id="at-the-limit"),
        pytest.param(101, False, 413, id="rfc9110-15.5.14-content-length-over"),
        pytest.param(101, True, 413, id="rfc9110-15.5.14-chunked-over"),
    ],
)
def test_oversized_body_is_413_and_the_handler_does_not_run(
    size: int, chunked: bool, status: int
) -> None:
    echo = Echo()
    app = Idempotency(echo, store=MemoryStore(), max_body=100)
    extra = key_environ()
    if chunked:
        extra |= {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True,
                  "wsgi.input": io.BytesIO(b"x" * size)}  # fmt: skip
        response = call(app, "POST", "/orders", **extra)
    else:
        response = call(app, "POST", "/orders", b"x" * size, **extra)
    assert response.status_code == status and echo.runs == (status == 201)


# -- §2.7: a required key ------------------------------------------------------------------


def test_2_7_missing_required_key_is_400() -> None:
    echo = Echo()
    client = Client(Idempotency(echo, store=MemoryStore(), required=True))
    response = post(client, key=None)
    assert response.status_int == 400 and echo.runs == 0
    assert "Idempotency-Key" in response.json["detail"]


def test_missing_optional_key_passes_through() -> None:
    echo = Echo()
    client = Client(Idempotency(echo, store=MemoryStore()))
    assert [post(client, key=None).json["run"] for _ in range(2)] == [1, 2]


# -- §2.6 (concurrent request), §2.7 (its status codes): a request still in flight ----------


class Blocking:
    """An app whose first request waits, inside the handler, until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.runs = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.runs += 1
        if self.runs == 1:
            self.entered.set()
            if not self.release.wait(WAIT):
                raise RuntimeError("the test never released the first request")
        return plain_echo(environ, start_response)


def in_flight(app: WSGIApp, blocking: Blocking) -> tuple[threading.Thread, list[Raw]]:
    """Start the first request on a thread; return once its handler is running."""
    results: list[Raw] = []
    thread = threading.Thread(
        target=lambda: results.append(call(app, "POST", "/orders", BODY, **key_environ()))
    )
    thread.start()
    assert blocking.entered.wait(WAIT), "the first request never reached the handler"
    return thread, results


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(BODY, 409, id="2.7-same-request-in-flight-409"),
        pytest.param(b'{"amount": 1}', 422, id="2.7-other-payload-in-flight-422"),
    ],
)
def test_a_request_in_flight(body: bytes, status: int) -> None:
    blocking = Blocking()
    app = Idempotency(blocking, store=MemoryStore())
    thread, results = in_flight(app, blocking)
    try:
        concurrent = call(app, "POST", "/orders", body, **key_environ())
    finally:
        blocking.release.set()
        thread.join(WAIT)
    assert concurrent.status_code == status and blocking.runs == 1
    assert concurrent.header("Content-Type") == "application/problem+json"
    assert concurrent.header("Retry-After") == ("1" if status == 409 else None)
    assert results[0].status_code == 200
    replay = call(app, "POST", "/orders", BODY, **key_environ())
    assert (replay.status_code, replay.body, blocking.runs) == (200, BODY, 1)


def test_a_dead_workers_marker_expires_after_lock_ttl() -> None:
    """The running marker has its own ttl: a worker killed mid-request frees the key."""
    clock, blocking = FakeClock(), Blocking()
    app = Idempotency(blocking, store=MemoryStore(clock=clock), lock_ttl=30)
    thread, _ = in_flight(app, blocking)
    try:
        clock.now += 29
        assert call(app, "POST", "/orders", BODY, **key_environ()).status_code == 409
        clock.now += 2
        retry = call(app, "POST", "/orders", BODY, **key_environ())
    finally:
        blocking.release.set()
        thread.join(WAIT)
    assert retry.status_code == 200 and blocking.runs == 2


# -- scope: per user ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "runs"),
    [
        pytest.param({}, {}, 1, id="anonymous-both"),
        pytest.param({"HTTP_AUTHORIZATION": "Bearer a"}, {"HTTP_AUTHORIZATION": "Bearer a"}, 1,
                     id="same-credential"),
        pytest.param({"HTTP_AUTHORIZATION": "Bearer a"}, {"HTTP_AUTHORIZATION": "Bearer b"}, 2,
                     id="5-other-credential-other-scope"),
        pytest.param({}, {"HTTP_AUTHORIZATION": "Bearer a"}, 2, id="anonymous-then-credential"),
        pytest.param({"REMOTE_USER": "alice"}, {"REMOTE_USER": "bob"}, 2, id="remote-user"),
        pytest.param({"REMOTE_USER": "alice", "HTTP_AUTHORIZATION": "Bearer a"},
                     {"REMOTE_USER": "alice", "HTTP_AUTHORIZATION": "Bearer b"}, 1,
                     id="remote-user-wins-over-credential"),
    ],
)  # fmt: skip
def test_keys_are_scoped_per_user(first: dict[str, str], second: dict[str, str], runs: int) -> None:
    echo = Echo()
    app = Idempotency(echo, store=MemoryStore())
    assert call(app, "POST", "/orders", BODY, **key_environ(**first)).status_code == 201
    assert call(app, "POST", "/orders", BODY, **key_environ(**second)).status_code == 201
    assert echo.runs == runs


def test_a_custom_user_function_names_the_scope() -> None:
    echo = Echo()
    app = Idempotency(echo, store=MemoryStore(), user=lambda env: env.get("HTTP_X_TENANT"))
    for tenant in ("t1", "t2", "t1"):
        call(app, "POST", "/orders", BODY, **key_environ(HTTP_X_TENANT=tenant))
    assert echo.runs == 2


def test_the_credential_is_not_stored() -> None:
    store = SQLiteStore(":memory:")
    app = Idempotency(Echo(), store=store)
    call(app, "POST", "/orders", BODY, **key_environ(HTTP_AUTHORIZATION="Bearer s3cret"))
    conn = store._conn()
    dump = b"".join(
        bytes(k.encode()) + bytes(v) for k, v in conn.execute("SELECT key, value FROM kv")
    )
    assert b"s3cret" not in dump and KEY.encode() not in dump


# -- what is not recorded ---------------------------------------------------------------------


def test_a_handler_that_raises_is_not_recorded() -> None:
    runs: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("the database is down")
        return plain_echo(environ, start_response)

    client = Client(Idempotency(app, store=MemoryStore()))
    with pytest.raises(RuntimeError, match="database"):
        post(client)
    assert post(client).status_int == 200 and len(runs) == 2


def test_a_body_that_fails_mid_way_is_not_recorded_and_is_closed() -> None:
    closed: list[int] = []
    runs: list[int] = []

    class Failing:
        def __iter__(self) -> Iterator[bytes]:
            yield b"half"
            if len(runs) == 1:
                raise OSError("disk gone")
            yield b" and half"

        def close(self) -> None:
            closed.append(1)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        runs.append(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Failing()

    client = Client(Idempotency(app, store=MemoryStore()))
    with pytest.raises(OSError, match="disk gone"):
        post(client)
    assert closed == [1]
    response = post(client)
    assert response.body == b"half and half" and len(runs) == 2 and closed == [1, 1]


@pytest.mark.parametrize(
    ("status", "runs"),
    [
        pytest.param("500 Internal Server Error", 2, id="5xx-is-retried"),
        pytest.param("503 Service Unavailable", 2, id="503-is-retried"),
        pytest.param("400 Bad Request", 1, id="4xx-is-recorded"),
        pytest.param("201 Created", 1, id="2xx-is-recorded"),
    ],
)
def test_which_statuses_are_recorded(status: str, runs: int) -> None:
    echo = Echo(status)
    client = Client(Idempotency(echo, store=MemoryStore()))
    first, again = post(client), post(client)
    assert echo.runs == runs and echo.closed == runs
    assert first.status == again.status == status
    assert ("Idempotent-Replayed" in again.headers) == (runs == 1)


def test_an_unhandled_error_in_a_microweb_app_is_a_500_and_retried() -> None:
    runs: list[int] = []
    app = App()

    @app.post("/orders")
    def create(req: Request) -> Any:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        return Response.json({"ok": True}, status=201)

    app.use(Idempotency, store=MemoryStore())
    client = Client(app)
    assert post(client).status_int == 500
    assert post(client).status_int == 201 and post(client).status_int == 201
    assert len(runs) == 2


# -- §2.3: expiry -------------------------------------------------------------------------------


def test_2_3_after_ttl_the_key_is_new_again() -> None:
    clock, echo = FakeClock(), Echo()
    client = Client(Idempotency(echo, store=MemoryStore(clock=clock), ttl=3600))
    post(client)
    clock.now += 3599
    assert post(client).headers["Idempotent-Replayed"] == "true" and echo.runs == 1
    clock.now += 2
    response = post(client)
    assert "Idempotent-Replayed" not in response.headers and echo.runs == 2


# -- store failures -----------------------------------------------------------------------------


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[LockedSQLite]:
    """A real SQLiteStore, and the lock another process could hold on it (an outage)."""
    with locked_sqlite(tmp_path / "idempotency.db") as locked:
        yield locked


@pytest.mark.parametrize(
    ("fail_open", "status", "runs"),
    [
        pytest.param(False, 503, 0, id="fail-closed-503"),
        pytest.param(True, 201, 1, id="fail-open-runs-without-idempotency"),
    ],
)
def test_a_store_failure(
    locked_store: LockedSQLite,
    caplog: pytest.LogCaptureFixture,
    fail_open: bool,
    status: int,
    runs: int,
) -> None:
    store = locked_store.store
    echo = Echo()
    client = Client(Idempotency(echo, store=store, fail_open=fail_open))
    locked_store.lock()  # the store cannot write: "database is locked"
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = post(client)
    assert response.status_int == status and echo.runs == runs
    assert "Idempotent-Replayed" not in response.headers
    assert any("idempotency store failed" in r.getMessage() for r in caplog.records)
    if status == 503:  # RateLimit's hint for a failed store: one store, one outage
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.headers["Retry-After"] == str(STORE_RETRY_AFTER)
    else:
        assert "Retry-After" not in response.headers
    locked_store.release()  # the store is back: the key works as usual
    assert post(client).status_int == 201 and echo.runs == runs + 1
    assert post(client).headers["Idempotent-Replayed"] == "true"


def test_a_store_failure_while_recording_still_sends_the_response(
    locked_store: LockedSQLite, caplog: pytest.LogCaptureFixture
) -> None:
    """The handler ran: answering 503 would invite the retry that runs it twice."""
    store = locked_store.store
    echo = Echo()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        locked_store.lock()  # the store fails after the election
        return echo(environ, start_response)

    client = Client(Idempotency(app, store=store))
    with caplog.at_level(logging.WARNING, logger="microweb"):
        assert post(client).status_int == 201
    assert any("failed to record" in r.getMessage() for r in caplog.records)
    locked_store.release()
    assert post(client).status_int == 409 and echo.runs == 1  # the marker waits for lock_ttl


def test_an_unreadable_record_is_a_store_failure() -> None:
    store = MemoryStore()
    echo = Echo()
    client = Client(Idempotency(echo, store=store))
    post(client)
    (entry,) = store._data
    store.set(entry, b"done {not json")
    response = post(client)
    assert response.status_int == 503 and echo.runs == 1
    assert response.headers["Retry-After"] == str(STORE_RETRY_AFTER)


# -- in a microweb App, with GZip -----------------------------------------------------------------


def test_in_an_app_stack_gzip_compresses_the_replay_again() -> None:
    runs: list[int] = []
    app = App()

    @app.post("/orders")
    def create(req: Request) -> Any:
        runs.append(1)
        return Response.json({"received": req.json, "padding": "x" * 600}, status=201)

    app.use(GZip, minimum_size=100)
    app.use(Idempotency, store=MemoryStore())
    gzip = {"HTTP_ACCEPT_ENCODING": "gzip"}
    first = call(app, "POST", "/orders", BODY, **key_environ(**gzip))
    again = call(app, "POST", "/orders", BODY, **key_environ(**gzip))
    assert first.header("Content-Encoding") == again.header("Content-Encoding") == "gzip"
    assert zlib.decompress(again.body, 31) == zlib.decompress(first.body, 31)
    assert json.loads(zlib.decompress(again.body, 31))["received"] == {"amount": 10}
    assert again.header("Idempotent-Replayed") == "true" and runs == [1]
    plain = call(app, "POST", "/orders", BODY, **key_environ())  # another Accept-Encoding
    assert plain.header("Content-Encoding") is None
    assert plain.body == zlib.decompress(first.body, 31)


# -- e2e: 20 concurrent POSTs with one key, 4 gunicorn workers --------------------------------


@pytest.mark.e2e
def test_e2e_twenty_concurrent_requests_run_the_handler_once(
    gunicorn_server: StartServer, tmp_path: Path, store_spec: str
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # NOTE: Linux opens a FIFO read-write without blocking; holding the write
    # end means the handler's open() returns and its read() waits for our byte.
    gate_fd = os.open(gate, os.O_RDWR)
    try:
        url = gunicorn_server(
            "tests.idempotency_app:server_app()",
            workers=4,
            env={
                "IDEMPOTENCY_STORE": store_spec,
                "IDEMPOTENCY_RUNS": str(tmp_path / "runs.db"),
                "IDEMPOTENCY_GATE": str(gate),
            },
        )
        headers = {"Idempotency-Key": KEY}
        order = {"amount": 10}
        with ThreadPoolExecutor(max_workers=20) as pool:
            futures = [
                pool.submit(fetch, url, "POST", "/orders", json_body=order, headers=headers)
                for _ in range(20)
            ]
            # The handler cannot finish until we write to the gate: 19 requests
            # must be answered while the first is in flight, each with a 409.
            early: list[Any] = []
            try:
                for future in as_completed(futures, timeout=TIMEOUT / 2):
                    early.append(future.result())
                    if len(early) == 19:
                        break
            except TimeoutError:
                pass  # asserted below; half of fetch's timeout, so the rest still answer
            finally:
                os.write(gate_fd, b"x" * 20)  # enough for every handler a bug might have started
            replies = [future.result() for future in futures]
        assert len(early) == 19, f"only {len(early)} of 20 answered while the first was in flight"
        assert sorted(reply.status for reply in early) == [409] * 19
        firsts = [reply for reply in replies if reply.status != 409]
        assert [reply.status for reply in firsts] == [201]
        assert firsts[0].json() == {"order": 1, "received": order}
        assert fetch(url, "GET", "/runs").json() == {"runs": 1}
        retry = fetch(url, "POST", "/orders", json_body=order, headers=headers)
        assert (retry.status, retry.body) == (201, firsts[0].body)
        assert retry.headers["Idempotent-Replayed"] == "true"
        other = fetch(url, "POST", "/orders", json_body={"amount": 99}, headers=headers)
        assert other.status == 422
        assert fetch(url, "GET", "/runs").json() == {"runs": 1}
    finally:
        os.close(gate_fd)
