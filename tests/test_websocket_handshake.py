"""microweb/websocket/handshake.py: the opening handshake's checks (RFC 6455 §4.2), in-process.

Each row sends one handshake to a WebSocket route through `Client` (WSGI
lint on) and checks the refusal, or that a valid handshake got past every
check: in-process there is no gunicorn socket, so the last answer is the
route's own 500 that names the fix (tests/test_websocket_e2e.py shows the
101 under real gunicorn). `accept` is also called directly, for the 101's
headers (§4.2.2) and the subprotocol choice (§4.2.2 item 5.4, §11.3.4).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import pytest

from microweb import App
from microweb.middleware import ProxyFix
from microweb.testing import Client
from microweb.websocket import NEEDS_GTHREAD
from microweb.websocket.handshake import OriginPolicy, accept

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example key
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": KEY,
}
HTTP11 = {"SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "example.com"}


def make_app() -> App:
    app = App()

    @app.websocket("/ws")
    def ws_route(req: Any, ws: Any) -> None:
        raise AssertionError("never runs in-process")

    @app.websocket("/partners", origins=["https://partner.example"])
    def partners(req: Any, ws: Any) -> None:
        raise AssertionError("never runs in-process")

    return app


def send(path: str = "/ws", method: str = "GET", environ: dict[str, str] | None = None,
         **headers: str | None) -> Any:  # fmt: skip
    """One handshake: HANDSHAKE with `headers` changed (None removes one)."""
    sent = {**HANDSHAKE, **{k.replace("_", "-"): v for k, v in headers.items()}}
    client = Client(make_app(), extra_environ={**HTTP11, **(environ or {})})
    call = getattr(client, method.lower())
    return call(path, headers={k: v for k, v in sent.items() if v is not None}, expect_errors=True)


REFUSALS = [
    pytest.param({"Upgrade": None, "Connection": None}, 426, ("Upgrade", "websocket"),
                 id="rfc9110-15.5.22-plain-get-426-names-websocket"),
    pytest.param({"Upgrade": "h2c"}, 426, ("Upgrade", "websocket"),
                 id="rfc6455-4.2.1-upgrade-not-websocket-426"),
    pytest.param({"Connection": "keep-alive"}, 400, None,
                 id="rfc6455-4.2.1-connection-without-upgrade-400"),
    pytest.param({"Sec_WebSocket_Version": "8"}, 426, ("Sec-WebSocket-Version", "13"),
                 id="rfc6455-4.4-old-version-426-says-13"),
    pytest.param({"Sec_WebSocket_Version": None}, 426, ("Sec-WebSocket-Version", "13"),
                 id="rfc6455-4.4-missing-version-426-says-13"),
    pytest.param({"Sec_WebSocket_Key": None}, 400, None, id="rfc6455-4.2.1-missing-key-400"),
    pytest.param({"Sec_WebSocket_Key": "c2hvcnQ="}, 400, None,
                 id="rfc6455-4.2.1-key-not-16-bytes-400"),
    pytest.param({"Sec_WebSocket_Key": "not base64!!!!!!!!!!!!=="}, 400, None,
                 id="rfc6455-4.2.1-key-not-base64-400"),
    pytest.param({"Origin": "https://evil.example"}, 403, None,
                 id="rfc6455-10.2-cross-origin-403"),
    pytest.param({"Origin": "null"}, 403, None, id="rfc6455-10.2-null-origin-403"),
    pytest.param({"Origin": "https://example.com"}, 403, None,
                 id="rfc6455-10.2-other-scheme-is-another-origin-403"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "status", "header"), REFUSALS)
def test_refused_handshakes(changes: dict[str, str | None], status: int,
                            header: tuple[str, str] | None) -> None:  # fmt: skip
    reply = send(**changes)
    assert reply.status_int == status
    assert "Sec-WebSocket-Accept" not in reply.headers
    if header is not None:
        assert reply.headers[header[0]] == header[1]


def test_rfc6455_4_1_head_is_not_a_handshake_426() -> None:
    assert send(method="HEAD").status_int == 426


def test_rfc6455_4_1_post_is_405_with_allow() -> None:
    reply = send(method="POST")
    assert reply.status_int == 405
    assert reply.headers["Allow"] == "GET, HEAD, OPTIONS"


def test_rfc9113_8_2_2_http2_request_gets_426_without_upgrade() -> None:
    """HTTP/2 forbids `Upgrade` (connection-specific); RFC 8441 is not served."""
    reply = send(environ={"SERVER_PROTOCOL": "HTTP/2"})
    assert reply.status_int == 426
    assert "Upgrade" not in reply.headers


ALLOWED = [
    pytest.param("/ws", {}, id="rfc6455-10.2-no-origin-is-not-a-browser"),
    pytest.param("/ws", {"Origin": "http://example.com"}, id="rfc6455-10.2-same-origin"),
    pytest.param("/ws", {"Origin": "HTTP://EXAMPLE.COM:80"},
                 id="rfc6454-6.1-same-origin-normalised"),
    pytest.param("/partners", {"Origin": "https://partner.example"}, id="listed-origin"),
    pytest.param("/ws", {"Sec_WebSocket_Version": " 13 ", "Connection": "keep-alive, Upgrade",
                         "Upgrade": "WebSocket"}, id="rfc9110-5.6.1-token-lists"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "changes"), ALLOWED)
def test_valid_handshake_passes_every_check(
    path: str, changes: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """In-process there is no gunicorn socket: the route refuses, naming the fix."""
    with caplog.at_level(logging.ERROR, logger="microweb"):
        reply = send(path, **changes)
    assert reply.status_int == 500
    assert "--worker-class gthread" in reply.text
    assert NEEDS_GTHREAD in caplog.text


def test_rfc6455_10_2_origin_is_checked_against_the_host_proxyfix_established() -> None:
    app = make_app()
    app.use(ProxyFix, x_proto=1, x_host=1)
    client = Client(app, extra_environ=HTTP11)
    headers = {**HANDSHAKE, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example"}
    ok = client.get("/ws", headers={**headers, "Origin": "https://chat.example"},
                    expect_errors=True)  # fmt: skip
    refused = client.get("/ws", headers={**headers, "Origin": "http://example.com"},
                         expect_errors=True)  # fmt: skip
    assert (ok.status_int, refused.status_int) == (500, 403)


def environ(**headers: str) -> dict[str, Any]:
    env = {"REQUEST_METHOD": "GET", **HTTP11, "wsgi.url_scheme": "http"}
    for name, value in {**HANDSHAKE, **headers}.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def test_rfc6455_4_2_2_accept_token_and_101_headers() -> None:
    accepted = accept(environ(), OriginPolicy(None), ())
    digest = hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    assert dict(accepted.headers) == {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": base64.b64encode(digest).decode(),
    }
    assert accepted.headers[2][1] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # §1.3's worked example
    assert accepted.subprotocol is None


SUBPROTOCOLS = [
    pytest.param("chat.v1, chat.v2", ("chat.v2", "chat.v1"), "chat.v1",
                 id="rfc6455-11.3.4-client-preference-wins"),
    pytest.param("mqtt", ("chat.v1",), None, id="rfc6455-4.2.2-none-in-common-no-header"),
    pytest.param("", ("chat.v1",), None, id="rfc6455-4.2.2-none-offered"),
    pytest.param("Chat.V1", ("chat.v1",), None, id="rfc6455-4.1-subprotocols-case-sensitive"),
]  # fmt: skip


@pytest.mark.parametrize(("offered", "supported", "chosen"), SUBPROTOCOLS)
def test_subprotocol_negotiation(offered: str, supported: tuple[str, ...],
                                 chosen: str | None) -> None:  # fmt: skip
    accepted = accept(environ(**{"Sec-WebSocket-Protocol": offered}), OriginPolicy(None), supported)
    assert accepted.subprotocol == chosen
    assert dict(accepted.headers).get("Sec-WebSocket-Protocol") == chosen


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"origins": "https://a.example"}, TypeError, id="origins-string"),
        pytest.param({"origins": ["https://a.example/"]}, ValueError, id="origin-with-path"),
        pytest.param({"subprotocols": "chat"}, TypeError, id="subprotocols-string"),
        pytest.param({"max_message_size": 0}, ValueError, id="max-size-zero"),
        pytest.param({"ping_interval": -1}, ValueError, id="negative-ping"),
    ],
)
def test_bad_options_fail_at_registration(options: dict[str, Any], error: type[Exception]) -> None:
    app = App()
    with pytest.raises(error):
        app.websocket("/ws", **options)(lambda req, ws: None)


def test_route_is_named_after_its_handler_and_url_for_works() -> None:
    app = App()

    @app.websocket("/rooms/{room:int}")
    def room(req: Any, ws: Any, room: int) -> None: ...

    assert app.url_for("room", room=3) == "/rooms/3"


def test_handler_must_take_the_websocket() -> None:
    app = App()
    with pytest.raises(TypeError, match="no parameter for the WebSocket"):
        app.websocket("/ws")(lambda req: None)


def test_path_parameters_are_checked_against_the_handler_less_ws() -> None:
    """Registration checks the handler as called: (req, ws, room) is checked as (req, room)."""
    app = App()
    with pytest.raises(TypeError, match="'room'"):

        @app.websocket("/rooms/{room}")
        def forgot_room(req: Any, ws: Any) -> None: ...

    @app.websocket("/rooms/{room}")
    def room(req: Any, ws: Any, room: str) -> None: ...
