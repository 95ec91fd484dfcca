"""`CORS`: let pages from chosen origins read this app's responses in a browser.

The protocol (Fetch standard §3.3, https://fetch.spec.whatwg.org/#http-cors-protocol)
---------------------------------------------------------------------------------------
A browser sends a cross-origin request with ``Origin: scheme://host[:port]``
(§3.2) and lets the page's script *read* the response only if it says so
(§4.10, "CORS check"): ``Access-Control-Allow-Origin`` is ``*`` or, byte for
byte, the page's origin; with credentials (cookies, HTTP auth) it must be the
exact origin **and** ``Access-Control-Allow-Credentials: true`` (§3.3.5). A
"simple" request (CORS-safelisted method and headers, §2.2) is sent at once,
only its *reading* is blocked; anything else (``PUT``, ``Authorization``, a
JSON ``Content-Type``) is asked about first with a *preflight* (§3.3.2,
§4.8): ``OPTIONS`` with ``Access-Control-Request-Method`` and ``-Headers``,
which needs a 2xx naming that method and those headers (``Access-Control-
Allow-Methods``/``-Headers``), cacheable for ``Access-Control-Max-Age`` s.

This middleware answers preflights itself, without calling the app (a
preflight carries no credentials and must not reach auth or handlers): 204
with the grant, or 403 with no ``Access-Control-Allow-*`` at all. Every other
response from the app gets the grant when its Origin is allowed.

What the checks stop
--------------------
- *Any origin with credentials* (reflecting Origin) lets every site read a
  logged-in user's data: ``"*"`` with ``allow_credentials=True`` is a
  ValueError at construction, and so is a regex matching a made-up origin.
- *Lookalike origins* (``https://example.com.evil.com``,
  ``https://evilexample.com``): exact origins are compared byte for byte as
  set members; a regex must match the whole origin (``fullmatch``).
- *Scheme and port confusion*: ``http://`` (readable by anyone on the
  network path) and another port are other origins, never the allowed one.
- *The opaque origin* ``null`` (sandboxed iframes, ``file:``, ``data:``)
  stands for anyone: no list or regex can grant it.
- *Header injection*: only a well-formed serialized origin is ever echoed.
- *Cache poisoning*: a shared cache must not serve one origin's grant (or a
  response without one) to another origin, so every response whose CORS
  headers depend on Origin says ``Vary: Origin`` (Fetch, "CORS protocol and
  HTTP caches").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..http import DEFAULT_PORTS, TOKEN, FieldNames, add_vary, has_any, list_tokens, replace_headers
from ..layer import Middleware
from ..response import TEXT, Reply
from ..routing import RouteTable, automatic_options
from ..types import Environ, Headers, WSGIApp

# Fetch §3.2: an Origin as browsers serialize it: lowercase scheme and host
# (IDNs in punycode), no default port, nothing after the port.
_SERIALIZED = re.compile(r"[a-z][a-z0-9+.-]*://(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")
# What allow_origins may hold: the same, in any case, with any port.
_ORIGIN = re.compile(
    r"([a-z][a-z0-9+.-]*://(?:[a-z0-9_.-]+|\[[0-9a-f:.]+\]))(?::([0-9]*))?", re.I | re.A
)
# Fetch §2.2.1: CORS-safelisted methods, which need no grant (§4.8).
SAFELISTED_METHODS = frozenset({"GET", "HEAD", "POST"})
# The Allow-Methods of an app whose routes we cannot see: the safelisted ones.
FALLBACK_METHODS = "GET, HEAD, POST"
# Fetch §2.2.2: CORS-safelisted request-header names. Any form may send them,
# so an allowed origin may always name them (a preflight asks about their value).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
# Fetch §2.2.2: the CORS non-wildcard request-header name: `*` never covers it.
NON_WILDCARD_HEADERS = frozenset({"authorization"})
# SECURITY: with credentials, a regex matching this would match the whole web.
_PROBE_ORIGIN = "https://attacker.invalid"


def normalize_origin(text: str) -> str:
    """``HTTPS://Example.COM:443`` -> ``https://example.com``; ValueError for anything else."""
    match = _ORIGIN.fullmatch(text)
    if match is None:
        raise ValueError(
            f"not an origin: {text!r}; write scheme://host[:port] in ASCII (punycode for "
            "international names), with no path, not even a trailing '/'"
        )
    origin, port = match.group(1).lower(), match.group(2)
    if port and not 0 < int(port) < 65536:
        raise ValueError(f"origin {text!r}: the port is out of range")
    if port and str(int(port)) != DEFAULT_PORTS.get(origin.partition(":")[0]):
        origin += f":{int(port)}"
    return origin


def _option(name: str, values: str | Iterable[str], tokens: bool = True) -> tuple[bool, set[str]]:
    """A list-or-``"*"`` option: (has the wildcard, the other values)."""
    if isinstance(values, str) and values != "*":
        raise TypeError(f"{name} takes a list, like [{values!r}], or '*'")
    items = {"*"} if values == "*" else set(values)
    for item in items - {"*"}:
        if tokens and not TOKEN.fullmatch(item):
            raise ValueError(f"{name}: {item!r} is not a method or header name")
    return "*" in items, items - {"*"}


class CORS(Middleware):
    """Cross-Origin Resource Sharing for any WSGI app (see the module docs).

    ``allow_origins`` is a list of origins or ``"*"``; ``allow_origin_regex``
    must match a whole origin. ``allow_methods=None`` grants the methods of
    the requested path when the app is a microweb App, else only GET, HEAD
    and POST. ``allow_headers`` may hold ``"*"``: any header but
    ``Authorization``, which must be listed. No ``"*"`` with credentials.
    """

    def __init__(
        self,
        app: WSGIApp,
        allow_origins: str | Sequence[str] = (),
        allow_origin_regex: str | None = None,
        allow_methods: str | Sequence[str] | None = None,
        allow_headers: str | Sequence[str] = (),
        expose_headers: str | Sequence[str] = (),
        allow_credentials: bool = False,
        max_age: int | None = 600,
    ) -> None:
        super().__init__(app)
        self.any_origin, origins = _option("allow_origins", allow_origins, tokens=False)
        self.any_method, methods = _option("allow_methods", allow_methods or ())
        self.any_header, headers = _option("allow_headers", allow_headers)
        any_exposed, exposed = _option("expose_headers", expose_headers)
        # Fetch §3.3.5: with credentials `*` is no wildcard; and granting any
        # origin with credentials would hand every user's data to every site.
        wildcards = (self.any_origin, self.any_method, self.any_header, any_exposed)
        if allow_credentials and any(wildcards):
            raise ValueError(
                "'*' cannot be used with allow_credentials=True (browsers ignore the wildcard "
                "for credentialed requests, Fetch §3.3.5): list the origins, methods and headers"
            )
        if self.any_origin and (origins or allow_origin_regex):
            raise ValueError("allow_origins='*' already allows every origin; drop the others")
        # SECURITY: `null` is the origin of every sandboxed or file: document.
        if "null" in origins:
            raise ValueError("the 'null' origin is any sandboxed page: it cannot be allowed")
        if not isinstance(max_age, int | None) or isinstance(max_age, bool) or (max_age or 0) < 0:
            raise ValueError(f"max_age is seconds (an int >= 0) or None, not {max_age!r}")
        try:
            self.regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        except re.error as exc:
            raise ValueError(f"allow_origin_regex {allow_origin_regex!r}: {exc}") from None
        if self.regex and allow_credentials and self.regex.fullmatch(_PROBE_ORIGIN):
            raise ValueError(
                f"allow_origin_regex matches {_PROBE_ORIGIN!r}: with credentials that is '*' "
                "in disguise; anchor it to your own hosts"
            )
        self.origins = frozenset(normalize_origin(origin) for origin in origins)
        # Fetch §2.2.1: methods are case-sensitive; the standard ones are uppercase.
        methods = {method.upper() for method in methods}
        self.methods = SAFELISTED_METHODS | methods if allow_methods is not None else None
        self.methods_value = ", ".join(sorted(methods))
        self.headers = SAFELISTED_HEADERS | {header.lower() for header in headers}
        # allow_methods=None reads the route table of a microweb App (or its dispatch).
        self.router = find_router(app)
        # PERF: every header that does not depend on the request is built once.
        vary = [] if self.any_origin else [("Vary", "Origin")]
        credentials = [("Access-Control-Allow-Credentials", "true")] if allow_credentials else []
        expose = "*" if any_exposed else ", ".join(sorted(exposed))
        exposing = [("Access-Control-Expose-Headers", expose)] if expose else []
        self.grant_extra = credentials + exposing
        self.grant_any = [("Access-Control-Allow-Origin", "*"), *self.grant_extra]
        self.vary_only = vary
        self.fields = FieldNames(name for name, _ in [*vary, *self.grant_any])
        age = [] if max_age is None else [("Access-Control-Max-Age", str(max_age))]
        self.preflight_extra = credentials + age + vary

    def before(self, environ: Environ) -> WSGIApp | None:
        # Fetch §3.3.2: a CORS-preflight request is OPTIONS with Origin and
        # Access-Control-Request-Method; any other OPTIONS is the app's.
        if environ["REQUEST_METHOD"] != "OPTIONS":
            return None
        origin = environ.get("HTTP_ORIGIN")
        method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
        if origin is None or method is None:
            return None
        return self.preflight(environ, origin, method)

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        # The grant (when Origin is allowed) and ``Vary: Origin``; the shared
        # lists are never changed, only copied from.
        origin = environ.get("HTTP_ORIGIN")
        if self.any_origin:
            added = self.grant_any  # Fetch §3.3.3: the same for everyone: no Vary needed
        elif origin is not None and self.allows(origin):
            # SECURITY: `allows` passes only a set member or a serialized origin.
            added = [*self.vary_only, ("Access-Control-Allow-Origin", origin), *self.grant_extra]
        else:
            added = self.vary_only
        if not has_any(headers, self.fields):
            headers.extend(added)  # PERF: the usual case, the app set none of them
            return
        # The app set some: merge Origin into its Vary, replace its grant.
        if not self.any_origin:
            add_vary(headers, "Origin")
        # NOTE: one value each: two Allow-Origin values fail the browser's CORS check.
        grant = [(name, value) for name, value in added if name != "Vary"]
        if grant:
            replace_headers(headers, grant)

    def allows(self, origin: str) -> bool:
        if self.any_origin or origin in self.origins:
            return True
        # SECURITY: the regex only ever sees a well-formed origin (not `null`,
        # not "https://evil.example/.example.com") and must match all of it.
        return bool(self.regex and _SERIALIZED.fullmatch(origin) and self.regex.fullmatch(origin))

    def preflight(self, environ: Environ, origin: str, method: str) -> WSGIApp:
        """Fetch §4.8: a 204 granting `method` and the requested headers, or a 403."""
        if not self.allows(origin):
            return self.refuse("origin")
        allow_methods = self.method_grant(environ, method)
        if allow_methods is None:
            return self.refuse("method")
        names = list_tokens(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
        if not all(self.allows_header(name) for name in names):
            return self.refuse("headers")
        grant = [("Access-Control-Allow-Origin", "*" if self.any_origin else origin)]
        if allow_methods:
            grant.append(("Access-Control-Allow-Methods", allow_methods))
        if names:
            # Fetch §4.8: name each header (tokens only: safe to echo).
            grant.append(("Access-Control-Allow-Headers", ", ".join(names)))
        return Reply(204, grant + self.preflight_extra, b"")

    def refuse(self, why: str) -> Reply:
        """Fetch §4.8: a refused preflight is a 403 with no grant (a new header list:
        outer layers' `after` hooks edit it in place)."""
        text = f"CORS preflight refused: {why} not allowed.".encode()
        return Reply(403, [*self.vary_only], text, TEXT)

    def method_grant(self, environ: Environ, method: str) -> str | None:
        """The ``Access-Control-Allow-Methods`` value granting `method`, or None."""
        if not TOKEN.fullmatch(method):
            return None
        if self.any_method:
            return method  # a token: safe to echo
        if self.methods is not None:
            allowed, value = self.methods, self.methods_value
        else:
            value = self.route_methods(environ)
            allowed = SAFELISTED_METHODS.union(value.split(", "))
        # Fetch §4.8: the method, compared case-sensitively, or a safelisted one.
        return value if method in allowed else None

    def route_methods(self, environ: Environ) -> str:
        """``allow_methods=None``: the ``Allow`` list of the path, for a microweb App.

        The route table answers, with the lookup an automatic OPTIONS makes, so
        no handler runs. A path with its own OPTIONS handler, a mounted app or
        an app that is not microweb's: only the safelisted methods.
        """
        if self.router is not None:
            endpoint, params = self.router.match(dict(environ, REQUEST_METHOD="OPTIONS"))
            if endpoint is automatic_options and params["allow"]:
                return str(params["allow"])
        return FALLBACK_METHODS

    def allows_header(self, name: str) -> bool:
        if not TOKEN.fullmatch(name):
            return False
        # Fetch §4.8: `*` never covers Authorization; it must be listed.
        return name in self.headers or (self.any_header and name not in NON_WILDCARD_HEADERS)


def find_router(app: WSGIApp | None) -> RouteTable | None:
    """The route table of the microweb App under `app`, following each layer's `.app`.

    Other middleware may sit between CORS and the App (``app.use`` puts
    unknown ones innermost); the convention of keeping the wrapped app in
    ``.app`` (microweb's, Werkzeug's) lets CORS still find the routes.
    """
    for _ in range(32):  # a stack deeper than this is not one
        router = getattr(getattr(app, "__self__", app), "router", None)
        if isinstance(router, RouteTable):
            return router
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


__all__ = ["CORS", "normalize_origin"]
