"""`Middleware`: the base of microweb's middleware, a plain WSGI wrapper with two hooks.

Every middleware in this package is ``Name(wsgi_app, **options)`` and works
around *any* PEP 3333 app (a Flask app too). Most of them only need to

- look at, fix, or answer the request before the app runs (`before`):
  ProxyFix rewrites the environ, TrustedHost answers 400, CORS answers a
  preflight; and/or
- add or change response headers before they reach the server (`after`):
  SecurityHeaders, CORS, RequestID.

A subclass overrides one or both; `__call__` turns them into an ordinary
WSGI call. Inside a microweb `App`, the stack calls the hooks directly
instead (see `microweb.middleware.HookChain`), so that N middleware do
not cost N WSGI round trips and N ``start_response`` wrappers.

An `after` hook that only *adds* headers the response does not have yet
(SecurityHeaders, CORS's ``Vary: Origin``, RequestID's id) may also say so
(`after_fields` and `added_headers`, optional): a `HookChain` then serves
several such layers with one pass over the response headers instead of one
pass each.

Options are validated in ``__init__`` (a bad option is a ``ValueError`` at
startup, never a surprise per request), and whatever can be computed once —
header values, compiled patterns — is computed there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..types import Environ, Headers, StartResponse, WSGIApp


class Middleware:
    """A WSGI middleware defined by a `before` and an `after` hook."""

    #: Optional, with `added_headers`: the lower-cased names of every response
    #: header this layer's `after` reads or writes.
    after_fields: frozenset[str] = frozenset()

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def before(self, environ: Environ) -> WSGIApp | None:
        """Inspect or fix the request. Return a WSGI app to answer it instead of `self.app`."""
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        """Change the response headers in place, before the server sees them."""

    def added_headers(self, environ: Environ) -> Headers:
        """Optional (PERF): the headers `after` appends to a response that has none
        of `after_fields`.

        A layer that defines it (in the class that defines `after`) promises:
        when no header of the response is named in `after_fields`,
        ``after(environ, status, headers)`` is exactly
        ``headers.extend(self.added_headers(environ))``, whatever the status;
        and it only ever adds fields named in `after_fields`. `HookChain` uses
        this to serve neighbouring layers with one scan of the headers (see
        `microweb.middleware.HeaderGroup`). The list returned may be shared:
        callers copy from it, never change it.
        """
        raise NotImplementedError

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        early = self.before(environ)
        if early is not None:
            return early(environ, start_response)
        if not overrides(self, "after"):
            return self.app(environ, start_response)

        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            self.after(environ, status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def header_names(headers: Headers) -> set[str]:
    """The lower-cased names in a header list (HTTP field names are case-insensitive)."""
    return {name.lower() for name, _ in headers}


def has_header(headers: Headers, lower_name: str) -> bool:
    """Whether `headers` has a field called `lower_name` (given in lower case)."""
    # PERF: a plain loop; `any()` over a generator measured twice as slow here.
    for name, _ in headers:  # noqa: SIM110
        if name.lower() == lower_name:
            return True
    return False


def has_any(headers: Headers, lower_names: frozenset[str]) -> bool:
    """Whether `headers` has a field named in `lower_names` (given in lower case)."""
    # PERF: a plain loop, no set of the names built (0.25 µs against 0.65 for
    # `header_names(headers).isdisjoint(...)` on a two-header response).
    for name, _ in headers:  # noqa: SIM110
        if name.lower() in lower_names:
            return True
    return False


def add_vary(headers: Headers, field: str) -> None:
    """RFC 9110 §12.5.5: add `field` to ``Vary`` in place, merged into an existing one.

    Nothing changes when any ``Vary`` already lists `field` or ``*``.
    """
    if not has_header(headers, "vary"):
        headers.append(("Vary", field))  # PERF: the usual case, no token scan
        return
    wanted, first = field.lower(), -1
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {token.strip().lower() for token in value.split(",")}
            if wanted in tokens or "*" in tokens:
                return
            first = index if first < 0 else first
    name, value = headers[first]
    headers[first] = (name, f"{value}, {field}" if value.strip() else field)


def overrides(layer: Middleware, hook: str) -> bool:
    """True when `layer`'s class defines its own `hook` (not the no-op above)."""
    return getattr(type(layer), hook) is not getattr(Middleware, hook)


def adds_headers_only(layer: Middleware) -> bool:
    """True when `layer` keeps the `added_headers` promise (see `Middleware.added_headers`).

    The class that defines `after` must define `added_headers` too: a
    subclass that changes `after` alone has not promised anything.
    """
    return (
        overrides(layer, "after")
        and bool(layer.after_fields)
        and defining_class(layer, "after") is defining_class(layer, "added_headers")
    )


def defining_class(layer: Middleware, attribute: str) -> type:
    """The class in `layer`'s MRO whose body defines `attribute`."""
    return next(k for k in type(layer).__mro__ if attribute in vars(k))
