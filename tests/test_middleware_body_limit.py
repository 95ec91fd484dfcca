"""microweb/middleware/body_limit.py: 413 for a body over the cap (RFC 9110 §15.5.14).

Rows send one body through BodyLimit (under wsgiref's validator) around an
app that reads the whole body and answers its length, and check the status
and whether the app ran. Then: the app sees the exact bytes, the 413's form,
each app of a kind (hand-written, Flask, microweb), options, and chunked
bodies over real gunicorn, where the size is only known by reading.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import flask
import pytest
from servers import StartServer, fetch, open_raw, read_to_eof
from wsgi_call import call
from wsgi_call import environ as make_environ

from microweb import App, Request
from microweb.middleware.body_limit import BodyLimit
from microweb.testing import Client
from microweb.types import Environ, StartResponse

LIMIT = 100


def reading_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """A hand-written app that reads the body as PEP 3333 says: up to CONTENT_LENGTH."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b""
    body = json.dumps({"received": len(data), "sha": data[:8].hex()}).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def chunked(body: bytes) -> dict[str, Any]:
    """What a server hands the app for a chunked body: no length, input terminated."""
    return {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}


ROWS = [
    # -- RFC 9110 §15.5.14: a length over the cap is refused before reading -----------
    pytest.param(b"x" * LIMIT, {}, 200, id="length-at-the-cap"),
    pytest.param(b"x" * (LIMIT + 1), {}, 413, id="length-over-the-cap"),
    pytest.param(b"", {}, 200, id="no-body"),
    # -- RFC 9112 §7.1: chunked, the size known only by reading ----------------------------
    pytest.param(b"y" * LIMIT, chunked(b""), 200, id="chunked-at-the-cap"),
    pytest.param(b"y" * (LIMIT + 1), chunked(b""), 413, id="chunked-over-the-cap"),
    pytest.param(b"", chunked(b""), 200, id="chunked-empty"),
]


@pytest.mark.parametrize(("body", "extra", "status"), ROWS)
def test_rfc9110_15_5_14_content_too_large(body: bytes, extra: dict[str, Any], status: int) -> None:
    ran = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ran.append(True)
        return reading_app(environ, start_response)

    if "HTTP_TRANSFER_ENCODING" not in extra:
        extra = {"CONTENT_LENGTH": str(len(body))} if body else {}
    reply = call(BodyLimit(app, max_bytes=LIMIT), "POST", "/", body, **extra)
    assert reply.status_code == status
    assert bool(ran) == (status == 200), "the app must not run on a 413"
    if status == 200:
        assert json.loads(reply.body)["received"] == len(body)


def test_a_chunked_body_reaches_the_app_whole_with_a_length() -> None:
    body = bytes(range(90))
    reply = call(BodyLimit(reading_app, max_bytes=LIMIT), "POST", "/", body, **chunked(body))
    assert json.loads(reply.body) == {"received": 90, "sha": body[:8].hex()}


def test_the_413_is_problem_json_or_html_as_the_client_prefers() -> None:
    middleware = BodyLimit(reading_app, max_bytes=LIMIT)
    body = b"x" * (LIMIT + 1)
    as_json = call(middleware, "POST", "/", body, CONTENT_LENGTH=str(len(body)))
    assert as_json.header("Content-Type") == "application/problem+json"
    assert json.loads(as_json.body)["status"] == 413
    as_html = call(
        middleware, "POST", "/", body, CONTENT_LENGTH=str(len(body)), HTTP_ACCEPT="text/html"
    )
    assert as_html.header("Content-Type") == "text/html; charset=utf-8"
    # PEP 3333: no hop-by-hop header (Connection) from an application.
    assert as_json.header("Connection") is None


def test_a_length_that_is_not_a_number_is_left_to_the_app() -> None:
    # The app's own parser answers it (microweb: 400); BodyLimit does not guess.
    app = App()

    @app.post("/")
    def echo(req: Request) -> dict[str, int]:
        return {"received": len(req.body)}

    # NOTE: called without wsgiref's validator, which refuses such an environ itself.
    statuses = []
    env = make_environ("POST", "/", b"abc", CONTENT_LENGTH="3x")
    body = BodyLimit(app, max_bytes=LIMIT)(env, lambda status, headers: statuses.append(status))
    assert b"".join(body)
    assert statuses == ["400 Bad Request"]


def test_around_a_flask_app() -> None:
    flask_app = flask.Flask(__name__)

    @flask_app.post("/upload")
    def upload() -> dict[str, int]:
        return {"received": len(flask.request.get_data())}

    client = Client(BodyLimit(flask_app.wsgi_app, max_bytes=LIMIT))
    assert client.post("/upload", b"x" * LIMIT).json == {"received": LIMIT}
    client.post("/upload", b"x" * (LIMIT + 1), status=413)


def test_inside_a_microweb_app_with_a_larger_app_cap() -> None:
    # The middleware's cap applies even when the app's own cap is larger.
    app = App(max_body_size=10 * LIMIT)

    @app.post("/upload")
    def upload(req: Request) -> dict[str, int]:
        return {"received": len(req.body)}

    app.use(BodyLimit, max_bytes=LIMIT)
    client = Client(app)
    assert client.post("/upload", b"x" * LIMIT).json == {"received": LIMIT}
    refused = client.post("/upload", b"x" * (LIMIT + 1), status=413)
    assert refused.json["status"] == 413


@pytest.mark.parametrize("bad", [-1, 1.5, "100", True, None])
def test_bad_max_bytes_is_refused_at_construction(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BodyLimit(reading_app, max_bytes=bad)


# -- through real gunicorn: chunked bodies arrive as gunicorn streams them ------------------


def send_chunked(url: str, chunks: list[bytes]) -> bytes:
    sock = open_raw(url)
    try:
        head = (
            b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)
    finally:
        sock.close()


@pytest.mark.e2e
def test_gunicorn_chunked_bodies_around_flask(gunicorn_server: StartServer) -> None:
    url = gunicorn_server("tests.body_limit_app:app")  # max_bytes=1000
    small = send_chunked(url, [b"a" * 400, b"b" * 600])
    assert small.startswith(b"HTTP/1.1 200"), small[:200]
    assert small.endswith(b'{"received":1000}\n')
    large = send_chunked(url, [b"a" * 600, b"b" * 600])
    assert large.startswith(b"HTTP/1.1 413"), large[:200]
    assert b"application/problem+json" in large
    declared = fetch(url, "POST", "/upload", body=b"z" * 1001)
    assert declared.status == 413
