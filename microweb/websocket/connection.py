"""`WebSocket`: one open connection, as a handler sees it (RFC 6455 §5-§7).

The handler calls ``ws.receive()``, ``ws.send(...)`` and ``ws.close()``;
underneath, the work is split in two:

- **wsproto** (sans-I/O) owns the protocol: it parses and builds frames,
  unmasks, reassembles fragments (§5.4), checks UTF-8 (§8.1) and the close
  handshake (§5.5.1, §7). It never touches a socket.
- **this class** owns the I/O: it reads the socket gunicorn handed over,
  feeds wsproto, answers pings, limits message size, sends pings of its
  own to find dead peers, and closes the socket in every case.

The data structure
------------------
One `threading.Lock` guards the wsproto `Connection` and the socket, so
another thread may `send` (a chat room broadcasting to everyone) while the
handler's thread waits in `receive`. The waiting itself happens outside
the lock, in ``select()``; only the read and its parsing hold it. Complete
messages wait in ``inbox`` (a deque), fragments in ``parts``.

Liveness (§5.5.2-3): after ``ping_interval`` seconds with nothing heard,
`receive` sends a Ping; if nothing (a Pong or anything else) comes back
within ``ping_timeout``, the peer is gone: close 1011, socket shut. The
waiting is done inside `receive`, so a handler that only sends should call
``ws.receive(timeout=...)`` now and then to notice a peer that left.

Close codes this class sends (§7.4.1): 1000 normal; 1001 when the worker
shuts down; 1002 a protocol error and 1007 text that is not UTF-8 (both
found by wsproto); 1009 a message over ``max_message_size``; 1011 the
handler raised, or the peer stopped answering pings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections import deque
from typing import cast

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    TextMessage,
)

logger = logging.getLogger("microweb")

RECEIVE_SIZE = 65536
# NOTE: how long a blocked `receive` waits before it looks whether the worker
# is shutting down (the main thread has ended): a bound, not a poll of the peer.
SHUTDOWN_CHECK = 1.0
#: How long the closing side waits for the peer's Close frame (§7.1.1), and a
#: `send` waits on a peer that does not read (a full TCP window).
CLOSE_TIMEOUT = 5.0
SEND_TIMEOUT = 10.0


class ConnectionClosed(Exception):
    """`send` on a WebSocket that is closed (or closing)."""


class WebSocket:
    """One WebSocket connection: ``receive``, ``send``, ``close``, ``for message in ws``.

    ``ws.subprotocol`` is the subprotocol chosen at the handshake (§1.9), or None;
    ``ws.close_code`` the code the connection ended with (§7.1.5), None while open.
    """

    def __init__(
        self,
        sock: socket.socket,
        subprotocol: str | None = None,
        max_message_size: int = 1_048_576,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = None,
    ) -> None:
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval or None
        self.ping_timeout = ping_timeout or self.ping_interval
        self._sock = sock
        self._sock.settimeout(SEND_TIMEOUT)
        self._protocol = Connection(ConnectionType.SERVER)
        self._lock = threading.Lock()
        self._inbox: deque[str | bytes] = deque()
        self._parts: list[str | bytes | bytearray] = []
        self._size = 0
        self._heard = time.monotonic()  # when the peer last sent anything
        self._ping_sent: float | None = None
        self._done = False  # the socket is shut: nothing more will come

    # -- The handler's API ---------------------------------------------------

    def receive(self, timeout: float | None = None) -> str | bytes | None:
        """The next message (``str`` for text, ``bytes`` for binary); None once the
        connection is closed (by the peer, `close`, a protocol error or a dead peer).

        With a `timeout` (seconds), raises `TimeoutError` when no message came in
        time; the connection stays open, so a handler may catch it and go on.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._inbox:
            if self._done:
                return None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(f"no WebSocket message within {timeout}s")
            self._read(self._wait_limit(now, deadline))
        return self._inbox.popleft()

    def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; `ConnectionClosed` if closed."""
        if not isinstance(message, str | bytes | bytearray):
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        with self._lock:
            if self._done or self._protocol.state is not ConnectionState.OPEN:
                raise ConnectionClosed("the WebSocket is closed")
            self._write(event)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2): send a Close frame with `code`.

        `receive` still returns what the peer sent before it saw the Close,
        then None once the peer answers. When the handler returns, its Close
        is awaited (at most `CLOSE_TIMEOUT`) and the socket shut.
        """
        with self._lock:
            if self._protocol.state is ConnectionState.OPEN:
                self.close_code = code
                # the peer may be gone already: closed all the same
                with contextlib.suppress(ConnectionClosed):
                    self._write(CloseConnection(code, reason))

    def __iter__(self) -> WebSocket:
        return self

    def __next__(self) -> str | bytes:
        message = self.receive()
        if message is None:
            raise StopIteration
        return message

    # -- Reading ---------------------------------------------------------------

    def _wait_limit(self, now: float, deadline: float | None) -> float:
        """How long the next wait may be: until a ping is due, the deadline, or a shutdown check."""
        limit = SHUTDOWN_CHECK
        if deadline is not None:
            limit = min(limit, deadline - now)
        if self.ping_interval is not None and self.ping_timeout is not None:
            due = (
                self._heard + self.ping_interval
                if self._ping_sent is None
                else self._ping_sent + self.ping_timeout
            )
            limit = min(limit, due - now)
        return max(limit, 0.0)

    def _read(self, wait: float) -> None:
        """Wait up to `wait` seconds for bytes, then feed them to wsproto; or do upkeep."""
        # NOTE: a TLS socket may hold decrypted bytes that select() cannot see.
        pending = getattr(self._sock, "pending", None)
        ready = (pending is not None and pending() > 0) or bool(
            select.select([self._sock], [], [], wait)[0]
        )
        with self._lock:
            try:
                if ready:
                    self._receive_bytes()
                else:
                    self._upkeep()
            except ConnectionClosed:
                pass  # a Pong or Ping that could not be sent: the socket is shut already

    def _receive_bytes(self) -> None:
        try:
            data = self._sock.recv(RECEIVE_SIZE)
        except (TimeoutError, BlockingIOError):
            return  # a partial TLS record: the rest comes later
        except OSError:
            data = b""
        if not data:
            self._abandon(1006)  # §7.1.5: closed without a Close frame
            return
        self._heard = time.monotonic()
        self._ping_sent = None
        self._protocol.receive_data(data)
        for event in self._protocol.events():
            self._handle(event)

    def _handle(self, event: Event) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            self._collect(event)
        elif isinstance(event, Ping):
            self._write(event.response())  # §5.5.2: a Pong with the same payload
        elif isinstance(event, CloseConnection):
            # §5.5.1: answer a Close with a Close (wsproto echoes the code). A
            # code from wsproto's own parser (1002, 1007) is ours to send.
            self.close_code = self.close_code or event.code
            if self._protocol.state is not ConnectionState.CLOSED:
                self._write(event.response() if self._protocol.state
                            is ConnectionState.REMOTE_CLOSING else event)  # fmt: skip
            self._shut()
        # A Pong needs nothing: any bytes heard already reset the ping clock.

    def _collect(self, event: TextMessage | BytesMessage) -> None:
        data = event.data
        # PERF: the UTF-8 size of ASCII text is its length; encode only otherwise.
        size = len(data) if not isinstance(data, str) or data.isascii() else len(data.encode())
        self._size += size
        if self._size > self.max_message_size:
            self._parts.clear()
            self._fail(1009, f"message over {self.max_message_size} bytes")
            return
        if not event.message_finished:
            self._parts.append(data)
            return
        # NOTE: a message's frames are all text or all binary (§5.4); wsproto checks.
        if isinstance(data, str):
            self._inbox.append("".join([*cast(list[str], self._parts), data]))
        else:
            self._inbox.append(b"".join([*cast(list[bytes], self._parts), data]))
        self._parts.clear()
        self._size = 0

    def _upkeep(self) -> None:
        """Nothing came: ping the peer, give up on it, or close for a shutdown."""
        now = time.monotonic()
        if not threading.main_thread().is_alive():
            # NOTE: the gunicorn worker is exiting; its pool waits for this thread.
            self._fail(1001, "server shutting down")
        elif self.ping_interval is None or self.ping_timeout is None:
            return
        elif self._ping_sent is not None and now >= self._ping_sent + self.ping_timeout:
            logger.info("WebSocket peer did not answer a ping in %ss; closing", self.ping_timeout)
            self._fail(1011, "ping timeout")
        elif self._ping_sent is None and now >= self._heard + self.ping_interval:
            self._write(Ping(os.urandom(4)))
            self._ping_sent = now

    # -- Writing and ending (the caller holds the lock) --------------------------

    def _write(self, event: Event) -> None:
        try:
            self._sock.sendall(self._protocol.send(event))
        except OSError:
            self._abandon(1006)
            raise ConnectionClosed("the peer is gone") from None

    def _fail(self, code: int, reason: str) -> None:
        """Close with `code` and give up at once (§7.1.7: "Fail the WebSocket Connection")."""
        self.close_code = code
        if self._protocol.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            with contextlib.suppress(ConnectionClosed):
                self._write(CloseConnection(code, reason))
        self._shut()

    def _abandon(self, code: int) -> None:
        self.close_code = self.close_code or code
        self._shut()

    def _shut(self) -> None:
        """§7.1.1: the server closes the TCP connection first. gunicorn closes the fd."""
        self._done = True
        with contextlib.suppress(OSError):  # already gone
            self._sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        """After the handler: close if it did not, await the peer's Close, shut the socket."""
        if not self._done:
            self.close(1000)
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while not self._done and time.monotonic() < deadline:
            self._read(min(SHUTDOWN_CHECK, max(deadline - time.monotonic(), 0.0)))
        self._inbox.clear()
        with self._lock:
            self._shut()
