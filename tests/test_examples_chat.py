"""examples/chat.py under real gunicorn (one gthread worker): a room across connections.

Python clients (the `websockets` library) and a page in headless Chromium
join the same room: what one sends, every other connection receives. The
browser test loads the page with ``?name=ada&say=hello``; its script opens
the WebSocket, says hello once open, and lists what it receives in the DOM.
A Python client "bob", already in the room, answers it, so the DOM shows
a message that crossed from one connection to another both ways. The DOM
is read once it lists both messages (`browser.dom_when`): they come over
the WebSocket after the page has loaded, when a one-shot dump may be over.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from browser import dom_when, ensure_chromium
from servers import TIMEOUT, fetch, serving
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

GTHREAD = ("--worker-class", "gthread", "--threads", "16")


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start("examples.chat:app", workers=1, args=GTHREAD)


def join(url: str, name: str) -> ClientConnection:
    uri = url.replace("http://", "ws://") + f"/ws?name={name}"
    return connect(uri, open_timeout=TIMEOUT, close_timeout=TIMEOUT)


def until(ws: ClientConnection, wanted: str) -> list[str]:
    """Messages received up to and including `wanted`."""
    seen: list[str] = []
    while not seen or seen[-1] != wanted:
        seen.append(str(ws.recv(timeout=TIMEOUT)))
    return seen


def test_rfc6455_messages_cross_connections_in_order(url: str) -> None:
    # NOTE: the 101 reaches a client before its handler has joined the room;
    # each client waits for its own arrival, so none misses what follows.
    with join(url, "ann") as ann:
        until(ann, "* ann joined")
        with join(url, "bob") as bob:
            until(bob, "* bob joined")
            until(ann, "* bob joined")
            for i in range(20):
                ann.send(f"m{i}")
            expected = [f"ann: m{i}" for i in range(20)]
            assert until(bob, "ann: m19")[-20:] == expected
            assert until(ann, "ann: m19")[-20:] == expected  # the sender is in the room too
            assert fetch(url, "GET", "/healthz").json() == {"visitors": 2}
    with join(url, "cy") as cy:
        cy.send("anyone?")
        assert until(cy, "cy: anyone?")  # the others have left the room


def test_plain_get_of_the_socket_is_426(url: str) -> None:
    reply = fetch(url, "GET", "/ws")
    assert (reply.status, reply.headers["Upgrade"]) == (426, "websocket")


def test_page_in_chromium_sends_and_receives(
    url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ensure_chromium()
    with join(url, "bob") as bob, ThreadPoolExecutor(1) as pool:
        until(bob, "* bob joined")  # bob is in the room before ada arrives

        def answer() -> list[str]:
            seen = until(bob, "ada: hello")
            bob.send("hi ada")
            return seen

        answered = pool.submit(answer)
        page = f"{url}/?name=ada&say=hello"
        listed = "[...document.querySelectorAll('#log li')].map((li) => li.textContent)"
        both = f"['ada: hello', 'bob: hi ada'].every((m) => {listed}.includes(m))"
        dom = html.unescape(dom_when(page, tmp_path_factory.mktemp("chromium"), both))
        assert "* ada joined" in answered.result(timeout=TIMEOUT)
    assert "<li>ada: hello</li>" in dom, dom
    assert "<li>bob: hi ada</li>" in dom, dom
