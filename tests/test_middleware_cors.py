"""CORS (microweb/middleware/cors.py) against the Fetch standard's CORS protocol.

Every table runs around each app a middleware must wrap (`STACKS`): the
plain WSGI, Flask and microweb apps of middleware_apps.py on their own, a
microweb App with ``app.use(CORS, ...)``, and the plain and Flask apps
mounted in a microweb App that uses CORS. Requests go through WebTest's
WSGI lint (`microweb.testing.Client`), or through ``wsgiref.validate``
(`wsgi_call.call`) for what WebTest would refuse to send.

Section numbers are those of https://fetch.spec.whatwg.org/ (§3.2 the
Origin header, §3.3 the CORS protocol, §4.8 CORS-preflight fetch, §4.10
CORS check, §2.2.1/§2.2.2 safelisted methods and headers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from middleware_apps import APPS, microweb_app
from wsgi_call import call

from microweb import App, Request, Response
from microweb.middleware import Middleware
from microweb.middleware.cors import CORS, normalize_origin
from microweb.testing import Client
from microweb.types import Environ, Headers, StartResponse, WSGIApp

ORIGIN = "https://example.com"
MICROWEB_ALLOW = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
FALLBACK = "GET, HEAD, POST"


@dataclass
class Stack:
    """One way of wrapping an app in CORS: `build(**options)` -> (WSGI app, path prefix)."""

    build: Callable[..., tuple[WSGIApp, str]]
    routes_known: bool  # does CORS see the route table (allow_methods=None)?


def _alone(factory: Callable[[], WSGIApp]) -> Callable[..., tuple[WSGIApp, str]]:
    return lambda **options: (CORS(factory(), **options), "")


def _used(**options: Any) -> tuple[WSGIApp, str]:
    app = microweb_app()
    app.use(CORS, **options)
    return app, ""


def _mounted(factory: Callable[[], WSGIApp]) -> Callable[..., tuple[WSGIApp, str]]:
    def build(**options: Any) -> tuple[WSGIApp, str]:
        app = App()
        app.mount("/m", factory())
        app.use(CORS, **options)
        return app, "/m"

    return build


STACKS = [
    *(pytest.param(Stack(_alone(f), name == "microweb"), id=name) for name, f in APPS),
    pytest.param(Stack(_used, True), id="microweb-use"),
    *(
        pytest.param(Stack(_mounted(f), False), id=f"{name}-mounted-use")
        for name, f in APPS
        if name != "microweb"
    ),
]


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Stack:
    return request.param  # type: ignore[no-any-return]


def send(stack: Stack, method: str, path: str = "/x", headers: Any = (), **options: Any) -> Any:
    """One request through WebTest's lint to the stack built with `options`."""
    app, prefix = stack.build(**options)
    return Client(app).request(prefix + path, method=method, headers=dict(headers),
                               expect_errors=True)  # fmt: skip


def cors(response: Any) -> dict[str, str]:
    """The response's Access-Control-* headers, by lowercase name (each must be single)."""
    found = [(k.lower(), v) for k, v in response.headerlist if k.lower().startswith("access-")]
    assert len(found) == len(dict(found)), f"a CORS header is repeated: {found}"
    return dict(found)


def vary(response: Any) -> str | None:
    values = [v for k, v in response.headerlist if k.lower() == "vary"]
    assert len(values) <= 1, values
    return values[0] if values else None


def preflight(method: str = "PUT", headers: str | None = None, origin: str = ORIGIN) -> Any:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request["Access-Control-Request-Headers"] = headers
    return request


ACAO = "access-control-allow-origin"
ACAC = "access-control-allow-credentials"
ACEH = "access-control-expose-headers"
ACAM = "access-control-allow-methods"
ACAH = "access-control-allow-headers"
ACMA = "access-control-max-age"

# -- configuration is checked once, at construction ---------------------------

BAD_OPTIONS = [
    # Fetch §3.3.5: `*` is no wildcard for credentialed requests; refused, not reflected.
    pytest.param({"allow_origins": "*", "allow_credentials": True}, id="origins-*-credentials"),
    pytest.param({"allow_origins": ["*"], "allow_credentials": True}, id="origins-[*]-credentials"),
    pytest.param({"allow_origins": [ORIGIN], "allow_methods": "*", "allow_credentials": True},
                 id="methods-*-credentials"),
    pytest.param({"allow_origins": [ORIGIN], "allow_headers": "*", "allow_credentials": True},
                 id="headers-*-credentials"),
    pytest.param({"allow_origins": [ORIGIN], "expose_headers": ["*"], "allow_credentials": True},
                 id="expose-*-credentials"),
    # SECURITY: a regex that matches any origin, with credentials, is `*` in disguise.
    pytest.param({"allow_origin_regex": r".*", "allow_credentials": True}, id="regex-any-creds"),
    pytest.param({"allow_origin_regex": r"https://.+", "allow_credentials": True},
                 id="regex-any-https-creds"),
    pytest.param({"allow_origin_regex": r"(unclosed"}, id="regex-invalid"),
    pytest.param({"allow_origins": "*", "allow_origin_regex": "x"}, id="star-and-regex"),
    pytest.param({"allow_origins": ["*", ORIGIN]}, id="star-and-origin"),
    # Fetch §3.2: the opaque origin is every sandboxed or file: page.
    pytest.param({"allow_origins": ["null"]}, id="null-origin"),
    *(
        pytest.param({"allow_origins": [junk]}, id=f"junk-origin-{junk!r}")
        for junk in [
            "example.com", "https://example.com/", "https://example.com/path",
            "https://user@example.com", "https://example.com?q", "https://example.com#f",
            "https://exa mple.com", "https://exämple.com", "https://example.com:99999",
            "https://example.com:0", "https://", "", "*.example.com", "https://*.example.com",
            "https://example.com\r\n", "https://\u212aexample.com",
        ]
    ),
    pytest.param({"allow_methods": ["GE T"]}, id="method-not-a-token"),
    pytest.param({"allow_headers": ["X-Bad:"]}, id="header-not-a-token"),
    pytest.param({"expose_headers": ["X Bad"]}, id="expose-not-a-token"),
    *(pytest.param({"max_age": bad}, id=f"max-age-{bad!r}") for bad in (-1, True, "600", 1.5)),
]  # fmt: skip


@pytest.mark.parametrize("options", BAD_OPTIONS)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CORS(microweb_app(), **options)
    app = microweb_app()
    with pytest.raises(ValueError):
        app.use(CORS, **options)  # startup, not the first request


def test_the_null_origin_cannot_be_allowed() -> None:
    # SECURITY (Fetch §3.2): `null` is what sandboxed iframes, file: and data:
    # documents send; allowing it would allow any page that sandboxes itself.
    with pytest.raises(ValueError, match="sandboxed"):
        CORS(microweb_app(), allow_origins=[ORIGIN, "null"])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"allow_origins": ORIGIN}, id="origins-string"),
        pytest.param({"allow_methods": "PUT"}, id="methods-string"),
        pytest.param({"allow_headers": "Authorization"}, id="headers-string"),
    ],
)
def test_a_string_where_a_list_belongs_is_a_type_error(options: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="takes a list"):
        CORS(microweb_app(), **options)


@pytest.mark.parametrize(
    ("configured", "serialized"),
    [
        pytest.param("https://example.com", "https://example.com", id="plain"),
        pytest.param("HTTPS://Example.COM", "https://example.com", id="lowercase"),
        pytest.param("https://example.com:443", "https://example.com", id="default-https-port"),
        pytest.param("http://example.com:80", "http://example.com", id="default-http-port"),
        pytest.param("http://example.com:443", "http://example.com:443", id="other-port-kept"),
        pytest.param("https://example.com:8443", "https://example.com:8443", id="port"),
        pytest.param("http://127.0.0.1:5000", "http://127.0.0.1:5000", id="ipv4"),
        pytest.param("http://[::1]:8000", "http://[::1]:8000", id="ipv6"),
        pytest.param("https://example.com:", "https://example.com", id="empty-port"),
        pytest.param("app://localhost", "app://localhost", id="other-scheme"),
    ],
)
def test_origins_normalized_as_browsers_serialize_them(configured: str, serialized: str) -> None:
    # Fetch §3.2 (and HTML's "serialization of an origin"): lowercase scheme
    # and host, the scheme's default port omitted.
    assert normalize_origin(configured) == serialized


# -- simple and actual requests: §3.3.3 headers, §4.10 CORS check ---------------

EVIL = [
    "https://example.com.evil.com",  # suffix attack: startswith() would pass
    "https://evilexample.com",  # prefix attack: endswith() would pass
    "null",  # the opaque origin
    "http://example.com",  # scheme downgrade
    "https://example.com:8443",  # another port, another origin
    "HTTPS://EXAMPLE.COM",  # browsers serialize lowercase; only they matter
    "https://Example.com",
    "https://example.com/",  # never sent by a browser
    "https://example.com.",  # a trailing dot is another host
    "https://example.com, https://evil.com",  # two Origin headers, joined
]

SIMPLE = [
    pytest.param({"allow_origins": [ORIGIN]}, {"Origin": ORIGIN}, {ACAO: ORIGIN}, "Origin",
                 id="exact-origin"),
    pytest.param({"allow_origins": ["HTTPS://EXAMPLE.COM:443"]}, {"Origin": ORIGIN},
                 {ACAO: ORIGIN}, "Origin", id="configured-unnormalized"),
    pytest.param({"allow_origins": ["https://other.example", ORIGIN]}, {"Origin": ORIGIN},
                 {ACAO: ORIGIN}, "Origin", id="one-of-several"),
    pytest.param({"allow_origins": [ORIGIN], "allow_credentials": True}, {"Origin": ORIGIN},
                 {ACAO: ORIGIN, ACAC: "true"}, "Origin", id="credentials"),
    pytest.param({"allow_origins": [ORIGIN], "expose_headers": ["X-Total", "ETag"]},
                 {"Origin": ORIGIN}, {ACAO: ORIGIN, ACEH: "ETag, X-Total"}, "Origin",
                 id="expose-headers"),
    pytest.param({"allow_origins": "*", "expose_headers": "*"}, {"Origin": ORIGIN},
                 {ACAO: "*", ACEH: "*"}, None, id="expose-*"),
    # Fetch "CORS protocol and HTTP caches": no Origin, no grant, but Vary,
    # so a cache never hands this response to a cross-origin reader.
    pytest.param({"allow_origins": [ORIGIN]}, {}, {}, "Origin", id="no-origin-still-varies"),
    pytest.param({"allow_origins": [ORIGIN]}, {"Origin": "https://other.example"}, {}, "Origin",
                 id="disallowed-origin"),
    pytest.param({}, {"Origin": ORIGIN}, {}, "Origin", id="nothing-allowed"),
    *(
        pytest.param({"allow_origins": [ORIGIN], "allow_credentials": True}, {"Origin": evil},
                     {}, "Origin", id=f"lookalike-{evil}")
        for evil in EVIL
    ),
    # `*` is one answer for everyone (§3.3.3): sent always, no Vary needed.
    pytest.param({"allow_origins": "*"}, {"Origin": ORIGIN}, {ACAO: "*"}, None, id="star"),
    pytest.param({"allow_origins": "*"}, {}, {ACAO: "*"}, None, id="star-no-origin"),
    pytest.param({"allow_origins": "*"}, {"Origin": "null"}, {ACAO: "*"}, None, id="star-null"),
    # A regex must match the whole origin (fullmatch, never match/search).
    *(
        pytest.param({"allow_origin_regex": r"https://([a-z0-9-]+\.)?example\.com"},
                     {"Origin": origin}, {ACAO: origin} if ok else {}, "Origin",
                     id=f"regex-{origin}")
        for origin, ok in [
            ("https://example.com", True), ("https://api.example.com", True),
            ("https://example.com.evil.com", False), ("https://evilexample.com", False),
            ("http://api.example.com", False), ("https://api.example.com:8443", False),
            ("https://api.example.com.", False), ("null", False),
        ]
    ),
    # SECURITY: a sloppy regex only ever sees well-formed origins.
    *(
        pytest.param({"allow_origin_regex": r"https://.*\.example\.com"}, {"Origin": origin},
                     {}, "Origin", id=f"sloppy-regex-{origin}")
        for origin in ["https://evil.com/.example.com", "https://evil.com#.example.com",
                       "https://evil.com?.example.com", "https://u@evil.com:1/.example.com"]
    ),
    pytest.param({"allow_origin_regex": r".*"}, {"Origin": "null"}, {}, "Origin",
                 id="regex-never-null"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "headers", "expected", "expected_vary"), SIMPLE)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_simple_requests(
    stack: Stack,
    method: str,
    options: dict[str, Any],
    headers: dict[str, str],
    expected: dict[str, str],
    expected_vary: str | None,
) -> None:
    response = send(stack, method, "/x", headers, **options)
    assert response.status_int == 200  # the app answered: CORS never blocks on the server
    assert cors(response) == expected
    assert vary(response) == expected_vary


@pytest.mark.parametrize("origin", [ORIGIN, "https://other.example"])
def test_error_responses_are_covered_too(stack: Stack, origin: str) -> None:
    # A script that may read the data may read the error about it (and only then).
    response = send(stack, "GET", "/error", {"Origin": origin}, allow_origins=[ORIGIN])
    assert response.status_int == 500
    assert cors(response) == ({ACAO: ORIGIN} if origin == ORIGIN else {})
    assert vary(response) == "Origin"


def headers_app(headers: Headers) -> WSGIApp:
    """A WSGI app answering 200 with these extra `headers`."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), *headers])
        return [b"ok"]

    return app


@pytest.mark.parametrize(
    ("app_headers", "expected"),
    [
        pytest.param([], [("Vary", "Origin")], id="added"),
        pytest.param([("Vary", "Accept-Encoding")], [("Vary", "Accept-Encoding, Origin")],
                     id="appended"),
        pytest.param([("Vary", "accept-encoding, origin")], [("Vary", "accept-encoding, origin")],
                     id="already-there"),
        pytest.param([("Vary", "*")], [("Vary", "*")], id="star-covers-it"),
        pytest.param([("Vary", "Cookie"), ("vary", "Origin")], [("Vary", "Cookie"),
                     ("vary", "Origin")], id="in-a-second-vary"),
    ],
)  # fmt: skip
def test_vary_origin_is_merged_never_duplicated(app_headers: Headers, expected: Headers) -> None:
    # RFC 9110 §12.5.5: Vary is a list; one "Origin" in it is enough.
    response = Client(CORS(headers_app(app_headers), allow_origins=[ORIGIN])).get(
        "/", headers={"Origin": ORIGIN}
    )
    assert [(k, v) for k, v in response.headerlist if k.lower() == "vary"] == expected


def test_a_grant_replaces_the_apps_own_cors_headers() -> None:
    # Fetch §4.10: two Access-Control-Allow-Origin values fail the CORS check.
    app = headers_app([("Access-Control-Allow-Origin", "*"),
                       ("access-control-allow-credentials", "false")])  # fmt: skip
    response = Client(CORS(app, allow_origins=[ORIGIN], allow_credentials=True)).get(
        "/", headers={"Origin": ORIGIN}
    )
    assert cors(response) == {ACAO: ORIGIN, ACAC: "true"}


def test_only_a_serialized_origin_is_ever_echoed() -> None:
    # SECURITY: `.` matches "\r", so the sloppy regex alone would let this
    # through and echo it into a header (wsgiref.validate fails on that).
    sloppy = CORS(headers_app([]), allow_origin_regex=r"https://.*\.example\.com")
    reply = call(sloppy, "GET", "/", HTTP_ORIGIN="https://evil.com\r.example.com")
    assert reply.header("Access-Control-Allow-Origin") is None
    reply = call(sloppy, "GET", "/", HTTP_ORIGIN="https://api.example.com")
    assert reply.header("Access-Control-Allow-Origin") == "https://api.example.com"


# -- preflights: §3.3.2 the request, §4.8 what the browser checks -------------

ALLOWED = {"allow_origins": [ORIGIN], "allow_methods": ["GET", "PUT"]}

PREFLIGHTS = [
    pytest.param(ALLOWED, preflight("PUT"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACMA: "600"}, id="method"),
    pytest.param({**ALLOWED, "allow_headers": ["Authorization", "X-Trace"]},
                 preflight("PUT", "authorization,content-type,x-trace"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACAH: "authorization, content-type, x-trace",
                  ACMA: "600"}, id="headers"),
    pytest.param({**ALLOWED, "allow_headers": ["X-Trace"]}, preflight("PUT", " X-Trace , ,"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACAH: "x-trace", ACMA: "600"},
                 id="headers-case-and-spaces"),
    # §2.2.2: safelisted names (asked about for an unusual value) need no listing.
    pytest.param(ALLOWED, preflight("PUT", "content-type,accept"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACAH: "content-type, accept", ACMA: "600"},
                 id="safelisted-headers"),
    # §4.8: a safelisted method passes without being listed.
    pytest.param({**ALLOWED, "allow_methods": ["PUT"], "allow_headers": ["X-Trace"]},
                 preflight("GET", "x-trace"),
                 {ACAO: ORIGIN, ACAM: "PUT", ACAH: "x-trace", ACMA: "600"},
                 id="safelisted-method"),
    pytest.param({**ALLOWED, "allow_methods": ["put", "Patch"]}, preflight("PATCH"),
                 {ACAO: ORIGIN, ACAM: "PATCH, PUT", ACMA: "600"}, id="methods-uppercased"),
    pytest.param({**ALLOWED, "allow_credentials": True}, preflight("PUT"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACAC: "true", ACMA: "600"}, id="credentials"),
    pytest.param({**ALLOWED, "max_age": 0}, preflight("PUT"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACMA: "0"}, id="max-age-0"),
    pytest.param({**ALLOWED, "max_age": None}, preflight("PUT"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT"}, id="no-max-age"),
    pytest.param({"allow_origins": "*", "allow_methods": "*", "allow_headers": "*"},
                 preflight("PURGE", "x-a,x-b"),
                 {ACAO: "*", ACAM: "PURGE", ACAH: "x-a, x-b", ACMA: "600"}, id="wildcards"),
    # §4.8: `*` never covers Authorization; listed next to `*`, it is granted.
    pytest.param({**ALLOWED, "allow_headers": ["*", "Authorization"]},
                 preflight("PUT", "authorization,x-a"),
                 {ACAO: ORIGIN, ACAM: "GET, PUT", ACAH: "authorization, x-a", ACMA: "600"},
                 id="star-and-authorization"),
    pytest.param({"allow_origin_regex": r"https://([a-z]+\.)?example\.com",
                  "allow_methods": ["PUT"]}, preflight("PUT", origin="https://api.example.com"),
                 {ACAO: "https://api.example.com", ACAM: "PUT", ACMA: "600"}, id="regex"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "headers", "expected"), PREFLIGHTS)
def test_preflight_granted(
    stack: Stack, options: dict[str, Any], headers: dict[str, str], expected: dict[str, str]
) -> None:
    response = send(stack, "OPTIONS", "/x", headers, **options)
    # §4.8: an ok status; 204 has no body (RFC 9110 §15.3.5). The middleware
    # answered, not the app (whose OPTIONS answers carry Allow or a body).
    assert (response.status_int, response.body) == (204, b"")
    assert "Allow" not in response.headers
    assert "Content-Length" not in response.headers  # RFC 9110 §8.6: not in a 204
    assert cors(response) == expected
    assert vary(response) == (None if ACAO in expected and expected[ACAO] == "*" else "Origin")


REFUSED = [
    pytest.param(ALLOWED, preflight("PUT", origin="https://other.example"), "origin",
                 id="other-origin"),
    *(pytest.param({**ALLOWED, "allow_credentials": True}, preflight("PUT", origin=evil),
                   "origin", id=f"lookalike-{evil}") for evil in EVIL),
    pytest.param(ALLOWED, preflight("DELETE"), "method", id="method-not-listed"),
    # §2.2.1: methods are case-sensitive; fetch() sends "patch" as written.
    pytest.param({**ALLOWED, "allow_methods": ["PATCH"]}, preflight("patch"), "method",
                 id="method-case"),
    pytest.param(ALLOWED, preflight("PU T"), "method", id="method-not-a-token"),
    pytest.param(ALLOWED, preflight(""), "method", id="method-empty"),
    pytest.param(ALLOWED, preflight("PUT", "x-trace"), "headers", id="header-not-listed"),
    pytest.param({**ALLOWED, "allow_headers": ["X-Trace"]}, preflight("PUT", "x-trace,x-other"),
                 "headers", id="one-header-not-listed"),
    pytest.param({**ALLOWED, "allow_headers": "*"}, preflight("PUT", "authorization"),
                 "headers", id="star-not-authorization"),
    pytest.param({**ALLOWED, "allow_headers": "*"}, preflight("PUT", "x(y)"), "headers",
                 id="header-not-a-token"),
    pytest.param({"allow_origins": "*", "allow_methods": ["GET"]}, preflight("PUT"), "method",
                 id="star-origin-method"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "headers", "why"), REFUSED)
def test_preflight_refused_grants_nothing(
    stack: Stack, options: dict[str, Any], headers: dict[str, str], why: str
) -> None:
    response = send(stack, "OPTIONS", "/x", headers, **options)
    # A 403 (not the 2xx §4.8 needs) without a single Access-Control-Allow-*
    # header: the browser's fetch() rejects, and nothing leaks from the app.
    assert response.status_int == 403
    assert cors(response) == {}
    assert response.text == f"CORS preflight refused: {why} not allowed."
    assert vary(response) == (None if options.get("allow_origins") == "*" else "Origin")


@pytest.mark.parametrize(
    ("method", "granted"),
    [
        pytest.param("PUT", True, id="PUT"),
        pytest.param("DELETE", True, id="DELETE"),
        pytest.param("PATCH", True, id="PATCH"),
        pytest.param("GET", True, id="GET-safelisted"),
        pytest.param("PURGE", False, id="PURGE"),
    ],
)
def test_default_methods_are_the_routes_methods(stack: Stack, method: str, granted: bool) -> None:
    # allow_methods=None: a microweb App's route table says which methods the
    # path has (its automatic Allow); any other app gets the safelisted ones.
    options = {"allow_origins": [ORIGIN], "allow_headers": ["X-Trace"]}
    response = send(stack, "OPTIONS", "/x", preflight(method, "x-trace"), **options)
    if not stack.routes_known:
        granted = method in FALLBACK
    assert response.status_int == (204 if granted else 403)
    if granted:
        assert cors(response)[ACAM] == (MICROWEB_ALLOW if stack.routes_known else FALLBACK)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": ORIGIN}, id="no-request-method"),
        pytest.param({"Access-Control-Request-Method": "PUT"}, id="no-origin"),
        pytest.param({}, id="plain-options"),
    ],
)
def test_options_that_is_not_a_preflight_goes_to_the_app(
    stack: Stack, headers: dict[str, str]
) -> None:
    # Fetch §3.3.2: a CORS-preflight request has both Origin and
    # Access-Control-Request-Method; any other OPTIONS is the app's to answer.
    bare_app, prefix = stack.build(allow_origins=[])
    bare = Client(bare_app).options(prefix + "/x", expect_errors=True)
    response = send(stack, "OPTIONS", "/x", headers, allow_origins=[ORIGIN])
    assert (response.status_int, response.headers.get("Allow")) == (
        bare.status_int,
        bare.headers.get("Allow"),
    )
    assert cors(response) == ({ACAO: ORIGIN} if "Origin" in headers else {})


# -- inside a microweb App: the route table, not the handlers ------------------


def test_route_methods_come_from_the_table_without_calling_handlers() -> None:
    calls: list[str] = []
    app = App()

    @app.route("/items/{id:int}", methods=["GET", "PUT"])
    def item(req: Request, id: int) -> Any:
        calls.append(f"{req.method} {id}")
        return {"id": id}

    @app.route("/custom", methods=["OPTIONS", "DELETE"])
    def custom(req: Request) -> Any:
        calls.append(req.method)
        return Response(status=204, headers=[("Allow", "DELETE, OPTIONS")])

    app.use(CORS, allow_origins=[ORIGIN])
    client = Client(app)
    response = client.options("/items/3", headers=preflight("PUT"))
    assert (response.status_int, cors(response)[ACAM]) == (204, "GET, HEAD, OPTIONS, PUT")
    client.options("/items/3", headers=preflight("DELETE"), status=403)
    # A path with its own OPTIONS handler: the table cannot tell; the safe default.
    client.options("/custom", headers=preflight("DELETE"), status=403)
    assert cors(client.options("/custom", headers=preflight("POST")))[ACAM] == FALLBACK
    # An unknown path: the same default (the actual request then gets its 404).
    assert cors(client.options("/nowhere", headers=preflight("GET")))[ACAM] == FALLBACK
    assert calls == []
    # The actual request, after the preflight, reaches the handler.
    response = client.put("/items/3", headers={"Origin": ORIGIN})
    assert (calls, cors(response)) == (["PUT 3"], {ACAO: ORIGIN})


class Recorder(Middleware):
    """A middleware (innermost: not in ORDER) that records which hooks ran."""

    seen: ClassVar[list[str]] = []

    def before(self, environ: Environ) -> None:
        self.seen.append("before")

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        self.seen.append("after")


def test_in_the_hook_chain_a_preflight_stops_at_cors() -> None:
    app = microweb_app()
    app.use(Recorder)
    app.use(CORS, allow_origins=[ORIGIN], allow_methods=["PUT"])
    client = Client(app)
    Recorder.seen = []
    client.options("/x", headers=preflight("PUT"), status=204)
    assert Recorder.seen == []  # neither the app nor the layers inside CORS ran
    response = client.get("/x", headers={"Origin": ORIGIN})
    assert (Recorder.seen, cors(response)) == (["before", "after"], {ACAO: ORIGIN})


def test_the_answer_is_fresh_for_every_request() -> None:
    # NOTE: outer middleware edit the header list in place; a shared list
    # would collect their headers request after request.
    def outer(app: WSGIApp) -> WSGIApp:
        def wrapped(environ: Environ, start_response: StartResponse) -> Any:
            def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
                headers.append(("X-Outer", "1"))
                return start_response(status, headers, exc_info)

            return app(environ, start)

        return wrapped

    client = Client(outer(CORS(headers_app([]), allow_origins=[ORIGIN])))
    for _ in range(3):
        refused = client.options("/", headers=preflight(origin="https://x.example"), status=403)
        granted = client.options("/", headers=preflight("POST"), status=204)
        assert refused.headers.getall("X-Outer") == granted.headers.getall("X-Outer") == ["1"]
