"""`BodyLimit`: refuse a request body larger than ``max_bytes`` with 413, around any WSGI app.

A microweb `App` caps the bodies its handlers read (``App(max_body_size=)``).
`BodyLimit` puts the same cap in front of *any* PEP 3333 app — a Flask app,
a mounted legacy app — which may otherwise read whatever a client sends.
The attack it stops is memory (or disk) exhaustion by one large upload.

How a body is judged (RFC 9110 §15.5.14, 413 Content Too Large; RFC 9112 §6):

- **``Content-Length`` is known**: above the cap → 413 at once, before a
  byte is read and before the app runs. At or under it, the body is passed
  through untouched: streamed, never buffered.
- **Chunked** (``Transfer-Encoding: chunked``, no length): the size is
  only known by reading, and a WSGI app that has started reading cannot be
  given a 413 in its place. So — *this is the one case where BodyLimit
  buffers* — the body is read here, at most ``max_bytes`` + 1 bytes of it
  (`microweb.request.buffer_body` counts as it reads): too long → 413;
  otherwise the app gets it as a ``BytesIO`` with a ``Content-Length``, as
  if the client had sent one. Memory is bounded by the cap.
- **Neither**: no body (RFC 9112 §6.3), nothing to do.

The 413 has no ``Connection: close``: that is a hop-by-hop header, which
PEP 3333 forbids an application to send. Whether the connection is kept
(and the unread body skipped) or closed is the server's decision.

Stack position: after CORS and RateLimit (a refused upload still counts
against the client's rate and carries the CORS grant, so a page can read
why), before anything that reads the body (CrossOriginProtection does not;
sessions do not; Idempotency and the app do).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ErrorPage, HTTPError, send_error
from ..http import declares_body
from ..request import buffer_body, too_large
from ..types import Environ, StartResponse, WSGIApp

__all__ = ["BodyLimit"]

DEFAULT_MAX_BYTES = 1_048_576  # 1 MiB, like App(max_body_size=...)


class BodyLimit:
    """413 for request bodies over `max_bytes` (see the module docs for how each kind is judged)."""

    def __init__(self, app: WSGIApp, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.app = app
        self.max_bytes = max_bytes
        self.too_large = ErrorPage(too_large(max_bytes))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if not declares_body(environ):
            return self.app(environ, start_response)
        length = environ.get("CONTENT_LENGTH")
        if length:
            # Not a number: the app's own parser answers 400 (or the server did already).
            if length.isascii() and length.isdigit() and int(length) > self.max_bytes:
                return self.too_large(environ, start_response)
            return self.app(environ, start_response)
        try:
            buffer_body(environ, self.max_bytes)
        except HTTPError as error:  # 413 over the cap, 400 for a body the server could not read
            return send_error(error, environ, start_response)
        return self.app(environ, start_response)
