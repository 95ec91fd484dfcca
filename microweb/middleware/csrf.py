"""`CrossOriginProtection`: refuse state-changing requests that another site's page sent.

The attack: cross-site request forgery (CSRF)
---------------------------------------------
A browser attaches a site's cookies to every request *to* that site,
whichever page made it. So a page on ``https://evil.example`` can hold
``<form method=post action=https://bank.example/transfer>`` and submit it
from script: the POST reaches the bank with the victim's session cookie and
looks exactly like the victim's own. The attacker cannot read the answer
(that needs CORS), but the transfer is done. ``SameSite=Lax`` cookies stop
most of this, not all: a *sibling subdomain* (``forum.bank.example``, maybe
serving user content) is "same-site", and older or misconfigured clients
send cookies anyway.

The defence: ask the browser where the request came from
--------------------------------------------------------
No token is needed: browsers say who sent a request, in headers a page
cannot forge (OWASP CSRF cheat sheet, "Fetch Metadata headers" and
"Verifying origin with standard headers"). This is the algorithm of Go
1.25's ``net/http.CrossOriginProtection``, for *unsafe* methods only
(RFC 9110 §9.2.1: GET, HEAD and OPTIONS must not change state; the app must
keep that promise):

1. ``Sec-Fetch-Site`` (Fetch Metadata §2.1; every browser since 2023, on
   https and localhost): ``same-origin`` passes, and so does ``none`` (the
   user typed the URL or used a bookmark). ``same-site`` and ``cross-site``
   (or anything else) are refused: a subdomain is another origin.
2. No ``Sec-Fetch-Site`` (older browsers, plain http): ``Origin`` (RFC 6454
   §7) is compared with this request's own origin, ``wsgi.url_scheme://Host``
   (behind a TLS proxy, `ProxyFix` establishes both). No ``Origin`` at all is
   a non-browser client (curl, a server): it passes, as it carries no
   victim's cookies. ``Origin: null`` (sandboxed frames) is refused.
3. A refused request still passes when its ``Origin`` is in
   ``trusted_origins``, its route is ``@csrf_exempt``, or its path is in
   ``exempt_paths``. Otherwise: 403, and the app never runs.

Requests carrying ``Authorization: Bearer ...`` pass untouched: a browser
never attaches a bearer token by itself (as it does cookies and Basic
credentials), and a page that sets one cross-site makes a non-simple
request, which the browser first asks about with a CORS preflight that
this app's `CORS` settings answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..errors import ErrorPage, HTTPError
from ..http import DEFAULT_PORTS, bearer_credentials
from ..layer import Middleware, exact_paths
from ..types import Environ, WSGIApp
from .cors import find_router, normalize_origin
from .trusted_host import request_host

F = TypeVar("F", bound=Callable[..., Any])

# RFC 9110 §9.2.1: the safe methods a browser can send (TRACE is forbidden by Fetch).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Fetch Metadata §2.1: the values that mean "this site" or "the user".
TRUSTED_SITES = frozenset({"same-origin", "none"})
#: The handler attribute `csrf_exempt` sets, which the middleware reads.
EXEMPT_ATTRIBUTE = "csrf_exempt"


def csrf_exempt(handler: F) -> F:
    """Let cross-origin browsers call this route (a webhook, a login from an IdP).

    Put it above or below ``@app.post(...)``: it marks the function itself.
    """
    setattr(handler, EXEMPT_ATTRIBUTE, True)
    return handler


def request_origin(environ: Environ) -> str | None:
    """This request's own origin, ``scheme://host[:port]`` as browsers write it; None if bad."""
    scheme = environ["wsgi.url_scheme"]
    host = request_host(environ)
    if host is None:
        return None
    name, port = host
    # RFC 6454 §6.1: the default port of the scheme is left out.
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{name}"
    return f"{scheme}://{name}:{port}"


def origin_allowed(environ: Environ, origin: str, listed: frozenset[str], own: bool) -> bool:
    """Whether a page of `origin` may act here: a `listed` origin or, if `own`, this request's.

    SECURITY: only a well-formed origin can match: ``null`` (a sandboxed frame) never does.
    """
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False  # `null`, garbage, a path: matches nothing
    return normalized in listed or (own and normalized == request_origin(environ))


class CrossOriginProtection(Middleware):
    """Refuse (403) unsafe requests from other origins' pages (see the module docs).

    ``trusted_origins``: origins (``scheme://host[:port]``) whose pages may
    send unsafe requests with the user's cookies, such as your own SPA on
    another host. ``exempt_paths``: exact ``PATH_INFO`` values to let
    through, for apps that are not microweb's (microweb routes use
    `csrf_exempt`).
    """

    def __init__(
        self, app: WSGIApp, trusted_origins: Iterable[str] = (), exempt_paths: Iterable[str] = ()
    ) -> None:
        super().__init__(app)
        for name, values in (("trusted_origins", trusted_origins), ("exempt_paths", exempt_paths)):
            if isinstance(values, str):
                raise TypeError(f"{name} takes a list, like [{values!r}]")
        # SECURITY: a typo here must fail at startup, not trust nothing (or
        # everything) quietly; normalize_origin refuses paths and `null`.
        self.trusted = frozenset(normalize_origin(origin) for origin in trusted_origins)
        self.exempt_paths = exact_paths("CrossOriginProtection(exempt_paths=...)", exempt_paths)
        self.router = find_router(app)
        refused = "Cross-origin request refused: it did not come from this site."
        self.refused = ErrorPage(HTTPError(403, refused))

    def before(self, environ: Environ) -> WSGIApp | None:
        if environ["REQUEST_METHOD"] in SAFE_METHODS or self.verify(environ):
            return None
        # PERF: exemptions are looked up only for a refusal, the rare case.
        if self.exempt(environ):
            return None
        return self.refused

    def verify(self, environ: Environ) -> bool:
        """Steps 1-2 of the module docs, plus trusted origins and bearer tokens."""
        if bearer_credentials(environ.get("HTTP_AUTHORIZATION")):  # RFC 6750 §2.1
            return True
        site = environ.get("HTTP_SEC_FETCH_SITE")
        origin = environ.get("HTTP_ORIGIN")
        if site is not None:
            if site in TRUSTED_SITES:
                return True
        elif origin is None:
            return True  # not a browser: it has no victim's cookies to send
        if origin is None:
            return False
        return origin_allowed(environ, origin, self.trusted, own=site is None)

    def exempt(self, environ: Environ) -> bool:
        """`exempt_paths`, or a `csrf_exempt` route (matched; its handler is not called)."""
        if environ.get("PATH_INFO", "") in self.exempt_paths:
            return True
        if self.router is None:
            return False
        endpoint, _ = self.router.match(environ)
        return getattr(endpoint, EXEMPT_ATTRIBUTE, False) is True


__all__ = ["CrossOriginProtection", "csrf_exempt"]
