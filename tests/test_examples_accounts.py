"""examples/accounts.py under real gunicorn (2 workers): sessions, CSRF, bearer tokens.

The browser is played by `Browser`, a cookie jar kept by hand over
`fetch` (http.client): what it sends back is exactly what the server set.
Several tests need "every worker": gunicorn's sync worker serves one
connection at a time, so `other_worker` holds one worker busy on a
half-sent request while the other answers (see its docstring).
"""

from __future__ import annotations

import base64
import http.client
import importlib
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from servers import Reply, fetch, open_raw, read_to_eof, serving

from microweb.testing import Client

pytestmark = pytest.mark.e2e

JWT_KEY = "test-key-" + "k" * 40
ALICE = {"username": "alice", "password": "wonderland-alice"}
BOB = {"username": "bob", "password": "builder-bob"}
COOKIE = "sid"  # ServerSessions' default cookie name


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("db")) / "accounts.db"
    env = {
        "ACCOUNTS_DB": str(db),
        "JWT_KEY": JWT_KEY,
        "INSECURE_COOKIES": "1",  # plain http on 127.0.0.1
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start("examples.accounts:app", env=env, workers=2)


class Browser:
    """One user agent: a cookie jar, and the headers a browser adds to its own POSTs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.origin = url  # "http://127.0.0.1:<port>", as a browser writes an origin
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = self.headers(method)
        sent.update(headers or {})
        body = None
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        reply = fetch(self.url, method, path, body=body, headers=sent)
        for value in reply.headers.get_all("Set-Cookie") or []:
            self.remember(value)
        return reply

    def headers(self, method: str) -> dict[str, str]:
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if method == "POST":
            # What a browser sends with a form on this site's own page
            # (Fetch Metadata §2.1, RFC 6454 §7).
            headers["Sec-Fetch-Site"] = "same-origin"
            headers["Origin"] = self.origin
        return headers

    def remember(self, set_cookie: str) -> None:
        """RFC 6265bis §5.7: store the cookie, or delete it when it is already expired."""
        for name, morsel in SimpleCookie(set_cookie).items():
            if morsel["max-age"] == "0" or not morsel.value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value

    def session_id(self) -> str | None:
        return self.cookies.get(COOKIE)

    def login(self, credentials: dict[str, str]) -> Reply:
        return self.request("POST", "/login", form=credentials)


def greeting(reply: Reply) -> str | None:
    """Who the home page says hello to (None: the logged-out page)."""
    text = reply.body.decode()
    if "hello " not in text:
        assert 'href="/login"' in text
        return None
    return text.split("hello ", 1)[1].split("\n", 1)[0]


@contextmanager
def other_worker(url: str, path: str, headers: dict[str, str]) -> Iterator[list[Reply]]:
    """Run the body while one worker is held busy; the held request is answered after it.

    gunicorn's sync worker accepts one connection and serves it to the end
    before accepting another. A request whose head is sent without its final
    blank line keeps the worker that accepted it waiting, so every request
    made inside the `with` is served by the other worker; the held request
    is then completed, and its reply appended to the yielded list.
    """
    host = urlsplit(url).netloc
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    replies: list[Reply] = []
    with open_raw(url) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n").encode())
        yield replies
        sock.sendall(b"\r\n")
        raw = read_to_eof(sock)
    replies.append(parse_reply(raw))


def parse_reply(raw: bytes) -> Reply:
    """A whole HTTP/1.1 response read from a socket (Connection: close, no chunking)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, _, fields = head.partition(b"\r\n")
    headers = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
    return Reply(int(status_line.split(b" ", 2)[1]), headers, body)


# --- the site: login form and server-side session ------------------------------------


def test_home_page_without_a_session_links_to_the_login_form(url: str) -> None:
    reply = Browser(url).request("GET", "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert greeting(reply) is None
    form = Browser(url).request("GET", "/login")
    assert form.status == 200
    assert b"<form method=post action=/login>" in form.body


def test_login_sets_a_session_cookie_and_the_home_page_greets_the_user(url: str) -> None:
    browser = Browser(url)
    reply = browser.login(ALICE)
    assert reply.status == 303  # RFC 9110 §15.4.4: GET the result, never re-POST it
    assert reply.headers["Location"] == "/"
    assert browser.session_id()
    assert greeting(browser.request("GET", "/")) == "alice"


def test_rfc6265bis_session_cookie_attributes(url: str) -> None:
    """HttpOnly, SameSite=Lax, Path=/; no Secure because the server runs with INSECURE_COOKIES=1."""
    reply = Browser(url).login(ALICE)
    (set_cookie,) = reply.headers.get_all("Set-Cookie")
    morsel = SimpleCookie(set_cookie)[COOKIE]
    assert morsel["httponly"]
    assert morsel["samesite"].lower() == "lax"
    assert morsel["path"] == "/"
    assert not morsel["secure"]
    # The cookie is an opaque id (>= 128 bits), not the session data.
    assert "alice" not in morsel.value
    assert len(morsel.value) >= 22


def test_wrong_password_is_refused_and_sets_no_session(url: str) -> None:
    browser = Browser(url)
    reply = browser.login({"username": "alice", "password": "wrong"})
    assert reply.status == 400
    assert b"Wrong username or password" in reply.body
    assert browser.session_id() is None
    unknown = browser.login({"username": "mallory", "password": "wonderland-alice"})
    assert unknown.status == 400
    assert greeting(browser.request("GET", "/")) is None


def test_session_fixation_a_planted_id_is_not_kept_at_login(url: str) -> None:
    """OWASP session fixation: an id an attacker chose before login must not survive it."""
    planted = "A" * 43  # shaped like a real id, but the store never issued it
    browser = Browser(url)
    browser.cookies[COOKIE] = planted
    browser.login(ALICE)
    assert browser.session_id() not in (None, planted)
    assert greeting(browser.request("GET", "/")) == "alice"


def test_session_id_changes_at_each_login_and_the_old_one_is_dropped(url: str) -> None:
    browser = Browser(url)
    browser.login(BOB)
    before = browser.session_id()
    browser.login(ALICE)  # a second login in the same browser: rotate() again
    after = browser.session_id()
    assert before and after and before != after
    assert greeting(browser.request("GET", "/")) == "alice"
    replay = Browser(url)
    replay.cookies[COOKIE] = before
    assert greeting(replay.request("GET", "/")) is None


def test_logout_revokes_the_session_on_every_worker(url: str) -> None:
    browser = Browser(url)
    browser.login(ALICE)
    stolen = browser.session_id()
    assert stolen
    reply = browser.request("POST", "/logout")
    assert reply.status == 303
    assert browser.session_id() is None  # the server deleted the cookie
    # Someone who kept a copy of the cookie replays it, on both workers.
    old_cookie = {"Cookie": f"{COOKIE}={stolen}"}
    with other_worker(url, "/", old_cookie) as held:
        replay = fetch(url, "GET", "/", headers=old_cookie)
        assert replay.status == 200
        assert greeting(replay) is None
    assert held[0].status == 200
    assert greeting(held[0]) is None


def test_a_session_is_seen_by_every_worker(url: str) -> None:
    browser = Browser(url)
    browser.login(ALICE)
    cookie = {"Cookie": f"{COOKIE}={browser.session_id()}"}
    with other_worker(url, "/", cookie) as held:
        assert greeting(fetch(url, "GET", "/", headers=cookie)) == "alice"
    assert greeting(held[0]) == "alice"


CROSS_SITE = [
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-site-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, id="sec-fetch-site-same-site"),
    pytest.param({"Sec-Fetch-Site": None, "Origin": "http://evil.example"}, id="origin-evil"),
    pytest.param({"Sec-Fetch-Site": None, "Origin": "null"}, id="origin-null"),
]


def without_none(headers: dict[str, str | None]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if value is not None}


@pytest.mark.parametrize("attack", CROSS_SITE)
def test_cross_site_logout_is_refused_and_the_session_survives(
    url: str, attack: dict[str, str | None]
) -> None:
    """CSRF: another site's page posts to /logout with the victim's cookie."""
    browser = Browser(url)
    browser.login(ALICE)
    sent = browser.headers("POST") | {"Origin": "http://evil.example"} | attack
    reply = fetch(url, "POST", "/logout", headers=without_none(sent))
    assert reply.status == 403
    assert reply.headers.get_all("Set-Cookie") is None
    assert greeting(browser.request("GET", "/")) == "alice"


@pytest.mark.parametrize("attack", CROSS_SITE)
def test_cross_site_login_is_refused(url: str, attack: dict[str, str | None]) -> None:
    """Login CSRF: logging the victim into the attacker's account is refused too."""
    browser = Browser(url)
    sent = browser.headers("POST") | {"Origin": "http://evil.example"} | attack
    sent["Content-Type"] = "application/x-www-form-urlencoded"
    reply = fetch(url, "POST", "/login", body=urlencode(BOB).encode(), headers=without_none(sent))
    assert reply.status == 403
    assert reply.headers.get_all("Set-Cookie") is None


# --- the API: bearer tokens ----------------------------------------------------------


def get_token(url: str, credentials: dict[str, str], scope: str | None = None) -> str:
    body: dict[str, Any] = dict(credentials)
    if scope is not None:
        body["scope"] = scope
    reply = fetch(url, "POST", "/api/token", json_body=body)
    assert reply.status == 200, reply.body
    return reply.json()["access_token"]  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_rfc6749_token_endpoint_issues_a_short_lived_hs256_jwt(url: str) -> None:
    reply = fetch(url, "POST", "/api/token", json_body=ALICE)
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"  # RFC 6749 §5.1
    grant = reply.json()
    assert grant["token_type"] == "Bearer"
    assert grant["expires_in"] == 900
    assert grant["scope"] == "notes:write profile"
    token = grant["access_token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = jwt.decode(
        token, JWT_KEY, algorithms=["HS256"], audience="accounts-api", issuer="accounts-example"
    )
    assert claims["sub"] == "alice"
    assert claims["jti"]
    assert 0 < claims["exp"] - time.time() <= 900


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"username": "alice", "password": "nope"}, id="wrong-password"),
        pytest.param({"username": "mallory", "password": "x"}, id="unknown-user"),
        pytest.param({"username": ["alice"], "password": 1}, id="wrong-types"),
        pytest.param({"username": "alice", "password": "\ud800"}, id="lone-surrogate"),
    ],
)
def test_rfc6749_5_2_wrong_credentials_are_invalid_grant(url: str, body: dict[str, Any]) -> None:
    reply = fetch(url, "POST", "/api/token", json_body=body)
    assert reply.status == 400
    assert reply.json()["error"] == "invalid_grant"


def test_a_client_may_ask_for_fewer_scopes_but_not_more(url: str) -> None:
    narrow = fetch(url, "POST", "/api/token", json_body={**ALICE, "scope": "profile"})
    assert narrow.json()["scope"] == "profile"
    for scope in ("profile notes:write", "", ["profile"]):
        refused = fetch(url, "POST", "/api/token", json_body={**BOB, "scope": scope})
        assert refused.status == 400
        assert refused.json()["error"] == "invalid_scope"


def test_api_me_with_a_token_is_200(url: str) -> None:
    token = get_token(url, ALICE)
    with other_worker(url, "/api/me", bearer(token)) as held:
        reply = fetch(url, "GET", "/api/me", headers=bearer(token))
        assert reply.status == 200
        assert reply.json() == {"user": "alice", "scope": "notes:write profile"}
    assert held[0].status == 200


def test_rfc6750_3_1_missing_token_is_401_with_a_bare_challenge(url: str) -> None:
    reply = fetch(url, "GET", "/api/me")
    assert reply.status == 401
    challenge = reply.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="')
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code without a token


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param(
            jwt.encode({"sub": "alice", "scope": "profile", "exp": 2**40}, "x" * 40),
            id="wrong-key-no-aud",
        ),
        pytest.param(
            jwt.encode(
                {"sub": "alice", "scope": "profile", "exp": 2**40, "jti": "j",
                 "iss": "accounts-example", "aud": "accounts-api"},
                None, algorithm="none",
            ),
            id="alg-none",
        ),
        pytest.param(
            jwt.encode(
                {"sub": "alice", "scope": "profile", "exp": 1, "jti": "j",
                 "iss": "accounts-example", "aud": "accounts-api"},
                JWT_KEY,
            ),
            id="expired",
        ),
        pytest.param(
            jwt.encode(
                {"sub": "alice", "scope": "profile", "exp": 2**40, "jti": "j",
                 "iss": "accounts-example", "aud": "another-api"},
                JWT_KEY,
            ),
            id="wrong-audience",
        ),
    ],
)  # fmt: skip
def test_rfc6750_3_1_invalid_token_is_401_invalid_token(url: str, token: str) -> None:
    reply = fetch(url, "GET", "/api/me", headers=bearer(token))
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("credentials", "scope"),
    [
        pytest.param(BOB, None, id="user-without-the-scope"),
        pytest.param(ALICE, "profile", id="token-asked-for-less"),
    ],
)
def test_rfc6750_3_1_wrong_scope_is_403_insufficient_scope(
    url: str, credentials: dict[str, str], scope: str | None
) -> None:
    token = get_token(url, credentials, scope)
    reply = fetch(url, "POST", "/api/notes", json_body={"text": "milk"}, headers=bearer(token))
    assert reply.status == 403
    challenge = reply.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert "notes:write" in challenge


def test_post_note_with_the_scope_is_201(url: str) -> None:
    token = get_token(url, ALICE)
    first = fetch(url, "POST", "/api/notes", json_body={"text": "milk"}, headers=bearer(token))
    second = fetch(url, "POST", "/api/notes", json_body={"text": "eggs"}, headers=bearer(token))
    assert first.status == second.status == 201
    assert second.json()["id"] == first.json()["id"] + 1
    assert second.json()["text"] == "eggs"


def test_bearer_requests_are_not_subject_to_csrf_checks(url: str) -> None:
    """A browser never attaches a bearer token by itself, so a cross-site one is no forgery."""
    token = get_token(url, ALICE)
    headers = bearer(token) | {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
    reply = fetch(url, "POST", "/api/notes", json_body={"text": "x"}, headers=headers)
    assert reply.status == 201


def test_api_logout_revokes_the_token_on_every_worker(url: str) -> None:
    token = get_token(url, ALICE)
    other = get_token(url, ALICE)
    reply = fetch(url, "POST", "/api/logout", headers=bearer(token))
    assert reply.status == 204
    with other_worker(url, "/api/me", bearer(token)) as held:
        replay = fetch(url, "GET", "/api/me", headers=bearer(token))
        assert replay.status == 401
        assert 'error="invalid_token"' in replay.headers["WWW-Authenticate"]
    assert held[0].status == 401
    # Only that token: another one of the same user still works.
    assert fetch(url, "GET", "/api/me", headers=bearer(other)).status == 200


# --- in-process: the defaults of create_app ------------------------------------------


@pytest.fixture
def accounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The examples.accounts module; importing it builds `app`, so point it at tmp_path."""
    monkeypatch.setenv("ACCOUNTS_DB", str(tmp_path / "import.db"))
    monkeypatch.setenv("JWT_KEY", JWT_KEY)
    return importlib.import_module("examples.accounts")


def test_session_cookie_is_secure_by_default(accounts: Any, tmp_path: Path) -> None:
    client = Client(
        accounts.create_app(tmp_path / "a.db", JWT_KEY), extra_environ={"HTTP_HOST": "localhost"}
    )
    reply = client.post("/login", ALICE, status=303)
    (set_cookie,) = reply.headers.getall("Set-Cookie")
    assert SimpleCookie(set_cookie)[COOKIE]["secure"]


def test_a_short_jwt_key_is_refused_at_startup(accounts: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        accounts.create_app(tmp_path / "a.db", "short")
