"""microweb/sessions/cookie.py, session.py and session_data.py: signed-cookie sessions.

Every request goes through WebTest's lint (`sessions_app.send`), or through
`wsgiref.validate` (`wsgi_call.call`) for headers WebTest would not build.
Time is an injected `Clock`; nothing sleeps. Cookie rules name their
RFC 6265bis (draft-ietf-httpbis-rfc6265bis) section.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from middleware_apps import APPS
from servers import fetch
from sessions_app import (
    Clock,
    attributes,
    environ_app,
    flask_app,
    new_cookie,
    send,
    session_app,
    set_cookies,
)
from wsgi_call import call

from microweb import App
from microweb.middleware import CORS, ETag, GZip, RequestID, SecurityHeaders
from microweb.sessions import MAX_COOKIE_SIZE, CookieSessions, Session, SessionTooLarge
from microweb.types import WSGIApp

KEY = "k" * 32
OLD_KEY = "o" * 32
NEW_KEY = "n" * 32


def cookie_app(clock: Clock | None = None, **options: Any) -> App:
    app = session_app()
    options.setdefault("secret_keys", [KEY])
    app.use(CookieSessions, clock=clock or Clock(), **options)
    return app


def logged_in(app: WSGIApp, data: dict[str, Any] | None = None) -> str:
    cookie = new_cookie(send(app, "POST", "/set", body=data or {"user": "alice", "n": 1}))
    assert cookie
    return cookie


# -- Startup: options are checked once, in __init__ -------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        pytest.param({"secret_keys": ["k" * 31]}, ValueError, "31 bytes", id="key-31-bytes"),
        pytest.param({"secret_keys": ["é" * 15]}, ValueError, "30 bytes", id="str-key-utf8-len"),
        pytest.param({"secret_keys": [KEY, b"short"]}, ValueError, r"secret_keys\[1\]",
                     id="old-key-too-short"),
        pytest.param({"secret_keys": []}, ValueError, "at least one", id="no-keys"),
        pytest.param({"secret_keys": KEY}, TypeError, "list of keys", id="bare-str-key"),
        pytest.param({"secret_keys": KEY.encode()}, TypeError, "list of keys", id="bare-bytes"),
        pytest.param({"host_prefix": True, "secure": False}, ValueError, "__Host-session",
                     id="4.1.3.2-host-prefix-needs-secure"),
        pytest.param({"cookie_name": "__Secure-s", "secure": False}, ValueError, "secure=True",
                     id="4.1.3.1-secure-prefix-needs-secure"),
        pytest.param({"samesite": "None", "secure": False}, ValueError, "secure=True",
                     id="4.1.2.7-samesite-none-needs-secure"),
        pytest.param({"samesite": "sometimes"}, ValueError, "samesite", id="bad-samesite"),
        pytest.param({"cookie_name": "my session"}, ValueError, "token", id="name-not-a-token"),
        pytest.param({"cookie_name": ""}, ValueError, "token", id="empty-name"),
        pytest.param({"max_age": 0}, ValueError, "max_age", id="max-age-zero"),
        pytest.param({"idle_timeout": -5}, ValueError, "idle_timeout", id="negative-idle"),
    ],
)  # fmt: skip
def test_bad_options_are_refused_at_startup(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    options.setdefault("secret_keys", [KEY])
    with pytest.raises(error, match=message):
        CookieSessions(session_app(), **options)


def test_the_key_error_never_shows_the_key() -> None:
    with pytest.raises(ValueError) as caught:
        CookieSessions(session_app(), secret_keys=["hunter2-secret"])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "key", [pytest.param("é" * 16, id="str-32-utf8-bytes"), pytest.param(b"\0" * 32, id="bytes")]
)
def test_32_byte_keys_are_accepted(key: str | bytes) -> None:
    app = cookie_app(secret_keys=[key])
    assert send(app, "GET", "/read", cookie=logged_in(app)).json == {"user": "alice", "n": 1}


# -- The cookie's attributes (RFC 6265bis §4.1.2, §4.1.3) -------------------------------


@pytest.mark.parametrize(
    ("options", "name", "expected", "absent"),
    [
        pytest.param({}, "session",
                     {"path": "/", "httponly": "", "samesite": "Lax", "secure": ""},
                     {"domain", "max-age"}, id="4.1.2-defaults-no-max-age-is-a-browser-session"),
        pytest.param({"secure": False}, "session", {"httponly": ""}, {"secure"},
                     id="4.1.2.5-secure-off-for-plain-http-dev"),
        pytest.param({"samesite": "strict"}, "session", {"samesite": "Strict"}, set(),
                     id="4.1.2.7-samesite-strict"),
        pytest.param({"samesite": "None"}, "session", {"samesite": "None", "secure": ""}, set(),
                     id="4.1.2.7-samesite-none"),
        pytest.param({"host_prefix": True}, "__Host-session", {"path": "/", "secure": ""},
                     {"domain"}, id="4.1.3.2-host-prefix"),
        pytest.param({"cookie_name": "sess"}, "sess", {}, set(), id="cookie-name"),
        pytest.param({"max_age": 3600}, "session", {"max-age": "3600"}, set(),
                     id="4.1.2.2-max-age-absolute"),
        pytest.param({"idle_timeout": 600}, "session", {"max-age": "600"}, set(),
                     id="4.1.2.2-max-age-idle"),
        pytest.param({"idle_timeout": 600, "max_age": 300}, "session", {"max-age": "300"}, set(),
                     id="4.1.2.2-max-age-the-shorter"),
    ],
)  # fmt: skip
def test_cookie_attributes(
    options: dict[str, Any], name: str, expected: dict[str, str], absent: set[str]
) -> None:
    response = send(cookie_app(**options), "POST", "/set", body={"a": 1})
    [header] = set_cookies(response, name)
    attrs = attributes(header)
    for key, value in expected.items():
        assert attrs.get(key) == value, header
    assert not absent & attrs.keys(), header


def test_a_session_round_trips() -> None:
    app = cookie_app()
    cookie = logged_in(app, {"user": "alice", "roles": ["a", "b"], "n": 1.5, "ok": None})
    assert send(app, "GET", "/read", cookie=cookie).json == {
        "user": "alice",
        "roles": ["a", "b"],
        "n": 1.5,
        "ok": None,
    }


def test_non_ascii_data_round_trips() -> None:
    app = cookie_app()
    cookie = logged_in(app, {"name": "Zoë 東京 🍣"})
    assert send(app, "GET", "/read", cookie=cookie).json == {"name": "Zoë 東京 🍣"}


# -- Tampering: any change is an empty session, never a 500 (RFC 6265bis §8.6) ----------


def _substitute(char: str) -> str:
    return "A" if char != "A" else "B"  # another base64url character


def _flip(char: str) -> str:
    return chr(ord(char) ^ 1)  # one bit: '-' becomes ',', '.' becomes '/', 'A' 'B'...


@pytest.mark.parametrize("change", [_substitute, _flip], ids=["base64-char", "bit-flip"])
def test_tampering_with_any_byte_gives_an_empty_session(change: Callable[[str], str]) -> None:
    app = cookie_app()
    cookie = logged_in(app)
    assert send(app, "GET", "/read", cookie=cookie).json == {"user": "alice", "n": 1}
    for position, char in enumerate(cookie):
        forged = cookie[:position] + change(char) + cookie[position + 1 :]
        response = send(app, "GET", "/read", cookie=forged)
        assert response.json == {}, f"position {position}: {forged}"
        # The rejected cookie is deleted, so the browser stops sending it.
        assert new_cookie(response) == "", position


def test_truncating_the_cookie_anywhere_gives_an_empty_session() -> None:
    app = cookie_app()
    cookie = logged_in(app)
    for length in range(len(cookie)):
        assert send(app, "GET", "/read", cookie=cookie[:length]).json == {}, length
    assert send(app, "GET", "/read", cookie=cookie + "A").json == {}


def test_the_signature_binds_the_cookie_name() -> None:
    """A value signed for one cookie name is worth nothing under another."""
    cookie = new_cookie(
        send(cookie_app(cookie_name="other"), "POST", "/set", body={"a": 1}), "other"
    )
    assert cookie
    assert send(cookie_app(), "GET", "/read", cookie=cookie).json == {}


def _signed(payload_bytes: bytes | None, payload_text: str | None = None) -> str:
    """A cookie with a *valid* signature around any payload, to test what comes after."""
    middleware = CookieSessions(session_app(), secret_keys=[KEY])
    text = payload_text
    if text is None:
        assert payload_bytes is not None
        text = base64.urlsafe_b64encode(payload_bytes).rstrip(b"=").decode()
    return f"{text}.{middleware.sign(text, KEY.encode())}"


def _record(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


NOW = int(Clock().now)


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(_signed(None, "@@@@"), id="bad-base64"),
        pytest.param(_signed(None, "e30"), id="unpadded-but-valid-empty-object"),
        pytest.param(_signed(b"\xff\xfe{}"), id="not-utf8"),
        pytest.param(_signed(b"not json"), id="not-json"),
        pytest.param(_signed(b"[1, 2]"), id="json-array"),
        pytest.param(_signed(b'"text"'), id="json-string"),
        pytest.param(_signed(b"NaN"), id="json-nan"),
        pytest.param(_signed(b"[" * 100_000), id="deep-nesting"),
        pytest.param(_signed(_record(iat=NOW, seen=NOW)), id="no-data"),
        pytest.param(_signed(_record(iat=NOW, seen=NOW, data=[1])), id="data-not-object"),
        pytest.param(_signed(_record(iat="now", seen=NOW, data={})), id="iat-a-string"),
        pytest.param(_signed(_record(iat=True, seen=NOW, data={})), id="iat-a-bool"),
        pytest.param(_signed(_record(iat=NOW, seen=1.5, data={})), id="seen-a-float"),
        pytest.param("", id="empty"),
        pytest.param("no-dot-at-all", id="no-signature"),
        pytest.param(".", id="only-a-dot"),
        pytest.param("a" * 10_000 + ".b", id="10-kb"),
    ],
)
def test_wrongly_encoded_cookies_give_an_empty_session(cookie: str) -> None:
    """Even behind a valid signature, anything but our own record is an empty session."""
    response = send(cookie_app(), "GET", "/read", cookie=cookie)
    assert response.json == {}


def test_a_valid_record_behind_a_valid_signature_is_accepted() -> None:
    """The control row for the table above: the forged cookies differ only in the payload."""
    cookie = _signed(_record(iat=NOW, seen=NOW, data={"user": "bob"}))
    assert send(cookie_app(), "GET", "/read", cookie=cookie).json == {"user": "bob"}


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("session=caf\xe9.x", id="latin-1-byte"),
        pytest.param("session=\xc3\xa9t\xc3\xa9.sig", id="utf-8-bytes"),
        pytest.param('session="quoted.value"', id="quoted"),
        pytest.param("session=a; session=b", id="twice"),
        pytest.param("session", id="no-equals"),
        pytest.param(";;;=;session=;", id="junk"),
        pytest.param("session=" + "\x00" * 10, id="nul-bytes"),
    ],
)
def test_malformed_cookie_headers_are_an_empty_session(header: str) -> None:
    """RFC 6265bis §5.7: whatever the client sends, the answer is never a 500."""
    reply = call(cookie_app(), "GET", "/read", HTTP_COOKIE=header)
    assert (reply.status_code, json.loads(reply.body)) == (200, {})


def test_other_cookies_are_ignored() -> None:
    app = cookie_app()
    cookie = logged_in(app)
    reply = call(app, "GET", "/read", HTTP_COOKIE=f"xsession=1; session={cookie}; theme=dark")
    assert json.loads(reply.body) == {"user": "alice", "n": 1}


# -- Key rotation ------------------------------------------------------------------------


def test_an_old_key_cookie_is_accepted_then_resigned_with_the_new_key() -> None:
    clock = Clock()
    old_cookie = logged_in(cookie_app(clock, secret_keys=[OLD_KEY]))
    rotated = cookie_app(clock, secret_keys=[NEW_KEY, OLD_KEY])

    read = send(rotated, "GET", "/read", cookie=old_cookie)
    assert read.json == {"user": "alice", "n": 1}
    assert new_cookie(read) is None  # unchanged: not re-sent

    changed = send(rotated, "POST", "/set", cookie=old_cookie, body={"n": 2})
    resigned = new_cookie(changed)
    assert resigned
    assert send(cookie_app(clock, secret_keys=[NEW_KEY]), "GET", "/read", cookie=resigned).json == {
        "user": "alice",
        "n": 2,
    }
    assert (
        send(cookie_app(clock, secret_keys=[OLD_KEY]), "GET", "/read", cookie=resigned).json == {}
    )


def test_a_cookie_signed_with_a_retired_key_is_rejected() -> None:
    old_cookie = logged_in(cookie_app(secret_keys=[OLD_KEY]))
    assert send(cookie_app(secret_keys=[NEW_KEY]), "GET", "/read", cookie=old_cookie).json == {}


# -- Lifetimes, inside the signed payload -----------------------------------------------


def test_idle_timeout_expires_an_inactive_session() -> None:
    clock = Clock()
    app = cookie_app(clock, idle_timeout=600)
    cookie = logged_in(app)
    clock.advance(599)
    assert send(app, "GET", "/read", cookie=cookie).json == {"user": "alice", "n": 1}
    clock.advance(1)
    response = send(app, "GET", "/read", cookie=cookie)
    assert response.json == {}
    assert new_cookie(response) == ""  # and it is deleted


def test_an_active_session_is_refreshed_and_never_idles_out() -> None:
    clock = Clock()
    app = cookie_app(clock, idle_timeout=600)
    cookie = logged_in(app)
    for _ in range(10):
        clock.advance(400)
        response = send(app, "GET", "/read", cookie=cookie)
        assert response.json == {"user": "alice", "n": 1}
        refreshed = new_cookie(response)
        assert refreshed and refreshed != cookie
        assert attributes(set_cookies(response, "session")[0])["max-age"] == "600"
        cookie = refreshed


def test_an_unchanged_session_is_refreshed_only_after_a_tenth_of_idle_timeout() -> None:
    clock = Clock()
    app = cookie_app(clock, idle_timeout=600)
    cookie = logged_in(app)
    clock.advance(59)
    assert new_cookie(send(app, "GET", "/read", cookie=cookie)) is None
    clock.advance(1)
    assert new_cookie(send(app, "GET", "/read", cookie=cookie))


def test_max_age_is_absolute_whatever_the_activity() -> None:
    clock = Clock()
    app = cookie_app(clock, max_age=1000, idle_timeout=600)
    cookie = logged_in(app)
    for expected_max_age in ("600", "400", "100"):  # min(idle, what is left of 1000 s)
        clock.advance(300)
        response = send(app, "GET", "/read", cookie=cookie)
        assert response.json == {"user": "alice", "n": 1}
        assert attributes(set_cookies(response, "session")[0])["max-age"] == expected_max_age
        cookie = new_cookie(response) or cookie
    clock.advance(100)  # 1000 s since login
    assert send(app, "GET", "/read", cookie=cookie).json == {}


def test_the_client_cannot_extend_its_lifetime() -> None:
    """The times are inside the signed payload: a client-side Max-Age means nothing."""
    clock = Clock()
    app = cookie_app(clock, max_age=60)
    cookie = logged_in(app)
    clock.advance(60)
    assert send(app, "GET", "/read", cookie=cookie).json == {}


# -- When the cookie is sent, and Vary ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "vary", "sets_cookie"),
    [
        pytest.param("GET", "/read", "Cookie", False, id="read-unchanged-no-set-cookie"),
        pytest.param("GET", "/untouched", None, False, id="untouched-no-vary"),
        pytest.param("GET", "/vary", "Accept-Encoding, Cookie", False, id="vary-merged"),
        pytest.param("POST", "/set", "Cookie", True, id="changed-set-cookie"),
        pytest.param("POST", "/rotate", "Cookie", True, id="rotated-set-cookie"),
    ],
)
def test_set_cookie_only_when_changed_and_vary_when_read(
    method: str, path: str, vary: str | None, sets_cookie: bool
) -> None:
    """RFC 9110 §12.5.5: a response that depends on the Cookie header says so."""
    app = cookie_app()
    response = send(app, method, path, cookie=logged_in(app), body={} if method == "POST" else None)
    assert response.headers.get("Vary") == vary
    assert bool(new_cookie(response)) is sets_cookie


def test_no_cookie_and_nothing_stored_sends_nothing() -> None:
    response = send(cookie_app(), "GET", "/read")
    assert (response.json, set_cookies(response, "session")) == ({}, [])


def test_a_set_cookie_response_is_private_unless_the_app_chose() -> None:
    """RFC 9111 §5.2.2.7: a shared cache must not hand one user's cookie to another."""
    app = cookie_app()
    assert send(app, "POST", "/set", body={"a": 1}).headers["Cache-Control"] == "private"
    assert send(app, "POST", "/cached").headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in send(app, "GET", "/read", cookie=logged_in(app)).headers


# -- rotate(), invalidate(), nested changes -----------------------------------------------


def test_rotate_reissues_the_cookie_and_restarts_the_absolute_lifetime() -> None:
    clock = Clock()
    app = cookie_app(clock, max_age=1000)
    anonymous = logged_in(app, {"cart": [1]})
    clock.advance(900)
    login = send(app, "POST", "/login/alice", cookie=anonymous)
    cookie = new_cookie(login)
    assert cookie and cookie != anonymous
    assert attributes(set_cookies(login, "session")[0])["max-age"] == "1000"
    clock.advance(500)  # 1400 s after the first visit, 500 after login
    assert send(app, "GET", "/read", cookie=cookie).json == {"cart": [1], "user": "alice"}


def test_invalidate_deletes_the_cookie() -> None:
    """RFC 6265bis §4.1.2.2: Max-Age=0 makes the browser drop the cookie."""
    app = cookie_app()
    response = send(app, "POST", "/logout", cookie=logged_in(app))
    assert response.json == {}
    [header] = set_cookies(response, "session")
    assert header.startswith("session=;")
    assert attributes(header)["max-age"] == "0"


def test_data_set_after_invalidate_starts_a_new_session() -> None:
    app = cookie_app()
    cookie = new_cookie(send(app, "POST", "/logout-then-flash", cookie=logged_in(app)))
    assert cookie
    assert send(app, "GET", "/read", cookie=cookie).json == {"flash": "bye"}


def test_deleting_the_last_key_deletes_the_cookie() -> None:
    app = cookie_app()
    cookie = logged_in(app, {"user": "alice"})
    assert new_cookie(send(app, "POST", "/delete/user", cookie=cookie)) == ""


@pytest.mark.parametrize(
    ("query", "saved"), [("", False), ("?mark=1", True)], ids=["undetected", "modified-true"]
)
def test_nested_changes_need_modified_true(query: str, saved: bool) -> None:
    app = cookie_app()
    cookie = logged_in(app, {"items": ["a"]})
    response = send(app, "POST", f"/append/b{query}", cookie=cookie)
    assert response.json == {"items": ["a", "b"]}
    assert (new_cookie(response) is not None) is saved


# -- Errors ----------------------------------------------------------------------------


def test_a_session_too_large_for_a_cookie_is_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Raised in `after`, before the status is sent: the app's error response (a 500),
    and the log names the error and the layer."""
    app = cookie_app()
    response = send(app, "POST", "/big/3200", status=500)
    assert response.content_type == "application/problem+json"
    assert "Set-Cookie" not in response.headers
    assert f"{MAX_COOKIE_SIZE}-byte limit" in caplog.text
    assert SessionTooLarge.__name__ in caplog.text
    assert "raised in SessionMiddleware.after" in caplog.text


def test_the_largest_session_that_fits_is_accepted() -> None:
    app = cookie_app()
    # Find the largest blob whose cookie fits, then check one more byte does not.
    size = next(
        n
        for n in range(3100, 2900, -1)
        if len("session=") + len(_would_be_cookie(n)) <= MAX_COOKIE_SIZE
    )
    cookie = new_cookie(send(app, "POST", f"/big/{size}"))
    assert cookie and len("session=") + len(cookie) <= MAX_COOKIE_SIZE
    too_large = send(app, "POST", f"/big/{size + 3}", status=500)  # base64: 3 bytes, 4 chars
    assert "Set-Cookie" not in too_large.headers


def _would_be_cookie(size: int) -> str:
    middleware = CookieSessions(session_app(), secret_keys=[KEY])
    session = Session(lambda s: None, has_cookie=False)
    dict.__setitem__(session, "blob", "x" * size)
    session.issued_at = session.last_seen = Clock().now
    return middleware.save(session, Clock().now, None)


@pytest.mark.e2e
def test_under_gunicorn_a_session_too_large_is_a_500_and_the_worker_lives_on(
    gunicorn_server: Any,
) -> None:
    """DESIGN: raised from the middleware's `after`, before the status reached gunicorn:
    the app's own error response (problem+json, RFC 9457), not gunicorn's bare 500,
    through the layers outside sessions (RequestID, SecurityHeaders)."""
    url = gunicorn_server("tests.sessions_app:cookie_server_app()", workers=1)
    too_large = fetch(url, "POST", "/big/5000")
    assert too_large.status == 500
    assert too_large.headers["Content-Type"] == "application/problem+json"
    assert json.loads(too_large.body) == {
        "type": "about:blank", "title": "Internal Server Error", "status": 500
    }
    assert too_large.headers["X-Request-ID"] and too_large.headers["X-Content-Type-Options"]
    assert "Set-Cookie" not in too_large.headers
    fine = fetch(url, "POST", "/big/10")
    assert fine.status == 200
    assert fine.headers["Set-Cookie"].startswith("session=")


def test_a_value_that_is_not_json_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    send(cookie_app(), "POST", "/not-json", status=500)
    assert "JSON values only" in caplog.text


def test_a_handler_error_is_a_500_and_the_session_is_still_saved() -> None:
    """Like Flask: the cookie goes out with whatever response the app sends."""
    response = send(cookie_app(), "POST", "/fail", status=500)
    assert new_cookie(response)


# -- Around any WSGI app, and in a microweb stack ------------------------------------------


@pytest.mark.parametrize(("kind", "factory"), APPS, ids=[kind for kind, _ in APPS])
@pytest.mark.parametrize("cookie", [None, "garbage", "x.y"], ids=["no-cookie", "junk", "dot"])
def test_an_app_that_never_uses_the_session_passes_through_unharmed(
    kind: str, factory: Callable[[], WSGIApp], cookie: str | None
) -> None:
    bare = send(factory(), "GET", "/some/path", cookie=cookie)
    wrapped = send(CookieSessions(factory(), secret_keys=[KEY]), "GET", "/some/path", cookie=cookie)
    assert wrapped.headerlist == bare.headerlist
    assert wrapped.body == bare.body


@pytest.mark.parametrize(
    "factory", [lambda: environ_app, flask_app], ids=["plain-wsgi-environ", "flask"]
)
def test_non_microweb_apps_reach_the_session_through_the_environ(
    factory: Callable[[], WSGIApp],
) -> None:
    app = CookieSessions(factory(), secret_keys=[KEY], clock=Clock())
    if factory is flask_app:
        cookie = new_cookie(send(app, "POST", "/set", body={"user": "alice"}))
    else:
        cookie = new_cookie(send(app, "GET", "/set?user=alice"))
    assert cookie
    response = send(app, "GET", "/read", cookie=cookie)
    assert response.json == {"user": "alice"}
    assert response.headers["Vary"] == "Cookie"


def test_in_a_microweb_stack_with_the_other_middleware() -> None:
    app = session_app()
    app.use(GZip, minimum_size=10)
    app.use(CookieSessions, secret_keys=[KEY], clock=Clock())
    app.use(ETag)
    app.use(SecurityHeaders)
    app.use(CORS, allow_origins=["https://app.example"], allow_credentials=True)
    app.use(RequestID)
    cookie = logged_in(app, {"user": "alice", "pad": "x" * 100})
    response = send(app, "GET", "/read", cookie=cookie)
    assert response.json == {"user": "alice", "pad": "x" * 100}
    assert "X-Request-ID" in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"

    # wsgiref's validator, not WebTest: WebTest would decode the gzip body for us.
    gzipped = call(
        app,
        "GET",
        "/read",
        HTTP_COOKIE=f"session={cookie}",
        HTTP_ACCEPT_ENCODING="gzip",
        HTTP_ORIGIN="https://app.example",
    )
    vary = {field.strip() for field in (gzipped.header("Vary") or "").split(",")}
    assert {"Cookie", "Accept-Encoding", "Origin"} <= vary
    assert gzipped.header("Content-Encoding") == "gzip"
    assert gzipped.header("Set-Cookie") is None


# -- The Session dict itself -------------------------------------------------------------


def _loaded(data: dict[str, Any]) -> Session:
    session = Session(lambda s: None, has_cookie=True)
    dict.update(session, data)
    return session


@pytest.mark.parametrize(
    ("operation", "result", "modified"),
    [
        pytest.param(lambda s: s["a"], 1, False, id="getitem"),
        pytest.param(lambda s: s.get("zz", 9), 9, False, id="get"),
        pytest.param(lambda s: "a" in s, True, False, id="contains"),
        pytest.param(lambda s: len(s), 2, False, id="len"),
        pytest.param(lambda s: list(s), ["a", "b"], False, id="iter"),
        pytest.param(lambda s: list(s.items()), [("a", 1), ("b", [2])], False, id="items"),
        pytest.param(lambda s: dict(s), {"a": 1, "b": [2]}, False, id="dict-of"),
        pytest.param(lambda s: json.dumps(s), '{"a": 1, "b": [2]}', False, id="json-dumps"),
        pytest.param(lambda s: s == {"a": 1, "b": [2]}, True, False, id="eq"),
        pytest.param(lambda s: s != {"a": 1}, True, False, id="ne"),
        pytest.param(lambda s: {**s}, {"a": 1, "b": [2]}, False, id="unpack"),
        pytest.param(lambda s: s | {"c": 3}, {"a": 1, "b": [2], "c": 3}, False, id="or"),
        pytest.param(lambda s: s.setdefault("a", 5), 1, True, id="setdefault"),
        pytest.param(lambda s: s.pop("a"), 1, True, id="pop"),
        pytest.param(lambda s: s.update(c=3), None, True, id="update"),
        pytest.param(lambda s: s.__setitem__("c", 3), None, True, id="setitem"),
        pytest.param(lambda s: s.__delitem__("a"), None, True, id="delitem"),
        pytest.param(lambda s: s.clear(), None, True, id="clear"),
        pytest.param(lambda s: s.popitem(), ("b", [2]), True, id="popitem"),
    ],
)
def test_the_session_tracks_use_and_changes(
    operation: Callable[[Session], Any], result: Any, modified: bool
) -> None:
    session = _loaded({"a": 1, "b": [2]})
    assert not session.accessed
    assert operation(session) == result
    assert session.accessed
    assert session.modified is modified


def test_an_outer_session_middleware_leaves_an_inner_ones_session_alone() -> None:
    """Two session middleware in one stack is a mistake; at least only one cookie is set."""
    inner = CookieSessions(session_app(), secret_keys=[KEY], cookie_name="inner")
    outer = CookieSessions(inner, secret_keys=[KEY], cookie_name="outer")
    response = send(outer, "POST", "/set", body={"a": 1})
    assert new_cookie(response, "inner")
    assert set_cookies(response, "outer") == []
