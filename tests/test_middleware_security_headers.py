"""microweb/middleware/security_headers.py: the browser-defence headers.

Each rule is tested alone (a hand-written app, through `wsgiref.validate`
via `wsgi_call.call`, or WebTest's lint via `Client`), around every app in
`middleware_apps.APPS` (plain WSGI, Flask, microweb), and inside a microweb
`App` stack with `RequestID` (``app.use``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import flask
import pytest
from middleware_apps import APPS
from wsgi_call import call

from microweb import App, HTTPError, Request, Response
from microweb.middleware import Middleware
from microweb.middleware.request_id import RequestID
from microweb.middleware.security_headers import DEFAULT_PERMISSIONS_POLICY, SecurityHeaders
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

HSTS = "max-age=63072000; includeSubDomains"

#: The headers sent over plain http by default (HSTS is https-only).
DEFAULTS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": DEFAULT_PERMISSIONS_POLICY,
}
HTTPS_DEFAULTS = {"Strict-Transport-Security": HSTS, **DEFAULTS}
#: Option name -> header name.
OPTIONS = {
    "hsts": "Strict-Transport-Security",
    "csp": "Content-Security-Policy",
    "frame_options": "X-Frame-Options",
    "content_type_options": "X-Content-Type-Options",
    "referrer_policy": "Referrer-Policy",
    "coop": "Cross-Origin-Opener-Policy",
    "permissions_policy": "Permissions-Policy",
}
HTTPS: dict[str, Any] = {"wsgi.url_scheme": "https", "SERVER_PORT": "443"}


def answering(status: str = "200 OK", headers: Iterable[tuple[str, str]] = ()) -> WSGIApp:
    """A plain WSGI app answering `status` with `headers` and a short body."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if status.startswith(("204", "304")):  # RFC 9110 §15.3.5, §15.4.5: no content
            start_response(status, list(headers))
            return []
        start_response(status, [("Content-Type", "text/plain"), *headers])
        return [b"hello"]

    return app


def security(headers: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The security headers in `headers`, by canonical name, every value kept."""
    found: dict[str, list[str]] = {}
    for name, value in headers:
        for canonical in OPTIONS.values():
            if name.lower() == canonical.lower():
                found.setdefault(canonical, []).append(value)
    return found


def expected(values: dict[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in values.items()}


# -- Alone: the defaults, and HSTS only over https ----------------------------


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        pytest.param({}, DEFAULTS, id="http-no-hsts-rfc6797-7.2"),
        pytest.param(HTTPS, HTTPS_DEFAULTS, id="https-hsts-rfc6797-7.1"),
        # What ProxyFix establishes from X-Forwarded-Proto is wsgi.url_scheme; the
        # raw header itself proves nothing (any client can send it).
        pytest.param(
            {"HTTP_X_FORWARDED_PROTO": "https"}, DEFAULTS, id="raw-forwarded-proto-is-not-https"
        ),
    ],
)
def test_defaults_and_rfc6797_hsts_over_https_only(
    extra: dict[str, Any], want: dict[str, str]
) -> None:
    response = call(SecurityHeaders(answering()), **extra)
    assert response.status_code == 200
    assert security(response.headers) == expected(want)


@pytest.mark.parametrize(
    "status",
    [
        pytest.param("201 Created", id="201"),
        pytest.param("204 No Content", id="204"),
        pytest.param("308 Permanent Redirect", id="308"),
        pytest.param("304 Not Modified", id="304"),
        pytest.param("400 Bad Request", id="400"),
        pytest.param("404 Not Found", id="404"),
        pytest.param("405 Method Not Allowed", id="405"),
        pytest.param("500 Internal Server Error", id="500"),
        pytest.param("503 Service Unavailable", id="503"),
    ],
)
def test_every_status_carries_them(status: str) -> None:
    response = call(SecurityHeaders(answering(status)), **HTTPS)
    assert response.status == status
    assert security(response.headers) == expected(HTTPS_DEFAULTS)


# -- Alone: override or disable each header ------------------------------------


@pytest.mark.parametrize("option", [pytest.param(option, id=option) for option in OPTIONS])
def test_each_option_overrides_its_header(option: str) -> None:
    value = "max-age=300" if option == "hsts" else "custom-value"
    response = call(SecurityHeaders(answering(), **{option: value}), **HTTPS)
    assert security(response.headers) == expected({**HTTPS_DEFAULTS, OPTIONS[option]: value})


@pytest.mark.parametrize("option", [pytest.param(option, id=option) for option in OPTIONS])
def test_none_disables_only_that_header(option: str) -> None:
    response = call(SecurityHeaders(answering(), **{option: None}), **HTTPS)
    want = {name: value for name, value in HTTPS_DEFAULTS.items() if name != OPTIONS[option]}
    assert security(response.headers) == expected(want)


def test_all_disabled_adds_nothing() -> None:
    layer = SecurityHeaders(answering(), **dict.fromkeys(OPTIONS))
    assert security(call(layer, **HTTPS).headers) == {}


# -- Alone: a header the app set itself wins (RFC 9110 §5.1: names are case-insensitive)


@pytest.mark.parametrize(
    ("own", "header"),
    [
        pytest.param(
            ("Content-Security-Policy", "default-src 'none'"),
            "Content-Security-Policy",
            id="csp-same-case",
        ),
        pytest.param(
            ("content-security-policy", "frame-ancestors https://partner.example"),
            "Content-Security-Policy",
            id="csp-lower-case",
        ),
        pytest.param(("X-FRAME-OPTIONS", "SAMEORIGIN"), "X-Frame-Options", id="xfo-upper-case"),
        pytest.param(("referrer-policy", "no-referrer"), "Referrer-Policy", id="referrer"),
        pytest.param(
            ("Strict-Transport-Security", "max-age=0"),
            "Strict-Transport-Security",
            id="hsts-max-age-0-rfc6797-6.1.1",
        ),
        pytest.param(
            ("cross-origin-opener-policy", "same-origin-allow-popups"),
            "Cross-Origin-Opener-Policy",
            id="coop",
        ),
        pytest.param(
            ("Permissions-Policy", "geolocation=(self)"), "Permissions-Policy", id="permissions"
        ),
        pytest.param(("x-content-type-options", "nosniff"), "X-Content-Type-Options", id="nosniff"),
    ],
)
def test_the_apps_own_header_wins_and_is_not_duplicated(own: tuple[str, str], header: str) -> None:
    response = call(SecurityHeaders(answering(headers=[own])), **HTTPS)
    assert [pair for pair in response.headers if pair[0].lower() == header.lower()] == [own]
    assert security(response.headers) == expected({**HTTPS_DEFAULTS, header: own[1]})


# -- Alone: options are checked at construction ---------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"csp": "default-src 'self'\r\nSet-Cookie: a=b"}, "csp=", id="crlf"),
        pytest.param({"frame_options": "DENY\n"}, "frame_options=", id="lf"),
        pytest.param({"referrer_policy": "no-referrer\r"}, "referrer_policy=", id="cr"),
        pytest.param({"coop": "same-origin\x00"}, "coop=", id="nul"),
        # RFC 9110 §5.5 allows a tab inside a value, but WSGI validators do not.
        pytest.param({"csp": "default-src\t'self'"}, "csp=", id="tab"),
        pytest.param({"permissions_policy": "camera=()\x7f"}, "permissions_policy=", id="del"),
        pytest.param({"csp": "default-src 'self' https://exämple.com"}, "csp=", id="non-ascii"),
        pytest.param({"content_type_options": ""}, "None disables", id="empty"),
        pytest.param({"frame_options": "   "}, "None disables", id="blank"),
        pytest.param({"frame_options": b"DENY"}, "str or None", id="bytes"),
        pytest.param({"hsts": 63072000}, "str or None", id="int"),
        pytest.param({"coop": False}, "str or None", id="false"),
        pytest.param({"hsts": "includeSubDomains"}, "max-age", id="hsts-no-max-age-rfc6797-6.1.1"),
        pytest.param({"hsts": "max-ages=5"}, "max-age", id="hsts-lookalike-directive"),
    ],
)
def test_bad_options_are_a_valueerror_at_construction(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SecurityHeaders(answering(), **options)


@pytest.mark.parametrize(
    "hsts",
    [
        pytest.param("max-age=0", id="max-age-0-clears-rfc6797-6.1.1"),
        pytest.param("MAX-AGE = 31536000 ; preload", id="case-and-spaces-rfc6797-6.1"),
        pytest.param('includeSubDomains; max-age="600"', id="quoted-and-any-order"),
    ],
)
def test_rfc6797_6_1_hsts_values_accepted(hsts: str) -> None:
    response = call(SecurityHeaders(answering(), hsts=hsts), **HTTPS)
    assert response.header("Strict-Transport-Security") == hsts


# -- Around any WSGI app: plain, Flask, microweb --------------------------------


@pytest.mark.parametrize("factory", [pytest.param(factory, id=name) for name, factory in APPS])
@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/", 200, id="root"),
        pytest.param("/no/such/page", 200, id="any-path"),  # these apps answer every path
        pytest.param("/error", 500, id="error-500"),
    ],
)
@pytest.mark.parametrize(
    ("extra_environ", "want"),
    [pytest.param({}, DEFAULTS, id="http"), pytest.param(HTTPS, HTTPS_DEFAULTS, id="https")],
)
def test_around_each_app(
    factory: Callable[[], WSGIApp],
    path: str,
    status: int,
    extra_environ: dict[str, str],
    want: dict[str, str],
) -> None:
    client = Client(SecurityHeaders(factory()), extra_environ=extra_environ)
    response = client.get(path, status=status, expect_errors=True)
    assert security(response.headerlist) == expected(want)


def flask_get_only() -> WSGIApp:
    app = flask.Flask("security_headers_test")

    @app.get("/page")
    def page() -> Any:
        return "page"

    return app.wsgi_app


def microweb_get_only() -> WSGIApp:
    app = App()

    @app.get("/page")
    def page(req: Request) -> str:
        return "page"

    return app


@pytest.mark.parametrize(
    "factory",
    [pytest.param(flask_get_only, id="flask"), pytest.param(microweb_get_only, id="microweb")],
)
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/page", 200, id="200"),
        pytest.param("GET", "/missing", 404, id="404-rfc9110-15.5.5"),
        pytest.param("POST", "/page", 405, id="405-rfc9110-15.5.6"),
        pytest.param("HEAD", "/page", 200, id="head-rfc9110-9.3.2"),
        pytest.param("OPTIONS", "/page", None, id="options-rfc9110-9.3.7"),
    ],
)
def test_framework_error_pages_carry_them(
    factory: Callable[[], WSGIApp], method: str, path: str, status: int | None
) -> None:
    client = Client(SecurityHeaders(factory()))
    # NOTE: `request` lets the URL's scheme win over extra_environ; `environ` does not.
    response = client.request(path, method=method, environ=dict(HTTPS), expect_errors=True)
    if status is not None:  # Flask answers OPTIONS 200, microweb 204: both fine here
        assert response.status_int == status
    assert security(response.headerlist) == expected(HTTPS_DEFAULTS)


# -- Inside a microweb App, with RequestID (app.use) ------------------------------


def refuse(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("403 Forbidden", [("Content-Type", "text/plain")])
    return [b"no"]


class Gate(Middleware):
    """A middleware answering /gate itself (as TrustedHost answers 400)."""

    def before(self, environ: Environ) -> WSGIApp | None:
        return refuse if environ["PATH_INFO"] == "/gate" else None


def stacked_app() -> App:
    app = App()

    @app.get("/page")
    def page(req: Request) -> str:
        return "page"

    @app.get("/framed")
    def framed(req: Request) -> Response:
        response = Response("widget")
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Content-Security-Policy"] = "frame-ancestors https://partner.example"
        return response

    @app.get("/crash")
    def crash(req: Request) -> str:
        raise RuntimeError("boom")

    @app.get("/teapot")
    def teapot(req: Request) -> str:
        raise HTTPError(418, "short and stout")

    # Added in the "wrong" order on purpose: the stack's ORDER decides.
    app.use(Gate)
    app.use(SecurityHeaders, referrer_policy="no-referrer")
    app.use(RequestID)
    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/page", 200, id="200"),
        pytest.param("HEAD", "/page", 200, id="head"),
        pytest.param("OPTIONS", "/page", 204, id="options"),
        pytest.param("GET", "/missing", 404, id="404"),
        pytest.param("DELETE", "/page", 405, id="405"),
        pytest.param("GET", "/teapot", 418, id="httperror"),
        pytest.param("GET", "/crash", 500, id="500"),
        pytest.param("GET", "/gate", 403, id="early-answer-from-inner-middleware"),
    ],
)
@pytest.mark.parametrize(
    ("extra_environ", "want"),
    [pytest.param({}, DEFAULTS, id="http"), pytest.param(HTTPS, HTTPS_DEFAULTS, id="https")],
)
def test_in_an_app_stack_with_request_id(
    method: str, path: str, status: int, extra_environ: dict[str, str], want: dict[str, str]
) -> None:
    app = stacked_app()
    # The two run as hooks (one frame), not as nested WSGI calls.
    assert type(app._stack).__name__ == "HookChain"
    response = Client(app).request(
        path, method=method, environ=dict(extra_environ), expect_errors=True
    )
    assert response.status_int == status
    assert security(response.headerlist) == expected({**want, "Referrer-Policy": "no-referrer"})
    assert response.headers["X-Request-ID"]


def test_in_an_app_stack_the_handlers_own_header_wins() -> None:
    response = Client(stacked_app()).get("/framed", status=200)
    assert security(response.headerlist) == expected(
        {
            **DEFAULTS,
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "SAMEORIGIN",
            "Content-Security-Policy": "frame-ancestors https://partner.example",
        }
    )
