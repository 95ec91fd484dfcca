"""CrossOriginProtection (microweb/middleware/csrf.py): CSRF defence from browser headers.

The references each table follows:

- Fetch Metadata Request Headers §2.1 (https://w3c.github.io/webappsec-fetch-metadata/):
  ``Sec-Fetch-Site`` is ``cross-site``, ``same-origin``, ``same-site`` or ``none``;
- RFC 6454 §7: the ``Origin`` header (``null`` for an opaque origin), and §6.1
  its serialization (lowercase, no default port);
- OWASP CSRF Prevention Cheat Sheet, "Fetch Metadata headers" and "Verifying
  origin with standard headers": refuse unsafe requests whose source is
  another site; allow requests with neither header (non-browser clients);
- RFC 9110 §9.2.1: safe methods (GET, HEAD, OPTIONS here) always pass;
- RFC 6750 §2.1: ``Authorization: Bearer`` requests are not CSRF-able.

Every row runs around each app of middleware_apps.APPS and inside a
microweb App that uses ProxyFix, SecurityHeaders, CORS and the middleware
(`STACKS`), under WebTest's WSGI lint, or ``wsgiref.validate`` for hostile
input. A `Counter` just inside the middleware proves that a refused request
never reaches the app.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.validate import validator

import pytest
from middleware_apps import APPS, microweb_app, plain_app
from wsgi_call import call, environ

from microweb import App, Request
from microweb.middleware import CORS, ProxyFix, SecurityHeaders
from microweb.middleware.csrf import CrossOriginProtection, csrf_exempt
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

SELF = "http://localhost"  # WebTest's requests go to http://localhost:80
TRUSTED = "https://app.example.com"
EVIL = "https://evil.example"
OPTIONS: dict[str, Any] = {"trusted_origins": [TRUSTED]}


class Counter:
    """Counts the requests that reach the app (`wrap` is a middleware factory)."""

    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, app: WSGIApp) -> WSGIApp:
        return Counted(app, self)


class Counted:
    def __init__(self, app: WSGIApp, counter: Counter) -> None:
        self.app = app  # `find_router` follows `.app` down to the App
        self.counter = counter

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        self.counter.calls += 1
        return self.app(environ, start_response)


Build = Callable[..., WSGIApp]  # build(counter, **options)


def _alone(factory: Callable[[], WSGIApp]) -> Build:
    return lambda counter, **options: CrossOriginProtection(counter.wrap(factory()), **options)


def _default_stack(counter: Counter, **options: Any) -> WSGIApp:
    app = microweb_app()
    app.use(ProxyFix)
    app.use(SecurityHeaders)
    app.use(CORS, allow_origins=[TRUSTED, "https://partner.example"], allow_credentials=True)
    app.use(CrossOriginProtection, **options)
    app.use(counter.wrap)  # not microweb's: innermost, after CrossOriginProtection
    return app


STACKS = [
    *(pytest.param(_alone(factory), id=name) for name, factory in APPS),
    pytest.param(_default_stack, id="microweb-use-stack"),
]


@pytest.fixture(params=STACKS)
def build(request: pytest.FixtureRequest) -> Build:
    return request.param  # type: ignore[no-any-return]


def send(app: WSGIApp, method: str, headers: dict[str, str], path: str = "/x") -> Any:
    return Client(app).request(path, method=method, headers=headers, expect_errors=True)


def assert_refused(response: Any, counter: Counter) -> None:
    assert response.status_int == 403, response.body
    assert counter.calls == 0, "a refused request reached the app"
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == 403


def assert_passed(response: Any, counter: Counter) -> None:
    assert response.status_int != 403 and response.status_int < 500, response.body
    assert counter.calls == 1


PASS, REFUSE = "pass", "refuse"
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]

# (method, request headers, verdict): the decision table of the module docs.
ROWS = [
    # RFC 9110 §9.2.1: safe methods pass whatever their source.
    *(
        pytest.param(m, {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}, PASS, id=f"safe-{m}")
        for m in ("GET", "HEAD", "OPTIONS")
    ),
    # Fetch Metadata §2.1: same-origin and user-initiated (none) pass; other sites do not.
    *(
        pytest.param(m, {"Sec-Fetch-Site": "same-origin"}, PASS, id=f"sfs-same-origin-{m}")
        for m in UNSAFE
    ),
    pytest.param("POST", {"Sec-Fetch-Site": "none"}, PASS, id="sfs-none-user-initiated"),
    *(
        pytest.param(
            m, {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}, REFUSE, id=f"sfs-cross-site-{m}"
        )
        for m in UNSAFE
    ),
    # A subdomain is same-site but another origin: it may serve anyone's content.
    pytest.param(
        "POST",
        {"Sec-Fetch-Site": "same-site", "Origin": "http://forum.localhost"},
        REFUSE,
        id="sfs-same-site-subdomain",
    ),
    pytest.param("POST", {"Sec-Fetch-Site": "cross-site"}, REFUSE, id="sfs-cross-site-no-origin"),
    # Sec-Fetch-Site is what the browser says; a matching Origin cannot overrule it.
    pytest.param(
        "POST",
        {"Sec-Fetch-Site": "same-site", "Origin": SELF},
        REFUSE,
        id="sfs-same-site-own-origin",
    ),
    pytest.param(
        "POST", {"Sec-Fetch-Site": "same-origin", "Origin": EVIL}, PASS, id="sfs-same-origin-wins"
    ),
    # Trusted origins pass even cross-site (an SPA on another host).
    pytest.param(
        "POST",
        {"Sec-Fetch-Site": "cross-site", "Origin": TRUSTED},
        PASS,
        id="sfs-cross-site-trusted",
    ),
    pytest.param(
        "POST", {"Sec-Fetch-Site": "same-site", "Origin": TRUSTED}, PASS, id="sfs-same-site-trusted"
    ),
    # OWASP "verifying origin": no Sec-Fetch-Site, fall back to Origin vs Host (RFC 6454 §7).
    pytest.param("POST", {}, PASS, id="no-headers-non-browser"),
    pytest.param("POST", {"Origin": SELF}, PASS, id="origin-same"),
    pytest.param("POST", {"Origin": "http://localhost:80"}, PASS, id="origin-same-default-port"),
    pytest.param("POST", {"Origin": "HTTP://LocalHost"}, PASS, id="origin-same-any-case"),
    pytest.param("DELETE", {"Origin": EVIL}, REFUSE, id="origin-other"),
    pytest.param("POST", {"Origin": "http://localhost:8080"}, REFUSE, id="origin-other-port"),
    pytest.param("POST", {"Origin": "https://localhost"}, REFUSE, id="origin-other-scheme"),
    pytest.param(
        "POST", {"Origin": "http://localhost.evil.example"}, REFUSE, id="origin-lookalike"
    ),
    pytest.param("POST", {"Origin": "null"}, REFUSE, id="origin-null-opaque"),
    pytest.param("POST", {"Origin": TRUSTED}, PASS, id="origin-trusted"),
    pytest.param(
        "POST", {"Origin": "https://app.example.com:443"}, PASS, id="origin-trusted-default-port"
    ),
    pytest.param(
        "POST", {"Origin": "http://app.example.com"}, REFUSE, id="origin-trusted-host-wrong-scheme"
    ),
    pytest.param(
        "POST", {"Origin": "https://sub.app.example.com"}, REFUSE, id="origin-trusted-subdomain"
    ),
    # RFC 6750 §2.1: a bearer token is never attached by the browser on its own.
    pytest.param(
        "POST",
        {"Sec-Fetch-Site": "cross-site", "Origin": EVIL, "Authorization": "Bearer abc.def.ghi"},
        PASS,
        id="bearer",
    ),
    pytest.param(
        "PUT", {"Origin": EVIL, "Authorization": "bearer abc"}, PASS, id="bearer-scheme-any-case"
    ),
    pytest.param(
        "POST", {"Origin": EVIL, "Authorization": "Bearer "}, REFUSE, id="bearer-without-token"
    ),
    # RFC 9110 §5.5: the field value is read without its surrounding whitespace, as JWTAuth does.
    pytest.param(
        "POST", {"Origin": EVIL, "Authorization": " Bearer abc"}, PASS, id="bearer-leading-space"
    ),
    # Basic credentials are cached and re-sent by the browser, like cookies.
    pytest.param(
        "POST", {"Origin": EVIL, "Authorization": "Basic dTpw"}, REFUSE, id="basic-auth-is-ambient"
    ),
    pytest.param("POST", {"Origin": EVIL, "Authorization": "Bearerx abc"}, REFUSE, id="not-bearer"),
]


@pytest.mark.parametrize(("method", "headers", "verdict"), ROWS)
def test_decision_table(build: Build, method: str, headers: dict[str, str], verdict: str) -> None:
    counter = Counter()
    response = send(build(counter, **OPTIONS), method, headers)
    if verdict == PASS:
        assert_passed(response, counter)
    else:
        assert_refused(response, counter)


def test_refusal_is_html_for_browsers(build: Build) -> None:
    counter = Counter()
    headers = {"Origin": EVIL, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    response = send(build(counter), "POST", headers)
    assert response.status_int == 403 and counter.calls == 0
    assert response.content_type == "text/html"
    assert b"403 Forbidden" in response.body


def test_refusal_in_the_default_stack_keeps_outer_headers() -> None:
    """The 403 passes through SecurityHeaders and CORS on its way out (ORDER)."""
    counter = Counter()
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://partner.example"}
    response = send(_default_stack(counter), "POST", headers)
    assert response.status_int == 403 and counter.calls == 0
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    # A CORS-allowed origin may read why it was refused; CORS does not imply CSRF trust.
    assert response.headers["Access-Control-Allow-Origin"] == "https://partner.example"


def test_proxy_fix_establishes_the_scheme() -> None:
    """Behind a TLS proxy the request's own origin is https (ProxyFix x_proto)."""
    # The proxy passes on the browser's Host, which names no port for https.
    headers = {"Origin": "https://localhost", "X-Forwarded-Proto": "https", "Host": "localhost"}
    counter = Counter()
    assert_passed(send(_default_stack(counter), "POST", headers), counter)
    counter = Counter()
    alone = CrossOriginProtection(counter.wrap(plain_app))
    assert_refused(send(alone, "POST", headers), counter)


# -- per-route and per-path opt-out -------------------------------------------


def exempt_app(counter: Counter) -> App:
    app = App()

    @app.post("/form")
    def form(req: Request) -> str:
        counter.calls += 1
        return "ok"

    @app.post("/hooks/{name}")
    @csrf_exempt
    def hook(req: Request, name: str) -> str:
        counter.calls += 1
        return name

    @csrf_exempt
    @app.post("/login/callback")
    def callback(req: Request) -> str:
        counter.calls += 1
        return "in"

    return app


CROSS = {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}


@pytest.mark.parametrize(
    ("path", "verdict"),
    [
        pytest.param("/form", REFUSE, id="not-exempt"),
        pytest.param("/hooks/github", PASS, id="exempt-dynamic-route"),
        pytest.param("/login/callback", PASS, id="exempt-decorator-outermost"),
        pytest.param("/nowhere", REFUSE, id="unknown-path"),
    ],
)
@pytest.mark.parametrize("how", ["wrapped", "use"])
def test_csrf_exempt_route(path: str, verdict: str, how: str) -> None:
    counter = Counter()
    app = exempt_app(counter)
    wsgi: WSGIApp = app
    if how == "use":
        app.use(CrossOriginProtection)
    else:
        wsgi = CrossOriginProtection(app)
    response = send(wsgi, "POST", CROSS, path)
    if verdict == PASS:
        assert response.status_int == 200 and counter.calls == 1
    else:
        assert_refused(response, counter)


@pytest.mark.parametrize(("name", "factory"), APPS)
def test_exempt_paths_for_any_app(name: str, factory: Callable[[], WSGIApp]) -> None:
    counter = Counter()
    app = CrossOriginProtection(counter.wrap(factory()), exempt_paths=["/webhook"])
    assert_passed(send(app, "POST", CROSS, "/webhook"), counter)
    # Exact paths only: no prefix, no trailing-slash variant.
    for path in ("/webhook/x", "/webhook/", "/webhookx"):
        counter.calls = 0
        assert_refused(send(app, "POST", CROSS, path), counter)


def test_exempt_path_of_a_mounted_app() -> None:
    counter = Counter()
    app = App()
    app.mount("/legacy", counter.wrap(plain_app))
    app.use(CrossOriginProtection, exempt_paths=["/legacy/hook"])
    assert_passed(send(app, "POST", CROSS, "/legacy/hook"), counter)
    counter.calls = 0
    assert_refused(send(app, "POST", CROSS, "/legacy/other"), counter)


# -- configuration is checked once, at construction ---------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param("https://App.Example.COM", "https://app.example.com", id="case"),
        pytest.param("https://app.example.com:443", "https://app.example.com", id="default-port"),
        pytest.param("http://localhost:8000", "http://localhost:8000", id="port-kept"),
        pytest.param("http://[::1]:8000", "http://[::1]:8000", id="ipv6"),
    ],
)
def test_trusted_origins_are_normalised(given: str, stored: str) -> None:
    assert CrossOriginProtection(plain_app, trusted_origins=[given]).trusted == {stored}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        # RFC 6454 §7: an origin is scheme://host[:port], nothing more.
        *(
            pytest.param({"trusted_origins": [junk]}, ValueError, id=f"junk-{junk!r}")
            for junk in [
                "app.example.com",
                "https://app.example.com/",
                "https://app.example.com/path",
                "https://user@app.example.com",
                "https://app.example.com?q",
                "*",
                "https://*.example.com",
                "null",
                "",
                "https://app.example.com:99999",
                "https://exämple.com",
                " https://app.example.com",
            ]
        ),
        pytest.param({"trusted_origins": TRUSTED}, TypeError, id="origins-one-string"),
        pytest.param({"exempt_paths": "/webhook"}, TypeError, id="paths-one-string"),
        pytest.param({"exempt_paths": ["webhook"]}, ValueError, id="path-not-absolute"),
        pytest.param({"exempt_paths": [""]}, ValueError, id="path-empty"),
    ],
)
def test_bad_options_fail_at_startup(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        CrossOriginProtection(plain_app, **options)
    app = microweb_app()
    with pytest.raises(error):
        app.use(CrossOriginProtection, **options)


# -- hostile input: 403 or pass by the rules, never a 500 ----------------------

HUGE = "https://" + "a" * 1_000_000 + ".example"
HOSTILE = [
    pytest.param({"HTTP_ORIGIN": HUGE}, 403, id="huge-origin"),
    pytest.param({"HTTP_ORIGIN": "http://127.0.0.1" + ":1" * 100_000}, 403, id="many-colons"),
    pytest.param({"HTTP_ORIGIN": "\x00\xff\r\n"}, 403, id="control-bytes-origin"),
    pytest.param({"HTTP_ORIGIN": "http://127.0.0.1\r\nX-Injected: 1"}, 403, id="crlf-origin"),
    pytest.param({"HTTP_ORIGIN": "http://127.0.0.1, http://127.0.0.1"}, 403, id="two-origins"),
    pytest.param({"HTTP_ORIGIN": "http://127.0.0.1:0"}, 403, id="port-zero"),
    pytest.param({"HTTP_ORIGIN": "http://127.0.0.1:65536"}, 403, id="port-out-of-range"),
    pytest.param({"HTTP_ORIGIN": "http://\u00e9xample.com"}, 403, id="latin-1-origin"),
    pytest.param({"HTTP_ORIGIN": ""}, 403, id="empty-origin"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "x" * 1_000_000}, 403, id="huge-sec-fetch-site"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "Same-Origin"}, 403, id="sfs-wrong-case-fails-closed"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "same-origin, cross-site"}, 403, id="sfs-two-values"),
    pytest.param({"HTTP_SEC_FETCH_SITE": ""}, 403, id="sfs-empty"),
    pytest.param({"HTTP_SEC_FETCH_SITE": "\x00"}, 403, id="sfs-nul"),
    pytest.param(
        {"HTTP_ORIGIN": "http://127.0.0.1", "HTTP_HOST": "bad host\x00"}, 403, id="garbage-host"
    ),
    pytest.param(
        {"HTTP_ORIGIN": "http://127.0.0.1", "HTTP_HOST": "h" * 100_000}, 403, id="huge-host"
    ),
    pytest.param(
        {"HTTP_AUTHORIZATION": "Bearer " + "x" * 1_000_000, "HTTP_ORIGIN": EVIL},
        200,
        id="huge-bearer-passes",
    ),
]


@pytest.mark.parametrize(("extra", "status"), HOSTILE)
@pytest.mark.parametrize("method", ["POST", "PROPFIND"])
def test_hostile_headers(build: Build, extra: dict[str, Any], status: int, method: str) -> None:
    counter = Counter()
    response = call(build(counter), method, "/x", **extra)
    if status == 403:
        assert response.status_code == 403 and counter.calls == 0
        assert json.loads(response.body)["status"] == 403
    else:  # the app answers as it will (microweb: 501 for PROPFIND), but it ran
        assert response.status_code not in (403, 500) and counter.calls == 1


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        pytest.param("http://127.0.0.1", 200, id="same"),
        pytest.param("http://127.0.0.1:80", 200, id="same-default-port"),
        pytest.param("http://127.0.0.1:8080", 403, id="other-port"),
    ],
)
def test_http10_without_host(origin: str, status: int) -> None:
    """HTTP/1.0 has no Host: the request's origin is SERVER_NAME:SERVER_PORT (PEP 3333)."""
    counter = Counter()
    app = validator(CrossOriginProtection(counter.wrap(plain_app)))
    env = environ("POST", "/x", SERVER_PROTOCOL="HTTP/1.0", HTTP_ORIGIN=origin)
    del env["HTTP_HOST"]
    seen: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append(status)

    result = app(env, start_response)
    b"".join(result)
    result.close()  # type: ignore[attr-defined]
    assert int(seen[0][:3]) == status
    assert counter.calls == (status == 200)


class Untouchable:
    """A request body that fails the test if anyone reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("a refused request's body was read")

    readline = read

    def readlines(self, *args: Any) -> list[bytes]:
        raise AssertionError("a refused request's body was read")

    def __iter__(self) -> Any:
        raise AssertionError("a refused request's body was read")


def test_refusal_reads_no_body(build: Build) -> None:
    """No side effects: the app is not called and the body is left unread."""
    counter = Counter()
    body: dict[str, Any] = {"wsgi.input": Untouchable(), "CONTENT_LENGTH": "7", "HTTP_ORIGIN": EVIL}
    response = call(build(counter), "POST", "/x", **body)
    assert response.status_code == 403 and counter.calls == 0
