"""A chat room: a browser page and a WebSocket per visitor, in one gunicorn worker.

Run it from the repository root with the threaded worker, one process, and
a thread for every visitor (docs/websockets.md explains why):

    microweb run examples.chat:app --workers 1 --worker-class gthread --threads 64

then open http://127.0.0.1:8000/ in two tabs, or talk to it from a terminal:

    python -m websockets ws://127.0.0.1:8000/ws?name=ada

GET /         the page; its script opens ``new WebSocket("/ws?name=...")``
GET /ws       the room (RFC 6455): every text message a visitor sends goes
              to everyone in the room, as ``name: text``; arrivals and
              departures are announced as ``* name joined`` / ``* name left``.
GET /healthz  how many visitors are in the room, as JSON

The room is a set of open WebSockets in this process, guarded by a lock:
each visitor's handler runs in its own gunicorn thread, and broadcasting
calls the others' ``ws.send`` from it (a `WebSocket` may be sent to from
any thread). A second worker process would hold a second, separate room:
sharing one across processes needs a broker (Redis pub/sub), which is out
of this example's scope.
"""

from __future__ import annotations

import threading

from microweb import App, Request, Response
from microweb.middleware import SecurityHeaders
from microweb.websocket import ConnectionClosed, WebSocket

MAX_NAME = 32
MAX_MESSAGE = 4096

app = App()
# NOTE: the page's inline script needs 'unsafe-inline' (a real app serves a
# file instead); connect-src 'self' lets it open ws:// or wss:// to this host.
app.use(
    SecurityHeaders,
    csp="default-src 'self'; script-src 'unsafe-inline'; connect-src 'self'; "
    "frame-ancestors 'none'",
)


class Room:
    """Everyone connected, and a broadcast that skips whoever has gone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: set[WebSocket] = set()

    def join(self, ws: WebSocket) -> None:
        with self.lock:
            self.members.add(ws)

    def leave(self, ws: WebSocket) -> None:
        with self.lock:
            self.members.discard(ws)

    def broadcast(self, text: str) -> None:
        # NOTE: a copy, sent outside the lock: a slow visitor must not stop
        # others from joining while its socket drains.
        with self.lock:
            members = list(self.members)
        for member in members:
            try:
                member.send(text)
            except ConnectionClosed:
                self.leave(member)  # its own handler is finishing too

    def __len__(self) -> int:
        with self.lock:
            return len(self.members)


room = Room()

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Chat</title>
<h1>Chat</h1>
<ul id="log"></ul>
<form id="say"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
  const params = new URLSearchParams(location.search);
  const name = params.get("name") || "guest" + Math.floor(Math.random() * 1000);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/ws?name=${encodeURIComponent(name)}`);
  const log = document.getElementById("log");
  socket.onmessage = (event) => {
    const item = document.createElement("li");
    item.textContent = event.data;
    log.append(item);
  };
  socket.onclose = (event) => { document.title = `closed (${event.code})`; };
  document.getElementById("say").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    if (text.value) socket.send(text.value);
    text.value = "";
  };
  // For tests: `?say=hello` sends one message once connected.
  socket.onopen = () => { if (params.get("say")) socket.send(params.get("say")); };
</script>
</html>
"""


@app.get("/")
def page(req: Request) -> Response:
    return Response(PAGE, content_type="text/html", charset="utf-8")


@app.get("/healthz")
def healthz(req: Request) -> dict[str, int]:
    return {"visitors": len(room)}


@app.websocket("/ws", max_message_size=MAX_MESSAGE)
def chat(req: Request, ws: WebSocket) -> None:
    name = (req.GET.get("name") or "guest").strip()[:MAX_NAME] or "guest"
    room.join(ws)
    room.broadcast(f"* {name} joined")
    try:
        for message in ws:
            if isinstance(message, str):
                room.broadcast(f"{name}: {message}")
    finally:
        room.leave(ws)
        room.broadcast(f"* {name} left")
