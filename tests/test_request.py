"""microweb/request.py: the body cap, req.json, the query string, client_addr, form, url_for.

Normal requests go through `microweb.testing.Client` (WebTest, lint on).
WebTest always sets ``Content-Length`` itself, so chunked bodies, broken
input streams and malformed headers are built by hand (`build_environ`), or
by gunicorn's own parser (`gunicorn_environ`), and sent through
`wsgiref.validate.validator`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.http.parser import RequestParser

from microweb import App, Request
from microweb.testing import Client

CAP = 64  # App(max_body_size=CAP) in the body-cap tests
MakeEnviron = Callable[[], dict[str, Any]]
PROBLEM_JSON = "application/problem+json"


# -- Helpers ----------------------------------------------------------------


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def build_environ(
    method: str = "POST", path: str = "/", body: bytes | Any = b"", query: str = "", **cgi: str
) -> dict[str, Any]:
    """A hand-built PEP 3333 environ; `body` is bytes or a ready ``wsgi.input``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
    }
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(body) if isinstance(body, bytes) else body
    environ.update(cgi)
    return environ


def gunicorn_environ(raw: bytes) -> dict[str, Any]:
    """The environ gunicorn builds for the raw HTTP/1.1 request `raw` (its parser, its body
    readers: ``wsgi.input`` is gunicorn's own chunked or length reader)."""
    cfg = Config()
    client, server = ("192.0.2.1", 40000), ("127.0.0.1", 8000)
    message = next(RequestParser(cfg, iter([raw]), client))
    _, environ = gunicorn_wsgi.create(message, None, client, server, cfg)
    return environ


def with_raw_environ(app: Any, **values: str) -> Any:
    """Set environ values that `validator` would refuse to look at (it calls ``int()`` on
    ``CONTENT_LENGTH`` itself), as a server that passes headers through unchecked
    (``wsgiref.simple_server`` does) hands them to the app."""

    def inner(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ.update(values)
        return app(environ, start_response)  # type: ignore[no-any-return]

    return inner


def call(app: Any, environ: dict[str, Any]) -> Result:
    """Run `app` under `wsgiref.validate.validator`; the body is read and closed."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append((status, headers))
        return lambda data: None

    app_iter = validator(app)(environ, start_response)
    try:
        body = b"".join(app_iter)
    finally:
        app_iter.close()
    status, headers = started[-1]
    return Result(int(status.split()[0]), headers, body)


def assert_problem(result: Result, status: int) -> None:
    assert result.status == status, result.body
    assert result.header("Content-Type") == PROBLEM_JSON
    assert result.json()["status"] == status


class FailingInput(io.BytesIO):
    """A ``wsgi.input`` whose read() fails, as a socket does when the client hangs up."""

    def read(self, size: int | None = -1) -> bytes:
        raise OSError("connection reset by peer")


# -- The body cap: RFC 9110 §15.5.14 (413 Content Too Large) ------------------

# Each way of reading the body, with a body of `n` bytes it accepts, and how
# many of those bytes it saw.
READERS: dict[str, tuple[str, Callable[[int], bytes], Callable[[Request], int]]] = {
    "body": ("application/octet-stream", lambda n: b"x" * n, lambda req: len(req.body)),
    "json": (
        "application/json",
        lambda n: b'"' + b"x" * (n - 2) + b'"',
        lambda req: len(req.json) + 2,
    ),
    "form": (
        "application/x-www-form-urlencoded",
        lambda n: b"a=" + b"x" * (n - 2),
        lambda req: len(req.form["a"]) + 2,
    ),
    "webob-text": ("text/plain", lambda n: b"x" * n, lambda req: len(req.text)),
    "webob-json_body": (
        "application/json",
        lambda n: b'"' + b"x" * (n - 2) + b'"',
        lambda req: len(req.json_body) + 2,
    ),
    "webob-POST": (
        "application/x-www-form-urlencoded",
        lambda n: b"a=" + b"x" * (n - 2),
        lambda req: len(req.POST["a"]) + 2,
    ),
}
READER_IDS = [pytest.param(name, id=name) for name in READERS]


def reader_app(max_body_size: int = CAP) -> App:
    app = App(max_body_size=max_body_size)

    @app.post("/read/{reader}")
    def read(req: Request, reader: str) -> dict[str, int]:
        return {"seen": READERS[reader][2](req)}

    return app


@pytest.mark.parametrize("reader", READER_IDS)
def test_content_length_over_the_cap_is_413_before_reading(reader: str) -> None:
    """RFC 9110 §15.5.14: a Content-Length above App(max_body_size) is refused with 413,
    whichever accessor reads the body, and nothing is read from wsgi.input."""
    content_type, make_body, _ = READERS[reader]
    stream = io.BytesIO(make_body(CAP + 1))
    environ = build_environ(
        path=f"/read/{reader}", body=stream,
        CONTENT_TYPE=content_type, CONTENT_LENGTH=str(CAP + 1),
    )
    result = call(reader_app(), environ)
    assert_problem(result, 413)
    assert stream.tell() == 0


@pytest.mark.parametrize("reader", READER_IDS)
def test_content_length_at_the_cap_is_read_whole(reader: str) -> None:
    """RFC 9110 §15.5.14: the cap is inclusive; a body of exactly max_body_size bytes is read."""
    content_type, make_body, _ = READERS[reader]
    client = Client(reader_app())
    res = client.post(f"/read/{reader}", make_body(CAP), content_type=content_type)
    assert res.status_int == 200
    assert res.json == {"seen": CAP}


def test_default_cap_is_one_mebibyte() -> None:
    """RFC 9110 §15.5.14: App() caps bodies at 1 MiB by default."""
    client = Client(reader_app(max_body_size=App().max_body_size))
    assert client.post("/read/body", b"x" * 1_048_576).json == {"seen": 1_048_576}
    res = client.post("/read/body", b"x" * 1_048_577, status=413)
    assert res.content_type == PROBLEM_JSON


CHUNKED_OVER_CAP = [
    pytest.param(
        lambda body: build_environ(
            path="/read/body", body=body, HTTP_TRANSFER_ENCODING="chunked"
        ),
        id="hand-built-bytesio",
    ),
    pytest.param(
        lambda body: build_environ(
            path="/read/json", body=b'"' + body + b'"',
            HTTP_TRANSFER_ENCODING="chunked", CONTENT_TYPE="application/json",
        ),
        id="hand-built-json",
    ),
    pytest.param(
        lambda body: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:40], body[40:]))
            + b"0\r\n\r\n"
        ),
        id="gunicorn-chunked",
    ),
]


@pytest.mark.parametrize("make_environ", CHUNKED_OVER_CAP)
def test_chunked_body_over_the_cap_is_413(make_environ: Callable[[bytes], Any]) -> None:
    """RFC 9112 §7.1 / RFC 9110 §15.5.14: a chunked body has no Content-Length; it is
    read only up to the cap, then refused with 413."""
    environ = make_environ(b"x" * (CAP + 1))
    assert "CONTENT_LENGTH" not in environ
    assert_problem(call(reader_app(), environ), 413)


def test_chunked_body_is_not_read_to_the_end() -> None:
    """RFC 9112 §7.1 / RFC 9110 §15.5.14: an endless chunked body is cut off near the cap,
    not buffered whole before it is refused."""
    stream = io.BytesIO(b"x" * (4 * 1_048_576))
    environ = build_environ(path="/read/body", body=stream, HTTP_TRANSFER_ENCODING="chunked")
    assert_problem(call(reader_app(), environ), 413)
    assert stream.tell() <= CAP + 65_536


CHUNKED_WITHIN_CAP = [
    pytest.param(
        lambda: build_environ(
            path="/read/body", body=b"x" * CAP, HTTP_TRANSFER_ENCODING="chunked"
        ),
        CAP,
        id="hand-built-at-cap",
    ),
    pytest.param(
        lambda: build_environ(
            path="/read/body", body=b"hello", HTTP_TRANSFER_ENCODING="Chunked"
        ),
        5,
        id="hand-built-coding-name-case-insensitive",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        ),
        11,
        id="gunicorn-two-chunks",
    ),
]


@pytest.mark.parametrize(("make_environ", "length"), CHUNKED_WITHIN_CAP)
def test_chunked_body_within_the_cap_is_read(make_environ: MakeEnviron, length: int) -> None:
    """RFC 9112 §7.1: a chunked body without Content-Length is read to its end (§7: coding
    names are case-insensitive)."""
    result = call(reader_app(), make_environ())
    assert result.status == 200
    assert result.json() == {"seen": length}


def test_no_length_and_not_chunked_means_no_body() -> None:
    """RFC 9112 §6.3 (rule 7): a request with neither Content-Length nor chunked
    Transfer-Encoding has a body of length zero; wsgi.input is not read."""
    stream = io.BytesIO(b"never read")
    result = call(reader_app(), build_environ(path="/read/body", body=stream))
    assert result.json() == {"seen": 0}
    assert stream.tell() == 0


UNREADABLE_BODIES = [
    pytest.param(
        lambda: build_environ(path="/read/body", body=FailingInput(), CONTENT_LENGTH="5"),
        id="oserror-with-content-length",
    ),
    pytest.param(
        lambda: build_environ(
            path="/read/body", body=FailingInput(), HTTP_TRANSFER_ENCODING="chunked"
        ),
        id="oserror-chunked",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
            b"\r\nzz\r\nhello\r\n0\r\n\r\n"
        ),
        id="gunicorn-invalid-chunk-size",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5\r\nhelloXX0\r\n\r\n"
        ),
        id="gunicorn-chunk-missing-crlf",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5;\x01\r\nhello\r\n0\r\n\r\n"
        ),
        id="gunicorn-invalid-chunk-extension",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n5\r\nhel"
        ),
        id="gunicorn-client-hung-up-mid-chunk",
    ),
]


@pytest.mark.parametrize("make_environ", UNREADABLE_BODIES)
def test_unreadable_body_is_400_not_500(make_environ: MakeEnviron) -> None:
    """RFC 9112 §7.1 / RFC 9110 §15.5.1: a body the server cannot read (an invalid chunk,
    a client that hangs up) is the client's error: 400, never 500."""
    assert_problem(call(reader_app(), make_environ()), 400)


@pytest.mark.parametrize(
    "content_length",
    [
        pytest.param("abc", id="letters"),
        pytest.param("-1", id="negative"),
        pytest.param("+5", id="plus-sign"),
        pytest.param("1e3", id="exponent"),
        pytest.param("0x10", id="hex"),
        pytest.param("1_0", id="underscore"),
        pytest.param(" 5", id="leading-space"),
        pytest.param("5.0", id="decimal"),
        pytest.param("\xb2", id="latin1-superscript-two"),
    ],
)
def test_content_length_not_a_number_is_400(content_length: str) -> None:
    """RFC 9110 §8.6: Content-Length = 1*DIGIT (ASCII digits); RFC 9112 §6.3 (rule 5): an
    invalid Content-Length in a request MUST be answered with 400."""
    app = with_raw_environ(reader_app(), CONTENT_LENGTH=content_length)
    environ = build_environ(path="/read/body", body=b"hello")
    assert_problem(call(app, environ), 400)


SHORT_BODIES = [
    pytest.param(
        lambda: build_environ(path="/read/body", body=b"short", CONTENT_LENGTH="10"),
        id="hand-built",
    ),
    pytest.param(
        lambda: gunicorn_environ(
            b"POST /read/body HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nshort"
        ),
        id="gunicorn",
    ),
]


@pytest.mark.parametrize("make_environ", SHORT_BODIES)
def test_body_shorter_than_content_length_is_400(make_environ: MakeEnviron) -> None:
    """RFC 9112 §8: a body that ends before Content-Length bytes is incomplete: 400."""
    assert_problem(call(reader_app(), make_environ()), 400)


# -- req.json -----------------------------------------------------------------


def json_app() -> App:
    app = App()

    @app.route("/json", methods=["POST", "PUT", "PATCH"])
    def echo(req: Request) -> dict[str, Any]:
        return {"got": req.json}

    return app


@pytest.mark.parametrize(
    ("method", "content_type"),
    [
        pytest.param("POST", "application/json", id="json"),
        pytest.param("POST", "application/json; charset=utf-8", id="json-with-charset"),
        pytest.param("PUT", "Application/JSON", id="case-insensitive"),
        pytest.param("PATCH", "application/merge-patch+json", id="merge-patch-suffix"),
        pytest.param("POST", "application/vnd.api+json", id="vendor-suffix"),
    ],
)
def test_json_accepts_json_media_types(method: str, content_type: str) -> None:
    """RFC 8259 §11 (application/json), RFC 6839 §3.1 (the +json suffix, e.g. RFC 7396's
    application/merge-patch+json), RFC 9110 §8.3.1 (media types are case-insensitive)."""
    client = Client(json_app())
    body = '{"a": [1, 2.5, "été"], "b": null}'.encode()
    res = client.request("/json", method=method, body=body, content_type=content_type)
    assert res.status_int == 200
    assert res.json == {"got": {"a": [1, 2.5, "été"], "b": None}}


@pytest.mark.parametrize(
    ("method", "content_type", "accept_header"),
    [
        pytest.param("POST", "text/plain", "Accept-Post", id="post-text-plain"),
        pytest.param(
            "POST", "application/x-www-form-urlencoded", "Accept-Post", id="post-form"
        ),
        pytest.param("POST", "text/json", "Accept-Post", id="post-text-json"),
        pytest.param("POST", "application/jsonx", "Accept-Post", id="post-json-prefix-only"),
        pytest.param("PATCH", "text/plain", "Accept-Patch", id="patch-text-plain"),
        pytest.param("PATCH", "application/xml", "Accept-Patch", id="patch-xml"),
        pytest.param("PUT", "text/plain", None, id="put-text-plain"),
    ],
)
def test_json_refuses_other_media_types_with_415(
    method: str, content_type: str, accept_header: str | None
) -> None:
    """RFC 9110 §15.5.16: a body that is not JSON is 415; a POST says what it accepts in
    Accept-Post (W3C LDP §7.1), a PATCH in Accept-Patch (RFC 5789 §3.1)."""
    client = Client(json_app())
    res = client.request(
        "/json", method=method, body=b'{"a": 1}', content_type=content_type, status=415
    )
    assert res.content_type == PROBLEM_JSON
    assert res.json["status"] == 415
    advertised = {h: res.headers.get(h) for h in ("Accept-Post", "Accept-Patch")}
    expected = {"Accept-Post": None, "Accept-Patch": None}
    if accept_header is not None:
        expected[accept_header] = "application/json"
    assert advertised == expected


def test_json_without_content_type_is_415() -> None:
    """RFC 9110 §15.5.16: no Content-Type at all is not a JSON body either."""
    environ = build_environ(path="/json", body=b'{"a": 1}', CONTENT_LENGTH="8")
    result = call(json_app(), environ)
    assert_problem(result, 415)
    assert result.header("Accept-Post") == "application/json"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"a": ', id="truncated"),
        pytest.param(b"{'a': 1}", id="single-quotes"),
        pytest.param(b"{} []", id="trailing-garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b'"\xff"', id="invalid-utf8"),
        pytest.param(b'"caf\xe9"', id="latin1"),
        pytest.param('"é"'.encode("utf-16"), id="utf16"),
        pytest.param(b"NaN", id="nan"),
        pytest.param(b"[Infinity]", id="infinity"),
        pytest.param(b'{"a": -Infinity}', id="minus-infinity"),
        pytest.param(b"[" * 100_000, id="nested-100k-arrays"),
        pytest.param(b'{"a":' * 100_000, id="nested-100k-objects"),
        pytest.param(b"1" * 5000, id="5000-digit-integer"),
    ],
)
def test_json_bad_body_is_400_problem(body: bytes) -> None:
    """RFC 8259: §2 (grammar), §8.1 (UTF-8), §6 (no NaN/Infinity), §9 (parsers may limit
    nesting depth and number size): each is a 400 problem+json (RFC 9457), never a 500."""
    client = Client(json_app())
    res = client.post("/json", body, content_type="application/json", status=400)
    assert res.content_type == PROBLEM_JSON
    assert res.json["status"] == 400
    assert res.json["title"] == "Bad Request"


def test_json_is_parsed_once() -> None:
    """req.json parses the body once; a second access returns the same object."""
    app = App()

    @app.post("/twice")
    def twice(req: Request) -> dict[str, bool]:
        return {"same": req.json is req.json}

    res = Client(app).post("/twice", b'{"a": [1]}', content_type="application/json")
    assert res.json == {"same": True}


# -- The body is read once and shared -----------------------------------------


def sharing_app() -> App:
    app = App()

    @app.post("/share")
    def share(req: Request) -> dict[str, Any]:
        first = req.body
        return {
            "body": first.decode(),
            "body-again": req.body.decode(),
            "webob-text": req.text,
            "webob-json_body": req.json_body,
            "webob-body_file": req.body_file.read().decode(),
        }

    return app


SHARED_BODY = b'{"note": "caf\xc3\xa9"}'


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda app: Client(app).post("/share", SHARED_BODY, content_type="application/json")
            .json,
            id="content-length-webtest",
        ),
        pytest.param(
            lambda app: call(
                app,
                build_environ(
                    path="/share", body=SHARED_BODY,
                    HTTP_TRANSFER_ENCODING="chunked", CONTENT_TYPE="application/json",
                ),
            ).json(),
            id="chunked-hand-built",
        ),
    ],
)
def test_body_is_read_once_and_webob_sees_the_same_bytes(send: Callable[[App], Any]) -> None:
    """req.body reads wsgi.input once; WebOb's text, json_body and body_file see it too."""
    got = send(sharing_app())
    text = SHARED_BODY.decode()
    assert got == {
        "body": text,
        "body-again": text,
        "webob-text": text,
        "webob-json_body": {"note": "café"},
        "webob-body_file": text,
    }


# -- The query string ---------------------------------------------------------


def query_app() -> App:
    app = App()

    @app.get("/q")
    def query(req: Request) -> dict[str, Any]:
        def as_dict(multi: Any) -> dict[str, list[str]]:
            return {key: multi.getall(key) for key in dict.fromkeys(multi.keys())}

        return {"GET": as_dict(req.GET), "params": as_dict(req.params)}

    return app


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("a=1;b=2", {"a": ["1;b=2"]}, id="semicolon-is-not-a-separator"),
        pytest.param("a=1;a=2", {"a": ["1;a=2"]}, id="semicolon-cloaking"),
        pytest.param("a=1&a=2&b=3", {"a": ["1", "2"], "b": ["3"]}, id="ampersand"),
        pytest.param("a=%C3%A9t%C3%A9&b=x+y", {"a": ["été"], "b": ["x y"]}, id="utf8-and-plus"),
        pytest.param("a=&b", {"a": [""], "b": [""]}, id="blank-values-kept"),
        pytest.param("", {}, id="empty"),
    ],
)
def test_query_is_split_on_ampersand_only(query: str, expected: dict[str, list[str]]) -> None:
    """WHATWG URL §5.1 (application/x-www-form-urlencoded parsing splits on "&" only):
    "?a=1;b=2" is one parameter, so a cache and the app cannot read it differently
    (parameter cloaking, CVE-2020-28473). req.params agrees with req.GET."""
    res = Client(query_app()).get(f"/q?{query}" if query else "/q")
    assert res.json == {"GET": expected, "params": expected}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("a=%ff", id="percent-ff"),
        pytest.param("a=%C0%AF", id="overlong-slash"),
        pytest.param("a=%ED%A0%80", id="encoded-surrogate"),
        pytest.param("%ff=1", id="invalid-name"),
        pytest.param("a=\xff", id="raw-latin1-byte"),
    ],
)
def test_query_not_utf8_is_400(query: str) -> None:
    """RFC 3986 §2.5 / WHATWG URL §5.1: query text is UTF-8; bytes that are not are a 400
    (RFC 9110 §15.5.1), not a 500 and not silently replaced."""
    result = call(query_app(), build_environ(method="GET", path="/q", query=query))
    assert_problem(result, 400)


# -- client_addr --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Forwarded-For": "203.0.113.9"}, id="x-forwarded-for"),
        pytest.param({"X-Forwarded-For": "203.0.113.9, 198.51.100.2"}, id="x-forwarded-for-list"),
        pytest.param({"Forwarded": "for=203.0.113.9"}, id="forwarded"),
        pytest.param({"X-Real-IP": "203.0.113.9"}, id="x-real-ip"),
        pytest.param({}, id="no-header"),
    ],
)
def test_client_addr_ignores_forwarded_headers(headers: dict[str, str]) -> None:
    """RFC 7239 §8.1: a forwarding header can be set by any client and is not trusted;
    req.client_addr is REMOTE_ADDR unless ProxyFix rewrote it."""
    app = App()

    @app.get("/addr")
    def addr(req: Request) -> str:
        return str(req.client_addr)

    res = Client(app).get("/addr", headers=headers, extra_environ={"REMOTE_ADDR": "192.0.2.7"})
    assert res.text == "192.0.2.7"


# -- req.form -----------------------------------------------------------------


def form_app() -> App:
    app = App()

    @app.post("/form")
    def form(req: Request) -> dict[str, list[str]]:
        fields = req.form
        return {key: fields.getall(key) for key in dict.fromkeys(fields.keys())}

    return app


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"a=1&b=2&a=3", {"a": ["1", "3"], "b": ["2"]}, id="repeated-fields"),
        pytest.param(b"name=%C3%A9t%C3%A9&q=a+b", {"name": ["été"], "q": ["a b"]}, id="utf8"),
        pytest.param("name=été".encode(), {"name": ["été"]}, id="raw-utf8-bytes"),
        pytest.param(b"a=1;b=2", {"a": ["1;b=2"]}, id="semicolon-is-not-a-separator"),
        pytest.param(b"a=&b", {"a": [""], "b": [""]}, id="blank-values-kept"),
        pytest.param(b"", {}, id="empty"),
    ],
)
def test_form_parses_urlencoded_bodies(body: bytes, expected: dict[str, list[str]]) -> None:
    """WHATWG URL §5.1: application/x-www-form-urlencoded, split on "&", UTF-8."""
    res = Client(form_app()).post(
        "/form", body, content_type="application/x-www-form-urlencoded"
    )
    assert res.json == expected


def test_form_is_empty_for_a_json_body() -> None:
    """req.form holds form fields only; a JSON body has none."""
    res = Client(form_app()).post("/form", b'{"a": "1"}', content_type="application/json")
    assert res.json == {}


# -- req.url_for ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("script_name", "external", "expected"),
    [
        pytest.param("", False, "/notes/3", id="no-script-name"),
        pytest.param("/app", False, "/app/notes/3", id="script-name"),
        pytest.param("/deep/app", False, "/deep/app/notes/3", id="nested-script-name"),
        pytest.param("/app", True, "http://localhost/app/notes/3", id="external"),
    ],
)
def test_url_for_is_under_script_name(script_name: str, external: bool, expected: str) -> None:
    """PEP 3333 "URL Reconstruction": an app mounted at SCRIPT_NAME builds URLs under it."""
    app = App()

    @app.get("/notes/{id:int}", name="note")
    def note(req: Request, id: int) -> str:
        return req.url_for("note", _external=external, id=id)

    res = Client(app).get("/notes/3", extra_environ={"SCRIPT_NAME": script_name})
    assert res.text == expected
