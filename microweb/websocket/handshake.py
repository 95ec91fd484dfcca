"""The WebSocket opening handshake, server side (RFC 6455 §4.2).

`accept` reads a GET request's headers and either returns the headers of
the ``101 Switching Protocols`` answer, or raises the `HTTPError` that
refuses it. Nothing is sent and no socket is touched here, so every rule
is testable in-process. The checks, in the order they run:

1. The request is an HTTP/1.1 GET (§4.1). HTTP/2 has no ``Upgrade`` (RFC
   9113 §8.6; WebSockets over HTTP/2 are RFC 8441's extended CONNECT,
   which gunicorn does not serve): **426** without ``Upgrade`` there, as
   RFC 9113 §8.2.2 forbids the header.
2. ``Upgrade`` lists ``websocket`` (§4.2.1 item 3): otherwise **426** with
   ``Upgrade: websocket`` (RFC 9110 §15.5.22: a 426 names the protocol to
   switch to). This is what a plain GET from a browser's address bar gets.
3. ``Connection`` lists ``upgrade`` (§4.2.1 item 4): otherwise **400**.
4. ``Sec-WebSocket-Version`` is ``13`` (§4.2.1 item 6, §4.4): otherwise
   **426** with ``Sec-WebSocket-Version: 13``, the version we speak.
5. ``Sec-WebSocket-Key`` is base64 of 16 bytes (§4.2.1 item 5): otherwise **400**.
6. ``Origin`` (§4.2.1 item 7, §10.2) is allowed: otherwise **403**, before
   any upgrade. See `OriginPolicy`: this is the defence against
   cross-site WebSocket hijacking.
7. Subprotocol (§4.2.2 item 5.4, §11.3.4): the first protocol in the
   client's ``Sec-WebSocket-Protocol`` list (its order of preference) that
   the route supports; none in common means no subprotocol, and the client
   decides whether it can live without one.

The answer carries ``Sec-WebSocket-Accept``, computed by wsproto
(§4.2.2 item 5.4: SHA-1 of the key and the GUID, in base64).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from wsproto.utilities import generate_accept_token

from ..errors import HTTPError
from ..http import list_tokens
from ..middleware.cors import normalize_origin
from ..middleware.csrf import origin_allowed
from ..types import Environ, Headers

#: The only protocol version RFC 6455 defines (§4.1, §11.6).
VERSION = "13"


class OriginPolicy:
    """Which pages may open a WebSocket to this route (RFC 6455 §10.2).

    A browser sends the page's ``Origin`` on every WebSocket handshake, and
    the same-origin policy does not apply: without a check, any site's page
    could open a socket that carries the victim's cookies (cross-site
    WebSocket hijacking). So:

    - ``origins=None`` (default): only this site's own pages, whose origin
      is ``wsgi.url_scheme://Host`` as ProxyFix and TrustedHost established;
    - ``origins=["https://app.example", ...]``: those origins (normalised
      like CORS's), plus ``"*"`` for any page at all;
    - no ``Origin`` header: not a browser (a script, a server), so it has no
      victim's cookies to carry: allowed, as `CrossOriginProtection` does.
    """

    def __init__(self, origins: Iterable[str] | None) -> None:
        if isinstance(origins, str):
            raise TypeError(f"origins takes a list, like [{origins!r}]")
        self.same_origin_only = origins is None
        listed = set(origins or ())
        self.any = "*" in listed
        # SECURITY: a typo fails at startup (normalize_origin raises), not at handshake.
        self.allowed = frozenset(normalize_origin(o) for o in listed - {"*"})

    def allows(self, environ: Environ) -> bool:
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or self.any:
            return True
        return origin_allowed(environ, origin, self.allowed, own=self.same_origin_only)


@dataclass(frozen=True)
class Accepted:
    """A handshake that passed: the 101's headers and the chosen subprotocol."""

    headers: Headers
    subprotocol: str | None


def accept(environ: Environ, origins: OriginPolicy, subprotocols: tuple[str, ...]) -> Accepted:
    """Check the handshake (steps 1-7 of the module docs); raise `HTTPError` to refuse it."""
    protocol = environ.get("SERVER_PROTOCOL", "")
    # 1-2. Not a WebSocket handshake at all. RFC 9113 §8.2.2: HTTP/2 forbids `Upgrade`.
    if (
        protocol != "HTTP/1.1"
        or environ["REQUEST_METHOD"] != "GET"
        or "websocket" not in list_tokens(environ.get("HTTP_UPGRADE"))
    ):
        advertised = [("Upgrade", "websocket")] if protocol.startswith("HTTP/1.") else []
        raise HTTPError(
            426, "This is a WebSocket endpoint: open it with a WebSocket client (HTTP/1.1 GET).",
            advertised,
        )  # fmt: skip
    # 3.
    if "upgrade" not in list_tokens(environ.get("HTTP_CONNECTION")):
        raise HTTPError(400, "A WebSocket handshake needs 'Connection: Upgrade'.")
    # 4.
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != VERSION:
        raise HTTPError(
            426, "Unsupported Sec-WebSocket-Version.", [("Sec-WebSocket-Version", VERSION)]
        )
    # 5.
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:  # non-ASCII text, or bad base64 (binascii.Error is a ValueError)
        valid_key = False
    if not valid_key:
        raise HTTPError(400, "Sec-WebSocket-Key must be 16 bytes in base64.")
    # 6. SECURITY: refused before the 101, so no socket is ever opened for it.
    if not origins.allows(environ):
        raise HTTPError(403, "WebSocket refused: this page's origin is not allowed.")
    # 7.
    offered = [p.strip() for p in environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",")]
    chosen = next((p for p in offered if p and p in subprotocols), None)
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode()),
    ]
    if chosen is not None:
        headers.append(("Sec-WebSocket-Protocol", chosen))
    return Accepted(headers, chosen)
