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
app runs with ``debug=True``: those details help an attacker map the code.

`ErrorHandlers` holds the handlers registered with ``@app.errorhandler(404)``
or ``@app.errorhandler(SomeException)``. A handler takes ``(req, error)``
and returns anything a route handler may return. If it fails in turn, the
default rendering is used, so an error page can never loop or crash.
"""

from __future__ import annotations

import html
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from webob.acceptparse import create_accept_header
from webob.exc import WSGIHTTPException

from .response import Reply, check_headers, json_encode, to_response

logger = logging.getLogger("microweb")

TITLES = {status.value: status.phrase for status in HTTPStatus}
PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"
ErrorHandler = Callable[[Any, Any], Any]


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
        self.title = title or TITLES.get(status, "Error")
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        else:
            self.headers = list(headers.items() if isinstance(headers, Mapping) else headers)
        self.args = (status, detail)

    def __repr__(self) -> str:
        return f"HTTPError({self.status}, {self.detail!r})"


@lru_cache(maxsize=128)
def prefers_html(accept: str) -> bool:
    """True when the client ranks text/html above JSON (cached per header value)."""
    offers = create_accept_header(accept).acceptable_offers(["application/json", "text/html"])
    return bool(offers) and offers[0][0] == "text/html"


def render(error: HTTPError, accept: str, debug_text: str | None = None) -> Reply:
    """The default body for `error`, as problem+json or HTML."""
    if accept and prefers_html(accept):
        body = _html_body(error.status, error.title, error.detail, debug_text)
        content_type = HTML
    else:
        body = _problem_body(error.status, error.title, error.detail, debug_text)
        content_type = PROBLEM_JSON
    check_headers(error.headers)
    return Reply(error.status, error.headers, body, content_type)


@lru_cache(maxsize=64)
def _cached_problem(status: int, title: str) -> bytes:
    # PERF: the bodies of 404/405 without a detail never change.
    return json_encode({"type": "about:blank", "title": title, "status": status}).encode()


def _problem_body(status: int, title: str, detail: str | None, debug_text: str | None) -> bytes:
    if detail is None and debug_text is None:
        return _cached_problem(status, title)
    problem: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        problem["detail"] = detail
    if debug_text is not None:
        problem["traceback"] = debug_text
    return json_encode(problem).encode()


def _html_body(status: int, title: str, detail: str | None, debug_text: str | None) -> bytes:
    heading = html.escape(f"{status} {title}")
    parts = [f'<!doctype html>\n<html lang="en"><meta charset="utf-8"><title>{heading}</title>']
    parts.append(f"<h1>{heading}</h1>")
    if detail:
        parts.append(f"<p>{html.escape(detail)}</p>")
    if debug_text:
        parts.append(f"<pre>{html.escape(debug_text)}</pre>")
    return ("\n".join(parts) + "\n</html>\n").encode()


class ErrorHandlers:
    """Turns any exception into a response, through the app's registered handlers."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self.by_status: dict[int, ErrorHandler] = {}
        self.by_class: dict[type[BaseException], ErrorHandler] = {}

    def register(self, key: int | type[BaseException], handler: ErrorHandler) -> None:
        if isinstance(key, int):
            self.by_status[key] = handler
        elif isinstance(key, type) and issubclass(key, BaseException):
            self.by_class[key] = handler
        else:
            raise TypeError(f"errorhandler takes a status code or an exception class, not {key!r}")

    def respond(self, req: Any, exc: BaseException) -> Any:
        """The WSGI response for `exc`, raised or returned while serving `req`."""
        if type(exc) is HTTPError and not self.by_status and not self.by_class:
            # PERF: the common miss (404/405 with no custom handler) goes
            # straight to rendering; bench/ notfound went from 5.2x to 4.xx bare.
            return render(exc, req.environ.get("HTTP_ACCEPT", ""))
        error = exc if isinstance(exc, HTTPError) else None
        if error is None and isinstance(exc, WSGIHTTPException) and exc.code not in self.by_status:
            return exc  # WebOb's own HTTP exceptions are responses already.
        if error is None:
            if not any(cls in self.by_class for cls in type(exc).__mro__):
                logger.error(
                    "unhandled exception in %s %s", req.method, req.path_info,
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
            error = HTTPError(500)
            error.__cause__ = exc
        handler, argument = self._handler_for(exc, error)
        if handler is not None:
            try:
                result = handler(req, argument)
                if not isinstance(result, BaseException):
                    return to_response(result)
            except HTTPError as raised:
                result = raised
            except Exception:
                logger.exception("error handler %r failed; using the default page", handler)
                result = None
            # An error handler may map an exception to an HTTPError; that
            # one gets the default rendering (no second lookup: no loops).
            if isinstance(result, HTTPError):
                error = result
        debug_text = None
        if self.debug and error.status >= 500 and error.__cause__ is not None:
            cause = error.__cause__
            debug_text = "".join(traceback.format_exception(cause))
        return render(error, req.environ.get("HTTP_ACCEPT", ""), debug_text)

    def _handler_for(
        self, exc: BaseException, error: HTTPError
    ) -> tuple[ErrorHandler | None, BaseException]:
        """A class handler gets the exception itself; a status handler the HTTPError."""
        if self.by_class:
            for cls in type(exc).__mro__:
                if cls in self.by_class:
                    return self.by_class[cls], exc
        return self.by_status.get(error.status), error
