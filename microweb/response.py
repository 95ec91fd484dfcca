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
need cookies, caching headers or conditional responses return a `Response`,
whose constructor has a fast path of its own for the common arguments.

Every header that reaches the server from a handler is checked for CR, LF
and NUL first: such a value would let the handler's caller split the
response in two (response splitting, CWE-113). The value is refused with a
`ValueError` that names the header, which the app logs and answers with 500.

HEAD (RFC 9110 §9.3.2) is handled here, at the very end: the same status
and headers as GET (``Content-Length`` included, §8.6), no body; a stream
is closed without being iterated.
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from http import HTTPStatus
from typing import Any, ClassVar

import webob
from webob.response import EmptyResponse
from webob.util import status_reasons

from .http import TOKEN  # RFC 9110 §5.6.2: a field name is a token
from .types import Environ, Headers, StartResponse, WSGIApp
from .wsgi import EncodedStream, Mount, close_quietly, describe

logger = logging.getLogger("microweb")

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


# PERF: most headers recur verbatim (the same Content-Type, a Content-Length
# of the same size): each is checked once, then found in this set. Bounded,
# for headers that vary per request (dates, cookies, ETags).
_CHECKED: set[tuple[str, str]] = set()


def status_line(code: int) -> str:
    return STATUS_LINES.get(code) or f"{code} Unknown"


def content_length(length: int) -> tuple[str, str]:
    """The ``Content-Length`` header (RFC 9110 §8.6) for a body of `length` bytes."""
    header = ("Content-Length", str(length))
    if len(_LENGTHS) < 1024:
        _LENGTHS[length] = header
    return header


# PERF: the header tuples of the lengths seen, reused: building one costs
# about 0.1 µs, a tenth of a whole bare WSGI call (bench/ hello: 2.0x -> 1.9x).
_LENGTHS: dict[int, tuple[str, str]] = {}


def check_headers(headers: Headers) -> None:
    """Refuse header names that are not tokens and values with CR, LF or NUL."""
    try:
        # PERF: a loop, not _CHECKED.issuperset(headers), which first builds a
        # set of the list: 80 ns against 114 for a response's two headers.
        for header in headers:
            if header not in _CHECKED:
                break
        else:
            return
    except TypeError:  # NOTE: a header that is a list, not a tuple: unhashable
        pass
    for header in headers:
        name, value = header
        if (
            type(name) is not str
            or TOKEN.fullmatch(name) is None
            or "\r" in value
            or "\n" in value
            or "\0" in value
        ):
            _refuse(name, value)
        if len(_CHECKED) < 512 and type(header) is tuple:
            _CHECKED.add(header)


def _refuse(name: str, value: str) -> None:
    raise ValueError(
        f"refusing response header {name!r}: {value!r} "
        "(a header name must be a token; a value must not hold CR, LF or NUL)"
    )


# For `Response.__init__`'s fast path; WebOb's constructor handles JSON bodies itself.
_UNSET: Any = object()
_WEBOB_KEYWORDS = frozenset({"json", "json_body"})
_WEBOB_STATUS = {code: f"{code} {reason}" for code, reason in status_reasons.items()}
_BODYLESS = {line for code, line in _WEBOB_STATUS.items() if code < 200 or code in (204, 205, 304)}


class Response(webob.Response):
    """WebOb's response, with a fast constructor and a JSON one that matches handler returns.

    PERF: ``webob.Response(text="Hello", content_type="text/plain")`` costs
    5.6-6.4 µs (bench/ ``response``: 9.5-9.9x bare, against 2.0x for returning
    the str): WebOb sets the body through four properties, each editing the
    header list. For the common arguments (a ``body`` or ``text``, an int
    status, a content type, more keywords after those) `__init__` builds the
    same object directly: 0.7 µs (bench/ ``response``: 2.4-2.5x). Everything
    else, and every later change (``headers``, ``set_cookie``, ``app_iter``...),
    is WebOb's own code. tests/test_response.py checks that the two
    constructors agree, argument by argument.
    """

    _content_types: ClassVar[dict[str, tuple[tuple[str, str], str, str | None]]] = {}
    # NOTE: WebOb's constructor sets these two on every instance; as class
    # attributes they need no work in the fast path, and WebOb reads them alike.
    _headers = None  # the dict-like view of _headerlist, made when first asked for
    conditional_response = webob.Response.default_conditional_response

    def __init__(
        self,
        body: bytes | str | None = None,
        status: int | str | None = None,
        headerlist: Headers | None = None,
        app_iter: Iterable[bytes] | None = None,
        content_type: str | None = None,
        conditional_response: bool | None = None,
        charset: Any = _UNSET,
        *,
        text: str | None = None,
        **kw: Any,
    ) -> None:
        line = "200 OK" if status is None else _WEBOB_STATUS.get(status)  # type: ignore[arg-type]
        if (
            line is None
            or headerlist is not None
            or app_iter is not None
            or charset is not _UNSET
            or (kw and (text is not None or not _WEBOB_KEYWORDS.isdisjoint(kw)))
            or (
                text is not None
                and (body is not None or line in _BODYLESS or type(text) is not str)
            )
        ):
            if charset is not _UNSET:
                kw["charset"] = charset
            if text is not None:
                kw = {"text": text, **kw}  # NOTE: WebOb sets keywords in order: text first
            super().__init__(
                body, status, headerlist, app_iter, content_type, conditional_response, **kw
            )
            return
        self._status = line
        if conditional_response is not None:
            self.conditional_response = bool(conditional_response)
        if status is not None and line in _BODYLESS:  # RFC 9110 §15.3.5, §15.4.5
            self._headerlist = []
            self._app_iter = [b""]
        else:
            content_type = content_type or self.default_content_type
            known = self._content_types.get(content_type) or self._learn(content_type)
            if text is not None:
                body = text.encode(known[1])
            elif body is None:
                body = b""
            elif type(body) is not bytes:
                if type(body) is not str or known[2] is None:
                    raise TypeError(f"a Response body is bytes, not {type(body).__name__}")
                body = body.encode(known[2])
            length = len(body)
            self._headerlist = [known[0], _LENGTHS.get(length) or content_length(length)]
            self._app_iter = [body]
        if kw:
            for name, value in kw.items():
                if not hasattr(type(self), name):
                    raise TypeError(f"Unexpected keyword: {name}={value!r}")
                setattr(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._content_types = {}  # a subclass may have other defaults (charset...)
        cls.conditional_response = cls.default_conditional_response

    @classmethod
    def _learn(cls, content_type: str) -> tuple[tuple[str, str], str, str | None]:
        """What WebOb's constructor makes of `content_type`, learnt once per content type.

        The Content-Type header (charset added or not), the encoding of a
        ``text`` body, the charset of a str ``body``: a response built by
        WebOb's own constructor says what the fast path must produce.
        """
        reference = cls.__new__(cls)
        webob.Response.__init__(reference, content_type=content_type)
        charset = reference.charset
        # NOTE: the codec's own name ("utf-8"), which str.encode finds fastest.
        encoding = codecs.lookup(charset or reference.default_body_encoding).name
        known = (("Content-Type", reference.headers["Content-Type"]), encoding, charset)
        if len(cls._content_types) < 64:  # NOTE: bounded, should content types vary per request
            cls._content_types[content_type] = known
        return known

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # PERF: WebOb's __call__ without its two property reads and a method call.
        if self.conditional_response:
            return self.conditional_response_app(environ, start_response)
        start_response(self._status, self._headerlist[:])
        if environ["REQUEST_METHOD"] == "HEAD":
            # RFC 9110 §9.3.2: the headers of a GET (Content-Length too), no body;
            # a body that holds something (a file) is closed by the server.
            app_iter = self._app_iter
            return [] if type(app_iter) is list else EmptyResponse(app_iter)
        return self._app_iter

    def _abs_headerlist(self, environ: Environ) -> Headers:
        # SECURITY: WebOb turns a relative Location into an absolute URL built
        # from the request's Host header, which the client chose: "Host:
        # evil.example" would come back in Location. RFC 9110 §10.2.2 allows
        # a relative reference, so Location is sent as the handler set it.
        return list(self.headerlist)

    @classmethod
    def json(cls, obj: Any, status: int = 200, **kwargs: Any) -> Response:
        return cls(body=json_bytes(obj), status=status, content_type=JSON, **kwargs)


class Reply:
    """A buffered response built without WebOb (see PERF above)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Headers, body: bytes, content_type: str = "") -> None:
        self.status = status_line(status)
        # RFC 9110 §8.6: no Content-Length on 204; 1xx and 304 carry no body either.
        if status == 204 or status == 304:
            self.headers = headers
        else:
            length = _LENGTHS.get(len(body)) or content_length(len(body))
            if content_type:
                self.headers = [("Content-Type", content_type), length, *headers]
            else:
                self.headers = [length, *headers]
        self.body = body

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        if environ["REQUEST_METHOD"] == "HEAD" or not self.body:
            return []
        return [self.body]


class Stream:
    """A streamed body: chunks are sent as the iterator produces them.

    `peek` reads the first chunk before the status is sent, so that a
    handler's stream that fails at once, or yields something that is not
    bytes or str, is still a clean 500 (`to_response` calls it).
    """

    __slots__ = ("chunks", "first", "handler", "headers", "iterator", "status")

    def __init__(self, chunks: Iterable[bytes | str], content_type: str = BINARY) -> None:
        self.status = STATUS_LINES[200]
        self.headers: Headers = [("Content-Type", content_type)]
        self.chunks = chunks
        self.iterator: Iterator[bytes | str] | None = None
        self.first: bytes | str | None = None
        self.handler: Any = None

    def peek(self, handler: Any) -> None:
        """Read the first chunk now; refuse it unless it is bytes or str."""
        self.handler = handler
        self.iterator = iterator = iter(self.chunks)
        try:
            self.first = next(iterator, None)
        except BaseException:
            close_quietly(self.chunks)
            raise
        if self.first is not None and not isinstance(self.first, bytes | str):
            close_quietly(self.chunks)
            kind = type(self.first).__name__
            raise TypeError(f"{describe(handler)} streamed a {kind}; a chunk is bytes or str")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(self.status, self.headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            # RFC 9110 §9.3.2: HEAD has no body, so the generator never runs;
            # close() still lets it release what it holds (a cursor, a file).
            close_quietly(self.chunks)
            return []
        return EncodedStream(self.chunks, self.iterator, self.first, self.handler)


def to_response(
    result: Any, handler: Any = None, environ: Environ | None = None
) -> WSGIApp | BaseException:
    """Turn a handler's return value into a WSGI callable (see the table above).

    Exceptions (an `HTTPError` a miss endpoint returned, say) pass through
    unchanged: the app hands them to its error handlers. What cannot be sent
    is a `TypeError` naming `handler`, raised before any header is sent;
    for that, a stream's first chunk is read here, unless `environ` is a
    HEAD (whose stream is never read).
    """
    if type(result) is Response:  # PERF: before str: Response 2.62x -> 2.57x bare, str no slower
        check_headers(result._headerlist)
        return result
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
            f"{describe(handler)} returned a tuple; to set a status, return "
            "Response.json(obj, status=...) or Response(body, status=...)"
        )
    if isinstance(result, Iterator | Iterable) and not isinstance(result, _UNORDERED):
        stream = Stream(result)
        if environ is None or environ["REQUEST_METHOD"] != "HEAD":
            stream.peek(handler)
        return stream
    kind = type(result).__name__
    raise TypeError(f"{describe(handler)} returned a {kind}, which microweb cannot send")


# PERF: tuples built once; `isinstance(x, dict | list)` builds a union per call.
_JSON_TYPES = (dict, list)
_READY = (BaseException, Reply, Stream, Mount)
# NOTE: iterable, but in no particular order: a set of str is not a body.
_UNORDERED = (AbstractSet, Mapping)


def warn_none(req: webob.Request, handler: object) -> None:
    """In debug mode, a GET or HEAD handler that returns None probably forgot ``return``."""
    if req.method in ("GET", "HEAD"):
        logger.warning(
            "%s returned None for %s %s, which answers 204 No Content: a missing return?",
            describe(handler), req.method, req.path_info,
        )  # fmt: skip


def redirect(url: str, status: int = 302) -> Response:
    """A redirect to `url` (RFC 9110 §15.4): 301, 302, 303, 307 or 308."""
    if status not in (301, 302, 303, 307, 308):
        raise ValueError(f"redirect status must be 301, 302, 303, 307 or 308, not {status}")
    check_headers([("Location", url)])
    # RFC 9110 §15.4: the body is a short note; clients follow Location.
    return Response(status=status, location=url, body=b"Redirecting", content_type="text/plain")

