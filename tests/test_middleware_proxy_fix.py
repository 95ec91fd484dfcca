"""microweb/middleware/proxy_fix.py: hop counts, RFC 7239 Forwarded, trusted peers.

Each row sends one request through ProxyFix (under wsgiref's validator)
and compares the six environ keys ProxyFix may change with what the row
expects; every key the row does not name must be left as it was. The
same middleware is then run around each app of `middleware_apps.APPS`,
inside a microweb App with the rest of the stack, and through a real
gunicorn (underscore headers and spoofed X-Forwarded-For on the wire).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from middleware_apps import APPS
from servers import open_raw, read_to_eof
from wsgi_call import call

from microweb import App, Request
from microweb.middleware.https_redirect import HTTPSRedirect
from microweb.middleware.proxy_fix import ORIG, SAVED, ProxyFix, parse_forwarded
from microweb.middleware.trusted_host import TrustedHost
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

PROXY = "10.0.0.254"  # the peer: the proxy in front of the app
BEFORE = {
    "REMOTE_ADDR": PROXY,
    "wsgi.url_scheme": "http",
    "HTTP_HOST": "127.0.0.1",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "SCRIPT_NAME": "",
}


def environ_seen(options: dict[str, Any], **extra: Any) -> Environ:
    """The environ the app behind ProxyFix(**options) gets for one request."""
    seen: Environ = {}

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    reply = call(ProxyFix(app, **options), **{"REMOTE_ADDR": PROXY, **extra})
    assert reply.status_code == 200
    return seen


def changed(environ: Environ) -> dict[str, Any]:
    return {key: environ.get(key) for key in SAVED if environ.get(key) != BEFORE[key]}


XFF, XFP, XFH = "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST"
XPORT, XPREFIX, FWD = "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED"
HOST_EXAMPLE = {"HTTP_HOST": "example.com", "SERVER_NAME": "example.com"}

ROWS = [
    # -- X-Forwarded-For: the nth value from the right, nothing else --------------
    pytest.param({}, {XFF: "203.0.113.9"}, {"REMOTE_ADDR": "203.0.113.9"}, id="xff-one-hop"),
    pytest.param(
        {}, {XFF: "6.6.6.6, 10.0.0.1"}, {"REMOTE_ADDR": "10.0.0.1"}, id="xff-spoofed-leftmost"
    ),
    pytest.param(
        {"x_for": 2},
        {XFF: "6.6.6.6, 10.0.0.1, 10.0.0.2"},
        {"REMOTE_ADDR": "10.0.0.1"},
        id="xff-two-hops-right-to-left",
    ),
    pytest.param({"x_for": 2}, {XFF: "10.0.0.1"}, {}, id="xff-too-few-values-unchanged"),
    pytest.param({"x_for": 0}, {XFF: "10.0.0.1"}, {}, id="xff-hop-count-0-ignores-it"),
    pytest.param({}, {XFF: "6.6.6.6,10.0.0.1"}, {"REMOTE_ADDR": "10.0.0.1"}, id="xff-lines-joined"),
    pytest.param(
        {"x_for": 2},
        {XFF: "10.0.0.1, , 10.0.0.2,"},
        {"REMOTE_ADDR": "10.0.0.1"},
        id="rfc9110-5.6.1-empty-list-elements-do-not-count",
    ),
    pytest.param(
        {}, {XFF: "[2001:DB8::1]:4711"}, {"REMOTE_ADDR": "2001:db8::1"}, id="xff-ipv6-port"
    ),
    pytest.param({}, {XFF: "2001:db8::1"}, {"REMOTE_ADDR": "2001:db8::1"}, id="xff-bare-ipv6"),
    pytest.param({}, {XFF: "192.0.2.7:51000"}, {"REMOTE_ADDR": "192.0.2.7"}, id="xff-ipv4-port"),
    pytest.param({}, {XFF: "unknown"}, {}, id="xff-not-an-address"),
    pytest.param({}, {XFF: "1.2.3.4<script>"}, {}, id="xff-junk"),
    # -- X-Forwarded-Proto --------------------------------------------------------
    pytest.param({}, {XFP: "https"}, {"wsgi.url_scheme": "https"}, id="proto-https"),
    pytest.param({}, {XFP: "HTTPS"}, {"wsgi.url_scheme": "https"}, id="proto-case-insensitive"),
    pytest.param({}, {XFP: "javascript"}, {}, id="proto-only-http-or-https"),
    pytest.param({}, {XFP: "http, https"}, {"wsgi.url_scheme": "https"}, id="proto-rightmost"),
    pytest.param({"x_proto": 0}, {XFP: "https"}, {}, id="proto-hop-count-0-ignores-it"),
    # -- X-Forwarded-Host: HTTP_HOST, SERVER_NAME and SERVER_PORT together ----------
    pytest.param({}, {XFH: "example.com"}, {}, id="host-off-by-default"),
    pytest.param({"x_host": 1}, {XFH: "example.com"}, HOST_EXAMPLE, id="host"),
    pytest.param(
        {"x_host": 1},
        {XFH: "example.com", XFP: "https"},
        {**HOST_EXAMPLE, "wsgi.url_scheme": "https", "SERVER_PORT": "443"},
        id="host-port-defaults-to-the-schemes",
    ),
    pytest.param(
        {"x_host": 1},
        {XFH: "Example.COM:8443"},
        {"HTTP_HOST": "example.com:8443", "SERVER_NAME": "example.com", "SERVER_PORT": "8443"},
        id="host-with-port",
    ),
    pytest.param(
        {"x_host": 1},
        {XFH: "[2001:db8::1]:8080"},
        {"HTTP_HOST": "[2001:db8::1]:8080", "SERVER_NAME": "[2001:db8::1]", "SERVER_PORT": "8080"},
        id="host-ipv6",
    ),
    pytest.param({"x_host": 1}, {XFH: "evil.example, example.com"}, HOST_EXAMPLE, id="host-hop"),
    pytest.param({"x_host": 1}, {XFH: "example.com/x"}, {}, id="host-with-slash-refused"),
    pytest.param({"x_host": 1}, {XFH: "evil.example@example.com"}, {}, id="host-with-at"),
    # -- X-Forwarded-Port -----------------------------------------------------------
    pytest.param(
        {"x_port": 1},
        {XPORT: "8443"},
        {"SERVER_PORT": "8443", "HTTP_HOST": "127.0.0.1:8443"},
        id="port",
    ),
    pytest.param(
        {"x_port": 1},
        {XPORT: "443", XFP: "https"},
        {"SERVER_PORT": "443", "wsgi.url_scheme": "https"},
        id="rfc3986-6.2.3-default-port-left-out-of-host",
    ),
    pytest.param(
        {"x_port": 1, "x_host": 1},
        {XFH: "example.com:1", XPORT: "8443"},
        {"HTTP_HOST": "example.com:8443", "SERVER_NAME": "example.com", "SERVER_PORT": "8443"},
        id="port-replaces-the-forwarded-hosts",
    ),
    pytest.param({"x_port": 1}, {XPORT: "0"}, {}, id="port-0"),
    pytest.param({"x_port": 1}, {XPORT: "65536"}, {}, id="port-too-big"),
    pytest.param({"x_port": 1}, {XPORT: "80a"}, {}, id="port-not-a-number"),
    # -- X-Forwarded-Prefix ---------------------------------------------------------
    pytest.param({"x_prefix": 1}, {XPREFIX: "/app/"}, {"SCRIPT_NAME": "/app"}, id="prefix"),
    pytest.param({"x_prefix": 1}, {XPREFIX: "/"}, {}, id="prefix-root"),
    pytest.param({"x_prefix": 1}, {XPREFIX: "//evil.example"}, {}, id="prefix-open-redirect"),
    pytest.param({"x_prefix": 1}, {XPREFIX: "/\\evil.example"}, {}, id="prefix-backslash"),
    pytest.param({"x_prefix": 1}, {XPREFIX: "app"}, {}, id="prefix-not-a-path"),
    pytest.param({"x_prefix": 1}, {XPREFIX: "/a?b=1"}, {}, id="prefix-with-query"),
    # -- RFC 7239 Forwarded ---------------------------------------------------------
    pytest.param({}, {FWD: "for=192.0.2.60"}, {}, id="rfc7239-off-by-default"),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60;proto=https;by=203.0.113.43;host=example.com"},
        {"REMOTE_ADDR": "192.0.2.60", "wsgi.url_scheme": "https", **HOST_EXAMPLE}
        | {"SERVER_PORT": "443"},
        id="rfc7239-5-for-proto-host",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: 'for="[2001:db8:cafe::17]:4711"'},
        {"REMOTE_ADDR": "2001:db8:cafe::17"},
        id="rfc7239-6-ipv6-quoted-with-port",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: 'for="\\1\\9\\2.0.2.60"'},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-4-quoted-pair-escapes",
    ),
    pytest.param(
        {"forwarded": 1, "x_for": 0},
        {FWD: "for=6.6.6.6, for=192.0.2.60"},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-4-spoofed-leftmost-element",
    ),
    pytest.param(
        {"forwarded": 2},
        {FWD: "for=6.6.6.6, for=192.0.2.60, for=10.0.0.2"},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-two-hops",
    ),
    pytest.param({"forwarded": 2}, {FWD: "for=192.0.2.60"}, {}, id="rfc7239-too-few-elements"),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60, , "},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-empty-elements-do-not-count",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "FOR=192.0.2.60;Proto=HTTPS"},
        {"REMOTE_ADDR": "192.0.2.60", "wsgi.url_scheme": "https"},
        id="rfc7239-4-names-case-insensitive",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=unknown;proto=https"},
        {"wsgi.url_scheme": "https"},
        id="rfc7239-6.2-unknown-keeps-the-peer",
    ),
    pytest.param({"forwarded": 1}, {FWD: 'for="_hidden:_port"'}, {}, id="rfc7239-6.3-obfuscated"),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60;proto=gopher"},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-5.4-proto-only-http-or-https",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: 'for=192.0.2.60;host="evil.example/x"'},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="rfc7239-5.3-malformed-host",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60;proto=https;for=6.6.6.6"},
        {},
        id="rfc7239-4-repeated-parameter-ignores-all",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: 'for="6.6.6.6, for=192.0.2.60;proto=https'},
        {},
        id="rfc7239-4-unterminated-quote-ignores-all",
    ),
    pytest.param(
        {"forwarded": 1}, {FWD: "for=[2001:db8::1]"}, {}, id="rfc7239-6-ipv6-must-be-quoted"
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60 proto=https"},
        {},
        id="rfc7239-4-missing-separator-ignores-all",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=192.0.2.60", XFF: "10.0.0.1"},
        {"REMOTE_ADDR": "192.0.2.60"},
        id="forwarded-wins-over-xff",
    ),
    pytest.param(
        {"forwarded": 1},
        {FWD: "for=;", XFF: "10.0.0.1"},
        {"REMOTE_ADDR": "10.0.0.1"},
        id="malformed-forwarded-leaves-xff",
    ),
]


@pytest.mark.parametrize(("options", "headers", "expected"), ROWS)
def test_proxy_fix(
    options: dict[str, Any], headers: dict[str, str], expected: dict[str, Any]
) -> None:
    """Only the keys the row names change; each to exactly the value it names."""
    assert changed(environ_seen(options, **headers)) == expected


@pytest.mark.parametrize(
    ("trusted", "peer", "applied"),
    [
        pytest.param(["10.0.0.0/8"], "10.1.2.3", True, id="peer-in-cidr"),
        pytest.param(["10.0.0.0/8"], "192.0.2.1", False, id="peer-not-trusted"),
        pytest.param(["10.0.0.0/8"], "::ffff:10.0.0.1", True, id="ipv4-mapped-ipv6-peer"),
        pytest.param(["127.0.0.1", "2001:db8::/32"], "2001:db8::5", True, id="ipv6-cidr"),
        pytest.param(["::1"], "::1", True, id="ipv6-address"),
        pytest.param(["::1"], "127.0.0.1", False, id="other-family"),
        pytest.param(["10.0.0.0/8"], "", False, id="unix-socket-peer"),
    ],
)
def test_trusted_peers_only(trusted: list[str], peer: str, applied: bool) -> None:
    """An untrusted peer has every forwarded header ignored, not just some."""
    headers = {XFF: "203.0.113.9", XFP: "https", XFH: "example.com", FWD: "for=192.0.2.60"}
    options = {"trusted": trusted, "x_host": 1, "forwarded": 1}
    environ = environ_seen(options, REMOTE_ADDR=peer, **headers)
    server_said = {**BEFORE, "REMOTE_ADDR": peer}
    moved = {key for key in SAVED if environ.get(key) != server_said[key]}
    everything = {"REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT"}
    assert moved == (everything if applied else set())
    assert environ.get(ORIG) == (server_said if applied else None)


def test_originals_are_kept_in_the_environ() -> None:
    environ = environ_seen(
        {"x_host": 1, "x_prefix": 1},
        **{XFF: "203.0.113.9", XFP: "https", XFH: "example.com", XPREFIX: "/app"},
    )
    assert environ[ORIG] == BEFORE
    assert changed(environ) == {
        "REMOTE_ADDR": "203.0.113.9",
        "wsgi.url_scheme": "https",
        **HOST_EXAMPLE,
        "SERVER_PORT": "443",
        "SCRIPT_NAME": "/app",
    }


def test_without_forwarded_headers_the_environ_is_the_servers_own() -> None:
    """Headers whose hop count is 0 do not count as forwarded either."""
    environ = environ_seen({"x_for": 0}, **{XFF: "203.0.113.9", XFH: "example.com"})
    assert (changed(environ), ORIG in environ) == ({}, False)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"x_for": -1}, id="negative-x_for"),
        pytest.param({"forwarded": -2}, id="negative-forwarded"),
        pytest.param({"x_host": "1"}, id="hop-count-a-string"),
        pytest.param({"x_port": 1.5}, id="hop-count-a-float"),
        pytest.param({"x_prefix": True}, id="hop-count-a-bool"),
        pytest.param({"trusted": "10.0.0.1"}, id="trusted-one-string"),
        pytest.param({"trusted": ["not-an-ip"]}, id="trusted-junk"),
        pytest.param({"trusted": ["10.0.0.1/8"]}, id="trusted-host-bits-set"),
        pytest.param({"trusted": ["10.0.0.0/33"]}, id="trusted-bad-prefix"),
        pytest.param({"trusted": [None]}, id="trusted-none-entry"),
        pytest.param({"trusted": []}, id="trusted-empty"),
    ],
)
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="ProxyFix"):
        ProxyFix(lambda e, s: [], **options)


@pytest.mark.parametrize(
    ("header", "elements"),
    [
        pytest.param("for=192.0.2.43", [{"for": "192.0.2.43"}], id="rfc7239-4-one"),
        pytest.param(
            'for="_gazonk"; By=203.0.113.43 ,for=192.0.2.43',
            [{"for": "_gazonk", "by": "203.0.113.43"}, {"for": "192.0.2.43"}],
            id="rfc7239-4-two-elements-ows",
        ),
        pytest.param(
            'for="[2001:db8:cafe::17]:4711"',
            [{"for": "[2001:db8:cafe::17]:4711"}],
            id="rfc7239-6-ipv6",
        ),
        pytest.param(
            'for=a;host="x,y;z"', [{"for": "a", "host": "x,y;z"}], id="separators-in-quotes"
        ),
        pytest.param('for="a\\"b\\\\"', [{"for": 'a"b\\'}], id="quoted-pair"),
        pytest.param("for=a;;proto=http;", [{"for": "a", "proto": "http"}], id="empty-pairs"),
        pytest.param(",, for=a ,", [{"for": "a"}], id="empty-elements"),
        pytest.param("for=a;for=b", None, id="repeated-parameter"),
        pytest.param('for="a', None, id="unterminated-quote"),
        pytest.param("for=", None, id="empty-value"),
        pytest.param("for=[::1]", None, id="unquoted-ipv6"),
        pytest.param("for a", None, id="no-equals"),
        pytest.param('for="a"b', None, id="text-after-quote"),
        pytest.param('for="a\nb"', None, id="control-in-quote"),
    ],
)
def test_parse_forwarded(header: str, elements: list[dict[str, str]] | None) -> None:
    assert parse_forwarded(header) == elements


# -- Around any WSGI app, and inside a microweb App -------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS, ids=[name for name, _ in APPS])
def test_around_any_wsgi_app(name: str, factory: Any) -> None:
    client = Client(ProxyFix(factory(), x_host=1), extra_environ={"REMOTE_ADDR": PROXY})
    headers = {
        "X-Forwarded-For": "6.6.6.6, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "example.com",
    }
    seen = client.get("/who", headers=headers, status=200).json
    assert (seen["remote_addr"], seen["scheme"], seen["host"]) == (
        "203.0.113.9",
        "https",
        "example.com",
    )
    untouched = client.get("/who", status=200).json
    assert (untouched["remote_addr"], untouched["scheme"]) == (PROXY, "http")


def stacked_app() -> App:
    app = App()

    @app.get("/who")
    def who(req: Request) -> Any:
        return {"client_addr": req.client_addr, "url": req.url, "scheme": req.scheme}

    app.use(HTTPSRedirect)
    app.use(TrustedHost, allowed_hosts=["example.com"])
    app.use(ProxyFix, x_host=1, trusted=["10.0.0.0/8"])
    return app


@pytest.mark.parametrize(
    ("peer", "status", "client_addr"),
    [
        pytest.param(PROXY, 200, "203.0.113.9", id="from-the-proxy"),
        # Not the proxy: X-Forwarded-Proto is not believed, so HTTPSRedirect answers.
        pytest.param("198.51.100.1", 308, None, id="from-anyone-else"),
    ],
)
def test_in_the_stack_client_addr_is_what_proxy_fix_established(
    peer: str, status: int, client_addr: str | None
) -> None:
    client = Client(stacked_app(), extra_environ={"REMOTE_ADDR": peer})
    headers = {
        "Host": "example.com",
        "X-Forwarded-For": "6.6.6.6, 203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "example.com",
    }
    reply = client.get("/who", headers=headers, status=status)
    if status == 200:
        assert reply.json == {
            "client_addr": client_addr,
            "url": "https://example.com/who",
            "scheme": "https",
        }
    else:
        assert reply.headers["Location"] == "https://example.com/who"


def test_in_the_stack_a_forwarded_host_is_checked_by_trusted_host() -> None:
    """ProxyFix runs first, so TrustedHost checks the host it established."""
    client = Client(stacked_app(), extra_environ={"REMOTE_ADDR": PROXY})
    headers = {
        "Host": "example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    client.get("/who", headers=headers, status=400)


# -- Through a real gunicorn ------------------------------------------------------


def e2e_app() -> WSGIApp:
    """Served by gunicorn: says what the app saw (gunicorn imports this module)."""
    app = App()

    @app.get("/who")
    def who(req: Request) -> Any:
        return {"client_addr": req.client_addr, "scheme": req.scheme, "orig": req.environ.get(ORIG)}

    app.use(ProxyFix, trusted=["127.0.0.1"])
    return app


def exchange(url: str, headers: str) -> tuple[int, Any]:
    """Send raw header lines (so nothing can tidy them up); the status and JSON body."""
    head = f"GET /who HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    with open_raw(url) as sock:
        sock.sendall(head.encode("latin-1"))
        reply = read_to_eof(sock)
    match = re.match(rb"HTTP/1\.1 (\d{3}) .*?\r\n\r\n", reply, re.DOTALL)
    assert match, reply[:300]
    status, body = int(match[1]), reply[match.end() :]
    return status, (json.loads(body) if status == 200 else body)


E2E_APP = "test_middleware_proxy_fix:e2e_app()"  # gunicorn calls the factory
PYTHONPATH = ("--pythonpath", str(Path(__file__).parent))


@pytest.mark.e2e
def test_e2e_gunicorn_default(gunicorn_server: Any) -> None:
    url = gunicorn_server(E2E_APP, workers=1, args=PYTHONPATH)
    # A spoofed leftmost value never becomes client_addr.
    status, seen = exchange(url, "X-Forwarded-For: 6.6.6.6, 10.0.0.1\r\n")
    assert (status, seen["client_addr"]) == (200, "10.0.0.1")
    # header_map=drop (gunicorn 27's default): the underscore header never arrives.
    status, seen = exchange(url, "X-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n")
    assert (status, seen["client_addr"]) == (200, "10.0.0.1")
    status, seen = exchange(url, "X_Forwarded_For: 6.6.6.6\r\n")
    assert (status, seen["client_addr"], seen["orig"]) == (200, "127.0.0.1", None)
    # gunicorn itself believes X-Forwarded-Proto from 127.0.0.1 (--forwarded-allow-ips).
    status, seen = exchange(url, "X-Forwarded-Proto: https\r\n")
    assert (seen["scheme"], seen["orig"]["wsgi.url_scheme"]) == ("https", "https")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("header_map", "status", "client_addr"),
    [
        pytest.param("refuse", 400, None, id="refuse-is-400"),
        # Why ProxyFix must never run behind header_map=dangerous: the client's
        # underscore header is joined on the right, where the trusted value goes.
        pytest.param("dangerous", 200, "6.6.6.6", id="dangerous-lets-a-client-spoof"),
    ],
)
def test_e2e_gunicorn_header_map(
    gunicorn_server: Any, header_map: str, status: int, client_addr: str | None
) -> None:
    url = gunicorn_server(E2E_APP, workers=1, args=(*PYTHONPATH, "--header-map", header_map))
    got, seen = exchange(url, "X-Forwarded-For: 10.0.0.1\r\nX_Forwarded_For: 6.6.6.6\r\n")
    assert got == status
    if status == 200:
        assert seen["client_addr"] == client_addr
