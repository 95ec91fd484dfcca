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

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import webob

from ..errors import HTTPError
from ..handler_checks import POSITIONAL
from ..request import Request
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
        # NOTE: the route table names a route after its handler's `__name__`,
        # reports where it was written through `__wrapped__`, and checks the
        # path parameters against `__signature__`: the user's, less `ws`.
        self.__name__ = getattr(handler, "__name__", "websocket")
        self.__wrapped__ = handler
        signature = without_ws(handler)
        if signature is not None:
            self.__signature__ = signature

    def __call__(self, req: Request, **params: Any) -> Upgrade:
        environ = req.environ
        accepted = accept(environ, self.origins, self.subprotocols)
        sock = environ.get("gunicorn.socket")
        if sock is None or not environ.get("wsgi.multithread"):
            logger.error("%s (refused WebSocket %s)", NEEDS_GTHREAD, req.path)
            raise HTTPError(500, NEEDS_GTHREAD)

        def run() -> None:
            # NOTE: the socket is touched only now, once gunicorn has sent the 101.
            ws = WebSocket(
                sock,
                accepted.subprotocol,
                max_message_size=self.max_message_size,
                ping_interval=self.ping_interval,
            )
            try:
                self.handler(req, ws, **params)
            except Exception:
                # The 101 is long gone: all that is left is the close code
                # (§7.4.1: 1011, "an unexpected condition") and the log line.
                logger.exception("WebSocket handler for %s raised; closing with 1011", req.path)
                ws.close(1011, "internal error")
            finally:
                ws.finish()

        return Upgrade(accepted, Session(run))


def without_ws(handler: WebSocketHandler) -> inspect.Signature | None:
    """``handler(req, ws, room)``'s signature as the route is called: ``(req, room)``.

    None when it cannot be read (nothing is certain then); `TypeError` when
    the handler has no second positional parameter to receive the WebSocket.
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    parameters = list(signature.parameters.values())
    positional = [p for p in parameters if p.kind in POSITIONAL]
    if len(positional) < 2:
        if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
            return None
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(
            f"WebSocket handler {name}{signature} must take (req, ws, **params): "
            "it has no parameter for the WebSocket"
        )
    parameters.remove(positional[1])
    return signature.replace(parameters=parameters)


class Upgrade(webob.Response):
    """``101 Switching Protocols``; its body's ``close()`` runs the WebSocket (step 3)."""

    def __init__(self, accepted: Accepted, session: Session) -> None:
        super().__init__(status=101, headerlist=list(accepted.headers))
        self.session = session

    def __call__(self, environ: Environ, start_response: StartResponse) -> Session:
        start_response("101 Switching Protocols", list(self.headerlist))
        return self.session


class Session:
    """The 101's (empty) body. The server calls `close` once the 101 is sent."""

    def __init__(self, run: Callable[[], None]) -> None:
        self.run: Callable[[], None] | None = run

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        # PEP 3333 asks for one close(); a second must do nothing.
        run, self.run = self.run, None
        if run is not None:
            run()
