"""microweb/middleware/https_redirect.py: 308 to https (RFC 9110 §15.4.9), no open redirect.

Rows send one plain-http request through HTTPSRedirect (under wsgiref's
validator) and check the exact ``Location``. Every Location is also
checked to be an absolute https URL on the request's own host. Then the
middleware runs around each app of `middleware_apps.APPS`, and inside a
microweb App after ProxyFix and TrustedHost.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from middleware_apps import APPS
from wsgi_call import Raw, call

from microweb import App, Request
from microweb.middleware.https_redirect import HTTPSRedirect
from microweb.middleware.proxy_fix import ProxyFix
from microweb.middleware.request_id import RequestID
from microweb.middleware.security_headers import SecurityHeaders
from microweb.middleware.trusted_host import TrustedHost
from microweb.testing import Client
from microweb.types import Environ, StartResponse


def ok(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def reply_for(method: str = "GET", path: str = "/", **extra: Any) -> Raw:
    return call(HTTPSRedirect(ok), method, path, **{"HTTP_HOST": "example.com", **extra})


def assert_same_host_https(location: str, host: str) -> None:
    """SECURITY: absolute, https, and the authority is the host asked for."""
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc) == ("https", host), location
    assert parts.path.startswith("/") and not location.startswith("//"), location
    assert not any(c in location for c in " \r\n\t\\"), location


ROWS = [
    pytest.param({}, "https://example.com/", id="root"),
    pytest.param({"PATH_INFO": ""}, "https://example.com/", id="empty-path-is-root"),
    pytest.param(
        {"SCRIPT_NAME": "/app", "PATH_INFO": ""}, "https://example.com/app", id="mount-root"
    ),
    pytest.param({"PATH_INFO": "/notes/3"}, "https://example.com/notes/3", id="path"),
    pytest.param(
        {"PATH_INFO": "/search", "QUERY_STRING": "q=a%20b&page=2"},
        "https://example.com/search?q=a%20b&page=2",
        id="rfc3986-3.4-query-kept-as-sent",
    ),
    pytest.param(
        {"SCRIPT_NAME": "/app", "PATH_INFO": "/x"},
        "https://example.com/app/x",
        id="script-name-kept",
    ),
    pytest.param(
        {"HTTP_HOST": "example.com:80"}, "https://example.com/", id="default-port-dropped"
    ),
    pytest.param(
        {"HTTP_HOST": "example.com:8080"}, "https://example.com/", id="http-port-dropped-too"
    ),
    pytest.param({"HTTP_HOST": "Example.COM."}, "https://example.com/", id="host-normalised"),
    pytest.param({"HTTP_HOST": "[::1]:8000"}, "https://[::1]/", id="ipv6-host"),
    pytest.param(
        {"HTTP_HOST": "", "SERVER_NAME": "example.com"},
        "https://example.com/",
        id="no-host-uses-server-name",
    ),
    # RFC 3986 §3.3: WSGI gives the path decoded; it is quoted again.
    pytest.param(
        {"PATH_INFO": "/a b/100%/é".encode().decode("latin-1")},
        "https://example.com/a%20b/100%25/%C3%A9",
        id="rfc3986-3.3-path-requoted",
    ),
    pytest.param(
        {"PATH_INFO": "/a%2Fb"}, "https://example.com/a%252Fb", id="decoded-percent-is-literal"
    ),
    # SECURITY: shapes that become open redirects when emitted as a relative URL.
    pytest.param(
        {"PATH_INFO": "//evil.example/x"},
        "https://example.com//evil.example/x",
        id="double-slash-stays-a-path",
    ),
    pytest.param(
        {"PATH_INFO": "/\\evil.example"},
        "https://example.com/%5Cevil.example",
        id="backslash-quoted",
    ),
    pytest.param(
        {"PATH_INFO": "/x\r\nSet-Cookie: a=b"},
        "https://example.com/x%0D%0ASet-Cookie:%20a=b",
        id="no-header-splitting",
    ),
    pytest.param(
        {"QUERY_STRING": "next=//evil.example#frag x"},
        "https://example.com/?next=//evil.example%23frag%20x",
        id="query-hash-and-space-quoted",
    ),
]


@pytest.mark.parametrize(("extra", "location"), ROWS)
def test_rfc9110_15_4_9_308_to_the_https_url(extra: dict[str, Any], location: str) -> None:
    reply = reply_for(**extra)
    assert reply.status_code == 308
    assert reply.header("Location") == location
    assert_same_host_https(location, urlsplit(location).netloc)
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("Content-Length") == str(len(reply.body))


@pytest.mark.parametrize(
    "method",
    [pytest.param(m, id=f"rfc9110-15.4.9-{m.lower()}-kept") for m in ("POST", "PUT", "DELETE")],
)
def test_308_not_301_so_the_method_and_body_are_kept(method: str) -> None:
    reply = reply_for(method, "/notes", body=b'{"a": 1}', CONTENT_TYPE="application/json")
    assert (reply.status_code, reply.header("Location")) == (308, "https://example.com/notes")


def test_head_gets_the_308_without_a_body() -> None:
    reply = Client(HTTPSRedirect(lambda e, s: [])).head("/", status=308)
    assert reply.body == b""
    assert reply.headers["Location"] == "https://localhost/"


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        pytest.param({"wsgi.url_scheme": "https"}, 200, id="https-passes"),
        pytest.param({"PATH_INFO": "/healthz"}, 200, id="exempt-path"),
        pytest.param({"PATH_INFO": "/healthz/"}, 308, id="exempt-is-exact-not-a-prefix"),
        pytest.param({"PATH_INFO": "/HEALTHZ"}, 308, id="exempt-is-case-sensitive"),
        pytest.param({"HTTP_HOST": "evil.example/x"}, 400, id="malformed-host-is-400"),
        pytest.param({"HTTP_HOST": "a@evil.example"}, 400, id="userinfo-host-is-400"),
    ],
)
def test_what_is_redirected_and_what_is_not(extra: dict[str, Any], status: int) -> None:
    reply = reply_for(**extra)
    assert reply.status_code == status
    assert (reply.header("Location") is not None) == (status == 308)


@pytest.mark.parametrize(
    "exempt",
    [
        pytest.param("/healthz", id="one-string"),
        pytest.param("/", id="one-string-that-looks-like-a-list-of-one"),
        pytest.param(["healthz"], id="not-a-path"),
        pytest.param([1], id="not-a-string"),
    ],
)
def test_bad_options_fail_at_construction(exempt: Any) -> None:
    with pytest.raises(ValueError, match="exempt"):
        HTTPSRedirect(lambda e, s: [], exempt=exempt)


def test_exempt_can_be_emptied_or_changed() -> None:
    redirect_all = HTTPSRedirect(ok, exempt=())
    assert call(redirect_all, path="/healthz").status_code == 308
    custom = HTTPSRedirect(ok, exempt=["/ping"])
    assert call(custom, path="/ping").status_code == 200
    assert call(custom, path="/healthz").status_code == 308


# -- Around any WSGI app, and inside a microweb App -------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS, ids=[name for name, _ in APPS])
def test_around_any_wsgi_app(name: str, factory: Any) -> None:
    client = Client(HTTPSRedirect(factory()))
    reply = client.post("/x?a=1", headers={"Host": "example.com"}, status=308)
    assert reply.headers["Location"] == "https://example.com/x?a=1"
    seen = client.get("/x", extra_environ={"wsgi.url_scheme": "https"}, status=200).json
    assert seen["scheme"] == "https"
    client.get("/healthz", status=200)


def stacked_app() -> App:
    app = App()

    @app.route("/notes", methods=["GET", "POST"])
    def notes(req: Request) -> Any:
        return {"scheme": req.scheme, "method": req.method}

    @app.get("/healthz")
    def healthz(req: Request) -> Any:
        return {"ok": True}

    app.use(HTTPSRedirect)
    app.use(TrustedHost, allowed_hosts=["example.com"])
    app.use(ProxyFix, x_host=1, trusted=["10.0.0.0/8"])
    return app


@pytest.mark.parametrize(
    ("peer", "headers", "status", "location"),
    [
        pytest.param(
            "10.0.0.1",
            {"X-Forwarded-Proto": "https"},
            200,
            None,
            id="https-at-the-proxy-passes",
        ),
        pytest.param(
            "10.0.0.1",
            {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "example.com"},
            308,
            "https://example.com/notes",
            id="http-at-the-proxy-redirected-to-the-forwarded-host",
        ),
        pytest.param(
            "198.51.100.7",
            {"X-Forwarded-Proto": "https"},
            308,
            "https://example.com/notes",
            id="untrusted-peer-cannot-claim-https",
        ),
        pytest.param(
            "10.0.0.1",
            {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example"},
            400,
            None,
            id="trusted-host-refuses-before-any-location",
        ),
    ],
)
def test_in_the_stack_honours_what_proxy_fix_established(
    peer: str, headers: dict[str, str], status: int, location: str | None
) -> None:
    client = Client(stacked_app(), extra_environ={"REMOTE_ADDR": peer})
    reply = client.post_json(
        "/notes", {"a": 1}, headers={"Host": "example.com", **headers}, status=status
    )
    assert reply.headers.get("Location") == location
    if status == 200:
        assert reply.json == {"scheme": "https", "method": "POST"}


def test_in_the_stack_the_health_check_is_exempt() -> None:
    client = Client(stacked_app(), extra_environ={"REMOTE_ADDR": "10.0.0.1"})
    client.get("/healthz", headers={"Host": "example.com"}, status=200)


def full_stack_app() -> App:
    """Every middleware of the declared ORDER that answers or reads what ProxyFix set."""
    app = stacked_app()
    app.use(SecurityHeaders)
    app.use(RequestID)
    return app


@pytest.mark.parametrize(
    ("headers", "status", "hsts"),
    [
        pytest.param({"X-Forwarded-Proto": "https"}, 200, True, id="https-per-proxy-fix"),
        pytest.param({"X-Forwarded-Proto": "http"}, 308, False, id="redirect-is-covered"),
        pytest.param({"Host": "evil.example"}, 400, False, id="host-refusal-is-covered"),
    ],
)
def test_in_the_default_stack_early_answers_carry_the_outer_headers(
    headers: dict[str, str], status: int, hsts: bool
) -> None:
    """TrustedHost's 400 and HTTPSRedirect's 308 pass out through RequestID and
    SecurityHeaders (ORDER), which see the scheme ProxyFix established."""
    client = Client(full_stack_app(), extra_environ={"REMOTE_ADDR": "10.0.0.1"})
    for _ in range(2):  # a canned answer must not collect headers across requests
        reply = client.get("/notes", headers={"Host": "example.com", **headers}, status=status)
        assert len(reply.headers.getall("X-Request-ID")) == 1
        assert reply.headers.getall("X-Content-Type-Options") == ["nosniff"]
        assert ("Strict-Transport-Security" in reply.headers) == hsts
