"""The WebSocket routes the e2e tests serve under gunicorn (tests/test_websocket_e2e.py).

``/echo`` echoes; ``/small`` caps messages at 1 KiB; ``/boom`` raises after
one message; ``/quiet`` pings every 0.3 s; ``/proto`` speaks ``chat.v2`` or
``chat.v1``; ``/rooms/{room:int}`` says its converted parameter and the
session's user; ``/threads`` reports the worker's threads and open sockets,
so a test can see that nothing leaked.
"""

from __future__ import annotations

import os
import threading

from microweb import App
from microweb.middleware import CORS, GZip, RequestID, SecurityHeaders, TrustedHost
from microweb.sessions import CookieSessions

app = App()


@app.websocket("/echo")
def echo(req, ws):
    for message in ws:
        ws.send(message)


@app.websocket("/small", max_message_size=1024)
def small(req, ws):
    for message in ws:
        ws.send(message)


@app.websocket("/boom")
def boom(req, ws):
    ws.receive()
    raise RuntimeError("the handler failed on purpose")


@app.websocket("/quiet", ping_interval=0.3)
def quiet(req, ws):
    for message in ws:
        ws.send(message)


@app.websocket("/proto", subprotocols=["chat.v2", "chat.v1"])
def proto(req, ws):
    ws.send(ws.subprotocol or "")


@app.websocket("/partners", origins=["https://partner.example"])
def partners(req, ws):
    ws.send("hello partner")


@app.websocket("/rooms/{room:int}", name="room")
def room(req, ws, room):
    user = req.session.get("user")
    ws.send(f"{room} {type(room).__name__} {user} {req.url_for('room', room=room)}")


@app.get("/login")
def login(req):
    req.session["user"] = "ada"
    return "logged in"


@app.get("/threads")
def threads(req):
    return {"pid": os.getpid(), "threads": threading.active_count()}


app.use(SecurityHeaders)
app.use(RequestID)
app.use(TrustedHost, allowed_hosts=["127.0.0.1", "localhost"])
app.use(CORS, allow_origins=["https://partner.example"])
app.use(GZip, minimum_size=0)
app.use(CookieSessions, secret_keys=["test-only-secret-key-for-websockets"], secure=False)
