"""Apps to wrap in middleware: each middleware is tested around all three.

- `plain_app`: a hand-written PEP 3333 app (no framework at all);
- `flask_app()`: a Flask app (a WSGI app that is not microweb's);
- `microweb_app()`: a microweb `App`.

Each answers every path with JSON describing what it saw, so a test can
check what a middleware changed in the environ: ``{"method", "path",
"script_name", "remote_addr", "scheme", "host", "server_port",
"request_id"}``, and ``/error`` answers 500 (so tests can check that error
responses are covered too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from microweb import App, Request
from microweb.types import Environ, StartResponse, WSGIApp


def seen(environ: Environ) -> dict[str, Any]:
    return {
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "script_name": environ.get("SCRIPT_NAME", ""),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "scheme": environ.get("wsgi.url_scheme"),
        "host": environ.get("HTTP_HOST"),
        "server_port": environ.get("SERVER_PORT"),
        "request_id": environ.get("microweb.request_id"),
    }


def plain_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/error":
        body = b"boom"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]
    body = json.dumps(seen(environ)).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def flask_app() -> WSGIApp:
    import flask  # only the tests need Flask

    app = flask.Flask("middleware_test_app")

    @app.route("/error")
    def error() -> Any:
        flask.abort(500)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    @app.route("/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def everything(path: str) -> Any:
        return flask.jsonify(seen(flask.request.environ))

    return app.wsgi_app


def microweb_app() -> App:
    app = App()

    @app.route("/error", methods=["GET", "POST"])
    def error(req: Request) -> Any:
        raise RuntimeError("boom")

    @app.route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], name="any")
    def everything(req: Request, path: str) -> Any:
        return seen(req.environ)

    @app.route("/", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], name="root")
    def root(req: Request) -> Any:
        return seen(req.environ)

    return app


#: (id, factory) rows for pytest.mark.parametrize: the app a middleware wraps.
APPS: list[tuple[str, Callable[[], WSGIApp]]] = [
    ("plain", lambda: plain_app),
    ("flask", flask_app),
    ("microweb", microweb_app),
]
