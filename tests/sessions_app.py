"""Apps that use a session, for the session tests (in-process and under gunicorn).

`session_app()` is a microweb `App` (no middleware: each test adds its own
with ``app.use``) whose routes each do one thing to ``req.session``; most
answer with the session's contents as JSON. `environ_app` and
`flask_app()` do the same few things to ``environ["microweb.session"]``,
which is how a non-microweb app reaches its session.

``tests.sessions_app:server_app()`` is the gunicorn entry point: the same
routes behind `ServerSessions` on the `SQLiteStore` file named by
``$SESSIONS_DB`` (plain http, so ``secure=False``), plus ``/pid`` (which
worker answered).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from microweb import App, Request, Response
from microweb.types import Environ, StartResponse, WSGIApp


def session_app() -> App:
    app = App()

    @app.get("/read")
    def read(req: Request) -> Any:
        return dict(req.session)

    @app.get("/untouched")
    def untouched(req: Request) -> Any:
        req.session  # noqa: B018 - getting the object is not using it
        return {"ok": True}

    @app.post("/set")
    def set_(req: Request) -> Any:
        req.session.update(req.json)
        return dict(req.session)

    @app.post("/delete/{key}")
    def delete(req: Request, key: str) -> Any:
        del req.session[key]
        return dict(req.session)

    @app.post("/login/{user}")
    def login(req: Request, user: str) -> Any:
        req.session.rotate()  # SECURITY: a new session on login (fixation)
        req.session["user"] = user
        return dict(req.session)

    @app.post("/rotate")
    def rotate(req: Request) -> Any:
        req.session.rotate()
        return dict(req.session)

    @app.post("/logout")
    def logout(req: Request) -> Any:
        req.session.invalidate()
        return dict(req.session)

    @app.post("/logout-then-flash")
    def logout_then_flash(req: Request) -> Any:
        req.session.invalidate()
        req.session["flash"] = "bye"
        return dict(req.session)

    @app.post("/append/{item}")
    def append(req: Request, item: str) -> Any:
        req.session["items"].append(item)  # a nested change: not detected by itself
        if req.GET.get("mark"):
            req.session.modified = True
        return dict(req.session)

    @app.post("/big/{size:int}")
    def big(req: Request, size: int) -> Any:
        req.session["blob"] = "x" * size
        return {"size": size}

    @app.post("/not-json")
    def not_json(req: Request) -> Any:
        req.session["when"] = {1, 2}
        return {}

    @app.get("/vary")
    def vary(req: Request) -> Response:
        response = Response.json(dict(req.session))
        response.headers["Vary"] = "Accept-Encoding"
        return response

    @app.post("/cached")
    def cached(req: Request) -> Response:
        req.session["seen"] = True
        response = Response.json({})
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/fail")
    def fail(req: Request) -> Any:
        req.session["half"] = "done"
        raise RuntimeError("boom")

    @app.get("/pid")
    def pid(req: Request) -> Any:
        return {"pid": os.getpid(), "session": dict(req.session)}

    return app


def environ_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A plain PEP 3333 app: ``/set?k=v`` stores, ``/logout`` invalidates, others read."""
    session = environ["microweb.session"]
    path = environ.get("PATH_INFO", "")
    if path == "/set":
        key, _, value = environ.get("QUERY_STRING", "").partition("=")
        session[key] = value
    elif path == "/logout":
        session.invalidate()
    body = json.dumps(dict(session)).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def flask_app() -> WSGIApp:
    import flask

    app = flask.Flask("sessions_test_app")

    @app.route("/set", methods=["POST"])
    def set_() -> Any:
        session = flask.request.environ["microweb.session"]
        session.update(flask.request.get_json())
        return flask.jsonify(dict(session))

    @app.route("/read")
    def read() -> Any:
        return flask.jsonify(dict(flask.request.environ["microweb.session"]))

    return app.wsgi_app


def server_app() -> App:
    """gunicorn ``tests.sessions_app:server_app()``: ServerSessions on ``$SESSIONS_DB``."""
    from microweb.sessions import ServerSessions
    from microweb.stores import SQLiteStore

    app = session_app()
    app.use(ServerSessions, store=SQLiteStore(os.environ["SESSIONS_DB"]), secure=False)
    return app


# -- Helpers shared by test_sessions_cookie.py and test_sessions_server.py ------------


class Clock:
    """An injectable clock: ``clock()`` is the time, ``clock.advance(s)`` moves it on."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def send(
    app: WSGIApp,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    name: str = "session",
    body: Any = None,
    status: int = 200,
) -> Any:
    """One request through WebTest's lint, with at most our cookie (no cookie jar)."""
    from microweb.testing import Client

    headers = {} if cookie is None else {"Cookie": f"{name}={cookie}"}
    options: dict[str, Any] = {"method": method, "headers": headers, "status": status}
    if body is not None:
        options.update(body=json.dumps(body).encode(), content_type="application/json")
    return Client(app).request(path, **options)


def set_cookies(response: Any, name: str) -> list[str]:
    """The ``Set-Cookie`` header values for cookie `name`."""
    return [
        value
        for key, value in response.headerlist
        if key.lower() == "set-cookie" and value.startswith(f"{name}=")
    ]


def new_cookie(response: Any, name: str = "session") -> str | None:
    """The value the response sets cookie `name` to (``""`` for a deletion), None if unset."""
    values = set_cookies(response, name)
    assert len(values) <= 1, values
    if not values:
        return None
    return values[0].split(";")[0].partition("=")[2]


def attributes(set_cookie: str) -> dict[str, str]:
    """The attributes of a ``Set-Cookie`` value, names lower-cased (RFC 6265bis §5.5)."""
    attrs = {}
    for part in set_cookie.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        attrs[key.lower()] = value
    return attrs


def cookie_server_app() -> App:
    """gunicorn ``tests.sessions_app:cookie_server_app()``: CookieSessions, a test-only key."""
    from microweb.middleware import RequestID, SecurityHeaders
    from microweb.sessions import CookieSessions

    app = session_app()
    app.use(CookieSessions, secret_keys=["test-only-key-" + "k" * 32], secure=False)
    app.use(RequestID)
    app.use(SecurityHeaders)
    return app
