"""microweb/response.py: handler return values, streaming, HEAD, header safety, redirect.

Normal requests go through `microweb.testing.Client` (WebTest, lint on).
Tests that must watch the body iterator itself (is it lazy, is it closed)
build the environ by hand and run the app under `wsgiref.validate.validator`.
"""

from __future__ import annotations

import http.client
import inspect
import io
import json
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
import webob.exc
from servers import GunicornServer, fetch

from microweb import App, HTTPError, Request, Response, redirect
from microweb.testing import Client

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
JSON = "application/json"


# -- Helpers ----------------------------------------------------------------


def build_environ(method: str = "GET", path: str = "/") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
    }
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    return environ


@dataclass
class Started:
    """What the app passed to start_response."""

    calls: list[tuple[str, list[tuple[str, str]]]]

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.calls.append((status, headers))
        return lambda data: None

    @property
    def status(self) -> int:
        return int(self.calls[-1][0].split()[0])

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.calls[-1][1]


def start(app: App, method: str, path: str) -> tuple[Started, Any]:
    """Call the app under the validator; return start_response's record and the app_iter."""
    started = Started([])
    return started, validator(app)(build_environ(method, path), started)


def single_route_app(result: Callable[[], Any]) -> App:
    app = App()

    @app.get("/")
    def handler(req: Request) -> Any:
        return result()

    return app


class Chunks:
    """A streamed body that records how far it ran and whether it was closed."""

    def __init__(self, *chunks: bytes | str) -> None:
        self.chunks = list(chunks)
        self.produced: list[bytes | str] = []
        self.closed = False

    def __iter__(self) -> Chunks:
        return self

    def __next__(self) -> bytes | str:
        if len(self.produced) == len(self.chunks):
            raise StopIteration
        chunk = self.chunks[len(self.produced)]
        self.produced.append(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


class Recorder:
    """A generator body that records how far it ran; closed once close() reached it."""

    def __init__(self, *chunks: bytes | str) -> None:
        self.produced: list[bytes | str] = []
        self.generator: Generator[bytes | str, None, None] = self._run(chunks)

    def _run(self, chunks: tuple[bytes | str, ...]) -> Generator[bytes | str, None, None]:
        for chunk in chunks:
            self.produced.append(chunk)
            yield chunk

    @property
    def closed(self) -> bool:
        return inspect.getgeneratorstate(self.generator) == inspect.GEN_CLOSED


# -- Each return type ---------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status", "content_type", "body"),
    [
        pytest.param(lambda: "héllo", 200, TEXT, "héllo".encode(), id="str"),
        pytest.param(lambda: "", 200, TEXT, b"", id="empty-str"),
        pytest.param(lambda: b"\x00\xff\x89PNG", 200, BINARY, b"\x00\xff\x89PNG", id="bytes"),
        pytest.param(
            lambda: {"a": 1, "b": [True, None], "c": "é"},
            200, JSON, '{"a":1,"b":[true,null],"c":"é"}'.encode(),
            id="dict-compact",
        ),
        pytest.param(lambda: [1, "x", {}], 200, JSON, b'[1,"x",{}]', id="list-compact"),
        pytest.param(lambda: {}, 200, JSON, b"{}", id="empty-dict"),
        pytest.param(
            lambda: Response(body=b"\x89PNG", status=202, content_type="image/png"),
            202, "image/png", b"\x89PNG",
            id="response-object",
        ),
        pytest.param(
            lambda: Response.json({"id": 1, "tags": ["a"]}, status=201),
            201, JSON, b'{"id":1,"tags":["a"]}',
            id="response-json-201",
        ),
        pytest.param(lambda: Response.json([1, 2]), 200, JSON, b"[1,2]", id="response-json-200"),
    ],
)
def test_buffered_return_values(
    result: Callable[[], Any], status: int, content_type: str, body: bytes
) -> None:
    """RFC 9110 §8.3 (Content-Type: text/plain; charset=utf-8 for str, octet-stream for bytes),
    RFC 8259 §11 (application/json, no charset), §8.6 (Content-Length = body length)."""
    res = Client(single_route_app(result)).get("/", status=status)
    assert res.headers["Content-Type"] == content_type
    assert res.body == body
    assert res.headers["Content-Length"] == str(len(body))


def test_none_is_204_without_content_headers() -> None:
    """RFC 9110 §15.3.5 (204 has no content) and §8.6 (no Content-Length on a 204)."""
    started, app_iter = start(single_route_app(lambda: None), "GET", "/")
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    assert started.status == 204
    names = {name.lower() for name, _ in started.headers}
    assert "content-type" not in names
    assert "content-length" not in names
    assert body == b""


def test_response_object_is_sent_as_is() -> None:
    """A Response keeps its own status, headers and cookies (RFC 6265 §4.1 Set-Cookie)."""

    def result() -> Response:
        response = Response("made by hand", status=203)
        response.headers["X-Custom"] = "kept"
        response.cache_control.max_age = 60
        response.set_cookie("theme", "dark")
        return response

    res = Client(single_route_app(result)).get("/", status=203)
    assert res.text == "made by hand"
    assert res.headers["X-Custom"] == "kept"
    assert res.headers["Cache-Control"] == "max-age=60"
    assert res.headers["Set-Cookie"].startswith("theme=dark")


@pytest.mark.parametrize(
    ("result", "body"),
    [
        pytest.param(lambda: iter([b"a", b"b", b"c"]), b"abc", id="iterator-of-bytes"),
        pytest.param(lambda: (c for c in ["é", "tê"]), "étê".encode(), id="generator-of-str"),
        pytest.param(lambda: iter([b"x", "é"]), "xé".encode(), id="mixed-chunks"),
        pytest.param(lambda: Chunks(b"1", "2"), b"12", id="iterable-with-close"),
        pytest.param(lambda: iter([]), b"", id="empty-iterator"),
    ],
)
def test_iterators_are_streamed(result: Callable[[], Any], body: bytes) -> None:
    """RFC 9112 §6.3 / §7.1: a streamed body has no Content-Length (the server frames it,
    chunked); str chunks are encoded as UTF-8; octet-stream unless the handler says."""
    app = single_route_app(result)
    assert Client(app).get("/", status=200).body == body
    # NOTE: WebTest adds a Content-Length to what it received; look at what the app sent.
    started, app_iter = start(app, "GET", "/")
    try:
        assert b"".join(app_iter) == body
    finally:
        app_iter.close()
    assert started.status == 200
    assert dict(started.headers)["Content-Type"] == BINARY
    assert "content-length" not in {name.lower() for name, _ in started.headers}


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(lambda: ({"a": 1}, 201), id="tuple-body-status"),
        pytest.param(lambda: ("text", 200, {"X": "y"}), id="tuple-three"),
        pytest.param(lambda: 42, id="int"),
        pytest.param(lambda: object(), id="object"),
    ],
)
def test_unsendable_return_is_500_and_logged(
    result: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9110 §15.6.1: a handler bug is a 500; the TypeError is logged on "microweb"."""
    caplog.set_level(logging.ERROR, logger="microweb")
    res = Client(single_route_app(result)).get("/", status=500)
    assert res.content_type == "application/problem+json"
    errors = [r for r in caplog.records if r.name == "microweb" and r.exc_info]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is TypeError


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(lambda: {"x": float("nan")}, id="nan-in-dict"),
        pytest.param(lambda: [float("inf")], id="infinity-in-list"),
        pytest.param(lambda: Response.json({"x": float("-inf")}), id="response-json-minus-inf"),
    ],
)
def test_json_return_is_never_invalid_json(result: Callable[[], Any]) -> None:
    """RFC 8259 §6: NaN and Infinity are not permitted in JSON; a body labelled
    application/json must never contain them (a handler bug: 500, not a 200 of non-JSON)."""
    res = Client(single_route_app(result)).get("/", expect_errors=True)
    if res.status_int == 200:
        json.loads(res.body, parse_constant=lambda name: pytest.fail(f"sent {name} as JSON"))
    assert res.status_int == 500


# -- Streaming is lazy, and close() always reaches the handler's iterator -----


def test_stream_is_not_buffered() -> None:
    """RFC 9112 §7.1: chunks go out as the iterator produces them; after the first next()
    on the app_iter, only the first chunk has been produced."""
    body = Recorder("one", "two", "three")
    started, app_iter = start(single_route_app(lambda: body.generator), "GET", "/")
    try:
        assert next(app_iter) == b"one"
        assert body.produced == ["one"]
        assert started.status == 200
        assert next(app_iter) == b"two"
        assert body.produced == ["one", "two"]
    finally:
        app_iter.close()


@pytest.mark.parametrize(
    ("make_body", "reads"),
    [
        pytest.param(lambda: Recorder("a", "b", "c"), 0, id="generator-no-read"),
        pytest.param(lambda: Recorder("a", "b", "c"), 1, id="generator-stopped-early"),
        pytest.param(lambda: Recorder("a", "b", "c"), 3, id="generator-read-to-end"),
        pytest.param(lambda: Chunks("a", "b", "c"), 0, id="iterable-no-read"),
        pytest.param(lambda: Chunks("a", "b", "c"), 1, id="iterable-stopped-early"),
        pytest.param(lambda: Chunks("a", "b", "c"), 3, id="iterable-read-to-end"),
    ],
)
def test_close_reaches_the_handlers_iterator(make_body: Callable[[], Any], reads: int) -> None:
    """PEP 3333: the server calls close() when the request ends, also when the client went
    away mid-stream; it must reach the handler's iterator so it can release what it holds."""
    body = make_body()
    source = body.generator if isinstance(body, Recorder) else body
    _, app_iter = start(single_route_app(lambda: source), "GET", "/")
    try:
        for _ in range(reads):
            next(app_iter)
        assert not body.closed
    finally:
        app_iter.close()
    assert body.closed
    # NOTE: the first chunk is read before the status is sent (to_response checks it).
    assert len(body.produced) == max(reads, 1)


# -- HEAD: RFC 9110 §9.3.2 ------------------------------------------------------


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda: Recorder(b"never", b"sent"), id="generator"),
        pytest.param(lambda: Chunks(b"never", b"sent"), id="iterable-with-close"),
    ],
)
def test_head_on_a_stream_closes_it_without_iterating(make_body: Callable[[], Any]) -> None:
    """RFC 9110 §9.3.2: HEAD gets GET's status and headers and no body; the stream is
    closed (it may hold a cursor or a file) and never iterated."""
    body = make_body()
    source = body.generator if isinstance(body, Recorder) else body
    started, app_iter = start(single_route_app(lambda: source), "HEAD", "/")
    try:
        assert b"".join(app_iter) == b""
    finally:
        app_iter.close()
    assert body.produced == []
    assert body.closed
    assert started.status == 200
    assert ("Content-Type", BINARY) in started.headers


def test_head_on_a_stream_through_lint() -> None:
    """RFC 9110 §9.3.2: the same through WebTest's linter, which checks HEAD has no body."""
    res = Client(single_route_app(lambda: iter([b"a", b"b"]))).head("/", status=200)
    assert res.body == b""
    assert res.headers["Content-Type"] == BINARY


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(lambda: "héllo", id="str"),
        pytest.param(lambda: b"\x00\x01\x02", id="bytes"),
        pytest.param(lambda: {"a": [1, 2]}, id="dict"),
        pytest.param(lambda: Response("made by hand", content_type="text/csv"), id="response"),
        pytest.param(lambda: Response.json({"id": 1}, status=201), id="response-json-201"),
    ],
)
def test_head_on_a_buffered_route_keeps_content_length(result: Callable[[], Any]) -> None:
    """RFC 9110 §9.3.2 and §8.6: HEAD answers GET's status and headers, Content-Length
    included (the length GET would send), with no body."""
    app = single_route_app(result)
    get = Client(app).get("/")
    started, app_iter = start(app, "HEAD", "/")
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    assert body == b""
    assert started.status == get.status_int
    assert get.body != b""
    assert dict(started.headers)["Content-Length"] == str(len(get.body))
    assert sorted(started.headers) == sorted(get.headerlist)


# -- Response splitting: RFC 9110 §5.5, CWE-113 ---------------------------------

EVIL = "\r\nSet-Cookie: evil=1"


def _response_with_header(name: str, value: str) -> Callable[[], Response]:
    def result() -> Response:
        response = Response("ok")
        response.headers[name] = value
        return response

    return result


def _raise(make: Callable[[], BaseException]) -> Callable[[], Any]:
    def result() -> Any:
        raise make()

    return result


def _webob_401() -> webob.exc.HTTPUnauthorized:
    # NOTE: WebOb refuses control characters in Location itself, not in other headers.
    return webob.exc.HTTPUnauthorized(headers=[("WWW-Authenticate", "Basic" + EVIL)])


UNSAFE_HEADERS = [
    pytest.param(_response_with_header("X-Note", "a" + EVIL), id="response-crlf"),
    pytest.param(_response_with_header("X-Note", "a\nSet-Cookie: evil=1"), id="response-lf"),
    pytest.param(_response_with_header("X-Note", "a\rSet-Cookie: evil=1"), id="response-cr"),
    pytest.param(_response_with_header("X-Note", "a\0evil"), id="response-nul"),
    pytest.param(_response_with_header("X-Note" + EVIL, "a"), id="response-header-name"),
    pytest.param(
        lambda: Response.json({}, headers=[("X-Note", "a" + EVIL)]), id="response-json-headers"
    ),
    pytest.param(
        _raise(lambda: HTTPError(401, headers={"WWW-Authenticate": 'Bearer realm="a"' + EVIL})),
        id="httperror-raised",
    ),
    pytest.param(
        lambda: HTTPError(429, headers=[("Retry-After", "1" + EVIL)]), id="httperror-returned"
    ),
    pytest.param(lambda: redirect("/next" + EVIL), id="redirect-location"),
    pytest.param(_raise(_webob_401), id="webob-exc-raised"),
    pytest.param(_webob_401, id="webob-exc-returned"),
]


@pytest.mark.parametrize("result", UNSAFE_HEADERS)
def test_header_with_cr_or_lf_is_500_and_never_sent(
    result: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9110 §5.5: CR, LF and NUL are invalid in a field value (§5.1 for names); a
    handler's header holding one would split the response (CWE-113). microweb answers 500
    itself, logs it, and the value never reaches start_response (the validator would
    refuse it there: "Bad header value")."""
    caplog.set_level(logging.ERROR, logger="microweb")
    try:
        started, app_iter = start(single_route_app(result), "GET", "/")
    except ValueError as exc:
        pytest.fail(f"the app raised out of __call__ instead of answering 500: {exc!r}")
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    assert started.status == 500
    assert "evil" not in repr(started.calls)
    assert b"evil" not in body
    assert any(r.name == "microweb" and r.levelno >= logging.ERROR for r in caplog.records)


# -- redirect: RFC 9110 §15.4 ----------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/next", id="path"),
        pytest.param("/next?a=1&b=%C3%A9", id="with-query"),
        pytest.param("https://example.com/x", id="absolute"),
    ],
)
def test_redirect(status: int, target: str) -> None:
    """RFC 9110 §15.4.2-§15.4.9: redirect(url, status) answers the status with Location
    (§10.2.2) naming the target, query string kept."""
    app = App()

    @app.get("/")
    def go(req: Request) -> Response:
        return redirect(target, status)

    res = Client(app).get("/", status=status)
    assert urljoin("http://localhost/", res.headers["Location"]) == urljoin(
        "http://localhost/", target
    )


def test_redirect_defaults_to_302() -> None:
    """RFC 9110 §15.4.3: the default redirect is 302 Found."""
    response = redirect("/next")
    assert response.status_code == 302
    assert response.location == "/next"


@pytest.mark.parametrize("status", [200, 300, 304, 305, 306, 399, 404, 0])
def test_redirect_refuses_other_statuses(status: int) -> None:
    """RFC 9110 §15.4: only 301, 302, 303, 307 and 308 redirect to a Location (300 offers
    choices, 304 revalidates, 305/306 are deprecated/unused)."""
    with pytest.raises(ValueError, match=str(status)):
        redirect("/next", status)


def test_rfc8259_8_2_lone_surrogate_from_json_input_echoes_as_valid_json() -> None:
    """JSON may carry "\\ud800"; it has no UTF-8 form, so it goes back as a \\u escape."""
    app = App()

    @app.post("/echo")
    def echo(req: Any) -> Any:
        return req.json

    response = Client(app).post("/echo", b'{"x": "\\ud800"}', content_type="application/json")
    assert response.status_int == 200
    assert response.body == b'{"x":"\\ud800"}'


# -- Response's fast constructor builds what WebOb's would ----------------------

CONSTRUCTOR_CASES = [
    pytest.param({}, id="no-arguments"),
    pytest.param({"body": b"hi"}, id="body"),
    pytest.param({"body": "héllo"}, id="str-body-default-charset"),
    pytest.param({"text": "héllo"}, id="text"),
    pytest.param({"text": "héllo", "content_type": "text/plain"}, id="text-plain"),
    pytest.param({"text": "x", "content_type": "text/plain; charset=latin-1"}, id="own-charset"),
    pytest.param({"text": "é", "content_type": "application/octet-stream"}, id="text-binary"),
    pytest.param({"body": b"{}", "content_type": "application/json"}, id="json-no-charset"),
    pytest.param({"body": b"<a/>", "content_type": "application/atom+xml"}, id="xml-charset"),
    pytest.param({"body": b"x", "status": 201}, id="int-status"),
    pytest.param({"body": b"x", "status": "299 Custom"}, id="str-status"),
    pytest.param({"body": b"x", "status": 299}, id="unknown-int-status"),
    pytest.param({"status": 204}, id="204-no-content-type"),
    pytest.param({"body": b"ignored", "status": 304}, id="304-drops-body"),
    pytest.param({"text": "x", "status": 204}, id="text-on-204"),
    pytest.param({"body": b"x", "conditional_response": True}, id="conditional"),
    pytest.param({"body": b"x", "charset": "latin-1"}, id="charset-argument"),
    pytest.param({"text": "x", "location": "/next", "cache_control": "no-store"}, id="keywords"),
    pytest.param({"body": b"x", "location": "/a", "cache_control": "no-store"}, id="body-keywords"),
    pytest.param({"body": b"x", "status": 404, "content_type": "text/csv"}, id="status-csv"),
    pytest.param({"body": b"x", "headerlist": [("X-A", "1")]}, id="headerlist"),
    pytest.param({"app_iter": [b"a", b"b"]}, id="app-iter"),
    pytest.param({"json_body": {"a": "é"}}, id="json-body"),
    pytest.param({"body": b"x", "content_type": ""}, id="empty-content-type"),
    pytest.param({"body": b"x", "text": "y"}, id="body-then-text"),
]


@pytest.mark.parametrize("kwargs", CONSTRUCTOR_CASES)
def test_response_constructor_matches_webob(kwargs: dict[str, Any]) -> None:
    """microweb.Response(...) is indistinguishable from webob.Response(...) for the same
    arguments: status, headers (RFC 9110 §8.3 Content-Type and charset, §8.6
    Content-Length, none on 204/304 per §15.3.5/§15.4.5), body and WebOb's attributes."""
    ours, theirs = Response(**kwargs), webob.Response(**kwargs)
    assert ours.status == theirs.status
    assert ours.headerlist == theirs.headerlist
    assert ours.body == theirs.body
    assert ours.charset == theirs.charset
    assert ours.content_type == theirs.content_type
    assert ours.conditional_response == theirs.conditional_response
    assert dict(ours.headers) == dict(theirs.headers)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"body": 42}, id="int-body"),
        pytest.param({"body": "é", "content_type": "image/png"}, id="str-no-charset"),
        pytest.param({"text": b"bytes"}, id="bytes-text"),
        pytest.param({"body": b"x", "no_such_attribute": 1}, id="unknown-keyword"),
        pytest.param({"body": b"x", "app_iter": [b"y"]}, id="body-and-app-iter"),
    ],
)
def test_response_constructor_refuses_what_webob_refuses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        webob.Response(**kwargs)
    with pytest.raises(TypeError):
        Response(**kwargs)


def test_fast_response_keeps_webobs_api() -> None:
    """After the fast constructor, every WebOb API works on the object: headers view,
    cookies (RFC 6265 §4.1), status forms, body/text/app_iter setters."""
    response = Response(text="héllo", content_type="text/plain")
    response.headers["X-A"] = "1"
    response.headers.add("X-B", "2")
    response.set_cookie("theme", "dark", max_age=60, httponly=True)
    response.cache_control.max_age = 30
    assert response.headerlist[:2] == [
        ("Content-Type", "text/plain; charset=UTF-8"),
        ("Content-Length", str(len("héllo".encode()))),
    ]
    assert response.headers["X-A"] == "1"
    assert response.headers.getall("X-B") == ["2"]
    assert response.headers["Set-Cookie"].startswith("theme=dark; Max-Age=60;")
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert response.headers["Cache-Control"] == "max-age=30"
    assert response.text == "héllo"
    response.status = "404 Not Found"
    assert (response.status_code, response.status) == (404, "404 Not Found")
    response.status_int = 201
    assert response.status == "201 Created"
    response.text = "changed"
    assert (response.body, response.content_length) == (b"changed", 7)
    response.app_iter = iter([b"a", b"b"])
    assert response.content_length is None
    response.delete_cookie("theme")
    assert "theme=;" in response.headers.getall("Set-Cookie")[-1]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_response_sends_headers_cookie_and_body(method: str) -> None:
    """RFC 9110 §9.3.2: HEAD answers GET's status and headers, Content-Length and
    Set-Cookie included (RFC 6265 §4.1), without a body."""

    def result() -> Response:
        response = Response(text="héllo", status=201, content_type="text/plain")
        response.headers["X-Custom"] = "kept"
        response.set_cookie("theme", "dark")
        return response

    started, app_iter = start(single_route_app(result), method, "/")
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    headers = dict(started.headers)
    assert started.status == 201
    assert headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert headers["Content-Length"] == str(len("héllo".encode()))
    assert headers["X-Custom"] == "kept"
    assert headers["Set-Cookie"].startswith("theme=dark")
    assert body == (b"" if method == "HEAD" else "héllo".encode())


def test_response_reused_across_requests_is_not_changed_by_sending() -> None:
    """A module-level Response sent twice sends the same headers twice: start_response
    gets a copy that a middleware may edit in place."""
    shared = Response(text="once", content_type="text/plain")

    def grow(environ: dict[str, Any], start_response: Any) -> Any:
        def edit(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Added", "1"))
            return start_response(status, headers, exc_info)

        return app(environ, edit)

    app = single_route_app(lambda: shared)
    for _ in range(2):
        assert Client(grow).get("/").headers.getall("X-Added") == ["1"]
    assert len(shared.headerlist) == 2


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_response_app_iter_is_streamed_and_closed(method: str) -> None:
    """A Response with an app_iter streams it, and close() reaches it (PEP 3333);
    HEAD never iterates it (RFC 9110 §9.3.2)."""
    body = Chunks(b"a", b"b")
    started, app_iter = start(single_route_app(lambda: Response(app_iter=body)), method, "/")
    try:
        sent = b"".join(app_iter)
    finally:
        app_iter.close()
    assert started.status == 200
    assert sent == (b"" if method == "HEAD" else b"ab")
    assert body.produced == ([] if method == "HEAD" else [b"a", b"b"])
    assert body.closed


def test_conditional_response_still_answers_304() -> None:
    """RFC 9110 §13.1.2: a Response(conditional_response=True) with an ETag answers a
    matching If-None-Match with 304 (WebOb's conditional_response_app)."""

    def result() -> Response:
        response = Response(body=b"x", conditional_response=True)
        response.etag = "v1"
        return response

    res = Client(single_route_app(result)).get("/", headers={"If-None-Match": '"v1"'}, status=304)
    assert res.body == b""


# -- What cannot be sent is a 500 before any header (issue 10 item 6) -----------


def _returns_set(req: Request) -> Any:
    return {"a", "b"}


def _returns_int(req: Request) -> Any:
    return 42


def _returns_keys(req: Request) -> Any:
    return {"a": 1}.keys()


def _returns_range(req: Request) -> Any:
    return range(3)


def _yields_object(req: Request) -> Any:
    yield object()


def _yields_dict(req: Request) -> Any:
    yield {"a": 1}


def _raises_at_once(req: Request) -> Any:
    raise KeyError("before the first chunk")
    yield b"never"


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(_returns_set, id="set"),
        pytest.param(_returns_int, id="int"),
        pytest.param(_returns_keys, id="dict-keys"),
        pytest.param(_returns_range, id="iterable-of-ints"),
        pytest.param(_yields_object, id="generator-of-objects"),
        pytest.param(_yields_dict, id="generator-of-dicts"),
        pytest.param(_raises_at_once, id="generator-raises-first"),
    ],
)
def test_unsendable_value_is_500_before_any_header(
    handler: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9110 §15.6.1: a value microweb cannot send is a 500 problem+json (RFC 9457),
    answered before any header went out (start_response is called once, with 500), and
    logged once on "microweb", naming the handler."""
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    app.get("/")(handler)
    started, app_iter = start(app, "GET", "/")
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    assert [status for status, _ in started.calls] == ["500 Internal Server Error"]
    assert dict(started.headers)["Content-Type"] == "application/problem+json"
    assert json.loads(body)["status"] == 500
    errors = [r for r in caplog.records if r.name == "microweb" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    # NOTE: the first line names it; for a generator that raised, its traceback does.
    assert handler.__name__ in logging.Formatter().format(errors[0])


def test_generator_of_objects_is_closed_when_refused() -> None:
    """A refused stream still releases what it holds (PEP 3333 close())."""
    closed = []

    def handler(req: Request) -> Any:
        try:
            yield 1
        finally:
            closed.append(True)

    app = App()
    app.get("/")(handler)
    Client(app).get("/", status=500)
    assert closed == [True]


@pytest.mark.parametrize(
    ("second", "error"),
    [
        pytest.param(RuntimeError("source gone"), RuntimeError, id="raises"),
        pytest.param(object(), TypeError, id="yields-an-object"),
    ],
)
def test_stream_failing_midway_is_logged_naming_the_handler(
    second: object, error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    """The status is on the wire when the second chunk fails: the stream is cut (the app_iter
    raises, so the server drops the connection: a chunked body without its last chunk,
    RFC 9112 §7.1) and the error log names the handler."""
    caplog.set_level(logging.ERROR, logger="microweb")

    def streams_badly(req: Request) -> Any:
        yield b"first"
        if isinstance(second, BaseException):
            raise second
        yield second

    app = App()
    app.get("/")(streams_badly)
    started, app_iter = start(app, "GET", "/")
    try:
        assert next(app_iter) == b"first"
        with pytest.raises(error):
            next(app_iter)
    finally:
        app_iter.close()
    assert started.status == 200
    errors = [r for r in caplog.records if r.name == "microweb" and r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "streams_badly" in errors[0].getMessage()
    assert "cut short" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("method", "debug", "warned"),
    [
        pytest.param("GET", True, True, id="get-debug"),
        pytest.param("HEAD", True, True, id="head-debug"),
        pytest.param("POST", True, False, id="post-debug-204-is-normal"),
        pytest.param("GET", False, False, id="get-production"),
    ],
)
def test_none_from_get_warns_in_debug_mode(
    method: str, debug: bool, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """None is 204 (RFC 9110 §15.3.5); from a GET or HEAD handler in development
    (``debug=True``, as ``microweb dev`` runs) it is probably a forgotten return: a
    warning names the handler."""
    caplog.set_level(logging.WARNING, logger="microweb")
    app = App(debug=debug)

    @app.route("/", methods=["GET", "POST"])
    def forgot_return(req: Request) -> None:
        pass

    Client(app).request("/", method=method, status=204)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) is warned
    assert all("forgot_return" in message for message in warnings)


@pytest.mark.e2e
def test_unsendable_values_through_gunicorn(tmp_path: Any) -> None:
    """Through real gunicorn: a set and a stream of objects are 500 problem+json, and the
    access log records 500; a stream failing midway is cut (the client never sees its
    last chunk) and the error log names the handler."""
    server = GunicornServer("tests.return_values_app:app", tmp_path / "log", workers=1)
    url = server.start()
    try:
        for path in ("/set", "/object-stream"):
            reply = fetch(url, "GET", path)
            assert reply.status == 500
            assert reply.headers["Content-Type"] == "application/problem+json"
        with pytest.raises(http.client.IncompleteRead):
            fetch(url, "GET", "/midway")
    finally:
        assert server.stop() == 0
    log = server.log()
    assert '"GET /set HTTP/1.1" 500' in log
    assert '"GET /object-stream HTTP/1.1" 500' in log
    assert "returns_set (" in log and "object_stream (" in log
    assert "the stream of fails_midway (" in log and "cut short" in log
