"""microweb/errors.py: HTTPError, problem+json / HTML rendering, error handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_outages import locked_sqlite, refused_redis

from microweb import App, HTTPError, Request, Response
from microweb.errors import STORE_UNAVAILABLE, problem_body
from microweb.stores import StoreError
from microweb.stores.base import STORE_RETRY_AFTER
from microweb.testing import Client

PROBLEM_JSON = "application/problem+json"
HTML = "text/html; charset=utf-8"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SECRET = "db-password-hunter2"


class NoteMissing(LookupError):
    """An application exception, for the class-keyed error handlers."""


def make_app(debug: bool = False) -> App:
    app = App(debug=debug)

    @app.get("/error/{status:int}")
    def error(req: Request, status: int) -> None:
        raise HTTPError(status, req.GET.get("detail"))

    @app.get("/returned/{status:int}")
    def returned(req: Request, status: int) -> HTTPError:
        return HTTPError(status, req.GET.get("detail"))

    @app.get("/crash")
    def crash(req: Request) -> None:
        raise RuntimeError(f"{SECRET} in {__file__}")

    @app.get("/note-missing")
    def note_missing(req: Request) -> None:
        raise NoteMissing("note 7")

    @app.get("/key-error")
    def key_error(req: Request) -> None:
        raise KeyError("k")

    @app.get("/index-error")
    def index_error(req: Request) -> None:
        raise IndexError("i")

    return app


def headers_for(accept: str | None) -> dict[str, str]:
    return {} if accept is None else {"Accept": accept}


# -- Negotiation: RFC 9110 §12.5.1 between RFC 9457 problem+json and HTML --------

JSON_ACCEPTS = [
    pytest.param(None, id="no-accept"),
    pytest.param("*/*", id="any"),
    pytest.param("application/json", id="json"),
    pytest.param("application/problem+json", id="problem-json"),
    pytest.param("text/html;q=0.5, application/json", id="json-preferred"),
    pytest.param("", id="empty-accept"),
    pytest.param("text/html;q=abc", id="malformed-accept"),
]
HTML_ACCEPTS = [
    pytest.param(BROWSER, id="browser"),
    pytest.param("text/html", id="html"),
    pytest.param("application/json;q=0.5, text/html", id="html-preferred"),
]


@pytest.mark.parametrize("accept", JSON_ACCEPTS)
@pytest.mark.parametrize(
    ("path", "status", "title", "detail"),
    [
        pytest.param("/nowhere", 404, "Not Found", None, id="router-404"),
        pytest.param("/error/404?detail=no+such+note", 404, "Not Found", "no such note",
                     id="raised-404"),
        pytest.param("/error/400", 400, "Bad Request", None, id="raised-400"),
        pytest.param("/error/403", 403, "Forbidden", None, id="raised-403"),
        pytest.param("/error/409?detail=taken", 409, "Conflict", "taken", id="raised-409"),
        pytest.param("/error/429", 429, "Too Many Requests", None, id="raised-429"),
        pytest.param("/error/503", 503, "Service Unavailable", None, id="raised-503"),
        pytest.param("/returned/410?detail=gone", 410, "Gone", "gone", id="returned-410"),
    ],
)
def test_problem_json_when_the_client_accepts_json(
    accept: str | None, path: str, status: int, title: str, detail: str | None
) -> None:
    """RFC 9457 §3.1: type "about:blank" (§4.2.1: then title is the status's reason phrase,
    RFC 9110 §15), status, detail; sent when Accept allows JSON or says nothing
    (RFC 9110 §12.5.1)."""
    res = Client(make_app()).get(path, headers=headers_for(accept), status=status)
    assert res.headers["Content-Type"] == PROBLEM_JSON
    assert res.status == f"{status} {title}"
    expected: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        expected["detail"] = detail
    assert json.loads(res.body) == expected


@pytest.mark.parametrize(
    ("error", "extensions", "members"),
    [
        pytest.param(HTTPError(404), None, ["type", "title", "status"], id="no-detail"),
        pytest.param(HTTPError(400, "x"), None, ["type", "title", "status", "detail"],
                     id="detail"),
        pytest.param(HTTPError(500), {"exception": "E"}, ["type", "title", "status", "exception"],
                     id="extension-after-the-standard-members"),
    ],
)  # fmt: skip
def test_rfc9457_3_one_problem_builder(
    error: HTTPError, extensions: dict[str, Any] | None, members: list[str]
) -> None:
    """RFC 9457 §3.1 members, then §3.2 extensions (the debug page's): one builder for both."""
    problem = json.loads(problem_body(error, extensions))
    assert list(problem) == members
    assert (problem["type"], problem["status"]) == ("about:blank", error.status)


@pytest.mark.parametrize("accept", HTML_ACCEPTS)
@pytest.mark.parametrize(
    ("path", "status", "heading", "detail"),
    [
        pytest.param("/nowhere", 404, "404 Not Found", None, id="router-404"),
        pytest.param("/error/409?detail=taken", 409, "409 Conflict", "taken", id="raised-409"),
    ],
)
def test_html_when_the_client_prefers_html(
    accept: str, path: str, status: int, heading: str, detail: str | None
) -> None:
    """RFC 9110 §12.5.1: a browser ranks text/html above JSON, so it gets an HTML page."""
    res = Client(make_app()).get(path, headers={"Accept": accept}, status=status)
    assert res.headers["Content-Type"] == HTML
    assert f"<h1>{heading}</h1>" in res.text
    if detail is not None:
        assert detail in res.text


@pytest.mark.parametrize(
    ("detail", "escaped"),
    [
        pytest.param("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;",
                     id="script-tag"),
        pytest.param('"><img src=x onerror=alert(1)>', "&quot;&gt;&lt;img src=x onerror",
                     id="attribute-breakout"),
        pytest.param("a & b", "a &amp; b", id="ampersand"),
    ],
)
def test_html_escapes_the_detail(detail: str, escaped: str) -> None:
    """HTML escaping of the detail (XSS, CWE-79): the HTML page never echoes markup."""
    app = App()

    @app.get("/")
    def fail(req: Request) -> None:
        raise HTTPError(400, detail)

    res = Client(app).get("/", headers={"Accept": BROWSER}, status=400)
    assert escaped in res.text
    assert detail not in res.text


def test_problem_json_keeps_the_detail_as_data() -> None:
    """RFC 9457 §3.1.4: detail is a JSON string; markup in it is data, not HTML."""
    app = App()

    @app.get("/")
    def fail(req: Request) -> None:
        raise HTTPError(400, "<script>alert(1)</script>")

    res = Client(app).get("/", headers={"Accept": "application/json"}, status=400)
    assert res.json["detail"] == "<script>alert(1)</script>"


# -- Unhandled exceptions: RFC 9110 §15.6.1, nothing internal in the body --------


@pytest.mark.parametrize("accept", [*JSON_ACCEPTS[:3], *HTML_ACCEPTS[:1]])
def test_unhandled_exception_is_a_bare_500_and_logged(
    accept: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9110 §15.6.1: a bug is a 500 whose body holds no traceback, exception text or
    file path (CWE-209); the traceback goes to the "microweb" logger."""
    caplog.set_level(logging.ERROR, logger="microweb")
    res = Client(make_app()).get("/crash", headers=headers_for(accept), status=500)
    for leak in (SECRET, "Traceback", "RuntimeError", __file__, "test_errors", ".py"):
        assert leak not in res.text
    if res.content_type == PROBLEM_JSON:
        assert res.json == {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    else:
        assert "<h1>500 Internal Server Error</h1>" in res.text
    records = [r for r in caplog.records if r.name == "microweb" and r.levelno == logging.ERROR]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert records[0].exc_info[0] is RuntimeError
    assert "Traceback (most recent call last)" in caplog.text
    assert SECRET in caplog.text


def test_http_errors_are_not_logged_as_bugs(caplog: pytest.LogCaptureFixture) -> None:
    """RFC 9110 §15.5: a 4xx is the client's error, not an unhandled exception."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    client = Client(make_app())
    client.get("/nowhere", status=404)
    client.get("/error/409", status=409)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param("application/json", PROBLEM_JSON, id="json"),
        pytest.param(BROWSER, HTML, id="html"),
    ],
)
def test_debug_shows_the_traceback(accept: str, content_type: str) -> None:
    """App(debug=True): the 500 body carries the traceback (see test_debug_page.py)."""
    res = Client(make_app(debug=True)).get("/crash", headers={"Accept": accept}, status=500)
    assert res.headers["Content-Type"] == content_type
    text = res.text if content_type == HTML else res.json["exception"]
    assert f"RuntimeError: {SECRET}" in text
    if content_type == PROBLEM_JSON:
        assert res.json["traceback"][-1]["function"] == "crash"


def test_debug_html_traceback_is_escaped() -> None:
    """App(debug=True): exception text is escaped in the HTML page (CWE-79)."""
    app = App(debug=True)

    @app.get("/")
    def crash(req: Request) -> None:
        raise RuntimeError("<script>alert(1)</script>")

    res = Client(app).get("/", headers={"Accept": BROWSER}, status=500)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.text
    assert "<script>" not in res.text


# -- @app.errorhandler -------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/nowhere", id="router-404"),
        pytest.param("/error/404", id="raised-404"),
        pytest.param("/returned/404", id="returned-404"),
    ],
)
def test_errorhandler_by_status_customises_404(path: str) -> None:
    """@app.errorhandler(404) replaces the default page for every 404 (RFC 9110 §15.5.5),
    the router's own included; the handler gets the HTTPError."""
    app = make_app()
    seen: list[Any] = []

    @app.errorhandler(404)
    def not_found(req: Request, error: HTTPError) -> Response:
        seen.append(error)
        return Response.json({"custom": True, "path": req.path_info}, status=404)

    res = Client(app).get(path, status=404)
    assert res.json == {"custom": True, "path": path}
    assert len(seen) == 1
    assert isinstance(seen[0], HTTPError)
    assert seen[0].status == 404


def test_errorhandler_for_500_customises_unhandled_exceptions() -> None:
    """@app.errorhandler(500) replaces the page for a bug (RFC 9110 §15.6.1)."""
    app = make_app()

    @app.errorhandler(500)
    def oops(req: Request, error: HTTPError) -> Response:
        return Response("custom oops", status=500)

    res = Client(app).get("/crash", status=500)
    assert res.text == "custom oops"


@pytest.mark.parametrize(
    ("registered", "path", "expected"),
    [
        pytest.param([NoteMissing], "/note-missing", "NoteMissing", id="exact-class"),
        pytest.param([LookupError], "/note-missing", "LookupError", id="base-class-via-mro"),
        pytest.param([LookupError], "/key-error", "LookupError", id="builtin-subclass"),
        pytest.param([LookupError, KeyError], "/key-error", "KeyError", id="most-specific-wins"),
        pytest.param([KeyError, LookupError], "/key-error", "KeyError",
                     id="most-specific-wins-any-order"),
        pytest.param([LookupError, KeyError], "/index-error", "LookupError",
                     id="sibling-falls-to-base"),
        pytest.param([Exception], "/crash", "Exception", id="catch-all"),
    ],
)
def test_errorhandler_by_exception_class(
    registered: list[type[BaseException]], path: str, expected: str
) -> None:
    """@app.errorhandler(SomeException) handles it and its subclasses, the nearest class in
    the exception's MRO winning; the handler gets the exception itself."""
    app = make_app()
    seen: list[BaseException] = []

    def handler_for(cls: type[BaseException]) -> Callable[[Request, BaseException], Response]:
        def handle(req: Request, exc: BaseException) -> Response:
            seen.append(exc)
            return Response.json({"handled_by": cls.__name__}, status=409)

        return handle

    for cls in registered:
        app.errorhandler(cls)(handler_for(cls))
    res = Client(app).get(path, status=409)
    assert res.json == {"handled_by": expected}
    assert len(seen) == 1
    assert not isinstance(seen[0], HTTPError)


def _map_returned(req: Request, exc: BaseException) -> HTTPError:
    return HTTPError(404, f"mapped from {type(exc).__name__}")


def _map_raised(req: Request, exc: BaseException) -> HTTPError:
    raise HTTPError(404, f"mapped from {type(exc).__name__}")


@pytest.mark.parametrize(
    ("key", "path", "handler", "detail"),
    [
        pytest.param(NoteMissing, "/note-missing", _map_returned, "mapped from NoteMissing",
                     id="class-handler-returns-httperror"),
        pytest.param(NoteMissing, "/note-missing", _map_raised, "mapped from NoteMissing",
                     id="class-handler-raises-httperror"),
        pytest.param(404, "/nowhere", _map_returned, "mapped from HTTPError",
                     id="404-handler-returns-404-no-loop"),
        pytest.param(404, "/nowhere", _map_raised, "mapped from HTTPError",
                     id="404-handler-raises-404-no-loop"),
    ],
)
def test_errorhandler_may_map_to_an_httperror(
    key: int | type[BaseException],
    path: str,
    handler: Callable[[Request, BaseException], HTTPError],
    detail: str,
) -> None:
    """An error handler may turn an exception into an HTTPError (returned, like a route
    handler may, or raised): it is rendered as RFC 9457 problem+json, once, no loop."""
    app = make_app()
    app.errorhandler(key)(handler)
    res = Client(app).get(path, headers={"Accept": "application/json"}, status=404)
    assert res.json == {"type": "about:blank", "title": "Not Found", "status": 404,
                        "detail": detail}


def test_errorhandler_rejects_other_keys() -> None:
    """errorhandler takes a status code or an exception class."""
    with pytest.raises(TypeError):
        make_app().errorhandler("404")  # type: ignore[arg-type]


def _raises(req: Request, error: BaseException) -> Any:
    raise RuntimeError("the error page is broken too")


def _returns_tuple(req: Request, error: BaseException) -> Any:
    return ("not sendable", 404)


@pytest.mark.parametrize(
    ("key", "path", "status"),
    [
        pytest.param(404, "/nowhere", 404, id="404-handler-raises"),
        pytest.param(409, "/error/409", 409, id="409-handler-raises"),
        pytest.param(500, "/crash", 500, id="500-handler-raises"),
        pytest.param(NoteMissing, "/note-missing", 500, id="class-handler-raises"),
    ],
)
@pytest.mark.parametrize(
    "handler",
    [pytest.param(_raises, id="raises"), pytest.param(_returns_tuple, id="returns-tuple")],
)
def test_failing_errorhandler_falls_back_to_the_default_page(
    key: int | type[BaseException],
    path: str,
    status: int,
    handler: Callable[[Request, BaseException], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error handler that fails in turn gives the default problem+json page with the
    original status (RFC 9457 §3.1.2: status matches the response), logged, no loop."""
    caplog.set_level(logging.ERROR, logger="microweb")
    app = make_app()
    app.errorhandler(key)(handler)
    res = Client(app).get(path, headers={"Accept": "application/json"}, status=status)
    assert res.content_type == PROBLEM_JSON
    assert res.json["status"] == status
    assert "the error page is broken" not in res.text
    assert any(r.name == "microweb" and r.levelno >= logging.ERROR for r in caplog.records)


# -- HTTPError ---------------------------------------------------------------------


@pytest.mark.parametrize("accept", [pytest.param("application/json", id="json"),
                                    pytest.param(BROWSER, id="html")])
@pytest.mark.parametrize(
    ("error", "header", "value"),
    [
        pytest.param(
            lambda: HTTPError(401, "log in", {"WWW-Authenticate": 'Bearer realm="api"'}),
            "WWW-Authenticate", 'Bearer realm="api"', id="401-www-authenticate-mapping",
        ),
        pytest.param(
            lambda: HTTPError(429, headers=[("Retry-After", "30")]),
            "Retry-After", "30", id="429-retry-after-pairs",
        ),
        pytest.param(
            lambda: HTTPError(503, headers={"Retry-After": "120"}),
            "Retry-After", "120", id="503-retry-after",
        ),
    ],
)
def test_httperror_headers_are_sent(
    accept: str, error: Callable[[], HTTPError], header: str, value: str
) -> None:
    """RFC 9110 §15.5.2 / §11.6.1: a 401 carries WWW-Authenticate; §10.2.3: 429 (RFC 6585
    §4) and 503 may carry Retry-After. HTTPError(headers=...) sends them, in both forms."""
    app = App()
    made = error()

    @app.get("/")
    def fail(req: Request) -> None:
        raise made

    res = Client(app).get("/", headers={"Accept": accept}, status=made.status)
    assert res.headers[header] == value


def test_router_405_carries_allow() -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry Allow; HTTPError headers survive rendering."""
    app = make_app()
    res = Client(app).post("/crash", status=405)
    assert res.content_type == PROBLEM_JSON
    assert res.headers["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("status", [0, 100, 200, 204, 302, 304, 399, 600, 999])
def test_httperror_status_must_be_4xx_or_5xx(status: int) -> None:
    """RFC 9110 §15.5 (4xx) and §15.6 (5xx) are the error classes; anything else is not
    an HTTPError."""
    with pytest.raises(ValueError, match=str(status)):
        HTTPError(status)


@pytest.mark.parametrize("status", [400, 418, 451, 499, 500, 599])
def test_httperror_accepts_every_4xx_and_5xx(status: int) -> None:
    """RFC 9110 §15: any 4xx/5xx code, registered or not (§15: unknown codes are allowed)."""
    assert HTTPError(status).status == status


@pytest.mark.parametrize("how", [pytest.param("raised", id="raised"),
                                 pytest.param("returned", id="returned")])
def test_handler_may_return_an_httperror(how: str) -> None:
    """A handler may return an HTTPError instead of raising it: the same response
    (RFC 9457 §3.1), and the same error handlers apply."""
    client = Client(make_app())
    path = f"/{'error' if how == 'raised' else 'returned'}/409?detail=taken"
    res = client.get(path, headers={"Accept": "application/json"}, status=409)
    assert res.json == {"type": "about:blank", "title": "Conflict", "status": 409,
                        "detail": "taken"}

    app = make_app()

    @app.errorhandler(409)
    def conflict(req: Request, error: HTTPError) -> Response:
        return Response.json({"custom": error.detail}, status=409)

    assert Client(app).get(path, status=409).json == {"custom": "taken"}


# -- A store outage in a handler: RFC 9110 §15.6.4 503 with Retry-After, not a 500 --------


def store_app(store: Any, debug: bool = False) -> App:
    """An app whose handlers write to a real store (as invalidate() or auth.revoke do)."""
    app = App(debug=debug)

    @app.post("/write")
    def write(req: Request) -> dict[str, bool]:
        store.set("errors-test", b"1")
        return {"written": True}

    return app


@pytest.fixture(params=["redis-refused", "sqlite-locked"])
def down_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A real store that fails: Redis on a port nobody listens on, or SQLite write-locked."""
    if request.param == "redis-refused":
        with refused_redis() as store:
            yield store
    else:
        with locked_sqlite(tmp_path / "locked.db") as locked:
            locked.lock()
            yield locked.store


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param("application/json", PROBLEM_JSON, id="json"),
        pytest.param(BROWSER, HTML, id="html"),
    ],
)
def test_a_store_error_in_a_handler_is_a_503_with_retry_after(
    down_store: Any, accept: str, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9110 §15.6.4 / §10.2.3: an outage, not a bug: 503 with when to retry; the body
    names no store, path or exception (CWE-209); a warning, not a traceback, is logged."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    res = Client(store_app(down_store)).post("/write", headers={"Accept": accept}, status=503)
    assert res.content_type == content_type.split(";")[0]
    assert res.headers["Retry-After"] == str(STORE_RETRY_AFTER)
    assert STORE_UNAVAILABLE in res.text
    for leak in ("Traceback", "StoreError", "SQLite", "locked", "refused", "redis", "127.0.0.1"):
        assert leak not in res.text
    if content_type == PROBLEM_JSON:
        assert res.json == {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": STORE_UNAVAILABLE,
        }
    records = [r for r in caplog.records if r.name == "microweb"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert records[0].exc_info is None
    assert "POST /write" in records[0].getMessage()
    assert ("locked" in records[0].getMessage()) or ("refused" in records[0].getMessage().lower())


def test_a_store_error_shows_its_traceback_with_debug(down_store: Any) -> None:
    res = Client(store_app(down_store, debug=True)).post("/write", status=503)
    assert "StoreError" in res.json["exception"]
    assert res.headers["Retry-After"] == str(STORE_RETRY_AFTER)


def test_errorhandler_for_store_error_wins(
    down_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """@app.errorhandler(StoreError) replaces the 503 (and, handled, it is not logged)."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    app = store_app(down_store)
    seen: list[BaseException] = []

    @app.errorhandler(StoreError)
    def degraded(req: Request, exc: BaseException) -> Response:
        seen.append(exc)
        return Response.json({"degraded": True}, status=200)

    assert Client(app).post("/write", status=200).json == {"degraded": True}
    assert len(seen) == 1 and isinstance(seen[0], StoreError)
    assert [r for r in caplog.records if r.name == "microweb"] == []


def test_errorhandler_for_503_customises_it_and_keeps_retry_after(down_store: Any) -> None:
    app = store_app(down_store)

    @app.errorhandler(503)
    def unavailable(req: Request, error: HTTPError) -> dict[str, str]:
        return {"maintenance": error.detail or ""}

    res = Client(app).post("/write", status=503)
    assert res.json == {"maintenance": STORE_UNAVAILABLE}
    assert res.headers["Retry-After"] == str(STORE_RETRY_AFTER)


def test_the_store_is_back_the_handler_succeeds(tmp_path: Path) -> None:
    with locked_sqlite(tmp_path / "outage.db") as locked:
        client = Client(store_app(locked.store))
        locked.lock()
        client.post("/write", status=503)
        locked.release()
        assert client.post("/write", status=200).json == {"written": True}
        assert locked.store.get("errors-test") == b"1"
