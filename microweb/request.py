"""The request: WebOb's `Request`, with safer defaults where WebOb's are loose.

What this module changes, and why:

- **The body is capped** (default 1 MiB, ``App(max_body_size=...)``): a
  ``Content-Length`` above the cap is refused before anything is read, and a
  chunked body (RFC 9112 §7.1, no ``Content-Length``) is read only up to the
  cap; both answer 413 (RFC 9110 §15.5.14). A body the server cannot read
  (an invalid chunk size, a client that hangs up) is a 400, not a 500. The
  body is read from ``wsgi.input`` once and kept, so WebOb's own ``text``,
  ``json_body`` and ``POST`` see the same bounded bytes.
- **`req.json`**: 415 unless the ``Content-Type`` is JSON (RFC 9110
  §15.5.16, with ``Accept-Post``/``Accept-Patch`` saying what would do,
  RFC 5789 §3.1); 400 for a body that is not UTF-8 (RFC 8259 §8.1), not
  JSON, nested too deep, or using ``NaN``/``Infinity`` (not JSON at all).
- **The query string is split on ``&`` only.** WebOb also splits on ``;``,
  so ``?a=1;a=2`` means different things to a cache or proxy in front and to
  the app behind it (parameter cloaking, Bottle CVE-2020-28473). A query
  that is not UTF-8 is a 400.
- **`req.client_addr` is ``REMOTE_ADDR``.** WebOb trusts the leftmost
  ``X-Forwarded-For``, which any client can set; the `ProxyFix` middleware
  is what decides which forwarded addresses to believe, and it rewrites
  ``REMOTE_ADDR``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

import webob
from webob.multidict import GetDict, MultiDict

from .errors import HTTPError
from .http import declares_body
from .types import Environ

if TYPE_CHECKING:
    from .uploads import FormLimits, Upload

DEFAULT_MAX_BODY_SIZE = 1_048_576


class RequestConfig(NamedTuple):
    """What a `Request` needs from its app (``App.request_config``), instead of the app."""

    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    #: The multipart limits; None: `uploads.DEFAULT_LIMITS`. PERF: so that `microweb.uploads`
    #: and `dataclasses` load with the first form, not in every worker (bench/rss.py).
    form_limits: FormLimits | None = None
    #: ``url_for(name, params)`` -> the route's path (``RouteTable.url_for``); None outside an App.
    url_for: Callable[[str, dict[str, Any]], str] | None = None


DEFAULTS = RequestConfig()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def read_body(environ: Environ, limit: int) -> bytes:
    """Read the request body from ``wsgi.input``, at most `limit` bytes, or raise 4xx.

    The reading rules (Content-Length refused above the cap before any read,
    chunked bodies counted as they arrive) live in `body_chunks`, which
    multipart parsing streams from directly.
    """
    return b"".join(body_chunks(environ, limit))


def buffer_body(environ: Environ, limit: int) -> bytes:
    """`read_body`, put back for any reader downstream as if sent with a length: a
    ``BytesIO``, its ``Content-Length``, no ``Transfer-Encoding`` (a reader that saw
    "chunked" might wait for a last chunk; Werkzeug needs ``wsgi.input_terminated``)."""
    body = read_body(environ, limit)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


READ_SIZE = 65_536


def too_large(limit: int) -> HTTPError:
    """RFC 9110 §15.5.14: the 413 for a body over `limit` bytes (the app's and `BodyLimit`'s)."""
    return HTTPError(413, f"The request body is larger than {limit} bytes.")


def body_chunks(environ: Environ, limit: int) -> Iterator[bytes]:
    """The request body in chunks of at most 64 KiB, `limit` bytes at most, or a 4xx."""
    body: bytes | None = environ.get("microweb.body")
    if body is not None:  # already read whole (req.body came first)
        if len(body) > limit:
            raise too_large(limit)
        view = memoryview(body)
        yield from (bytes(view[i : i + READ_SIZE]) for i in range(0, len(body), READ_SIZE))
        return
    if not declares_body(environ):
        return  # RFC 9112 §6.3: neither a length nor chunked means no body.
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH")
    if length_text:
        if not (length_text.isascii() and length_text.isdigit()):
            raise HTTPError(400, "Content-Length is not a number.")
        remaining = int(length_text)
        if remaining > limit:  # RFC 9110 §15.5.14: refused before reading
            raise too_large(limit)
        while remaining:
            chunk = _read(stream, min(READ_SIZE, remaining))
            if not chunk:
                raise HTTPError(400, "The request body ended early.")
            remaining -= len(chunk)
            yield chunk
        return
    total = 0  # chunked (RFC 9112 §7.1): counted as it arrives
    while chunk := _read(stream, min(READ_SIZE, limit + 1 - total)):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        yield chunk


def _read(stream: Any, size: int) -> bytes:
    try:
        return stream.read(size)  # type: ignore[no-any-return]
    except Exception as exc:
        # NOTE: what a server raises for a body it cannot deliver is its own
        # business: gunicorn raises InvalidChunkSize (not an IOError) for a
        # chunk size that is not hex, and NoMoreData (an IOError) when the
        # client hangs up mid-body. Either way the request is at fault: 400.
        raise HTTPError(400, "The request body could not be read.") from exc


class Request(webob.Request):
    """A `webob.Request` with a capped body, strict JSON and strict query parsing."""

    config: RequestConfig

    def __init__(self, environ: Environ, config: RequestConfig = DEFAULTS, **kwargs: Any) -> None:
        if kwargs:
            super().__init__(environ, **kwargs)
        else:
            # PERF: WebOb's __init__ checks options this call never passes
            # (and that environ is a dict, which PEP 3333 guarantees); skipping
            # it measured 0.43 µs a request in bench/ (hello 2.3x -> 2.0x bare).
            self.__dict__["environ"] = environ
        self.__dict__["config"] = config

    @property
    def max_body_size(self) -> int:
        return self.config.max_body_size

    @property
    def body(self) -> bytes:
        env = self.environ
        body: bytes | None = env.get("microweb.body")
        if body is None:
            # Later readers (WebOb's POST, text, body_file) get the same bytes.
            body = buffer_body(env, self.max_body_size)
            env["microweb.body"] = body
            env["webob.is_body_seekable"] = True
        return body

    @body.setter
    def body(self, value: bytes | None) -> None:
        webob.Request.body.fset(self, value)  # type: ignore[attr-defined]
        self.environ["microweb.body"] = value
        self.environ.pop("microweb.json", None)
        self.environ.pop("microweb.form", None)

    @property
    def json(self) -> Any:
        """The body parsed as JSON; 415 if it is not declared JSON, 400 if it is not JSON."""
        env = self.environ
        if "microweb.json" in env:
            return env["microweb.json"]
        mime = env.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mime != "application/json" and not (
            mime.startswith("application/") and mime.endswith("+json")
        ):
            accept = [("Accept-Post", "application/json")] if self.method == "POST" else []
            if self.method == "PATCH":
                accept = [("Accept-Patch", "application/json")]
            raise HTTPError(415, "The request body must be JSON (application/json).", accept)
        body = self.body
        if not body:
            raise HTTPError(400, "The request body is empty; JSON was expected.")
        try:
            value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            raise HTTPError(400, "The JSON body is not valid UTF-8.") from exc
        except RecursionError as exc:
            raise HTTPError(400, "The JSON body is nested too deeply.") from exc
        except ValueError as exc:  # JSONDecodeError, NaN, over-long integers
            raise HTTPError(400, f"The body is not valid JSON: {exc}") from exc
        env["microweb.json"] = value
        return value

    @property
    def GET(self) -> GetDict:
        """The query string as a MultiDict, split on ``&`` only (see the module docs)."""
        env = self.environ
        source = env.get("QUERY_STRING", "")
        cached = env.get("microweb.query")
        if cached is not None and cached[1] == source:
            return cached[0]  # type: ignore[no-any-return]
        query = GetDict(self._parse_pairs(source), env)
        env["microweb.query"] = (query, source)
        return query

    @property
    def POST(self) -> Any:
        """WebOb's form parsing, over the capped body (read first, so 413 applies)."""
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            self.body  # noqa: B018 - read once, within the cap
        return super().POST

    @property
    def form(self) -> MultiDict[str, str]:
        """Text fields of an urlencoded or multipart form body (empty for other bodies).

        A multipart body (RFC 7578) is streamed from ``wsgi.input`` once, on
        the first use of `form` or `files`, under the limits in `microweb.uploads`
        (413/400); it is not kept, so `body` cannot be read after it.
        """
        return self._form()[0]

    @property
    def files(self) -> MultiDict[str, Upload]:
        """Uploaded files (`Upload` objects) of a multipart form body, by field name."""
        return self._form()[1]

    def _form(self) -> tuple[MultiDict[str, str], MultiDict[str, Upload]]:
        env = self.environ
        cached = env.get("microweb.form")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        result: tuple[MultiDict[str, str], MultiDict[str, Upload]]
        mime = env.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mime == "application/x-www-form-urlencoded":
            result = (MultiDict(self._parse_pairs(self.body.decode("latin-1"))), MultiDict())
        elif mime == "multipart/form-data":
            # PERF: the parser, and the `multipart` package, load with the first
            # form an app reads, not with `import microweb` (bench/rss.py).
            from .multipart_form import parse

            body = body_chunks(env, self.max_body_size)
            result = parse(env["CONTENT_TYPE"], body, self.config.form_limits)
        else:
            result = (MultiDict(), MultiDict())
        env["microweb.form"] = result
        return result

    @property
    def client_addr(self) -> str | None:
        """The peer address, or the one `ProxyFix` established (never a raw header)."""
        return self.environ.get("REMOTE_ADDR")

    @property
    def session(self) -> Any:
        """The session (a dict with ``rotate()``/``invalidate()``) from `CookieSessions`
        or `ServerSessions` (microweb.sessions)."""
        try:
            return self.environ["microweb.session"]
        except KeyError:
            raise RuntimeError(
                "req.session needs a session middleware: app.use(CookieSessions, ...) "
                "or app.use(ServerSessions, ...)"
            ) from None

    @property
    def claims(self) -> dict[str, Any]:
        """The verified JWT claims, set by ``@auth.required(...)`` (microweb.auth)."""
        try:
            return self.environ["microweb.claims"]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError(
                "req.claims is set by a handler decorated with @auth.required"
            ) from None

    @property
    def request_id(self) -> str | None:
        """The id the `RequestID` middleware gave this request (None without it)."""
        return self.environ.get("microweb.request_id")

    def url_for(self, name: str, /, _external: bool = False, **params: Any) -> str:
        """The URL of a named route, under this request's ``SCRIPT_NAME``."""
        url_for = self.config.url_for
        if url_for is None:
            raise RuntimeError("url_for needs a request built by an App")
        path = self.script_name + url_for(name, params)
        return self.host_url + path if _external else path

    @staticmethod
    def _parse_pairs(source: str) -> list[tuple[str, str]]:
        try:
            # WSGI strings carry raw bytes as latin-1 (PEP 3333); the URL is UTF-8.
            text = source.encode("latin-1").decode("utf-8")
            return parse_qsl(text, keep_blank_values=True, separator="&", errors="strict")
        except UnicodeError as exc:
            raise HTTPError(400, "The query string is not valid UTF-8.") from exc
