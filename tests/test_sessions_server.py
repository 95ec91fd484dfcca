"""microweb/sessions/server.py: server-side sessions (an opaque id in the cookie).

In-process tests use `MemoryStore` with the injected `Clock` (nothing
sleeps), or two `SQLiteStore` objects on one file (two processes' view), or
two `RedisStore` objects on a real redis-server (two machines' view);
every request goes through WebTest's lint (`sessions_app.send`). The
end-to-end test runs real gunicorn with two workers on one SQLite file:
a session revoked by one worker is revoked for the other.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from middleware_apps import APPS
from redis_server import RedisServer
from servers import fetch, open_raw, read_to_eof
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
from store_outages import locked_sqlite, refused_redis

from microweb import App
from microweb.errors import STORE_UNAVAILABLE
from microweb.middleware import CORS, ETag, GZip, RequestID, SecurityHeaders
from microweb.sessions import ServerSessions
from microweb.sessions.server import KEY_PREFIX
from microweb.stores import MemoryStore, RedisStore, SQLiteStore
from microweb.stores.base import STORE_RETRY_AFTER
from microweb.testing import Client
from microweb.types import WSGIApp

ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32): 256 bits


class Spy:
    """A store that records the calls it gets, around a real one."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[tuple[str, str]] = []

    def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return self.store.get(key)  # type: ignore[no-any-return]

    def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        self.calls.append(("set", key))
        self.store.set(key, value, ttl)

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.store.delete(key)

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] != "get"]


def server_app(store: Any, clock: Clock | None = None, **options: Any) -> App:
    app = session_app()
    app.use(ServerSessions, store=store, clock=clock or Clock(), **options)
    return app


def get(app: WSGIApp, path: str, sid: str | None, **kw: Any) -> Any:
    return send(app, "GET", path, cookie=sid, name="sid", **kw)


def post(app: WSGIApp, path: str, sid: str | None = None, **kw: Any) -> Any:
    return send(app, "POST", path, cookie=sid, name="sid", **kw)


def sid_of(response: Any) -> str | None:
    return new_cookie(response, "sid")


def login(app: WSGIApp, user: str = "alice", sid: str | None = None) -> str:
    sid = sid_of(post(app, f"/login/{user}", sid))
    assert sid
    return sid


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Spy:
    return Spy(MemoryStore(clock=clock))


# -- The cookie holds an id, the store the data ------------------------------------------


def test_the_cookie_is_an_opaque_random_id(store: Spy) -> None:
    """RFC 6265bis §8.4: a session identifier must be unguessable; the data stays here."""
    app = server_app(store)
    response = post(app, "/set", body={"user": "alice", "secret": "s3cr3t"})
    sid = sid_of(response)
    assert sid and ID.fullmatch(sid)
    assert "alice" not in response.headers["Set-Cookie"]
    record = json.loads(store.store.get(KEY_PREFIX + sid))
    assert record["data"] == {"user": "alice", "secret": "s3cr3t"}
    assert len({sid_of(post(app, "/set", body={"n": n})) for n in range(50)}) == 50


@pytest.mark.parametrize(
    ("options", "expected", "absent"),
    [
        pytest.param({}, {"path": "/", "httponly": "", "samesite": "Lax", "secure": ""},
                     {"domain", "max-age"}, id="4.1.2-defaults"),
        pytest.param({"idle_timeout": 900}, {"max-age": "900"}, set(), id="4.1.2.2-max-age"),
        pytest.param({"secure": False}, {"httponly": ""}, {"secure"}, id="4.1.2.5-plain-http"),
    ],
)  # fmt: skip
def test_cookie_attributes(
    store: Spy, options: dict[str, Any], expected: dict[str, str], absent: set[str]
) -> None:
    [header] = set_cookies(post(server_app(store, **options), "/set", body={"a": 1}), "sid")
    attrs = attributes(header)
    for key, value in expected.items():
        assert attrs.get(key) == value, header
    assert not absent & attrs.keys(), header


def test_host_prefix_names_the_cookie(store: Spy) -> None:
    """RFC 6265bis §4.1.3.2: __Host- cookies cannot be tossed from a sibling domain."""
    app = server_app(store, host_prefix=True)
    response = post(app, "/set", body={"a": 1})
    sid = new_cookie(response, "__Host-sid")
    assert sid
    assert send(app, "GET", "/read", cookie=sid, name="__Host-sid").json == {"a": 1}
    assert get(app, "/read", sid).json == {}  # the unprefixed name is not ours


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"store": object()}, TypeError, id="not-a-store"),
        pytest.param({"host_prefix": True, "secure": False}, ValueError, id="4.1.3.2-needs-secure"),
        pytest.param({"idle_timeout": 0}, ValueError, id="idle-zero"),
    ],
)
def test_bad_options_are_refused_at_startup(
    store: Spy, options: dict[str, Any], error: type[Exception]
) -> None:
    options.setdefault("store", store)
    with pytest.raises(error):
        ServerSessions(session_app(), **options)


# -- Anonymous visitors, unknown and malformed ids ---------------------------------------


def test_anonymous_visitors_create_no_rows(store: Spy) -> None:
    app = server_app(store)
    response = get(app, "/read", None)
    assert (response.json, set_cookies(response, "sid"), store.calls) == ({}, [], [])


@pytest.mark.parametrize(
    "sid",
    [
        pytest.param("short", id="too-short"),
        pytest.param("a" * 44, id="too-long"),
        pytest.param("a" * 42 + ".", id="dot"),
        pytest.param("session:" + "a" * 35, id="key-injection"),
        pytest.param("", id="empty"),
    ],
)
def test_a_malformed_id_never_reaches_the_store(store: Spy, sid: str) -> None:
    response = get(server_app(store), "/read", sid)
    assert response.json == {}
    assert store.calls == []


def test_an_unknown_id_is_empty_and_never_adopted(store: Spy) -> None:
    """Session fixation: an id the server did not issue (or forgot) is never reused."""
    app = server_app(store)
    planted = "A" * 43
    read = get(app, "/read", planted)
    assert read.json == {}
    assert sid_of(read) == ""  # deleted: the browser stops sending it
    assert store.writes() == []
    issued = sid_of(post(app, "/set", planted, body={"user": "alice"}))
    assert issued and issued != planted
    assert store.store.get(KEY_PREFIX + planted) is None


def test_a_corrupt_row_is_an_empty_session(store: Spy) -> None:
    app = server_app(store)
    sid = login(app)
    store.store.set(KEY_PREFIX + sid, b"\xff not json")
    assert get(app, "/read", sid).json == {}


# -- Writes only when needed -------------------------------------------------------------


def test_reading_writes_nothing_and_sends_no_cookie(store: Spy) -> None:
    app = server_app(store)
    sid = login(app)
    store.calls.clear()
    response = get(app, "/read", sid)
    assert response.json == {"user": "alice"}
    assert response.headers["Vary"] == "Cookie"
    assert set_cookies(response, "sid") == []
    assert store.writes() == []


def test_a_change_is_stored_under_the_same_id(store: Spy) -> None:
    app = server_app(store)
    sid = login(app)
    assert sid_of(post(app, "/set", sid, body={"theme": "dark"})) == sid
    assert get(app, "/read", sid).json == {"user": "alice", "theme": "dark"}


def test_emptying_the_session_deletes_the_row(store: Spy) -> None:
    app = server_app(store)
    sid = login(app)
    assert sid_of(post(app, "/delete/user", sid)) == ""
    assert store.store.get(KEY_PREFIX + sid) is None


# -- Fixation: rotate() on login ---------------------------------------------------------


def test_rotate_issues_a_new_id_and_the_old_one_no_longer_loads(store: Spy) -> None:
    app = server_app(store)
    anonymous = sid_of(post(app, "/set", body={"cart": [1, 2]}))
    assert anonymous
    logged_in = login(app, sid=anonymous)
    assert logged_in != anonymous
    assert get(app, "/read", logged_in).json == {"cart": [1, 2], "user": "alice"}
    # The id the attacker may have planted or seen before login is dead.
    assert get(app, "/read", anonymous).json == {}
    assert store.store.get(KEY_PREFIX + anonymous) is None


def test_rotate_drops_the_old_id_even_when_the_response_fails(store: Spy) -> None:
    """Fail closed: deletion happens at rotate(), not when the response goes out."""

    app = session_app()

    @app.post("/login-then-crash")
    def crash(req: Any) -> Any:
        req.session.rotate()
        raise RuntimeError("boom")

    app.use(ServerSessions, store=store, clock=Clock())
    sid = login(app)
    post(app, "/login-then-crash", sid, status=500)
    assert get(app, "/read", sid).json == {}


# -- Revocation: invalidate() on logout --------------------------------------------------


def test_invalidate_revokes_server_side(store: Spy) -> None:
    """Replay after logout: the client's copy of the cookie names nothing any more."""
    app = server_app(store)
    sid = login(app)
    logout = post(app, "/logout", sid)
    assert logout.json == {}
    assert attributes(set_cookies(logout, "sid")[0])["max-age"] == "0"
    assert store.store.get(KEY_PREFIX + sid) is None
    assert get(app, "/read", sid).json == {}  # the old cookie, replayed


def test_revocation_is_seen_by_another_process_sharing_the_sqlite_file(tmp_path: Path) -> None:
    """Two SQLiteStore objects on one file: what two gunicorn workers have."""
    worker_a = server_app(SQLiteStore(tmp_path / "s.db"))
    worker_b = server_app(SQLiteStore(tmp_path / "s.db"))
    sid = login(worker_a)
    assert get(worker_b, "/read", sid).json == {"user": "alice"}
    post(worker_b, "/logout", sid)
    assert get(worker_a, "/read", sid).json == {}


def test_a_session_lives_in_redis_and_its_revocation_is_seen_by_every_machine(
    redis_url: str,
) -> None:
    """Two RedisStore objects on one Redis: what two machines behind a load balancer have."""
    with RedisStore(redis_url) as store_a, RedisStore(redis_url) as store_b:
        machine_a = server_app(store_a, idle_timeout=600)
        machine_b = server_app(store_b, idle_timeout=600)
        sid = login(machine_a)
        record = json.loads(store_b.get(KEY_PREFIX + sid) or b"null")
        assert record["data"] == {"user": "alice"}
        # The row expires on Redis's clock too (the store's ttl, not only the payload's).
        assert 0 < store_a.client.pttl(KEY_PREFIX + sid) <= 600_000
        assert get(machine_b, "/read", sid).json == {"user": "alice"}
        assert sid_of(post(machine_b, "/set", sid, body={"theme": "dark"})) == sid
        assert get(machine_a, "/read", sid).json == {"user": "alice", "theme": "dark"}
        post(machine_b, "/logout", sid)
        assert store_a.get(KEY_PREFIX + sid) is None
        assert get(machine_a, "/read", sid).json == {}  # the replayed cookie names nothing


# -- Lifetimes -----------------------------------------------------------------------------


def test_idle_timeout(clock: Clock, store: Spy) -> None:
    app = server_app(store, clock, idle_timeout=600)
    sid = login(app)
    clock.advance(599)
    assert get(app, "/read", sid).json == {"user": "alice"}  # refreshes the row
    clock.advance(599)
    assert get(app, "/read", sid).json == {"user": "alice"}
    clock.advance(600)
    assert get(app, "/read", sid).json == {}
    assert store.store.get(KEY_PREFIX + sid) is None  # the store's TTL dropped it too


def test_refresh_after_a_tenth_of_idle_timeout(clock: Clock, store: Spy) -> None:
    app = server_app(store, clock, idle_timeout=600)
    sid = login(app)
    store.calls.clear()
    clock.advance(59)
    assert sid_of(get(app, "/read", sid)) is None
    assert store.writes() == []
    clock.advance(1)
    assert sid_of(get(app, "/read", sid)) == sid
    assert store.writes() == [("set", KEY_PREFIX + sid)]


def test_max_age_is_absolute(clock: Clock, store: Spy) -> None:
    app = server_app(store, clock, max_age=1000, idle_timeout=600)
    sid = login(app)
    for _ in range(3):
        clock.advance(300)
        assert get(app, "/read", sid).json == {"user": "alice"}
    clock.advance(100)
    assert get(app, "/read", sid).json == {}


# -- The store is down ----------------------------------------------------------------------


def microweb_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "microweb" and r.levelno == level]


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param("application/json", "application/problem+json", id="json"),
        pytest.param("text/html", "text/html", id="html"),
    ],
)
def test_a_store_that_cannot_be_read_fails_closed_with_503(
    caplog: pytest.LogCaptureFixture, accept: str, content_type: str
) -> None:
    """RFC 9110 §15.6.4: a session that could not be read is not silently anonymous:
    503 with Retry-After, rendered like every microweb error; the handler never runs."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    with refused_redis() as store:
        app = server_app(store)
        reply = Client(app).post(
            "/login/mallory", headers={"Cookie": f"sid={'A' * 43}", "Accept": accept}, status=503
        )
    assert reply.content_type == content_type
    assert reply.headers["Retry-After"] == str(STORE_RETRY_AFTER)
    assert STORE_UNAVAILABLE in reply.text
    assert "refused" not in reply.text.lower() and "redis" not in reply.text.lower()
    assert set_cookies(reply, "sid") == []
    [warning] = microweb_records(caplog, logging.WARNING)
    assert "ServerSessions" in warning and "503" in warning


def test_a_hung_store_fails_closed_then_the_session_is_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Redis stops answering (SIGSTOP): never a hang, a 503 after the store's timeout.

    One timeout: not none (the store gave up by itself, Redis still paused) and
    not two (a retry, or a second operation waiting), which leaves the rest of
    the request a whole timeout of headroom on a busy machine.
    """
    timeout = 1.0  # seconds; the operations before and after the outage get it too
    with RedisStore(redis_url, timeout=timeout) as store:
        app = server_app(store)
        sid = login(app)
        with redis_server.paused():
            started = time.monotonic()
            reply = get(app, "/read", sid, status=503)
            elapsed = time.monotonic() - started
            assert timeout * 0.9 <= elapsed < 2 * timeout, elapsed
            assert reply.headers["Retry-After"] == str(STORE_RETRY_AFTER)
        assert get(app, "/read", sid).json == {"user": "alice"}


def test_a_redis_outage_fails_closed_then_sessions_work_again(
    redis_server: RedisServer, redis_url: str
) -> None:
    with RedisStore(redis_url) as store:
        app = server_app(store)
        sid = login(app)
        with redis_server.outage():
            get(app, "/read", sid, status=503)
        # This test server keeps nothing across a restart: the session is gone, not an error.
        assert get(app, "/read", sid).json == {}
        assert get(app, "/read", login(app)).json == {"user": "alice"}


def test_fail_open_serves_an_anonymous_session_and_saves_nothing(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """fail_open=True: the request goes on, anonymous; the browser's real cookie is neither
    deleted (as a rejected cookie would be) nor overwritten by a session made meanwhile."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    with RedisStore(redis_url, timeout=0.1) as store:
        app = server_app(store, fail_open=True)
        sid = login(app)
        caplog.clear()
        with redis_server.paused():
            read = get(app, "/read", sid)
            written = post(app, "/set", sid, body={"theme": "dark"})
        assert read.json == {}
        assert written.json == {"theme": "dark"}  # the handler saw an empty session
        for reply in (read, written):
            assert set_cookies(reply, "sid") == []
            assert "Cookie" in reply.headers["Vary"]
        warnings = microweb_records(caplog, logging.WARNING)
        assert len(warnings) == 2 and all("anonymous" in w for w in warnings)
        assert microweb_records(caplog, logging.ERROR) == []  # no save was even tried
        # The outage is over: the real session is intact, without the change.
        assert get(app, "/read", sid).json == {"user": "alice"}


def test_a_request_without_a_cookie_never_asks_the_store() -> None:
    with refused_redis() as store:
        assert get(server_app(store), "/untouched", None).json == {"ok": True}
        assert get(server_app(store), "/read", None).json == {}


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        pytest.param("POST", "/set", {"theme": "dark"}, {"user": "alice", "theme": "dark"},
                     id="change"),
        pytest.param("POST", "/delete/user", None, {}, id="emptied"),
    ],
)  # fmt: skip
def test_a_store_that_cannot_be_written_sends_no_cookie_and_logs(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: Any,
    expected: dict[str, Any],
) -> None:
    """The status is the app's already when the session is saved (after runs inside
    start_response): the change is lost, logged, and no Set-Cookie names it."""
    caplog.set_level(logging.DEBUG, logger="microweb")
    with locked_sqlite(tmp_path / "s.db") as locked:
        app = server_app(locked.store)
        sid = login(app)
        locked.lock()  # reads still work; every write fails
        reply = send(app, method, path, cookie=sid, name="sid", body=body)
        assert reply.json == expected  # the handler ran and answered
        assert set_cookies(reply, "sid") == []
        [error] = microweb_records(caplog, logging.ERROR)
        assert "without Set-Cookie" in error and "database is locked" in error
        # A new visitor logging in during the outage gets no cookie either.
        assert set_cookies(post(app, "/login/bob"), "sid") == []
        locked.release()
        assert get(app, "/read", sid).json == {"user": "alice"}  # the stored session, as was
        assert sid_of(post(app, "/set", sid, body={"theme": "dark"})) == sid  # saving again


def test_a_logout_that_cannot_be_stored_is_a_503_not_a_silent_success(tmp_path: Path) -> None:
    """invalidate() deletes from the store in the handler: the App answers 503."""
    with locked_sqlite(tmp_path / "s.db") as locked:
        app = server_app(locked.store)
        sid = login(app)
        locked.lock()
        reply = post(app, "/logout", sid, status=503)
        assert reply.headers["Retry-After"] == str(STORE_RETRY_AFTER)
        assert set_cookies(reply, "sid") == []
        locked.release()
        assert get(app, "/read", sid).json == {"user": "alice"}  # still logged in: told so
        post(app, "/logout", sid)
        assert get(app, "/read", sid).json == {}


def test_fail_open_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match="fail_open"):
        ServerSessions(environ_app, store=MemoryStore(), fail_open="yes")  # type: ignore[arg-type]


# -- Around any WSGI app, and in a microweb stack ------------------------------------------


@pytest.mark.parametrize(("kind", "factory"), APPS, ids=[kind for kind, _ in APPS])
def test_an_app_that_never_uses_the_session_passes_through_unharmed(
    store: Spy, kind: str, factory: Callable[[], WSGIApp]
) -> None:
    sid = login(server_app(store))
    bare = get(factory(), "/some/path", sid)
    wrapped = get(ServerSessions(factory(), store=store), "/some/path", sid)
    assert wrapped.headerlist == bare.headerlist
    assert wrapped.body == bare.body


@pytest.mark.parametrize(
    "factory", [lambda: environ_app, flask_app], ids=["plain-wsgi-environ", "flask"]
)
def test_non_microweb_apps_reach_the_session_through_the_environ(
    store: Spy, factory: Callable[[], WSGIApp]
) -> None:
    app = ServerSessions(factory(), store=store, clock=Clock())
    if factory is flask_app:
        sid = sid_of(post(app, "/set", body={"user": "alice"}))
    else:
        sid = sid_of(get(app, "/set?user=alice", None))
    assert sid
    assert get(app, "/read", sid).json == {"user": "alice"}


def test_in_a_microweb_stack_with_the_other_middleware(store: Spy) -> None:
    app = session_app()
    app.use(RequestID)
    app.use(ServerSessions, store=store, clock=Clock())
    app.use(GZip)
    app.use(ETag)
    app.use(SecurityHeaders)
    app.use(CORS, allow_origins=["https://app.example"], allow_credentials=True)
    sid = login(app)
    response = get(app, "/read", sid)
    assert response.json == {"user": "alice"}
    assert "X-Request-ID" in response.headers
    assert "Cookie" in response.headers["Vary"]


# -- End to end: two gunicorn workers, one SQLite file ----------------------------------------


def _both_workers(url: str, sid: str) -> list[dict[str, Any]]:
    """GET /pid with the cookie, answered by each of the two workers once.

    One connection is held with an unfinished request head, which keeps
    the (sync) worker that accepted it busy, so the second connection is
    necessarily served by the other worker (see test_examples.py).
    """
    request = (
        f"GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sid={sid}\r\nConnection: close\r\n\r\n"
    ).encode()
    with open_raw(url) as held, open_raw(url) as other:
        held.sendall(request[:-2])
        other.sendall(request)
        answers = [read_to_eof(other)]
        held.sendall(request[-2:])
        answers.append(read_to_eof(held))
    bodies = []
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        bodies.append(json.loads(body))
    assert bodies[0]["pid"] != bodies[1]["pid"], "both answers came from one worker"
    return bodies


@pytest.mark.e2e
def test_a_revoked_session_stays_revoked_on_every_gunicorn_worker(
    gunicorn_server: Any, tmp_path: Path
) -> None:
    url = gunicorn_server(
        "tests.sessions_app:server_app()", env={"SESSIONS_DB": str(tmp_path / "sessions.db")}
    )
    login_reply = fetch(url, "POST", "/login/alice")
    assert login_reply.status == 200
    sid = login_reply.headers["Set-Cookie"].split(";")[0].partition("=")[2]
    assert ID.fullmatch(sid)
    assert [body["session"] for body in _both_workers(url, sid)] == [{"user": "alice"}] * 2

    logout = fetch(url, "POST", "/logout", headers={"Cookie": f"sid={sid}"})
    assert logout.status == 200
    assert "Max-Age=0" in logout.headers["Set-Cookie"]

    # The old cookie, replayed to each worker: nobody is logged in.
    assert [body["session"] for body in _both_workers(url, sid)] == [{}, {}]
