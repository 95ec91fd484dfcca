"""`Middleware`: the base of microweb's middleware, a plain WSGI wrapper with two hooks.

Every middleware is ``Name(wsgi_app, **options)`` and works around *any*
PEP 3333 app (a Flask app too). Most of them only need to

- look at, fix, or answer the request before the app runs (`before`):
  ProxyFix rewrites the environ, TrustedHost answers 400, CORS answers a
  preflight; and/or
- add or change response headers before they reach the server (`after`):
  SecurityHeaders, CORS, RequestID, sessions.

A subclass overrides one or both; `Middleware.__call__` turns them into an
ordinary WSGI call, and inside an `App` a `microweb.middleware.HookChain`
calls the same two methods. Options are validated, and what can be computed
once is computed, in ``__init__`` (`exact_paths`: the shared ``exempt``).
A leaf module (it imports only the WSGI types): the middleware package,
sessions and the app all build on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .types import Environ, Headers, StartResponse, WSGIApp


class Middleware:
    """A WSGI middleware defined by a `before` and an `after` hook."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def before(self, environ: Environ) -> WSGIApp | None:
        """Inspect or fix the request. Return a WSGI app to answer it instead of `self.app`."""
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        """Change the response headers in place, before the server sees them."""

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        early = self.before(environ)
        if early is not None:
            return early(environ, start_response)

        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            self.after(environ, status, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def overrides(cls: type[Middleware], hook: str) -> bool:
    """True when `cls` has its own `hook` ("before" or "after"), not the base's no-op."""
    return getattr(cls, hook) is not getattr(Middleware, hook)


def exact_paths(option: str, paths: Iterable[str]) -> frozenset[str]:
    """An ``exempt`` option (exact ``PATH_INFO`` values) as a set; a ValueError at startup
    for one bare string (``"/healthz"`` would be its characters) or a non-path."""
    if isinstance(paths, str | bytes):
        raise ValueError(f"{option} takes a list of paths, like [{paths!r}]")
    checked = frozenset(paths)
    for path in checked:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"{option}: {path!r} is not a path starting with '/'")
    return checked
