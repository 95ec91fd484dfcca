"""Responses: what a handler returns, turned into something WSGI can send.

`to_response` maps each kind of return value to a WSGI callable:

=====================  ==========================================  ===========
handler returns        sent as                                     built by
=====================  ==========================================  ===========
``str``                200 text/plain; charset=utf-8               `Reply`
``bytes``              200 application/octet-stream                `Reply`
``dict`` / ``list``    200 application/json                        `Reply`
``None``               204, no body                                `Reply`
an iterator            200 application/octet-stream, streamed      `Stream`
a `Response`           itself (WebOb's full response object)       the handler
=====================  ==========================================  ===========

PERF: WebOb's ``Response.__init__`` alone costs about as much as a whole
bare WSGI call, so the simple cases use `Reply`, a three-slot object that
calls ``start_response`` with a header list built in one go. Handlers that
need cookies, caching headers or conditional responses return a `Response`.

Every header that reaches the server from a handler is checked for CR, LF
and NUL first: such a value would let the handler's caller split the
response in two (response splitting, CWE-113). The value is refused with a
`ValueError` that names the header, which the app logs and answers with 500.

HEAD (RFC 9110 §9.3.2) is handled here, at the very end: the same status
and headers as GET (``Content-Length`` included, §8.6), no body; a stream
is closed without being iterated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import Any

import webob

from .types import Environ, Headers, StartResponse
from .wsgi import EncodedStream, Mount, close_quietly

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"
JSON = "application/json"  # RFC 8259 §11: no charset parameter; JSON is UTF-8.

# RFC 9110 §15 renamed four reason phrases; Python < 3.13 still has the old ones.
PHRASES = {status.value: status.phrase for status in HTTPStatus} | {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}
STATUS_LINES = {code: f"{code} {phrase}" for code, phrase in PHRASES.items()}
# PERF: one shared encoder, compact output, built once. allow_nan=False:
# NaN and Infinity are not JSON (RFC 8259 §6); sending them is a handler bug.
_encode_utf8 = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def json_bytes(obj: Any) -> bytes:
    """`obj` as compact JSON in UTF-8 (RFC 8259 §8.1)."""
    try:
        return _encode_utf8(obj).encode()
    except UnicodeEncodeError:
        # NOTE: a lone surrogate ("\ud800", which JSON input may carry) has
        # no UTF-8 form; written as a \u escape it is still valid JSON.
        return _encode_ascii(obj).encode()
_UNSAFE_HEADER_VALUE = re.compile(r"[\r\n\0]")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 §5.6.2 token


def status_line(code: int) -> str:
    return STATUS_LINES.get(code) or f"{code} Unknown"


def check_headers(headers: Iterable[tuple[str, str]]) -> None:
    """Refuse header names that are not tokens and values with CR, LF or NUL."""
    for name, value in headers:
        if _HEADER_NAME.match(name) is None or _UNSAFE_HEADER_VALUE.search(value):
            raise ValueError(
                f"refusing response header {name!r}: {value!r} "
                "(a header name must be a token; a value must not hold CR, LF or NUL)"
            )


class Response(webob.Response):
    """WebOb's response, plus a JSON constructor that matches handler returns."""

    def _abs_headerlist(self, environ: Environ) -> Headers:
        # SECURITY: WebOb turns a relative Location into an absolute URL built
        # from the request's Host header, which the client chose: "Host:
        # evil.example" would come back in Location. RFC 9110 §10.2.2 allows
        # a relative reference, so Location is sent as the handler set it.
        return list(self.headerlist)

    @classmethod
    def json(cls, obj: Any, status: int = 200, **kwargs: Any) -> Response:
        response = cls(body=json_bytes(obj), status=status, content_type=JSON, **kwargs)
        return response


class Reply:
    """A buffered response built without WebOb (see PERF above)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: bytes, content_type: str = "") -> None:
        self.status = status_line(status)
        # RFC 9110 §8.6: no Content-Length on 204; 1xx and 304 carry no body either.
        if status == 204 or status == 304:
            self.headers = headers
        elif content_type:
            length = str(len(body))
            self.headers = [("Content-Type", content_type), ("Content-Length", length), *headers]
        else:
            self.headers = [("Content-Length", str(len(body))), *headers]
        self.body = body

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        if environ["REQUEST_METHOD"] == "HEAD" or not self.body:
            return []
        return [self.body]


class Stream:
    """A streamed body: chunks are sent as the iterator produces them."""

    __slots__ = ("chunks", "headers", "status")

    def __init__(self, chunks: Iterable[bytes | str], content_type: str = BINARY) -> None:
        self.status = STATUS_LINES[200]
        self.headers: Headers = [("Content-Type", content_type)]
        self.chunks = chunks

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            # RFC 9110 §9.3.2: HEAD has no body, so the generator never runs;
            # close() still lets it release what it holds (a cursor, a file).
            close_quietly(self.chunks)
            return []
        return EncodedStream(self.chunks)


def to_response(result: Any) -> Any:
    """Turn a handler's return value into a WSGI callable (see the table above).

    Exceptions (an `HTTPError` a miss endpoint returned, say) pass through
    unchanged: the app hands them to its error handlers.
    """
    if isinstance(result, str):
        return Reply(200, [], result.encode(), TEXT)
    if isinstance(result, _JSON_TYPES):
        return Reply(200, [], json_bytes(result), JSON)
    if result is None:
        return Reply(204, [], b"")
    if isinstance(result, _READY):
        return result
    if isinstance(result, webob.Response):
        check_headers(result.headerlist)
        return result
    if isinstance(result, bytes):
        return Reply(200, [], result, BINARY)
    if isinstance(result, tuple):
        raise TypeError(
            "a handler returned a tuple; to set a status, return "
            "Response.json(obj, status=...) or Response(body, status=...)"
        )
    if isinstance(result, Iterator | Iterable):
        return Stream(result)
    raise TypeError(f"a handler returned {type(result).__name__}, which microweb cannot send")


# PERF: tuples built once; `isinstance(x, dict | list)` builds a union per call.
_JSON_TYPES = (dict, list)
_READY = (BaseException, Reply, Stream, Mount)


def redirect(url: str, status: int = 302) -> Response:
    """A redirect to `url` (RFC 9110 §15.4): 301, 302, 303, 307 or 308."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, not {status}")
    check_headers([("Location", url)])
    # RFC 9110 §15.4: the body is a short note; clients follow Location.
    return Response(status=status, location=url, body=b"Redirecting", content_type="text/plain")

