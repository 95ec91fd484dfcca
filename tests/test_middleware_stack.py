"""The stack (microweb/middleware/__init__.py, base.py): hooks behave like nested WSGI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from microweb import App, Request
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


# -- HeaderGroup: hooks that only add headers share one pass ---------------------------


def replying(headers: Headers) -> WSGIApp:
    """A plain WSGI app answering 200 with `headers` (and the app's own Content-Type)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        return [b"ok"]

    return app


def header_stack(**cors: Any) -> list[tuple[Any, dict[str, Any]]]:
    from microweb.middleware import CORS, ProxyFix, RequestID, SecurityHeaders, TrustedHost

    return [
        (ProxyFix, {"x_for": 1, "x_proto": 1}),
        (RequestID, {}),
        (SecurityHeaders, {}),
        (TrustedHost, {"allowed_hosts": ["127.0.0.1"]}),
        (CORS, {"allow_origins": ["https://app.example"], **cors}),
    ]


def nested_specs(app: WSGIApp, specs: list[tuple[Any, dict[str, Any]]]) -> WSGIApp:
    for layer, options in reversed(specs):
        app = layer(app, **options)
    return app


APP_HEADERS = [
    pytest.param([], id="none-of-theirs"),
    pytest.param([("Vary", "Accept")], id="app-vary"),
    pytest.param([("vary", "origin")], id="app-vary-origin-lowercase"),
    pytest.param([("X-Request-ID", "app-own")], id="app-request-id"),
    pytest.param([("Content-Security-Policy", "default-src *")], id="app-csp"),
    pytest.param([("X-FRAME-OPTIONS", "SAMEORIGIN"), ("Vary", "*")], id="app-frame-and-vary-star"),
    pytest.param([("Access-Control-Allow-Origin", "https://other.example")], id="app-grant"),
]
REQUESTS = [
    pytest.param({}, id="no-origin"),
    pytest.param({"HTTP_ORIGIN": "https://app.example"}, id="allowed-origin"),
    pytest.param({"HTTP_ORIGIN": "https://evil.example"}, id="other-origin"),
    pytest.param({"HTTP_X_FORWARDED_PROTO": "https"}, id="https"),
    pytest.param({"HTTP_ORIGIN": "https://app.example", "wsgi.url_scheme": "https"}, id="both"),
]
CORS_OPTIONS = [
    pytest.param({}, id="cors-default"),
    pytest.param({"allow_credentials": True, "expose_headers": ["X-Total"]}, id="cors-credentials"),
    pytest.param({"allow_origins": "*"}, id="cors-any-origin"),
]


@pytest.mark.parametrize("cors", CORS_OPTIONS)
@pytest.mark.parametrize("extra", REQUESTS)
@pytest.mark.parametrize("app_headers", APP_HEADERS)
def test_header_group_gives_exactly_the_headers_of_nested_calls(
    app_headers: Headers, extra: dict[str, str], cors: dict[str, Any]
) -> None:
    """CORS, SecurityHeaders and RequestID as one `HeaderGroup`: same headers, same order."""
    from wsgi_call import call

    from microweb.middleware import HeaderGroup

    specs = header_stack(**cors)
    chain = build_stack(replying(app_headers), specs)
    assert isinstance(chain, HookChain)
    (group,) = chain.afters_upto[-1]  # the three `after` hooks, as one step
    assert isinstance(group.__self__, HeaderGroup)
    extra = {"HTTP_X_REQUEST_ID": "req-1", **extra}
    by_group = call(chain, **extra)
    by_nesting = call(nested_specs(replying(app_headers), specs), **extra)
    assert by_group.status == by_nesting.status == "200 OK"
    assert by_group.headers == by_nesting.headers


class Overlapping(Middleware):
    """Adds ``Vary: Origin`` too, so it must see what CORS added: not grouped with it."""

    after_fields = frozenset({"vary"})

    def added_headers(self, environ: Environ) -> Headers:
        return [("Vary", "Origin")]

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        from microweb.middleware.base import add_vary

        add_vary(headers, "Origin")


class Reworded(Overlapping):
    """Changes `after` without `added_headers`: it promised nothing, so it is not grouped."""

    after_fields = frozenset({"x-other"})

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        headers.append(("X-Other", "1"))


@pytest.mark.parametrize(
    ("specs", "steps"),
    [
        pytest.param(header_stack(), ["HeaderGroup"], id="three-adders-one-group"),
        pytest.param([*header_stack()[:3], (Tag, {"name": "t"}), *header_stack()[3:]],
                     ["CORS", "Tag", "HeaderGroup"], id="another-hook-splits-the-run"),
        pytest.param([(Overlapping, {}), *header_stack()],
                     ["HeaderGroup", "Overlapping"], id="overlapping-fields-not-grouped"),
        pytest.param([(Reworded, {}), *header_stack()],
                     ["HeaderGroup", "Reworded"], id="after-without-added-headers"),
    ],
)  # fmt: skip
def test_which_after_hooks_are_grouped(
    specs: list[tuple[Any, dict[str, Any]]], steps: list[str]
) -> None:
    chain = build_stack(replying([]), specs)
    assert isinstance(chain, HookChain)
    names = [type(step.__self__).__name__ for step in chain.afters_upto[-1]]
    assert names == steps
    from wsgi_call import call

    extra = {"HTTP_X_REQUEST_ID": "req-1", "HTTP_ORIGIN": "https://app.example"}
    by_chain = call(chain, **extra)
    assert by_chain.headers == call(nested_specs(replying([]), specs), **extra).headers
