"""Errors: `HTTPError`, how an error becomes a response, and who may customise it.

An error response is negotiated (RFC 9110 §12.5.1) between two forms:

- ``application/problem+json`` (RFC 9457): ``{"type": "about:blank",
  "title": "Not Found", "status": 404, "detail": ...}`` — for API clients,
  and for any client that states no preference;
- a small HTML page — when the client prefers ``text/html`` to JSON, as
  browsers do (``Accept: text/html,...,*/*;q=0.8``).

An exception that is not an `HTTPError` is a bug: the client gets a bare
500, and the traceback goes to the ``microweb`` logger. Nothing about the
exception (its text, the traceback, file paths) is in the body unless the
app runs with ``debug=True`` (then `App` hands `ErrorHandlers` the renderer
of `microweb.debug_page`, which imports this module, never the reverse):
those details help an attacker map the code.

One exception is not a bug but an outage: a `StoreError` (a shared store
— SQLite locked, Redis down — cannot be used; see `microweb.stores`).
Raised by a handler (``req.session.invalidate()``, a JWT revocation check,
``auth.revoke``), it becomes **503 Service Unavailable** with ``Retry-After:
STORE_RETRY_AFTER`` (RFC 9110 §15.6.4, §10.2.3) and a fixed detail, and a
warning (the store's message, no traceback) on the ``microweb`` logger: the
client should come back, not report a bug. `store_unavailable` builds that
error, for the middleware that meet a store failure outside the app too.

`ErrorHandlers` holds the handlers registered with ``@app.errorhandler(404)``
or ``@app.errorhandler(SomeException)``. A handler takes ``(req, error)``
and returns anything a route handler may return. If it fails in turn, the
default rendering is used, so an error page can never loop or crash.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import webob
from webob.acceptparse import create_accept_header

from .response import PHRASES, Reply, check_headers, json_bytes, status_line, to_response
from .types import Environ, Headers, StartResponse, WSGIApp

if TYPE_CHECKING:
    from webob.exc import WSGIHTTPException

    from .stores.base import StoreError

logger = logging.getLogger("microweb")

PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"
ErrorHandler = Callable[[Any, Any], Any]
#: The detail of a 503 caused by a store failure: nothing about the store itself.
STORE_UNAVAILABLE = "A shared store is unavailable; try again shortly."


class HTTPError(Exception):
    """An HTTP error a handler raises (or returns): ``HTTPError(404, "no such note")``.

    `detail` is shown to the client; `headers` are added to the response
    (``Allow`` on a 405, ``WWW-Authenticate`` on a 401, ``Retry-After`` on a 429).
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        title: str | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"HTTPError status must be 4xx or 5xx, not {status}")
        self.status = status
        self.detail = detail
        self.title = title or PHRASES.get(status, "Error")
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        else:
            self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)
            check_headers(self.headers)  # a bad header fails where it is written
        self.args = (status, detail)

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.detail!r})"


def store_unavailable(detail: str = STORE_UNAVAILABLE) -> HTTPError:
    """The 503 for a `StoreError`: ``Retry-After: STORE_RETRY_AFTER`` (RFC 9110 §15.6.4)."""
    from .stores.base import STORE_RETRY_AFTER  # NOTE: loaded already, by the failing store

    return HTTPError(503, detail, [("Retry-After", str(STORE_RETRY_AFTER))])


class ErrorPage:
    """An `HTTPError` as a WSGI app, rendered once in both forms; negotiated per request.

    For the answers a middleware gives on its own, many times over (TrustedHost's
    400, RateLimit's 429 and 503): `render` runs at startup, not per request.
    Called with `extra`, it adds the headers of one request (a 429's ``Retry-After``).
    """

    def __init__(self, error: HTTPError) -> None:
        self.json = render(error, "application/json")
        self.html = render(error, "text/html")

    def __call__(
        self, environ: Environ, start_response: StartResponse, extra: Headers | None = None
    ) -> list[bytes]:
        accept = environ.get("HTTP_ACCEPT", "")
        reply = self.html if accept and prefers_html(accept) else self.json
        # NOTE: a new list every time: `after` hooks outside the answering layer
        # (SecurityHeaders, RequestID) edit it in place, and the rendered one is shared.
        start_response(reply.status, [*reply.headers, *(extra or ())])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [reply.body]


def send_error(
    error: HTTPError, environ: Environ, start_response: StartResponse
) -> Iterable[bytes]:
    """Answer with `error`, rendered now for this request (`ErrorPage` renders a fixed one once)."""
    return render(error, environ.get("HTTP_ACCEPT", ""))(environ, start_response)


@lru_cache(maxsize=128)
def prefers_html(accept: str) -> bool:
    """True when the client ranks text/html above JSON (cached per header value)."""
    offers = create_accept_header(accept).acceptable_offers(["application/json", "text/html"])
    return bool(offers) and offers[0][0] == "text/html"


def render(error: HTTPError, accept: str) -> Reply:
    """The default body for `error`, as problem+json or HTML."""
    if accept and prefers_html(accept):
        body = _html_body(error.status, error.title, error.detail)
        content_type = HTML
    else:
        body = problem_body(error)
        content_type = PROBLEM_JSON
    return Reply(error.status, error.headers, body, content_type)


@lru_cache(maxsize=64)
def _cached_problem(status: int, title: str) -> bytes:
    # PERF: the bodies of 404/405 without a detail never change.
    return json_bytes({"type": "about:blank", "title": title, "status": status})


def problem_body(error: HTTPError, extensions: dict[str, Any] | None = None) -> bytes:
    """RFC 9457 §3.1: `error` as problem+json; `extensions` are §3.2 members (the debug page's)."""
    if error.detail is None and not extensions:
        return _cached_problem(error.status, error.title)
    problem: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status}
    if error.detail is not None:
        problem["detail"] = error.detail
    return json_bytes({**problem, **(extensions or {})})


def _html_body(status: int, title: str, detail: str | None) -> bytes:
    heading = html.escape(f"{status} {title}")
    parts = [f'<!doctype html>\n<html lang="en"><meta charset="utf-8"><title>{heading}</title>']
    parts.append(f"<h1>{heading}</h1>")
    if detail:
        parts.append(f"<p>{html.escape(detail)}</p>")
    return ("\n".join(parts) + "\n</html>\n").encode()


def keep_error_status(response: WSGIApp, error: HTTPError) -> None:
    """Give a custom error response the error's status (for plain values) and headers.

    A dict returned for a 404 must not become a 200, and a 405 must keep
    its ``Allow`` (RFC 9110 §15.5.6) whatever body the handler chose. A
    `Response` the handler built keeps its own status.
    """
    if isinstance(response, Reply):
        response.status = status_line(error.status)
        headers = response.headers
    elif isinstance(response, webob.Response):
        headers = response.headerlist
    else:
        return
    present = {name.lower() for name, _ in headers}
    headers.extend((n, v) for n, v in error.headers if n.lower() not in present)


class ErrorHandlers:
    """Turns any exception into a response, through the app's registered handlers."""

    def __init__(self) -> None:
        #: The debug page of a 5xx an exception caused (`debug_page.render`): set by App.debug.
        self.debug_page: Callable[[webob.Request, HTTPError, BaseException], Reply] | None = None
        self.by_status: dict[int, ErrorHandler] = {}
        self.by_class: dict[type[BaseException], ErrorHandler] = {}

    @staticmethod
    def check_key(key: object) -> None:
        """Refuse anything but a status code or an exception class (at decoration time)."""
        if not isinstance(key, int) and not (
            isinstance(key, type) and issubclass(key, BaseException)
        ):
            raise TypeError(f"errorhandler takes a status code or an exception class, not {key!r}")

    def register(self, key: int | type[BaseException], handler: ErrorHandler) -> None:
        self.check_key(key)
        if isinstance(key, int):
            self.by_status[key] = handler
        else:
            self.by_class[key] = handler

    def respond(self, req: webob.Request, exc: BaseException) -> WSGIApp:
        """The WSGI response for `exc`, raised or returned while serving `req`."""
        accept = req.environ.get("HTTP_ACCEPT", "")
        if type(exc) is HTTPError and not (self.debug_page or self.by_status or self.by_class):
            # PERF: the common miss (a 404 or 405, no custom handlers) goes
            # straight to rendering: bench/ notfound 5.3x -> 4.7x bare.
            return render(exc, accept)
        if isinstance(exc, webob.Response):  # as WebOb's HTTP exceptions all are
            # PERF: webob.exc (1,200 lines) loads only in apps that raise its
            # exceptions, which imported it already: a hello worker's peak RSS
            # 24.1 -> 23.9 MiB (bench/rss.py).
            from webob.exc import WSGIHTTPException

            if isinstance(exc, WSGIHTTPException) and exc.code not in self.by_status:
                return self._webob_exception(req, exc)
        if isinstance(exc, HTTPError):
            error = exc
        else:
            # PERF: microweb.stores loads only in apps that use a store (the only
            # source of a StoreError): 50 KiB off a hello worker's peak RSS (bench/rss.py).
            from .stores.base import StoreError

            if isinstance(exc, StoreError):
                error = self._store_error(req, exc)
            else:
                error = self._internal_error(req, exc)
        handler, argument = self._handler_for(exc, error)
        if handler is not None:
            custom = self._call_handler(handler, req, argument, error)
            if not isinstance(custom, HTTPError):
                return custom
            # An error handler may map an exception to an HTTPError; that
            # one gets the default rendering (no second lookup: no loops).
            error = custom
        try:
            check_headers(error.headers)  # they may have changed since __init__
        except ValueError as bad:
            error = self._internal_error(req, bad)
        if self.debug_page and error.status >= 500 and error.__cause__ is not None:
            return self.debug_page(req, error, error.__cause__)
        return render(error, accept)

    def _webob_exception(self, req: webob.Request, exc: WSGIHTTPException) -> WSGIApp:
        """WebOb's own HTTP exceptions are responses already; their headers are checked."""
        try:
            check_headers(exc.headerlist)
        except ValueError as bad:
            return render(self._internal_error(req, bad), req.environ.get("HTTP_ACCEPT", ""))
        return exc

    def _internal_error(self, req: webob.Request, exc: BaseException) -> HTTPError:
        """A 500 for an exception that is not an HTTPError; logged unless handled."""
        if not any(cls in self.by_class for cls in type(exc).__mro__):
            logger.error(
                # NOTE: the exception on the first line too: a one-line log view
                # (an error-log grep) then says what failed and where.
                "unhandled exception in %s %s: %s: %s", req.method, req.path_info,
                type(exc).__name__, exc, exc_info=(type(exc), exc, exc.__traceback__),
            )  # fmt: skip
        error = HTTPError(500)
        error.__cause__ = exc
        return error

    def _store_error(self, req: webob.Request, exc: StoreError) -> HTTPError:
        """A 503 for a store outage; logged (without a traceback) unless handled."""
        if not any(cls in self.by_class for cls in type(exc).__mro__):
            # NOTE: a warning, not a traceback per request: during an outage every
            # request fails the same way, and the store's message says why.
            logger.warning(
                "a store failed in %s %s (%s); answering 503", req.method, req.path_info, exc
            )
        error = store_unavailable()
        error.__cause__ = exc  # the traceback, with debug=True only
        return error

    def _call_handler(
        self, handler: ErrorHandler, req: webob.Request, argument: BaseException, error: HTTPError
    ) -> WSGIApp | HTTPError:
        """The custom response, or the HTTPError to render when the handler fails."""
        try:
            response = to_response(handler(req, argument))  # an exception passes through
            if isinstance(response, HTTPError):
                return response
            if isinstance(response, BaseException):
                raise TypeError(f"error handler returned an exception: {response!r}")
        except HTTPError as raised:
            return raised
        except Exception:
            logger.exception("error handler %r failed; using the default page", handler)
            return error
        keep_error_status(response, error)
        return response

    def _handler_for(
        self, exc: BaseException, error: HTTPError
    ) -> tuple[ErrorHandler | None, BaseException]:
        """A class handler gets the exception itself; a status handler the HTTPError."""
        if self.by_class:
            for cls in type(exc).__mro__:
                if cls in self.by_class:
                    return self.by_class[cls], exc
        return self.by_status.get(error.status), error
