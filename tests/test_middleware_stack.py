"""The stack (microweb/middleware/__init__.py, base.py): hooks behave like nested WSGI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from microweb import App, Request, Response
from microweb.middleware import HookChain, Middleware, build_stack
from microweb.response import Reply
from microweb.testing import Client
from microweb.types import Environ, Headers, StartResponse, WSGIApp


class Tag(Middleware):
    """Records its passage and adds an `X-Trail` entry to every response."""

    def __init__(self, app: WSGIApp, name: str, answer: bool = False) -> None:
        super().__init__(app)
        self.name, self.answer = name, answer

    def before(self, environ: Environ) -> WSGIApp | None:
        environ.setdefault("trail", []).append(self.name)
        if self.answer and environ.get("PATH_INFO") == "/early":
            return Reply(200, [], f"answered by {self.name}".encode(), "text/plain")
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        headers.append(("X-Trail", self.name))


class Plain:
    """A foreign (non-microweb) WSGI middleware."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ.setdefault("trail", []).append("plain")
        return self.app(environ, start_response)


def make_app() -> App:
    app = App()

    @app.get("/{p:path}")
    def any_path(req: Request, p: str) -> Any:
        return {"trail": req.environ.get("trail", [])}

    return app


SPECS = [(Tag, {"name": "a"}), (Tag, {"name": "b", "answer": True}), (Tag, {"name": "c"})]


def nested(app: WSGIApp) -> WSGIApp:
    wsgi = app
    for layer, options in reversed(SPECS):
        wsgi = layer(wsgi, **options)
    return wsgi


@pytest.mark.parametrize("path", ["/x", "/early"])
def test_hook_chain_behaves_exactly_like_nested_wsgi_calls(path: str) -> None:
    """An early answer from layer n is seen by the `after` hooks of layers 1..n-1 only."""
    app = make_app()
    chain = build_stack(app.dispatch, SPECS)
    assert isinstance(chain, HookChain)
    by_hooks = Client(chain).get(path)
    by_nesting = Client(nested(app.dispatch)).get(path)
    assert by_hooks.body == by_nesting.body
    assert by_hooks.headers.getall("X-Trail") == by_nesting.headers.getall("X-Trail")
    expected = ["a"] if path == "/early" else ["c", "b", "a"]
    assert by_hooks.headers.getall("X-Trail") == expected


def test_a_foreign_middleware_is_a_plain_layer_between_hook_chains() -> None:
    app = make_app()
    app.use(Tag, name="a")
    app.use(Plain)
    assert isinstance(app._stack, HookChain)
    assert isinstance(app._stack.app, Plain)
    response = Client(app).get("/x")
    assert response.json == {"trail": ["a", "plain"]}
    assert response.headers.getall("X-Trail") == ["a"]


def test_use_builds_the_stack_at_once_so_bad_options_fail_at_startup() -> None:
    app = make_app()
    with pytest.raises(TypeError):
        app.use(Tag, nme="typo")
    assert app.middleware == []


def test_middleware_base_is_plain_wsgi_around_any_app() -> None:
    def bare(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    response = Client(Tag(bare, name="solo")).get("/")
    assert response.text == "ok"
    assert response.headers["X-Trail"] == "solo"


def default_stack_app() -> App:
    """The notes-like app with every middleware of this package, added in a scrambled order."""
    from microweb.middleware import (
        CORS,
        BodyLimit,
        CrossOriginProtection,
        ETag,
        GZip,
        HTTPSRedirect,
        Idempotency,
        ProxyFix,
        RateLimit,
        RequestID,
        SecurityHeaders,
        TrustedHost,
    )
    from microweb.sessions import CookieSessions
    from microweb.stores import MemoryStore

    app = make_app()
    app.use(Idempotency, store=MemoryStore())
    app.use(ETag)
    app.use(BodyLimit)
    app.use(CookieSessions, secret_keys=["k" * 32])
    app.use(CrossOriginProtection)
    app.use(CORS, allow_origins=["https://app.example"], allow_credentials=True)
    app.use(GZip)
    app.use(TrustedHost, allowed_hosts=["api.example"])
    app.use(HTTPSRedirect)
    app.use(SecurityHeaders)
    app.use(RequestID)
    app.use(ProxyFix, x_for=1, x_proto=1)
    app.use(RateLimit, limit="1000/minute", store=MemoryStore())
    return app


def test_use_places_each_middleware_by_the_declared_order() -> None:
    from microweb.middleware import ORDER

    app = default_stack_app()
    layers = [layer for layer, _ in app.middleware]
    assert len(layers) == len(ORDER)
    assert all(issubclass(layer, kind) for layer, kind in zip(layers, ORDER, strict=True))
    # The hook middleware before BodyLimit run as one chain; BodyLimit, Idempotency,
    # GZip and ETag handle the body, so they are WSGI layers (with a chain between).
    assert isinstance(app._stack, HookChain)
    assert [type(layer).__name__ for layer in app._stack.layers] == [
        "ProxyFix", "RequestID", "SecurityHeaders", "TrustedHost", "HTTPSRedirect", "CORS",
        "RateLimit",
    ]


def test_routes_command_prints_the_stack_in_request_order() -> None:
    from microweb.cli import routes_table

    table = routes_table(default_stack_app())
    names = ["ProxyFix", "RequestID", "SecurityHeaders", "TrustedHost", "HTTPSRedirect", "CORS",
             "RateLimit", "BodyLimit", "CrossOriginProtection", "CookieSessions", "GZip", "ETag",
             "Idempotency"]
    positions = [table.index(f". {name}(") for name in names]
    assert positions == sorted(positions)


HTTPS = {"X-Forwarded-Proto": "https", "Host": "api.example"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        pytest.param("GET", "/x", HTTPS, 200, id="ok"),
        pytest.param("GET", "/x", {"Host": "evil.example", "X-Forwarded-Proto": "https"}, 400,
                     id="trusted-host-400"),
        pytest.param("GET", "/x", {"Host": "api.example"}, 308, id="https-redirect-308"),
        pytest.param("OPTIONS", "/x", {**HTTPS, "Origin": "https://app.example",
                                       "Access-Control-Request-Method": "GET"}, 204,
                     id="cors-preflight-204"),
        pytest.param("DELETE", "/x", HTTPS, 405, id="405"),
    ],
)  # fmt: skip
def test_early_answers_and_errors_carry_security_headers_and_the_request_id(
    method: str, path: str, headers: dict[str, str], status: int
) -> None:
    """The reason for the order: SecurityHeaders and RequestID sit outside every
    middleware that can answer on its own (RFC 6797 §7.2: HSTS only over https)."""
    response = Client(default_stack_app()).request(
        path, method=method, headers=headers, expect_errors=True
    )
    assert response.status_int == status
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"]
    https = headers.get("X-Forwarded-Proto") == "https"
    assert ("Strict-Transport-Security" in response.headers) == https


def test_rfc6585_4_429_and_rfc9110_15_5_14_413_carry_the_outer_layers_headers() -> None:
    """RateLimit and BodyLimit answer inside SecurityHeaders, RequestID and CORS:
    their refusals carry the security headers, the id and the CORS grant (so a
    page's script can read why it was refused)."""
    from microweb.middleware import CORS, BodyLimit, RateLimit, RequestID, SecurityHeaders
    from microweb.stores import MemoryStore

    app = App()

    @app.post("/upload")
    def upload(req: Request) -> dict[str, int]:
        return {"received": len(req.body)}

    app.use(BodyLimit, max_bytes=10)
    app.use(RateLimit, limit="2/minute", store=MemoryStore())
    app.use(CORS, allow_origins=["https://app.example"])
    app.use(SecurityHeaders)
    app.use(RequestID)
    client = Client(app)
    origin = {"Origin": "https://app.example"}
    too_large = client.post("/upload", b"x" * 11, headers=origin, status=413)
    assert client.post("/upload", b"x" * 10, headers=origin).json == {"received": 10}
    too_many = client.post("/upload", b"x", headers=origin, status=429)
    for refusal in (too_large, too_many):
        assert refusal.headers["X-Content-Type-Options"] == "nosniff"
        assert refusal.headers["X-Request-ID"]
        assert refusal.headers["Access-Control-Allow-Origin"] == "https://app.example"
    # The oversized upload counted against the client's rate (RateLimit is outside).
    assert too_many.headers["RateLimit-Remaining"] == "0"


def test_fetch_cors_preflight_grants_route_methods_through_other_middleware() -> None:
    """CORS(allow_methods=None) reads the route table even with a layer between it and the App."""
    from microweb.middleware import CORS

    app = App()

    @app.route("/doc", methods=["GET", "PUT"])
    def doc(req: Request) -> str:
        return "doc"

    app.use(CORS, allow_origins=["https://app.example"])
    app.use(Tag, name="between")  # not in ORDER: goes inside CORS
    response = Client(app).options(
        "/doc",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"},
    )
    assert response.status_int == 204
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]


# -- Middleware run as written: their own `before`/`after`, in an App and alone -------


def bare_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.mark.parametrize("inside_an_app", [True, False], ids=["in-an-app", "around-plain-wsgi"])
def test_each_layers_own_after_runs_on_an_ordinary_request(
    monkeypatch: pytest.MonkeyPatch, inside_an_app: bool
) -> None:
    """A spy (a breakpoint's stand-in) on CORS.after, SecurityHeaders.after and
    RequestID.after is hit once per request, inside an App and around any WSGI app."""
    from microweb.middleware import CORS, RequestID, SecurityHeaders

    calls: list[str] = []
    for kind in (CORS, SecurityHeaders, RequestID):
        original = kind.after

        def spy(self: Any, environ: Environ, status: str, headers: Headers,
                original: Any = original) -> None:  # fmt: skip
            calls.append(type(self).__name__)
            original(self, environ, status, headers)

        monkeypatch.setattr(kind, "after", spy)
    specs: list[tuple[Any, dict[str, Any]]] = [
        (RequestID, {}), (SecurityHeaders, {}), (CORS, {"allow_origins": ["https://a.example"]})
    ]  # fmt: skip
    if inside_an_app:
        app: WSGIApp = make_app()
        for layer, options in specs:
            app.use(layer, **options)  # type: ignore[attr-defined]
    else:
        app = nested_specs(bare_app, specs)
    response = Client(app).get("/x", headers={"Origin": "https://a.example"})
    assert calls == ["CORS", "SecurityHeaders", "RequestID"]  # innermost first
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example"
    assert response.headers["X-Request-ID"] and response.headers["X-Frame-Options"] == "DENY"


def nested_specs(app: WSGIApp, specs: list[tuple[Any, dict[str, Any]]]) -> WSGIApp:
    for layer, options in reversed(specs):
        app = layer(app, **options)
    return app


# -- The order: the user places their own middleware --------------------------------


class Seen(Middleware):
    """Records the client address it sees (a logging or metrics layer)."""

    def __init__(self, app: WSGIApp, into: list[str | None]) -> None:
        super().__init__(app)
        self.into = into

    def before(self, environ: Environ) -> WSGIApp | None:
        self.into.append(environ.get("REMOTE_ADDR"))
        return None


@pytest.mark.parametrize(
    ("placement", "seen"),
    [
        pytest.param({"position": "outermost"}, "10.0.0.1", id="outermost-sees-the-peer"),
        pytest.param({}, "203.0.113.9", id="innermost-by-default"),
        pytest.param({"after": "ProxyFix"}, "203.0.113.9", id="after-proxy-fix"),
        pytest.param({"before": "ProxyFix"}, "10.0.0.1", id="before-proxy-fix"),
    ],
)
def test_user_middleware_placed_outermost_sees_the_original_remote_addr(
    placement: dict[str, str], seen: str
) -> None:
    from microweb import middleware

    app = make_app()
    app.use(middleware.ProxyFix, x_for=1)
    addresses: list[str | None] = []
    where = {key: getattr(middleware, value, value) for key, value in placement.items()}
    app.use(Seen, into=addresses, **where)
    app.use(middleware.RequestID)
    Client(app, extra_environ={"REMOTE_ADDR": "10.0.0.1"}).get(
        "/x", headers={"X-Forwarded-For": "203.0.113.9"}
    )
    assert addresses == [seen]


def test_placement_in_stack_order_ties_keep_the_order_added() -> None:
    from microweb.middleware import CORS, ProxyFix, RequestID

    app = make_app()
    app.use(CORS, allow_origins=["https://a.example"])
    app.use(Tag, name="inner")
    app.use(Tag, name="outer", position="outermost")
    app.use(Tag, name="before-cors", before=CORS)
    app.use(Tag, name="after-proxy", after=ProxyFix)
    app.use(RequestID)
    app.use(ProxyFix)
    names = [options.get("name", layer.__name__) for layer, options in app.middleware]
    assert names == [
        "outer", "ProxyFix", "after-proxy", "RequestID", "before-cors", "CORS", "inner"
    ]  # fmt: skip
    response = Client(app).get("/x")
    assert response.json == {"trail": ["outer", "after-proxy", "before-cors", "inner"]}


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        pytest.param({"position": "outermost"}, "CookieSessions cannot be moved: it runs after "
                     "CrossOriginProtection and before GZip", id="sessions-outside-cors"),
        pytest.param({"before": Tag}, "name a built-in", id="anchor-not-built-in"),
        pytest.param({"position": "middle"}, "'outermost' or 'innermost'", id="bad-position"),
    ],
)  # fmt: skip
def test_a_misplacement_is_refused_with_a_reason(placement: dict[str, Any], message: str) -> None:
    from microweb.sessions import CookieSessions

    app = make_app()
    layer: Any = CookieSessions if "CookieSessions" in message else Tag
    with pytest.raises(ValueError, match=message):
        app.use(layer, secret_keys=["k" * 32], **placement)
    assert app.middleware == []


def test_describe_stack_says_what_runs_in_order() -> None:
    from microweb.cli import routes_table

    app = default_stack_app()
    app.use(Plain, position="outermost")
    table = routes_table(app)
    assert "  1. Plain()  runs: Plain.__call__, a WSGI layer around everything below" in table
    assert "2. ProxyFix(x_for=1, x_proto=1)  runs: ProxyFix.before\n" in table
    assert "runs: RequestID.before + RequestID.after" in table
    assert "CookieSessions(secret_keys=<hidden>)  runs: SessionMiddleware.before + Session" in table
    assert table.rstrip().endswith("15. the app: App.dispatch (routing, handler, errors)")


# -- Errors from a layer go through the app's error handlers ------------------------


class Failing(Middleware):
    def __init__(self, app: WSGIApp, where: str) -> None:
        super().__init__(app)
        self.where = where

    def before(self, environ: Environ) -> WSGIApp | None:
        if self.where == "before":
            raise LookupError("before failed")
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        if self.where == "after":
            raise LookupError("after failed")
        headers.append(("X-Failing", "passed"))


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_hook_that_raises_is_the_apps_error_response_through_the_outer_layers(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    from microweb.middleware import RequestID

    app = make_app()
    app.use(Tag, name="inner")
    app.use(Failing, where=where, after=RequestID)
    app.use(Tag, name="outer", position="outermost")
    app.use(RequestID)
    handled: list[BaseException] = []

    @app.errorhandler(LookupError)
    def lookup(req: Request, error: BaseException) -> Any:
        handled.append(error)
        return Response.json({"failed": str(error)}, status=503)

    response = Client(app).get("/x", status=503)
    assert response.json == {"failed": f"{where} failed"}
    # The layers outside the failing one add their headers; it and those inside do not.
    assert response.headers.getall("X-Trail") == ["outer"]
    assert response.headers["X-Request-ID"]
    assert "X-Failing" not in response.headers
    assert len(handled) == 1


def test_an_unhandled_hook_error_is_a_logged_500_naming_the_layer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    app.use(Failing, where="after")
    response = Client(app).get("/x", status=500)
    assert response.content_type == "application/problem+json"
    assert "raised in Failing.after, on a 200 OK response" in caplog.text


def test_too_late_the_exception_goes_to_the_server_naming_the_layer() -> None:
    """An `after` that runs when a lazily started stream begins (PEP 3333 lets an app
    call start_response on its first step): the status may be on its way, so the
    exception reaches the server, which logs it, with the note naming the layer."""

    def lazy(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"late"

    app = make_app()
    app.mount("/lazy", lazy)
    app.use(Failing, where="after")
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/lazy", "HTTP_HOST": "h",
               "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1"}  # fmt: skip
    body = app(environ, lambda status, headers, exc_info=None: None)
    with pytest.raises(LookupError, match="after failed") as raised:
        list(body)
    assert "raised in Failing.after, on a 200 OK response" in raised.value.__notes__


def test_without_an_app_the_hooks_exception_goes_on() -> None:
    with pytest.raises(LookupError, match="after failed"):
        Client(Failing(bare_app, where="after")).get("/")
    chain = build_stack(bare_app, [(Tag, {"name": "t"}), (Failing, {"where": "after"})])
    with pytest.raises(LookupError, match="after failed"):
        Client(chain).get("/")


class AfterOnly(Middleware):
    """A layer with no `before`: the chain's loop skips it, but it keeps its place."""

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        headers.append(("X-Trail", "after-only"))


def broken_answer(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    raise LookupError("early answer failed")


class AnswersBroken(Middleware):
    def before(self, environ: Environ) -> WSGIApp | None:
        return broken_answer


@pytest.mark.parametrize(
    ("layer", "options", "message"),
    [
        pytest.param(AnswersBroken, {}, "early answer failed", id="early-answer-raises"),
        pytest.param(Failing, {"where": "before"}, "before failed", id="before-raises"),
    ],
)
def test_a_failure_goes_out_through_the_layers_outside_the_failing_one_counting_all_layers(
    layer: type[Middleware], options: dict[str, Any], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The chain finds the failing layer's place among all layers (those without a
    `before` count too): the error response gets the `after` of every layer outside
    it, as nested calls would give it, and nothing from it or the layers inside."""
    app = make_app()
    app.use(Tag, name="outer", position="outermost")
    app.use(AfterOnly)
    app.use(layer, **options)
    app.use(Tag, name="inner")
    response = Client(app).get("/x", status=500)
    assert response.headers.getall("X-Trail") == ["after-only", "outer"]
    assert "X-Failing" not in response.headers
    assert message in caplog.text
