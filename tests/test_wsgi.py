"""microweb.wsgi: draining the unread request body after an answer (RFC 9112 §9.6).

In-process, through `wsgiref.validate`; tests/test_faults.py checks the
same through real gunicorn with real clients (a 5 MB body and a 413).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest

from microweb import App, HTTPError, Request
from microweb.middleware import BodyLimit
from microweb.types import Environ, StartResponse
from microweb.wsgi import Captured, DrainBody

BODY = b"x" * 300_000


class Input(io.BytesIO):
    """A server's wsgi.input; `fail_after` makes it raise like a client hanging up."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("the client went away")
        return super().read(size)


def make_environ(body: bytes = BODY, *, terminated: bool = True, **extra: Any) -> Environ:
    env: Environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "QUERY_STRING": ""}
    setup_testing_defaults(env)
    # "test.input" keeps the server's stream: the validator (and reading the body,
    # in an App) replace wsgi.input in the environ.
    env["wsgi.input"] = env["test.input"] = Input(body)
    if terminated:
        env["wsgi.input_terminated"] = True
    env.update(extra)
    return env


def call(app: Any, env: Environ) -> bytes:
    """Run `app` as a server would: iterate, then close (through wsgiref's validator)."""
    statuses = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    body = validator(app)(env, start_response)
    try:
        return b"".join(body)
    finally:
        body.close()


def refuse_without_reading(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A non-microweb app that answers before reading the body."""
    start_response("401 Unauthorized", [("Content-Type", "text/plain")])
    return [b"no"]


def test_the_unread_body_is_drained_after_the_answer() -> None:
    env = make_environ()
    assert call(DrainBody(refuse_without_reading), env) == b"no"
    assert env["test.input"].tell() == len(BODY)


@pytest.mark.parametrize(
    ("limit", "read"),
    [
        pytest.param(100_000, 100_000, id="stops-at-the-limit"),
        pytest.param(0, 0, id="zero-turns-it-off"),
    ],
)
def test_the_drain_is_bounded(limit: int, read: int) -> None:
    env = make_environ()
    call(DrainBody(refuse_without_reading, limit=limit), env)
    assert env["test.input"].tell() == read


@pytest.mark.parametrize(
    "env",
    [
        # PEP 3333: without wsgi.input_terminated a read past the body may block.
        pytest.param(make_environ(terminated=False), id="input-not-terminated"),
        pytest.param(make_environ(b"", CONTENT_LENGTH=""), id="no-body"),
    ],
)
def test_nothing_is_read_when_it_is_not_safe_or_not_needed(env: Environ) -> None:
    call(DrainBody(refuse_without_reading), env)
    assert env["test.input"].tell() == 0


def test_a_chunked_body_is_drained() -> None:
    """RFC 9112 §7.1: no Content-Length; the server ends wsgi.input after the last chunk."""
    env = make_environ(CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    call(DrainBody(refuse_without_reading), env)
    assert env["test.input"].tell() == len(BODY)


def test_a_client_hanging_up_mid_drain_is_not_an_error() -> None:
    env = make_environ()
    env["wsgi.input"] = env["test.input"] = Input(BODY, fail_after=65_536)
    assert call(DrainBody(refuse_without_reading), env) == b"no"


def test_the_apps_own_close_still_runs() -> None:
    closed = []

    class Body(list[bytes]):
        def close(self) -> None:
            closed.append(True)

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body([b"ok"])

    call(DrainBody(app), make_environ())
    assert closed == [True]


def test_a_body_read_by_the_app_is_not_read_again() -> None:
    def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        data = environ["wsgi.input"].read(len(BODY))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(data)).encode()]

    assert call(DrainBody(echo), make_environ()) == str(len(BODY)).encode()


def microweb_app() -> App:
    app = App(max_body_size=1000)

    @app.post("/json")
    def take(req: Request) -> Any:
        return req.json

    @app.post("/auth")
    def auth(req: Request) -> None:
        raise HTTPError(401, "No credentials.")  # before the body is read

    app.use(BodyLimit, max_bytes=200_000)
    return app


@pytest.mark.parametrize(
    ("path", "body", "extra"),
    [
        pytest.param("/json", BODY, {}, id="413-bodylimit-middleware-rfc9110-s15.5.14"),
        pytest.param("/json", BODY[:1500], {}, id="413-app-cap"),
        pytest.param("/json", BODY[:500], {"CONTENT_TYPE": "text/plain"}, id="415"),
        pytest.param("/auth", BODY, {}, id="401-before-the-body"),
        pytest.param("/nowhere", BODY, {}, id="404-to-a-post"),
    ],
)
def test_an_app_drains_after_every_early_answer(path: str, body: bytes, extra: Any) -> None:
    """App does at its exit what DrainBody does: its middleware's answers included."""
    env = make_environ(body, PATH_INFO=path, **{"CONTENT_TYPE": "application/json", **extra})
    call(microweb_app(), env)
    assert env["test.input"].tell() == len(body)


def test_captured_holds_the_response_back_as_pep_3333_allows() -> None:
    """PEP 3333 (start_response): a second call is an error unless it carries exc_info, which
    replaces the first while nothing was sent; write() data is kept in order."""
    captured = Captured()
    write = captured("200 OK", [("Content-Type", "text/plain")])
    write(b"a")
    write(b"b")
    with pytest.raises(RuntimeError, match="second time"):
        captured("500 Internal Server Error", [])
    try:
        raise ValueError("late")
    except ValueError as exc:
        info = (type(exc), exc, exc.__traceback__)
    captured("500 Internal Server Error", [], info)
    assert (captured.status, captured.headers, captured.written) == (
        "500 Internal Server Error", [], [b"a", b"b"]
    )
    assert captured.exc_info is info
    assert captured.header("content-type") is None


def test_captured_forwards_a_late_start_to_the_server() -> None:
    calls: list[tuple[str, list[tuple[str, str]]]] = []
    captured = Captured()
    captured.forward = lambda status, headers, exc_info=None: calls.append((status, headers))
    captured("200 OK", [("X-A", "1")])
    assert calls == [("200 OK", [("X-A", "1")])] and captured.status is None
