"""A WebSocket route: from a GET request to a handler holding a `WebSocket`.

How a WSGI app gets a two-way socket
------------------------------------
PEP 3333 has no way to keep a connection after the response, but gunicorn
gives the app the connection's socket (``environ["gunicorn.socket"]``) and,
on its gthread worker, runs each connection in a thread of its own. The
route uses both, in three steps, without leaving WSGI:

1. `WebSocketRoute` is an ordinary GET endpoint: the middleware stack runs
   on the handshake like on any request (TrustedHost, RateLimit, sessions,
   JWT), routing converts the path parameters, and `handshake.accept` checks
   the handshake. A refused handshake is an ordinary 4xx.
2. It returns `Upgrade`, a WSGI response: ``101 Switching Protocols`` with
   the handshake's headers and an empty body, `Session`. Response-header
   middleware see the 101 like any status; gunicorn sends it, and keeps
   ``Connection: upgrade`` and ``Upgrade: websocket`` (it drops every other
   hop-by-hop header).
3. PEP 3333 says the server calls the body's ``close()`` once the response
   is sent: the 101 is on the wire, and from then on the socket speaks
   WebSocket. `Session.close` is where the handler runs, with a `WebSocket`
   on that socket, in gunicorn's thread for this connection. When it
   returns (or raises: close 1011 and a log line), the WebSocket is closed,
   the socket shut, and gunicorn's thread goes back to its pool.

gunicorn's sync worker runs one connection per process, so a WebSocket
would hold the whole worker: the route refuses (500, and a log line naming
the fix) unless ``wsgi.multithread`` is true and the socket is there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import webob

from ..errors import HTTPError
from ..types import Environ, StartResponse
from .connection import WebSocket
from .handshake import Accepted, OriginPolicy, accept

logger = logging.getLogger("microweb")

WebSocketHandler = Callable[..., Any]
#: What the log says, and the 500 tells, when the server cannot hold a WebSocket.
NEEDS_GTHREAD = (
    "WebSockets need gunicorn's threaded worker: "
    "run with --worker-class gthread --threads N (N >= concurrent connections + 1)"
)


class WebSocketRoute:
    """The endpoint `App.websocket` registers for ``handler(req, ws, **params)``."""

    def __init__(
        self,
        handler: WebSocketHandler,
        origins: Iterable[str] | None = None,
        subprotocols: Iterable[str] = (),
        max_message_size: int = 1_048_576,
        ping_interval: float | None = 20.0,
    ) -> None:
        if isinstance(subprotocols, str):
            raise TypeError(f"subprotocols takes a list, like [{subprotocols!r}]")
        if max_message_size < 1:
            raise ValueError("max_message_size must be at least 1 byte")
        if ping_interval is not None and ping_interval < 0:
            raise ValueError("ping_interval must be >= 0 seconds (0 or None: no pings)")
        self.handler = handler
        self.origins = OriginPolicy(origins)
        self.subprotocols = tuple(subprotocols)
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        # NOTE: the route table names a route after its handler's `__name__`, and
        # reports where it was written through `__wrapped__`: the user's, not ours.
        self.__name__ = getattr(handler, "__name__", "websocket")
        self.__wrapped__ = handler

    def __call__(self, req: Any, **params: Any) -> Upgrade:
        environ = req.environ
        accepted = accept(environ, self.origins, self.subprotocols)
        sock = environ.get("gunicorn.socket")
        if sock is None or not environ.get("wsgi.multithread"):
            logger.error("%s (refused WebSocket %s)", NEEDS_GTHREAD, req.path)
            raise HTTPError(500, NEEDS_GTHREAD)

        def run(ws: WebSocket) -> None:
            self.handler(req, ws, **params)

        ws = WebSocket(
            sock,
            accepted.subprotocol,
            max_message_size=self.max_message_size,
            ping_interval=self.ping_interval,
        )
        return Upgrade(accepted, ws, run, req.path)


class Upgrade(webob.Response):
    """``101 Switching Protocols``; its body's ``close()`` runs the WebSocket (step 3)."""

    def __init__(
        self, accepted: Accepted, ws: WebSocket, run: Callable[[WebSocket], None], path: str
    ) -> None:
        super().__init__(status=101, headerlist=list(accepted.headers))
        self.session = Session(ws, run, path)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Session:
        start_response("101 Switching Protocols", list(self.headerlist))
        return self.session


class Session:
    """The 101's (empty) body. The server calls `close` once the 101 is sent."""

    def __init__(self, ws: WebSocket, run: Callable[[WebSocket], None], path: str) -> None:
        self.ws = ws
        self.run = run
        self.path = path
        self.started = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        if self.started:
            return  # PEP 3333 asks for one close(); a second must do nothing
        self.started = True
        ws = self.ws
        try:
            self.run(ws)
        except Exception:
            # The 101 is long gone: all that is left is the close code (§7.4.1:
            # 1011, "an unexpected condition") and the log line.
            logger.exception("WebSocket handler for %s raised; closing with 1011", self.path)
            ws.close(1011, "internal error")
        finally:
            ws.finish()

