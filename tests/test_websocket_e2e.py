"""WebSockets through real gunicorn (gthread), with the `websockets` client library.

tests/websocket_app.py is served by ONE worker with ``--threads 104``, behind
a full middleware stack (SecurityHeaders, RequestID, TrustedHost, CORS, GZip,
CookieSessions): the handshake is an ordinary request to all of them, and
none of them may spoil the 101. `websocket_raw.RawWebSocket` plays the peers
a real client library won't: malformed frames, and a peer that stops
answering pings. Every test is bounded by the clients' timeouts (servers.TIMEOUT).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
from servers import TIMEOUT, GunicornServer, fetch, serving
from websocket_raw import BINARY, PING, PONG, TEXT, RawWebSocket, close_frame, frame
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from wsproto.events import CloseConnection, Ping

pytestmark = pytest.mark.e2e

THREADS = 104
GTHREAD = ("--worker-class", "gthread", "--threads", str(THREADS))
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start("tests.websocket_app:app", workers=1, args=GTHREAD)


def ws_url(url: str, path: str) -> str:
    return url.replace("http://", "ws://") + path


def open_ws(url: str, path: str, **options: object) -> ClientConnection:
    return connect(ws_url(url, path), open_timeout=TIMEOUT, close_timeout=TIMEOUT, **options)  # type: ignore[arg-type]


def closed_with(ws: ClientConnection) -> int | None:
    """The code of the server's Close frame, once the connection is over."""
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=TIMEOUT)
    return ws.close_code


# -- Messages -------------------------------------------------------------------


def test_rfc6455_5_6_echo_text_and_binary(url: str) -> None:
    with open_ws(url, "/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=TIMEOUT) == "héllo"
        ws.send(b"\x00\xff" * 40_000)  # §5.2: a 64-bit payload length
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xff" * 40_000


def test_rfc6455_5_4_fragmented_message_is_one_message(url: str) -> None:
    with open_ws(url, "/echo") as ws:
        ws.send(["frag", "men", "ted"])  # one text message in three frames
        ws.send([b"a", b"b"])
        assert ws.recv(timeout=TIMEOUT) == "fragmented"
        assert ws.recv(timeout=TIMEOUT) == b"ab"


def test_rfc6455_5_5_2_server_answers_a_ping_between_fragments(url: str) -> None:
    """§5.4: control frames may be injected in the middle of a fragmented message."""
    raw = RawWebSocket(url, "/echo")
    raw.send(frame(TEXT, b"one ", fin=False) + frame(PING, b"are you there")
             + frame(0x0, b"message"))  # fmt: skip
    events = raw.events()
    assert next(events) == Ping(b"are you there").response()
    assert next(events).data == "one message"
    raw.close()


# -- Close codes (§7.4.1) ------------------------------------------------------------


def test_rfc6455_7_1_2_client_close_is_answered_with_1000(url: str) -> None:
    with open_ws(url, "/echo") as ws:
        ws.close(1000)
        assert ws.close_code == 1000  # the code of the server's Close frame


def test_rfc6455_7_4_1_message_over_max_size_closes_1009(url: str) -> None:
    with open_ws(url, "/small") as ws:
        ws.send("x" * 1024)
        assert ws.recv(timeout=TIMEOUT) == "x" * 1024  # exactly the limit passes
        ws.send("x" * 1025)
        assert closed_with(ws) == 1009


def test_rfc6455_7_4_1_handler_exception_closes_1011(url: str) -> None:
    with open_ws(url, "/boom") as ws:
        ws.send("go")
        assert closed_with(ws) == 1011


RAW_FAILURES = [
    pytest.param(frame(TEXT, b"caf\xc3"), 1007, id="rfc6455-8.1-invalid-utf8-text-1007"),
    pytest.param(frame(TEXT, b"x", rsv1=True), 1002, id="rfc6455-5.2-rsv1-without-extension-1002"),
    pytest.param(frame(0x3, b"x"), 1002, id="rfc6455-5.2-reserved-opcode-1002"),
    pytest.param(frame(PING, b"x" * 126), 1002, id="rfc6455-5.5-control-frame-over-125-1002"),
    pytest.param(b"\x81\x02hi", 1002, id="rfc6455-5.1-unmasked-client-frame-1002"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "code"), RAW_FAILURES)
def test_protocol_failures_close_with_their_code(url: str, data: bytes, code: int) -> None:
    raw = RawWebSocket(url, "/echo")
    raw.send(data)
    closes = [e for e in raw.events() if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [code]
    raw.close()


def test_rfc6455_7_1_1_server_closes_the_tcp_connection(url: str) -> None:
    raw = RawWebSocket(url, "/echo")
    raw.send(close_frame(1000, "bye"))
    events = list(raw.events())  # ends only when the server closes TCP
    assert events == [CloseConnection(1000, "bye")]
    raw.close()


# -- Liveness -------------------------------------------------------------------------


def test_rfc6455_5_5_2_ping_timeout_closes_a_dead_peer(url: str) -> None:
    """/quiet pings every 0.3 s: answered, it pings again; ignored, it closes 1011."""
    raw = RawWebSocket(url, "/quiet")
    events = raw.events()
    first = next(events)
    assert isinstance(first, Ping)
    raw.send(frame(PONG, first.payload))
    second = next(events)
    assert isinstance(second, Ping)  # still open: the pong was heard
    closes = [e for e in events if isinstance(e, CloseConnection)]  # we stay silent
    assert [c.code for c in closes] == [1011]
    raw.close()


# -- The handshake through the stack --------------------------------------------------


def test_rfc6455_4_2_2_the_101_survives_the_middleware_stack(url: str) -> None:
    raw = RawWebSocket(url, "/echo")
    assert raw.status == 101
    assert [v.lower() for v in raw.header("Connection")] == ["upgrade"]
    assert raw.header("Upgrade") == ["websocket"]
    assert len(raw.header("Sec-WebSocket-Accept")) == 1
    for name in ("Content-Length", "Transfer-Encoding", "Content-Encoding", "Content-Type"):
        assert raw.header(name) == [], name  # RFC 9110 §15.2: a 1xx has no content
    assert raw.header("X-Request-ID")  # the stack did run on the handshake
    raw.send(frame(BINARY, b"still a websocket"))
    assert next(raw.events()).data == b"still a websocket"
    raw.close()


def test_rfc6455_4_2_2_accept_matches_the_key(url: str) -> None:
    with open_ws(url, "/echo") as ws:
        assert ws.response is not None and ws.request is not None
        key = ws.request.headers["Sec-WebSocket-Key"]
        expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        assert ws.response.headers["Sec-WebSocket-Accept"] == expected


def test_rfc9110_15_5_22_plain_get_is_426_with_upgrade(url: str) -> None:
    reply = fetch(url, "GET", "/echo")
    assert reply.status == 426
    assert reply.headers["Upgrade"] == "websocket"


def test_rfc6455_10_2_cross_origin_handshake_refused_with_403(url: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, "/echo", origin="https://evil.example")
    assert refused.value.response.status_code == 403
    with open_ws(url, "/partners", origin="https://partner.example") as ws:
        assert ws.recv(timeout=TIMEOUT) == "hello partner"


def test_trusted_host_runs_on_the_handshake(url: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(url, "/echo", additional_headers={"Host": "evil.example"})
    assert refused.value.response.status_code == 400


def test_session_converters_and_url_for_on_the_handshake(url: str) -> None:
    login = fetch(url, "GET", "/login")
    cookie = login.headers["Set-Cookie"].split(";")[0]
    with open_ws(url, "/rooms/7", additional_headers={"Cookie": cookie}) as ws:
        assert ws.recv(timeout=TIMEOUT) == "7 int ada /rooms/7"


def test_rfc6455_4_2_2_subprotocol_chosen_by_client_preference(url: str) -> None:
    with open_ws(url, "/proto", subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=TIMEOUT) == "chat.v1"


# -- Scale and cleanup ------------------------------------------------------------------

CONNECTIONS = 100
MESSAGES = 20


async def chat(uri: str, n: int) -> list[str]:
    async with websockets.connect(uri, open_timeout=TIMEOUT * 3) as ws:
        for i in range(MESSAGES):
            await ws.send(f"{n}:{i}")
        return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(MESSAGES)]  # type: ignore[misc]


async def many(uri: str) -> list[list[str]]:
    return await asyncio.gather(*(chat(uri, n) for n in range(CONNECTIONS)))


def test_100_concurrent_connections_on_one_worker_lose_no_message(url: str) -> None:
    before = fetch(url, "GET", "/threads").json()
    replies = asyncio.run(many(ws_url(url, "/echo")))
    assert replies == [[f"{n}:{i}" for i in range(MESSAGES)] for n in range(CONNECTIONS)]
    after = fetch(url, "GET", "/threads").json()
    assert after["pid"] == before["pid"]  # one worker served them all


def test_failing_handlers_free_their_threads(url: str) -> None:
    """Handler exceptions, protocol errors, dead peers: each thread goes back to the pool.

    20 failures in a row, then as many concurrent echo connections as the
    pool has threads minus one: with one thread leaked, one of them is never served.
    """
    before = fetch(url, "GET", "/threads").json()
    for _ in range(10):
        with open_ws(url, "/boom") as ws:
            ws.send("go")
            assert closed_with(ws) == 1011
    for _ in range(10):
        raw = RawWebSocket(url, "/echo")
        raw.send(frame(TEXT, b"\xff"))
        assert [e.code for e in raw.events() if isinstance(e, CloseConnection)] == [1007]
        assert raw.eof()
        raw.close()
    assert asyncio.run(many(ws_url(url, "/echo")))[-1][-1] == f"{CONNECTIONS - 1}:{MESSAGES - 1}"
    after = fetch(url, "GET", "/threads").json()
    assert after["threads"] <= max(before["threads"], THREADS + 1)
    assert after["pid"] == before["pid"]


# -- gunicorn's sync worker -----------------------------------------------------------------


def test_sync_worker_refuses_with_500_naming_the_fix(gunicorn_server: object) -> None:
    base = gunicorn_server("tests.websocket_app:app", workers=1)  # type: ignore[operator]
    with pytest.raises(InvalidStatus) as refused:
        open_ws(base, "/echo")
    assert refused.value.response.status_code == 500
    assert b"--worker-class gthread" in refused.value.response.body


WORKER_TIMEOUT = 3  # seconds: gunicorn's --timeout for the test below


def test_open_websocket_outlives_timeout_then_ends_at_shutdown(tmp_path: Path) -> None:
    """``--timeout`` does not kill a long-lived connection; SIGTERM ends it cleanly.

    gthread's heartbeat comes from the worker's main loop, not from the
    thread holding the socket: a WebSocket idle for longer than ``--timeout``
    is still served. On SIGTERM the worker waits for it until its graceful
    timeout, then says 1001 (going away) if it gets there before the
    master's SIGKILL, which uses the same timeout: the client sees 1001 or
    a dropped connection (1006), and gunicorn exits with status 0.

    NOTE: that loop beats once per poll, and an idle poll lasts 1 s, so a
    ``--timeout 1`` was shorter than the beat: a worker kept off the CPU for
    a moment on a loaded machine was killed (WORKER TIMEOUT; pausing an idle
    worker 0.3 s twelve times did it twice, with 3 s never). WORKER_TIMEOUT
    leaves two beats of headroom; the socket idles past it and past the
    master's next check (once a second), when a worker that stopped beating
    would be killed.
    """
    args = (*GTHREAD, "--timeout", str(WORKER_TIMEOUT))
    server = GunicornServer("tests.websocket_app:app", tmp_path / "log", workers=1, args=args)
    base = server.start()
    try:
        with open_ws(base, "/echo") as ws, ThreadPoolExecutor(1) as pool:
            with pytest.raises(TimeoutError):
                # NOTE: the duration under test, not a synchronisation
                ws.recv(timeout=WORKER_TIMEOUT + 2)
            ws.send("still here")
            assert ws.recv(timeout=TIMEOUT) == "still here"
            code = pool.submit(closed_with, ws)
            assert server.stop() == 0
            assert code.result(timeout=TIMEOUT) in (1001, 1006)
        assert "WORKER TIMEOUT" not in server.log()
    finally:
        server.stop()
