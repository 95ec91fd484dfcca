"""A deliberately minimal WebSocket client on a plain socket, for what real clients won't do.

The `websockets` library is the client of the e2e tests; it never sends a
malformed frame and always answers pings. These tests need a peer that
does both, so this helper writes frames by hand (RFC 6455 §5.2: FIN, RSV,
opcode, the MASK bit and key, the payload length) and reads the server's
frames with wsproto's client-side parser (the real one, not a copy).
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Iterator

from servers import open_raw
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import Event

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """One client frame, masked as §5.3 requires of clients."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


class RawWebSocket:
    """A handshake written by hand, then frames; the server's frames parsed by wsproto."""

    def __init__(self, url: str, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = open_raw(url)
        key = base64.b64encode(os.urandom(16)).decode()
        host = url.removeprefix("http://")
        lines = [
            f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
            "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]  # fmt: skip
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {head!r}")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = [tuple(f.split(": ", 1)) for f in fields]
        self.parser = Connection(ConnectionType.CLIENT)
        self.parser.receive_data(rest)

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def events(self) -> Iterator[Event]:
        """The server's frames as wsproto events, until it closes the TCP connection."""
        while True:
            yield from self.parser.events()
            data = self.sock.recv(65536)
            if not data:
                return
            self.parser.receive_data(data)

    def eof(self) -> bool:
        """True when the server closed the TCP connection (after its Close frame)."""
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason.encode())


__all__ = ["BINARY", "PING", "PONG", "TEXT", "RawWebSocket", "close_frame", "frame"]
