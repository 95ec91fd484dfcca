"""microweb/middleware/trusted_host.py: the Host allow-list (RFC 9110 §7.2, RFC 9112 §3.2).

Rows send one request through TrustedHost (under wsgiref's validator) and
check the status, and that the app ran only on a 200. Then: what the 400
looks like, the middleware around each app of `middleware_apps.APPS`, and
inside a microweb App after ProxyFix.
"""

from __future__ import annotations

from typing import Any

import pytest
from middleware_apps import APPS
from wsgi_call import call

from microweb import App, Request
from microweb.middleware import Middleware, build_stack
from microweb.middleware.csrf import request_origin
from microweb.middleware.https_redirect import HTTPSRedirect
from microweb.middleware.proxy_fix import ProxyFix
from microweb.middleware.trusted_host import TrustedHost, parse_host, request_host
from microweb.testing import Client
from microweb.types import Environ, Headers, StartResponse

PROBLEM_JSON = "application/problem+json"


def status_for(allowed: list[str], host: str | None, **extra: Any) -> int:
    """The status TrustedHost(allowed_hosts=allowed) gives a request with this Host."""
    ran = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        ran.append(True)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    middleware = TrustedHost(app, allowed_hosts=allowed)

    def without_host(environ: Environ, start_response: StartResponse) -> Any:
        del environ["HTTP_HOST"]  # wsgi_call's environ always has one
        return middleware(environ, start_response)

    if host is None:
        reply = call(without_host, **extra)
    else:
        reply = call(middleware, HTTP_HOST=host, **extra)
    assert bool(ran) == (reply.status_code == 200), "the app must not run on a 400"
    return reply.status_code


EXACT = ["example.com"]
WILD = ["*.example.com"]

ROWS = [
    # -- RFC 9110 §7.2: exact hosts, case-insensitive, a trailing dot is the same name ----
    pytest.param(EXACT, "example.com", 200, id="exact"),
    pytest.param(EXACT, "EXAMPLE.Com", 200, id="rfc4343-case-insensitive"),
    pytest.param(EXACT, "example.com.", 200, id="rfc1034-3.1-trailing-dot"),
    pytest.param(["Example.COM."], "example.com", 200, id="entry-normalised-too"),
    pytest.param(EXACT, "evil.example", 400, id="other-host"),
    pytest.param(EXACT, "example.com.evil.example", 400, id="lookalike-suffix"),
    pytest.param(EXACT, "evilexample.com", 400, id="lookalike-prefix"),
    pytest.param(EXACT, "www.example.com", 400, id="exact-is-not-a-wildcard"),
    # -- wildcards: subdomains at any depth, never the bare domain ------------------
    pytest.param(WILD, "api.example.com", 200, id="wildcard-subdomain"),
    pytest.param(WILD, "a.b.example.com", 200, id="wildcard-deeper"),
    pytest.param(WILD, "example.com", 400, id="wildcard-not-the-bare-domain"),
    pytest.param(WILD, "evilexample.com", 400, id="wildcard-whole-labels-only"),
    pytest.param(WILD, "api.example.com.evil.example", 400, id="wildcard-lookalike"),
    pytest.param(["example.com", *WILD], "example.com", 200, id="bare-domain-listed-too"),
    # -- ports: an entry without one allows any; with one, only that ----------------
    pytest.param(EXACT, "example.com:8080", 200, id="no-port-in-entry-any-port"),
    pytest.param(["example.com:8443"], "example.com:8443", 200, id="port-match"),
    pytest.param(["example.com:8443"], "example.com:8444", 400, id="port-mismatch"),
    pytest.param(["example.com:8443"], "example.com", 400, id="rfc3986-6.2.3-no-port-is-80"),
    pytest.param(["example.com:80"], "example.com", 200, id="rfc3986-6.2.3-default-port"),
    pytest.param(["*.example.com:8443"], "a.example.com:8443", 200, id="wildcard-port"),
    pytest.param(["*.example.com:8443"], "a.example.com:80", 400, id="wildcard-port-mismatch"),
    # -- IPv6 in brackets (RFC 3986 §3.2.2) ----------------------------------------------
    pytest.param(["[::1]"], "[::1]", 200, id="ipv6"),
    pytest.param(["[::1]"], "[::1]:8000", 200, id="ipv6-port"),
    pytest.param(["[::1]"], "[0:0::1]", 200, id="ipv6-canonical-form"),
    pytest.param(["[::1]"], "[::2]", 400, id="ipv6-other"),
    pytest.param(["[::1]"], "::1", 400, id="ipv6-without-brackets"),
    pytest.param(["127.0.0.1"], "127.0.0.1:8000", 200, id="ipv4"),
    # -- malformed values never match anything, even with "*" -----------------------------
    *(
        pytest.param(allowed, host, 400, id=f"{label}{'-star' if allowed == ['*'] else ''}")
        for allowed in (EXACT, ["*"])
        for host, label in [
            ("example.com/evil", "slash"),
            ("example.com?x", "question-mark"),
            ("example.com#x", "hash"),
            ("evil.example@example.com", "userinfo"),
            ("example.com evil", "space"),
            ("", "empty"),
            ("example.com:", "empty-port"),
            ("example.com:http", "port-not-a-number"),
            ("example.com:0", "port-0"),
            ("example.com:65536", "port-too-big"),
            ("example.com,evil.example", "two-hosts"),
            ("exa\tmple.com", "tab"),
            ("example..com", "empty-label"),
            ("[::1", "unclosed-bracket"),
        ]
    ),
    pytest.param(["*"], "anything.example:8080", 200, id="star-allows-any-well-formed-host"),
    # -- RFC 9112 §3.2: no Host ------------------------------------------------------
    # SERVER_NAME (127.0.0.1) is allowed, so only the missing Host can refuse it.
    pytest.param([*EXACT, "127.0.0.1"], None, 400, id="rfc9112-3.2-http11-without-host"),
]


@pytest.mark.parametrize(("allowed", "host", "status"), ROWS)
def test_trusted_host(allowed: list[str], host: str | None, status: int) -> None:
    assert status_for(allowed, host) == status


@pytest.mark.parametrize(
    ("server_name", "status"),
    [
        pytest.param("example.com", 200, id="server-name-allowed"),
        pytest.param("internal.local", 400, id="server-name-not-allowed"),
    ],
)
def test_rfc9112_3_2_http10_without_host_checks_server_name(server_name: str, status: int) -> None:
    assert status_for(EXACT, None, SERVER_PROTOCOL="HTTP/1.0", SERVER_NAME=server_name) == status


@pytest.mark.parametrize(
    ("scheme", "status"),
    [pytest.param("https", 200, id="https-default-443"), pytest.param("http", 400, id="http-80")],
)
def test_rfc3986_6_2_3_no_port_means_the_schemes_default(scheme: str, status: int) -> None:
    assert status_for(["example.com:443"], "example.com", **{"wsgi.url_scheme": scheme}) == status


def ok(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_an_allowed_host_is_remembered_with_its_scheme() -> None:
    """The per-instance memory of allowed Host values (PERF) keeps RFC 3986 §6.2.3:
    ``example.com`` is port 443 over https and port 80 over http."""
    layer = TrustedHost(ok, allowed_hosts=["example.com:443"])
    https = {"HTTP_HOST": "example.com", "wsgi.url_scheme": "https"}
    for _ in range(2):  # the second time from memory
        assert call(layer, **https).status_code == 200
        assert call(layer, HTTP_HOST="example.com").status_code == 400
    assert layer.passed == {("example.com", "https")}


def test_the_memory_of_allowed_hosts_is_bounded_and_never_holds_a_refused_one() -> None:
    from microweb.middleware.trusted_host import PASSED_MAX

    layer = TrustedHost(ok, allowed_hosts=["*.example.com"])
    for i in range(PASSED_MAX + 5):
        assert call(layer, HTTP_HOST=f"h{i}.example.com").status_code == 200
    assert len(layer.passed) == PASSED_MAX
    assert call(layer, HTTP_HOST="h0.example.com").status_code == 200
    assert call(layer, HTTP_HOST="evil.example").status_code == 400
    assert call(layer, HTTP_HOST="example.com").status_code == 400  # a wildcard is no bare domain
    assert not {host for host, _ in layer.passed} & {"evil.example", "example.com"}


@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param([], id="empty"),
        pytest.param("example.com", id="one-string"),
        pytest.param(["*", "example.com"], id="star-with-others"),
        pytest.param(["*example.com"], id="star-not-followed-by-dot"),
        pytest.param(["a.*.example.com"], id="star-inside"),
        pytest.param(["*.[::1]"], id="wildcard-ipv6"),
        pytest.param(["http://example.com"], id="url"),
        pytest.param(["example.com/"], id="path"),
        pytest.param(["example.com:99999"], id="bad-port"),
        pytest.param(["exa mple.com"], id="space"),
        pytest.param([None], id="not-a-string"),
    ],
)
def test_bad_options_fail_at_construction(allowed: Any) -> None:
    with pytest.raises(ValueError, match="allowed_hosts"):
        TrustedHost(lambda e, s: [], allowed_hosts=allowed)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        pytest.param("Example.COM.:08080", ("example.com", "8080"), id="normalised"),
        pytest.param("[0:0::1]:80", ("[::1]", "80"), id="ipv6-canonical"),
        pytest.param("192.0.2.1", ("192.0.2.1", None), id="ipv4"),
        pytest.param(".", None, id="root-only"),
        pytest.param(".example.com", None, id="leading-dot"),
        pytest.param("[not-v6]", None, id="bad-ipv6"),
        pytest.param("example.com:80\n", None, id="trailing-newline"),
    ],
)
def test_parse_host(value: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_host(value) == parsed


HOSTS = [
    pytest.param({"HTTP_HOST": "Example.COM:8080"}, ("example.com", "8080"), id="rfc9110-7.2-host"),
    pytest.param({}, ("server.example", "8000"), id="pep3333-no-host-server-name-port"),
    pytest.param({"HTTP_HOST": ""}, ("server.example", "8000"), id="pep3333-empty-host-is-none"),
    pytest.param({"HTTP_HOST": "a@evil.example"}, None, id="malformed-host"),
    pytest.param({"SERVER_PORT": ""}, None, id="no-host-no-port"),
]


@pytest.mark.parametrize(("extra", "host"), HOSTS)
def test_request_host(extra: Environ, host: tuple[str, str | None] | None) -> None:
    environ = {"SERVER_NAME": "server.example", "SERVER_PORT": "8000", **extra}
    assert request_host(environ) == host


@pytest.mark.parametrize(("extra", "host"), HOSTS)
def test_every_layer_reads_the_same_host(
    extra: Environ, host: tuple[str, str | None] | None
) -> None:
    """TrustedHost, HTTPSRedirect and the CSRF/WebSocket origin all ask `request_host`."""
    environ = {"SERVER_NAME": "server.example", "SERVER_PORT": "8000", **extra}
    origin = None if host is None else f"http://{host[0]}:{host[1]}"
    assert request_origin({"wsgi.url_scheme": "http", **environ}) == origin

    def as_sent(layer: Any) -> Any:
        def app(environ: Environ, start_response: StartResponse) -> Any:
            environ.pop("HTTP_HOST")  # wsgi_call's environ always has one
            environ.update(extra)
            return layer(environ, start_response)

        return app

    ok = dict(APPS)["plain"]()
    trusted = call(as_sent(TrustedHost(ok, ["*"])), **environ, SERVER_PROTOCOL="HTTP/1.0")
    assert trusted.status_code == (400 if host is None else 200)
    redirected = call(as_sent(HTTPSRedirect(ok)), **environ)
    assert redirected.header("Location") == (None if host is None else f"https://{host[0]}/")


# -- The 400 itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param(None, PROBLEM_JSON, id="rfc9457-problem-json-by-default"),
        pytest.param("application/json", PROBLEM_JSON, id="json-client"),
        pytest.param("text/html,*/*;q=0.8", "text/html; charset=utf-8", id="browser-gets-html"),
    ],
)
def test_the_400_is_negotiated_and_never_reflects_the_host(
    accept: str | None, content_type: str
) -> None:
    client = Client(TrustedHost(lambda e, s: [], allowed_hosts=EXACT))
    headers = {"Host": "evil.example"} | ({"Accept": accept} if accept else {})
    reply = client.get("/", headers=headers, status=400)
    assert reply.headers["Content-Type"] == content_type
    assert b"evil.example" not in reply.body
    assert int(reply.headers["Content-Length"]) == len(reply.body) > 0


def test_head_gets_the_400_without_a_body() -> None:
    client = Client(TrustedHost(lambda e, s: [], allowed_hosts=EXACT))
    reply = client.head("/", headers={"Host": "evil.example"}, status=400)
    assert reply.body == b""


class Stamp(Middleware):
    """Outside TrustedHost: adds a header to every response, like SecurityHeaders."""

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        headers.append(("X-Stamp", "1"))


def test_the_400_built_once_is_not_edited_by_outer_hooks() -> None:
    """The canned 400's header list is copied per request: hooks edit it in place."""
    stack = build_stack(lambda e, s: [], [(Stamp, {}), (TrustedHost, {"allowed_hosts": EXACT})])
    client = Client(stack)
    for _ in range(3):
        reply = client.get("/", headers={"Host": "evil.example"}, status=400)
        assert reply.headers.getall("X-Stamp") == ["1"]


# -- Around any WSGI app, and inside a microweb App -------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS, ids=[name for name, _ in APPS])
def test_around_any_wsgi_app(name: str, factory: Any) -> None:
    client = Client(TrustedHost(factory(), allowed_hosts=["example.com", "*.example.com"]))
    seen = client.get("/x", headers={"Host": "api.example.com:8080"}, status=200).json
    assert seen["host"] == "api.example.com:8080"
    client.post("/x", headers={"Host": "evil.example"}, status=400)
    # An error response from the app itself passes through untouched.
    client.get("/error", headers={"Host": "example.com"}, status=500)


def stacked_app() -> App:
    app = App()

    @app.get("/where")
    def where(req: Request) -> Any:
        return {"url": req.url, "external": req.url_for("where", _external=True)}

    app.use(TrustedHost, allowed_hosts=["example.com"])
    app.use(ProxyFix, x_host=1)
    app.use(HTTPSRedirect)
    return app


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"Host": "example.com"}, 200, id="allowed"),
        pytest.param({"Host": "evil.example"}, 400, id="not-allowed"),
        pytest.param(
            {"Host": "internal:8000", "X-Forwarded-Host": "example.com"},
            200,
            id="checks-the-host-proxy-fix-established",
        ),
        pytest.param(
            {"Host": "example.com", "X-Forwarded-Host": "evil.example"},
            400,
            id="a-forwarded-host-is-checked-too",
        ),
        # TrustedHost runs before HTTPSRedirect: no Location to an unchecked host.
        pytest.param({"Host": "evil.example", "X-Forwarded-Proto": "http"}, 400, id="before-308"),
    ],
)
def test_in_the_stack(headers: dict[str, str], status: int) -> None:
    client = Client(stacked_app())
    reply = client.get("/where", headers={"X-Forwarded-Proto": "https", **headers}, status=status)
    if status == 200:
        # req.url and url_for(_external=True) only ever use a checked host.
        assert reply.json == {
            "url": "https://example.com/where",
            "external": "https://example.com/where",
        }
