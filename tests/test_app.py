"""The app (microweb/app.py): the request lifecycle, middleware stack, options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from wsgi_call import call

from microweb import App, HTTPError, Request
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp


def hello_app() -> App:
    app = App()

    @app.get("/")
    def index(req: Request) -> str:
        return "Hello, World!"

    @app.post("/items")
    def create(req: Request) -> Any:
        return {"got": req.json}

    return app


def test_the_handler_gets_a_microweb_request_bound_to_the_app() -> None:
    app = App()
    seen: list[Any] = []

    @app.get("/r/{id:int}", name="r")
    def r(req: Request, id: int) -> str:
        seen.append(req)
        return req.url_for("r", id=id + 1)

    assert Client(app).get("/r/1").text == "/r/2"
    assert isinstance(seen[0], Request) and seen[0].config is app.request_config


def test_rfc9112_3_2_http11_request_without_host_is_400() -> None:
    app = hello_app()
    assert call(app, "GET", "/").status_code == 200
    missing = _call_without_host(app, "HTTP/1.1")
    assert missing.status_code == 400
    assert _call_without_host(app, "HTTP/1.0").status_code == 200  # Host is optional in 1.0


def _call_without_host(app: WSGIApp, protocol: str) -> Any:
    def without_host(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        del environ["HTTP_HOST"]
        return app(environ, start_response)

    return call(without_host, "GET", "/", SERVER_PROTOCOL=protocol)


def test_use_wraps_outermost_first_and_keeps_the_order() -> None:
    calls: list[str] = []

    class Tag:
        def __init__(self, app: WSGIApp, name: str) -> None:
            self.app, self.name = app, name

        def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            calls.append(self.name)
            return self.app(environ, start_response)

    app = hello_app()
    app.use(Tag, name="outer")
    app.use(Tag, name="inner")
    Client(app).get("/")
    assert calls == ["outer", "inner"]
    assert [options["name"] for _, options in app.middleware] == ["outer", "inner"]


def test_middleware_sees_errors_rendered_by_the_app() -> None:
    statuses: list[str] = []

    def spy(app: WSGIApp) -> WSGIApp:
        def wrapped(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            def recording(status: str, headers: Any, exc_info: Any = None) -> Any:
                statuses.append(status)
                return start_response(status, headers)

            return app(environ, recording)

        return wrapped

    app = hello_app()
    app.use(spy)
    Client(app).get("/nope", status=404)
    assert statuses == ["404 Not Found"]


def test_debug_flag_is_live() -> None:
    app = App()

    @app.get("/boom")
    def boom(req: Request) -> str:
        raise RuntimeError("secret internals")

    assert b"secret internals" not in Client(app).get("/boom", status=500).body
    app.debug = True
    assert b"secret internals" in Client(app).get("/boom", status=500).body


def test_max_body_size_is_per_app() -> None:
    app = App(max_body_size=10)

    @app.post("/")
    def take(req: Request) -> int:
        return len(req.body)  # type: ignore[return-value]

    Client(app).post("/", b"x" * 11, status=413)
    with pytest.raises(ValueError):
        App(max_body_size=-1)


def test_errorhandler_by_status_and_class() -> None:
    app = hello_app()

    class Gone(Exception):
        pass

    @app.get("/gone")
    def gone(req: Request) -> str:
        raise Gone()

    @app.errorhandler(404)
    def not_found(req: Request, error: HTTPError) -> Any:
        return {"missing": req.path_info, "status": error.status}

    @app.errorhandler(Gone)
    def on_gone(req: Request, error: Gone) -> Any:
        raise HTTPError(410)

    client = Client(app)
    # A plain value returned for an error keeps the error's status.
    assert client.get("/nope", status=404).json == {"missing": "/nope", "status": 404}
    # A handler may turn an exception into an HTTP error by raising (or returning) one.
    client.get("/gone", status=410)
    with pytest.raises(TypeError):
        app.errorhandler("404")  # type: ignore[arg-type]


def test_include_and_mount_are_on_the_app() -> None:
    app = App()

    def other(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["SCRIPT_NAME"].encode()]

    app.mount("/other", other)
    assert Client(app).get("/other/x").text == "/other"


def test_rfc9110_10_2_2_location_stays_relative_and_never_reflects_host() -> None:
    """WebOb would rebuild a relative Location from the client's Host header."""
    from microweb import Response

    app = App()

    @app.post("/things")
    def create(req: Request) -> Response:
        response = Response.json({"id": 1}, status=201)
        response.location = "/things/1"
        return response

    response = Client(app).post("/things", headers={"Host": "evil.example"}, status=201)
    assert response.headers["Location"] == "/things/1"


def test_rfc9110_15_5_6_custom_405_handler_keeps_status_and_allow() -> None:
    app = hello_app()

    @app.errorhandler(405)
    def method_not_allowed(req: Request, error: HTTPError) -> Any:
        return {"error": error.title, "allowed": dict(error.headers)["Allow"]}

    response = Client(app).delete("/", status=405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json == {"error": "Method Not Allowed", "allowed": "GET, HEAD, OPTIONS"}


def test_app_static_serves_files_with_validators_and_ranges(tmp_path: Any) -> None:
    """RFC 9110 §14.2 (Range) and §8.8 (validators), through app.static()."""
    (tmp_path / "a.txt").write_bytes(b"0123456789")
    app = App()
    app.static("/static", str(tmp_path), max_age=60)
    client = Client(app)
    whole = client.get("/static/a.txt")
    assert whole.body == b"0123456789"
    assert whole.headers["Cache-Control"] == "max-age=60"
    assert whole.headers["ETag"].startswith('"')
    part = client.get("/static/a.txt", headers={"Range": "bytes=-3"}, status=206)
    assert part.body == b"789"
    client.get("/static/../etc/passwd", status=404)
    client.get("/static/a.txt", headers={"If-None-Match": whole.headers["ETag"]}, status=304)
