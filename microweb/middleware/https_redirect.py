"""`HTTPSRedirect`: send every plain-http request to the same URL over https.

The decision is made on ``wsgi.url_scheme``, which is the scheme the
*client* used once `ProxyFix` has run (behind a TLS-terminating proxy the
server itself only ever sees http). The answer is

    308 Permanent Redirect
    Location: https://<host><SCRIPT_NAME><PATH_INFO>[?<QUERY_STRING>]

- RFC 9110 §15.4.9: 308, not 301: a client must repeat the request with
  the same method and body, so a POST stays a POST (301 and 302 let
  clients turn it into a GET and drop the body). 308 is also cacheable.
- The host is the request's (`request_host`: ``Host``, RFC 9110 §7.2, or
  ``SERVER_NAME`` without one) with its port dropped: the default http
  port (80) has no place in an https URL (RFC 3986 §6.2.3), and a
  non-default one (say :8080) names an http listener, so https on that
  port would not answer either. The target is therefore always the
  default https port; an app served over https on another port should be
  redirected by its proxy instead.
- The path is re-encoded (RFC 3986 §3.3): WSGI hands it over decoded, so
  ``%2F``, ``%25`` and spaces are quoted again. The query is kept as sent
  (`url_query`: only what a URL may not hold is escaped).

SECURITY: the ``Location`` is always an absolute ``https://`` URL whose
authority is the request's own well-formed host (`request_host`: no
``@``, ``/``, ``\\`` or spaces that could move the authority elsewhere).
A path such as ``//evil.example`` then stays a path
(``https://host//evil.example``) instead of becoming the protocol-relative
open redirect ``//evil.example``, and nothing from the request can split
the header (CR/LF are quoted). A malformed host gets a 400. Whether the
host is one the app serves is `TrustedHost`'s job, which runs first.

Paths in ``exempt`` (exact matches on ``PATH_INFO``, e.g. a load
balancer's health check, which probes over plain http) are passed through.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from ..errors import ErrorPage, HTTPError
from ..http import PATH_SAFE, url_query
from ..layer import Middleware, exact_paths
from ..response import TEXT, Reply
from ..types import Environ, WSGIApp
from .trusted_host import request_host


class HTTPSRedirect(Middleware):
    """Answer plain-http requests with a 308 to their https URL (`exempt` paths aside)."""

    def __init__(self, app: WSGIApp, exempt: Iterable[str] = ("/healthz",)) -> None:
        super().__init__(app)
        self.exempt = exact_paths("HTTPSRedirect(exempt=...)", exempt)
        detail = "The Host header is not a host; there is no https URL to redirect to."
        self.bad_host = ErrorPage(HTTPError(400, detail))

    def before(self, environ: Environ) -> WSGIApp | None:
        if environ["wsgi.url_scheme"] == "https" or environ.get("PATH_INFO", "") in self.exempt:
            return None
        host = request_host(environ)
        if host is None:
            return self.bad_host
        return Reply(308, [("Location", https_url(host[0], environ))], b"Use https.\n", TEXT)


def https_url(host: str, environ: Environ) -> str:
    """The request's URL with scheme https on `host` (default port)."""
    # PEP 3333: WSGI strings carry the request's bytes as latin-1.
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    url = "https://" + host + ("" if path.startswith(b"/") else "/") + quote(path, PATH_SAFE)
    return url + url_query(environ.get("QUERY_STRING", ""))


__all__ = ["HTTPSRedirect", "https_url"]
