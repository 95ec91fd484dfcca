"""GZip (microweb/middleware/gzip.py) against RFC 9110 and PEP 3333.

RFC 9110 §8.4 Content-Encoding, §8.6 Content-Length, §8.8.3 ETag, §9.3.2
HEAD, §12.4.2 qvalues, §12.5.3 Accept-Encoding, §12.5.5 Vary, §15.4.5 304;
RFC 9111 §5.2.2.6 no-transform; RFC 1952 gzip. Tables run through
``wsgiref.validate`` (`wsgi_call.call`) or WebTest's lint (`Client`);
the middleware is tested alone, around the plain/Flask/microweb apps of
middleware_apps.py, inside an App with the other middleware, and on the
wire through gunicorn (incremental delivery).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from middleware_apps import APPS, microweb_app
from scaling import assert_linear
from servers import StartServer, open_raw
from wsgi_call import call

from microweb.middleware import CORS, RequestID, SecurityHeaders, TrustedHost
from microweb.middleware import gzip as gzip_module
from microweb.middleware.gzip import GZip, GzipEncoder, negotiate
from microweb.testing import Client
from microweb.types import Environ, Headers, StartResponse

BIG = json.dumps({"items": [{"id": i, "name": f"item {i}"} for i in range(100)]}).encode()


def gunzip(data: bytes) -> bytes:
    return zlib.decompress(data, 16 + zlib.MAX_WBITS)


@pytest.fixture
def gzip_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tables assume gzip is the only coding, whether or not brotli is installed."""
    monkeypatch.setattr(gzip_module, "ENCODERS", {"gzip": GzipEncoder})


# --- RFC 9110 §12.5.3 / §12.4.2: Accept-Encoding ------------------------------

NEGOTIATION = [
    pytest.param(None, None, id="absent-identity"),
    pytest.param("", None, id="empty-identity-only"),
    pytest.param("gzip", "gzip", id="gzip"),
    pytest.param("GZip", "gzip", id="case-insensitive"),
    pytest.param("x-gzip", "gzip", id="x-gzip-alias-8.4.1.3"),
    pytest.param("deflate, gzip, br, zstd", "gzip", id="browser"),
    pytest.param("gzip;q=0", None, id="q0-refuses"),
    pytest.param("gzip ; q=0.000", None, id="q0.000-refuses"),
    pytest.param("*", "gzip", id="star"),
    pytest.param("*;q=0", None, id="star-q0"),
    pytest.param("gzip;q=0, *", None, id="explicit-refusal-beats-star"),
    pytest.param("*;q=0, gzip", "gzip", id="explicit-beats-star-refusal"),
    pytest.param("identity;q=0", None, id="identity-refused-nothing-else-identity-anyway"),
    pytest.param("identity;q=0, gzip;q=0", None, id="all-refused-identity-anyway"),
    pytest.param("gzip;q=0.5", "gzip", id="low-q-still-beats-unlisted-identity"),
    pytest.param("gzip;q=0.5, identity", None, id="identity-preferred-by-q"),
    pytest.param("gzip;q=0.5, identity;q=0.5", "gzip", id="tie-server-preference"),
    pytest.param("*;q=0.5, gzip;q=0.2", None, id="star-gives-identity-its-q"),
    pytest.param("deflate, br", None, id="unsupported-only"),
    pytest.param("gzip;q=abc", None, id="junk-q-ignored"),
    pytest.param("gzip;q=1.5", None, id="q-above-1-ignored"),
    pytest.param("gzip;q=0.5555", None, id="q-four-digits-ignored"),
    pytest.param("gzip;q=-1", None, id="q-negative-ignored"),
    pytest.param("gzip;level=9", None, id="unknown-param-ignored"),
    pytest.param("gzip;q=abc, gzip", "gzip", id="junk-entry-then-good-one"),
    pytest.param("gzip, gzip;q=0", None, id="duplicate-lowest-wins"),
    pytest.param(" , ,gzip,", "gzip", id="empty-list-elements"),
]


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(("header", "expected"), NEGOTIATION)
def test_negotiate_rfc9110_12_5_3(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("gzip, br", "br", id="tie-prefers-br"),
        pytest.param("br;q=0.8, gzip", "gzip", id="q-beats-preference"),
        pytest.param("*", "br", id="star"),
        pytest.param("br;q=0, *", "gzip", id="br-refused"),
    ],
)
def test_negotiate_with_brotli(monkeypatch: pytest.MonkeyPatch, header: str, expected: str) -> None:
    monkeypatch.setattr(gzip_module, "ENCODERS", {"br": GzipEncoder, "gzip": GzipEncoder})
    assert negotiate(header) == expected


@pytest.mark.skipif(gzip_module.brotli is None, reason="the brotli extra is not installed")
def test_brotli_stream_and_buffer() -> None:
    brotli = gzip_module.brotli
    app = GZip(response_app(body=BIG))
    assert brotli.decompress(call(app, HTTP_ACCEPT_ENCODING="br").body) == BIG
    reply = call(GZip(response_app(body=BIG, stream=True)), HTTP_ACCEPT_ENCODING="br")
    assert reply.header("Content-Encoding") == "br"
    assert brotli.decompress(reply.body) == BIG


# --- Which responses are compressed (§8.4, §12.5.5, RFC 9111 §5.2.2.6) ---------


def response_app(
    status: str = "200 OK",
    content_type: str | None = "application/json",
    headers: Headers | None = None,
    body: bytes = BIG,
    stream: bool = False,
    length: bool = True,
) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        fields = [("Content-Type", content_type)] if content_type else []
        if length and body:
            fields.append(("Content-Length", str(len(body))))
        start_response(status, fields + list(headers or []))
        if stream:
            return iter([body[: len(body) // 2], body[len(body) // 2 :]])
        return [body] if body else []

    return app


def row(id: str, encoded: bool, vary: str | None, **app: Any) -> Any:
    return pytest.param(app, encoded, vary, id=id)


AE = "Accept-Encoding"
RANGE = ("Content-Range", "bytes 0-9/99")
DECISIONS = [
    row("json-200", True, AE),
    row("json-stream", True, AE, stream=True),
    row("json-stream-unknown-size", True, AE, stream=True, length=False),
    row("buffered-no-length", True, AE, length=False),
    row("small-below-minimum", False, AE, body=b'{"a": 1}'),
    row("small-buffered-no-length", False, AE, body=b'{"a": 1}', length=False),
    row("text-html-201", True, AE, status="201 Created", content_type="text/html; charset=utf-8"),
    row("problem+json", True, AE, content_type="application/problem+json"),
    row("svg", True, AE, content_type="image/svg+xml"),
    row("javascript", True, AE, content_type="application/javascript; charset=utf-8"),
    row("204-15.3.5", False, None, status="204 No Content", content_type=None, body=b""),
    row("206-15.3.7", False, None, status="206 Partial Content", headers=[RANGE]),
    row("404", False, None, status="404 Not Found"),
    row("500", False, None, status="500 Internal Server Error", content_type="text/plain"),
    row("png", False, None, content_type="image/png"),
    row("zip", False, None, content_type="application/zip"),
    row("woff2", False, None, content_type="font/woff2"),
    row("mp4", False, None, content_type="video/mp4"),
    row("octet-stream", False, None, content_type="application/octet-stream"),
    row("event-stream", False, None, content_type="text/event-stream", stream=True),
    row("already-encoded", False, None, headers=[("Content-Encoding", "br")]),
    row("no-transform-9111", False, None, headers=[("Cache-Control", "public, no-transform")]),
    row("vary-merged", True, "Origin, Accept-Encoding", headers=[("Vary", "Origin")]),
    row("vary-present", True, "x, accept-encoding", headers=[("Vary", "x, accept-encoding")]),
    row("vary-star", True, "*", headers=[("Vary", "*")]),
]  # fmt: skip


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(("app", "encoded", "vary"), DECISIONS)
@pytest.mark.parametrize("accept", ["gzip", None])
def test_what_is_compressed_rfc9110_8_4(
    app: dict[str, Any], encoded: bool, vary: str | None, accept: str | None
) -> None:
    extra = {"HTTP_ACCEPT_ENCODING": accept} if accept else {}
    reply = call(GZip(response_app(**app)), **extra)
    identity = call(response_app(**app))
    expect_encoded = encoded and accept is not None
    expected = "gzip" if expect_encoded else identity.header("Content-Encoding")
    assert reply.header("Content-Encoding") == expected
    assert [v for k, v in reply.headers if k.lower() == "vary"] == ([vary] if vary else [])
    if expect_encoded:
        assert gunzip(reply.body) == identity.body
        if app.get("stream"):  # §8.6: the compressed length is unknown up front
            assert reply.header("Content-Length") is None
        else:
            assert reply.header("Content-Length") == str(len(reply.body))
    else:
        assert reply.body == identity.body
        assert reply.header("Content-Length") == identity.header("Content-Length")


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(
    "app",
    [
        pytest.param({}, id="buffered"),
        pytest.param({"stream": True}, id="stream"),
        pytest.param({"headers": [("ETag", '"v1"')]}, id="with-etag"),
    ],
)
def test_head_has_get_headers_rfc9110_9_3_2(app: dict[str, Any]) -> None:
    get = call(GZip(response_app(**app)), HTTP_ACCEPT_ENCODING="gzip")
    head = call(GZip(response_app(**app, body=BIG)), "HEAD", HTTP_ACCEPT_ENCODING="gzip")
    # §8.6: Content-Length on HEAD would have to be the gzip length; it is left out.
    assert [h for h in head.headers if h[0] != "Content-Length"] == [
        h for h in get.headers if h[0] != "Content-Length"
    ]
    assert head.header("Content-Length") is None
    assert head.header("Content-Encoding") == "gzip"


# --- ETag (§8.8.3) and revalidation (§13.1, §15.4.5) ---------------------------


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(
    ("etag", "accept", "expected"),
    [
        pytest.param('"v1"', "gzip", '"v1-gzip"', id="strong-distinct"),
        pytest.param('W/"v1"', "gzip", 'W/"v1-gzip"', id="weak-distinct"),
        pytest.param('"v1"', "identity", '"v1"', id="identity-unchanged"),
    ],
)
def test_etag_of_compressed_representation_8_8_3(etag: str, accept: str, expected: str) -> None:
    reply = call(GZip(response_app(headers=[("ETag", etag)])), HTTP_ACCEPT_ENCODING=accept)
    assert reply.header("ETag") == expected


def echo_conditions(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    seen = {k: environ.get(k) for k in ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(
    ("accept", "sent", "inner_sees"),
    [
        pytest.param("gzip", '"v1-gzip"', '"v1"', id="suffix-removed"),
        pytest.param("gzip", 'W/"v1-gzip", "v0"', 'W/"v1", "v0"', id="list-weak"),
        pytest.param("identity", '"v1-gzip"', '"v1-gzip"', id="not-negotiated-kept"),
        pytest.param("gzip", "*", "*", id="star"),
        pytest.param("gzip", '"a-gzip-b"', '"a-gzip-b"', id="suffix-only-at-end"),
    ],
)
def test_validators_in_13_1(accept: str, sent: str, inner_sees: str) -> None:
    environ_seen: dict[str, Any] = {"HTTP_ACCEPT_ENCODING": accept, "HTTP_IF_NONE_MATCH": sent}
    environ_seen["HTTP_IF_MATCH"] = sent
    reply = call(GZip(echo_conditions, minimum_size=0), **environ_seen)
    body = gunzip(reply.body) if reply.header("Content-Encoding") else reply.body
    assert json.loads(body) == {"HTTP_IF_NONE_MATCH": inner_sees, "HTTP_IF_MATCH": inner_sees}


def not_modified(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("304 Not Modified", [("ETag", '"v1"')])
    return []


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(
    ("sent", "etag"),
    [
        pytest.param('"v1-gzip"', '"v1-gzip"', id="client-holds-gzip"),
        pytest.param('"v1"', '"v1"', id="client-holds-identity"),
    ],
)
def test_304_names_what_the_client_holds_15_4_5(sent: str, etag: str) -> None:
    reply = call(GZip(not_modified), HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=sent)
    assert (reply.status_code, reply.header("ETag"), reply.header("Vary")) == (304, etag, AE)


# --- Streams (PEP 3333): incremental, close() passed through --------------------


class Slow:
    """A streamed body that records what was pulled and whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.pulled, self.closed = chunks, 0, False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk

    def close(self) -> None:
        self.closed = True


def stream_app(body: Slow, lazy: bool = False) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not lazy:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return body

        def late() -> Iterator[bytes]:  # PEP 3333 allows start_response on the first chunk
            start_response("200 OK", [("Content-Type", "text/plain")])
            try:
                yield from body
            finally:
                body.close()

        return late()

    return app


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy-start-response"])
def test_stream_each_chunk_decodes_at_once(lazy: bool) -> None:
    body = Slow([b"event one\n", b"", b"event two\n"])
    started: list[Headers] = []
    result = GZip(stream_app(body, lazy))(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"},
        lambda status, headers, exc_info=None: started.append(headers),
    )
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    iterator = iter(result)
    assert inflate.decompress(next(iterator)) == b"event one\n"
    assert body.pulled == 1  # never reads ahead of what it sends
    assert dict(started[0])["Content-Encoding"] == "gzip"
    assert next(iterator) == b""  # PEP 3333: an empty chunk for an empty chunk
    assert inflate.decompress(next(iterator)) == b"event two\n"
    inflate.decompress(next(iterator))  # the gzip trailer
    assert inflate.eof
    result.close()  # type: ignore[attr-defined]
    assert body.closed


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_close_passes_through_unfinished_stream(accept: str) -> None:
    body = Slow([b"a" * 1000, b"b" * 1000])
    result = GZip(stream_app(body))(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": accept}, lambda *a: None
    )
    next(iter(result))
    result.close()  # type: ignore[attr-defined]
    assert body.closed


def writer_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written " * 100)
    return [b"returned"]


@pytest.mark.usefixtures("gzip_only")
def test_legacy_write_callable_is_compressed_pep3333() -> None:
    written: list[bytes] = []
    result = GZip(writer_app)(
        {"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"},
        lambda status, headers, exc_info=None: written.append,
    )
    assert gunzip(b"".join(written) + b"".join(result)) == b"written " * 100 + b"returned"


def test_deterministic_output_rfc1952_mtime_zero() -> None:
    first = call(GZip(response_app()), HTTP_ACCEPT_ENCODING="gzip").body
    second = call(GZip(response_app()), HTTP_ACCEPT_ENCODING="gzip").body
    assert first == second and first[4:8] == b"\0\0\0\0"


# --- Options and hostile input -------------------------------------------------


@pytest.mark.parametrize(
    "options", [{"minimum_size": -1}, {"compresslevel": 10}, {"compresslevel": -1}]
)
def test_bad_options_fail_at_construction(options: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        GZip(response_app(), **options)


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(
    ("shape", "count", "expected"),
    [
        pytest.param(lambda n: ", ".join(f"c{i};q=0.5" for i in range(n)) + ", gzip", 10_000,
                     "gzip", id="10k"),
        pytest.param(lambda n: "gzip;q=" + "9" * n, 100_000, None, id="huge-q"),
        pytest.param(lambda n: ";" * n + "gzip", 100_000, None, id="100k-semicolons"),
        pytest.param(lambda n: "gzip;q=0.5;q=1;" * n, 5_000, None, id="junk-params"),
    ],
)  # fmt: skip
def test_hostile_accept_encoding_is_linear(
    shape: Callable[[int], str], count: int, expected: str | None
) -> None:
    """Hostile: the header (with 10,000 If-None-Match tags beside it) is linear work, all of
    it costing about 10 times a tenth of it (scaling.py: CPU time, not the machine's load)."""

    def request(tenths: int) -> Callable[[], None]:
        header = shape(count * tenths // 10)
        tags = ", ".join(f'"t{i}-gzip"' for i in range(1_000 * tenths))

        def work() -> None:
            assert negotiate(header) == expected
            reply = call(GZip(response_app()), HTTP_ACCEPT_ENCODING=header, HTTP_IF_NONE_MATCH=tags)
            assert reply.status_code == 200

        return work

    assert_linear(request, 1)  # a tenth of the hostile input, then all of it


# --- Around any WSGI app, and inside an App with the other middleware -----------


class Recorder:
    """Records the headers GZip sends: WebTest decodes gzip bodies (and drops the header)."""

    def __init__(self, app: Any) -> None:
        self.app, self.headers = app, Headers()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            self.headers = list(headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@pytest.mark.usefixtures("gzip_only")
@pytest.mark.parametrize(("name", "factory"), APPS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_around_apps(name: str, factory: Any, method: str) -> None:
    recorder = Recorder(GZip(factory(), minimum_size=0))
    client = Client(recorder)
    reply = client.request("/some/path", method=method, headers={AE: "gzip"})
    assert (recorder.header("Content-Encoding"), recorder.header("Vary")) == ("gzip", AE)
    if method == "GET":  # WebTest has gunzipped it
        assert reply.json["path"] == "/some/path"
    plain = client.get("/some/path", headers={AE: "gzip;q=0"})
    assert (recorder.header("Content-Encoding"), recorder.header("Vary")) == (None, AE)
    assert plain.json["path"] == "/some/path"
    client.get("/error", headers={AE: "gzip"}, status=500)
    assert (recorder.header("Content-Encoding"), recorder.header("Vary")) == (None, None)


@pytest.mark.usefixtures("gzip_only")
def test_in_app_with_other_middleware() -> None:
    app = microweb_app()
    app.use(GZip, minimum_size=0)
    app.use(SecurityHeaders)
    app.use(TrustedHost, allowed_hosts=["localhost"])
    app.use(CORS, allow_origins=["https://example.com"])
    app.use(RequestID)
    recorder = Recorder(app)
    reply = Client(recorder).get("/x", headers={AE: "gzip", "Origin": "https://example.com"})
    assert recorder.header("Content-Encoding") == "gzip"
    assert {v.strip() for v in reply.headers["Vary"].split(",")} >= {"Origin", AE}
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.json["request_id"] == reply.headers["X-Request-ID"]


# --- On the wire: incremental delivery through gunicorn -------------------------


class Chunked:
    """Read a chunked HTTP/1.1 response from a raw socket, one chunk at a time."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self, needed: int) -> None:
        while len(self.buffer) < needed:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.buffer += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill(len(self.buffer) + 1)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def head(self) -> dict[str, str]:
        lines = []
        while line := self._line():
            lines.append(line.decode("latin-1"))
        return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}

    def chunk(self) -> bytes:
        size = int(self._line().split(b";")[0], 16)
        self._fill(size + 2)
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("path", "encoding", "first", "second"),
    [
        pytest.param("/events", "gzip", b'{"event": 1}\n', b'{"event": 2}\n', id="ndjson-gzip"),
        pytest.param("/sse", None, b"data: 1\n\n", b"data: 2\n\n", id="sse-identity"),
    ],
)
def test_incremental_delivery_through_gunicorn(
    gunicorn_server: StartServer,
    tmp_path: Path,
    path: str,
    encoding: str | None,
    first: bytes,
    second: bytes,
) -> None:
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    url = gunicorn_server(
        "tests.gzip_stream_app:app", workers=1, env={"GZIP_STREAM_FIFO": str(fifo)}
    )
    with open_raw(url) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        reader = Chunked(sock)
        head = reader.head()
        assert head.get("content-encoding") == encoding
        assert head["transfer-encoding"] == "chunked" and "content-length" not in head
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding else None
        received = b""
        try:
            # The second event does not exist yet: the app is blocked on the FIFO.
            while received != first:
                data = reader.chunk()
                received += inflate.decompress(data) if inflate else data
                assert len(received) <= len(first)
        finally:
            with open(fifo, "wb") as release:  # opens once the app waits on it
                release.write(b"go\n")
        while data := reader.chunk():
            received += inflate.decompress(data) if inflate else data
        assert received == first + second
        if inflate:
            assert inflate.eof
