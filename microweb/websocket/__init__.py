"""WebSockets (RFC 6455) on gunicorn's gthread worker: ``@app.websocket(path)``.

- `handshake` — the opening handshake's checks and the 101's headers (§4.2);
- `connection` — `WebSocket`, what a handler holds: receive, send, close,
  pings, limits (§5-§7), with wsproto doing the framing;
- `route` — `WebSocketRoute`, the GET endpoint that hands the socket over
  from WSGI to the handler.

docs/websockets.md is the chapter: when Server-Sent Events are the better
choice, the handshake on the wire, the worker model and its limits.
"""

from .connection import ConnectionClosed, WebSocket
from .route import NEEDS_GTHREAD, WebSocketRoute

__all__ = ["NEEDS_GTHREAD", "ConnectionClosed", "WebSocket", "WebSocketRoute"]
