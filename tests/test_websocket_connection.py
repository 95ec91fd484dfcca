"""microweb/websocket/connection.py: `WebSocket` on one end of a real socket pair.

The other end is a client made of wsproto's client-side `Connection` (the
real protocol implementation) over the other socket: no server, no
gunicorn, so the rules of the `WebSocket` object itself are checked in
milliseconds. tests/test_websocket_e2e.py does the same through gunicorn.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Event, TextMessage

from microweb.websocket import ConnectionClosed, WebSocket


class Peer:
    """The client end: wsproto frames over a plain socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)
        self.protocol = Connection(ConnectionType.CLIENT)

    def send(self, event: Event) -> None:
        self.sock.sendall(self.protocol.send(event))

    def next_event(self) -> Event:
        while True:
            for event in self.protocol.events():
                return event
            self.protocol.receive_data(self.sock.recv(65536) or None)


@pytest.fixture
def pair() -> Iterator[tuple[WebSocket, Peer]]:
    server, client = socket.socketpair()
    try:
        yield WebSocket(server, max_message_size=100, ping_interval=None), Peer(client)
    finally:
        server.close()
        client.close()


def test_rfc6455_5_6_text_is_str_and_binary_is_bytes(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    peer.send(TextMessage("héllo"))
    peer.send(BytesMessage(b"\x00\x01"))
    assert ws.receive(timeout=5) == "héllo"
    assert ws.receive(timeout=5) == b"\x00\x01"


def test_receive_timeout_raises_timeout_error(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    with pytest.raises(TimeoutError):
        ws.receive(timeout=0.05)


def test_send_from_another_thread_while_receive_waits(pair: tuple[WebSocket, Peer]) -> None:
    """The chat room's case: broadcasts arrive from other handlers' threads."""
    ws, peer = pair
    received: list[object] = []
    reader = threading.Thread(target=lambda: received.append(ws.receive(timeout=5)))
    reader.start()
    senders = [threading.Thread(target=ws.send, args=(f"m{i}",)) for i in range(20)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    got = sorted(str(peer.next_event().data) for _ in range(20))  # type: ignore[attr-defined]
    assert got == sorted(f"m{i}" for i in range(20))
    peer.send(TextMessage("done"))
    reader.join()
    assert received == ["done"]


def test_rfc6455_7_1_2_close_then_receive_returns_none(pair: tuple[WebSocket, Peer]) -> None:
    ws, peer = pair
    ws.close(4000, "bye")
    assert peer.next_event() == CloseConnection(4000, "bye")
    peer.send(CloseConnection(4000, "bye"))
    assert ws.receive(timeout=5) is None
    assert ws.close_code == 4000
    with pytest.raises(ConnectionClosed):
        ws.send("too late")


def test_rfc6455_5_5_1_peer_close_is_answered_and_iteration_ends(
    pair: tuple[WebSocket, Peer],
) -> None:
    ws, peer = pair
    peer.send(TextMessage("last"))
    peer.send(CloseConnection(1001, "going away"))
    assert list(ws) == ["last"]
    assert peer.next_event() == CloseConnection(1001, "going away")  # §5.5.1: echoed
    assert ws.close_code == 1001


def test_rfc6455_7_4_1_oversize_fragmented_message_closes_1009(
    pair: tuple[WebSocket, Peer],
) -> None:
    """The limit counts the whole message as it arrives, across fragments."""
    ws, peer = pair
    for _ in range(3):
        peer.send(TextMessage("x" * 40, message_finished=False))
    assert ws.receive(timeout=5) is None
    assert ws.close_code == 1009
    assert isinstance(peer.next_event(), CloseConnection)


def test_send_refuses_other_types(pair: tuple[WebSocket, Peer]) -> None:
    ws, _ = pair
    with pytest.raises(TypeError):
        ws.send({"not": "a message"})  # type: ignore[arg-type]
