"""RateLimit (microweb/middleware/rate_limit.py): 429 (RFC 6585 §4), Retry-After
(RFC 9110 §10.2.3) and the RateLimit-* fields of draft-ietf-httpapi-ratelimit-headers.

Windows are moved by a fake clock given to the store (RateLimit reads the
store's clock), so no test sleeps. Requests go through WebTest's WSGI lint
(`microweb.testing.Client`) or ``wsgiref.validate`` (`wsgi_call.call`).
The stores are real: `MemoryStore` and `SQLiteStore`, and the store outage
is a real one (an SQLite file whose write lock another connection holds).
At the bottom, an e2e test: 1,000 requests against 4 gunicorn workers.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from middleware_apps import APPS, plain_app
from redis_server import RedisServer
from servers import StartServer
from store_outages import locked_sqlite
from wsgi_call import Raw, call

from microweb import App, Request
from microweb.middleware.cors import CORS
from microweb.middleware.proxy_fix import ProxyFix
from microweb.middleware.rate_limit import RateLimit, client_part, parse_limit
from microweb.stores import MemoryStore, SQLiteStore, Store
from microweb.stores.redis_store import RedisStore
from microweb.testing import Client
from microweb.types import Environ, StartResponse, WSGIApp

PROBLEM_JSON = "application/problem+json"
T0 = 1_800_000_000.0  # the start of a minute (and of an hour) window


class FakeClock:
    """A clock the test moves: ``clock.now += 60``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


StoreFactory = Callable[[FakeClock], Store]


@pytest.fixture(
    params=[
        pytest.param(lambda tmp, clock: MemoryStore(clock=clock), id="memory"),
        pytest.param(lambda tmp, clock: SQLiteStore(tmp / "rl.db", clock=clock), id="sqlite"),
    ]
)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[Store] = []

    def make(clock: FakeClock) -> Store:
        made.append(request.param(tmp_path, clock))
        return made[-1]

    yield make
    for store in made:
        store.close()


class Counting:
    """A plain WSGI app that counts the requests it served."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


def fields(reply: Raw) -> tuple[str | None, str | None, str | None]:
    return (
        reply.header("RateLimit-Limit"),
        reply.header("RateLimit-Remaining"),
        reply.header("RateLimit-Reset"),
    )


# -- RFC 6585 §4: exactly N requests per window, then 429 ----------------------------


@pytest.mark.parametrize(
    ("limit", "n", "period"),
    [
        pytest.param("1/second", 1, 1, id="1-per-second"),
        pytest.param("3/minute", 3, 60, id="3-per-minute"),
        pytest.param("4 / 5 minutes", 4, 300, id="4-per-5-minutes"),
        pytest.param("2/hour", 2, 3600, id="2-per-hour"),
        pytest.param("5/days", 5, 86400, id="5-per-day"),
    ],
)
def test_rfc6585_4_exactly_n_allowed_then_429(
    make_store: StoreFactory, limit: str, n: int, period: int
) -> None:
    clock = FakeClock(T0 // 86400 * 86400)  # the start of a window of every period
    app = Counting()
    limited = RateLimit(app, limit, store=make_store(clock))
    for i in range(n):
        reply = call(limited)
        assert reply.status_code == 200
        # draft-ietf-httpapi-ratelimit-headers: the quota, what is left, when it resets
        assert fields(reply) == (str(n), str(n - 1 - i), str(period))
    for _ in range(3):
        refused = call(limited)
        assert refused.status_code == 429
        assert fields(refused) == (str(n), "0", str(period))
        assert refused.header("Retry-After") == str(period)
    assert app.calls == n, "a refused request must not reach the app"


@pytest.mark.parametrize(
    ("offset", "reset"),
    [
        pytest.param(0.0, 60, id="window-start"),
        pytest.param(0.5, 60, id="rounded-up"),
        pytest.param(1.0, 59, id="one-second-in"),
        pytest.param(30.25, 30, id="mid-window"),
        pytest.param(59.0, 1, id="last-second"),
        pytest.param(59.999, 1, id="never-0"),
    ],
)
def test_rfc9110_10_2_3_retry_after_is_whole_seconds_until_the_window_resets(
    make_store: StoreFactory, offset: float, reset: int
) -> None:
    """Retry-After (delay-seconds) and RateLimit-Reset: ceil(window end - now), at least 1."""
    clock = FakeClock(T0 + offset)
    limited = RateLimit(Counting(), "1/minute", store=make_store(clock))
    assert fields(call(limited)) == ("1", "0", str(reset))
    refused = call(limited)
    assert refused.status_code == 429
    assert refused.header("Retry-After") == refused.header("RateLimit-Reset") == str(reset)


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param(None, PROBLEM_JSON, id="no-accept-problem-json"),
        pytest.param("application/json", PROBLEM_JSON, id="json-problem-json"),
        pytest.param("text/html,*/*;q=0.8", "text/html; charset=utf-8", id="browser-html"),
    ],
)
def test_rfc6585_4_the_429_renders_like_other_errors(accept: str | None, content_type: str) -> None:
    """RFC 6585 §4 ("SHOULD include representations explaining the condition"), as RFC 9457."""
    limited = RateLimit(Counting(), "1/minute", store=MemoryStore(clock=FakeClock()))
    client = Client(limited)
    headers = {"Accept": accept} if accept else {}
    client.get("/", headers=headers, status=200)
    refused = client.get("/", headers=headers, status=429)
    assert refused.headers["Content-Type"] == content_type
    assert refused.headers["Retry-After"] == "60"
    if content_type == PROBLEM_JSON:
        assert refused.json == {
            "type": "about:blank",
            "title": "Too Many Requests",
            "status": 429,
            "detail": "Too many requests: the limit is 1 per 60 seconds.",
        }
    else:
        assert b"429 Too Many Requests" in refused.body
    head = client.head("/", headers=headers, status=429)  # RFC 9110 §9.3.2: no body
    assert head.body == b"" and head.headers["Retry-After"] == "60"


def test_a_new_window_starts_a_new_count(make_store: StoreFactory) -> None:
    """Windows are fixed (numbered from the epoch), not counted from a client's first request."""
    clock = FakeClock(T0 + 30)
    limited = RateLimit(Counting(), "2/minute", store=make_store(clock))
    assert [call(limited).status_code for _ in range(3)] == [200, 200, 429]
    clock.now = T0 + 59.999  # still the same window
    assert call(limited).status_code == 429
    clock.now = T0 + 60  # the next one: the full quota again
    reply = call(limited)
    assert (reply.status_code, *fields(reply)) == (200, "2", "1", "60")
    assert [call(limited).status_code for _ in range(2)] == [200, 429]


# -- the key: REMOTE_ADDR as ProxyFix established it, never a raw header ---------------


def test_each_client_address_has_its_own_quota(make_store: StoreFactory) -> None:
    limited = RateLimit(Counting(), "1/minute", store=make_store(FakeClock()))
    assert call(limited, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert call(limited, REMOTE_ADDR="192.0.2.1").status_code == 429
    assert call(limited, REMOTE_ADDR="192.0.2.2").status_code == 200
    assert call(limited, REMOTE_ADDR="2001:db8::1").status_code == 200
    assert call(limited, REMOTE_ADDR="2001:db8::1").status_code == 429


def _bare(app: WSGIApp) -> WSGIApp:
    return app


SPOOFS = [
    {"HTTP_X_FORWARDED_FOR": "6.6.6.6"},
    {"HTTP_X_FORWARDED_FOR": "6.6.6.7, 6.6.6.8"},
    {"HTTP_X_FORWARDED_FOR": "::1"},
    {"HTTP_FORWARDED": "for=6.6.6.9"},
    {"HTTP_X_REAL_IP": "6.6.6.10"},
]


@pytest.mark.parametrize(
    ("front", "peer", "forwarded_for", "other_client"),
    [
        # No ProxyFix: the peer is the client; no header is read at all.
        pytest.param(_bare, "198.51.100.7", "", ("198.51.100.8", ""), id="no-proxyfix"),
        # ProxyFix(x_for=1) behind one proxy: the proxy appends the real client on
        # the right; what the client wrote is to its left and is not believed.
        pytest.param(
            lambda app: ProxyFix(app, x_for=1),
            "10.0.0.1",
            "203.0.113.7",
            ("10.0.0.1", "203.0.113.8"),
            id="proxyfix-one-hop",
        ),
        # ProxyFix(trusted=...) and a peer that is not the proxy: nothing it says counts.
        pytest.param(
            lambda app: ProxyFix(app, x_for=1, forwarded=1, trusted=["10.0.0.0/8"]),
            "198.51.100.7",
            "",
            ("198.51.100.8", ""),
            id="proxyfix-untrusted-peer",
        ),
    ],
)
def test_a_spoofed_forwarded_header_does_not_buy_a_new_quota(
    front: Callable[[WSGIApp], WSGIApp],
    peer: str,
    forwarded_for: str,
    other_client: tuple[str, str],
) -> None:
    """The ProxyFix docs' threat: ``X-Forwarded-For: 6.6.6.6`` to dodge a rate limit."""
    app = front(RateLimit(Counting(), "1/minute", store=MemoryStore(clock=FakeClock())))

    def send(peer: str, appended: str, spoof: dict[str, str]) -> int:
        extra: dict[str, Any] = dict(spoof)
        if appended:  # what the trusted proxy adds, rightmost
            previous = extra.get("HTTP_X_FORWARDED_FOR")
            extra["HTTP_X_FORWARDED_FOR"] = f"{previous}, {appended}" if previous else appended
        return call(app, REMOTE_ADDR=peer, **extra).status_code

    assert send(peer, forwarded_for, {}) == 200
    for spoof in SPOOFS:
        assert send(peer, forwarded_for, spoof) == 429, spoof
    # Control: another real client is counted apart (so the key is not a constant).
    assert send(other_client[0], other_client[1], SPOOFS[0]) == 200


def test_a_custom_key_function_gets_a_request() -> None:
    seen: list[Any] = []

    def api_key(req: Request) -> str | None:
        seen.append(req)
        value: str | None = req.headers.get("X-API-Key")
        return value

    app = Counting()
    limited = RateLimit(app, "2/minute", store=MemoryStore(clock=FakeClock()), key=api_key)
    one = {"HTTP_X_API_KEY": "alice"}
    assert [call(limited, **one).status_code for _ in range(3)] == [200, 200, 429]
    # The key is the API key, not the address: the same address with another key passes.
    assert call(limited, HTTP_X_API_KEY="bob").status_code == 200
    assert all(isinstance(req, Request) for req in seen)
    # key -> None: not limited, no RateLimit fields.
    for _ in range(5):
        reply = call(limited)
        assert reply.status_code == 200 and fields(reply) == (None, None, None)
    assert app.calls == 3 + 5


@pytest.mark.parametrize(
    "client",
    [
        pytest.param("x" * 5000, id="long"),
        pytest.param("user:42:with:colons and spaces", id="spaces"),
        pytest.param("ünïcødé-sübject", id="non-ascii"),
        pytest.param("", id="empty"),
        pytest.param("\udcff", id="lone-surrogate"),
    ],
)
def test_odd_keys_are_hashed_into_a_valid_store_key(client: str) -> None:
    """Store keys are 1..512 chars (MemoryStore raises ValueError otherwise)."""
    limited = RateLimit(
        Counting(), "1/minute", store=MemoryStore(clock=FakeClock()), key=lambda req: client
    )
    assert [call(limited).status_code for _ in range(2)] == [200, 429]
    part = client_part(client)
    assert part.startswith("#") and len(part) == 65


def test_a_plain_key_never_collides_with_a_hashed_one() -> None:
    hashed = client_part("x" * 5000)
    assert client_part(hashed) != hashed  # a raw key that looks like a hash is hashed too
    assert client_part("192.0.2.1") == "192.0.2.1"
    assert client_part("2001:db8::1") == "2001:db8::1"


@pytest.mark.parametrize(
    ("path", "counted"),
    [
        pytest.param("/healthz", False, id="exempt"),
        pytest.param("/metrics", False, id="exempt-too"),
        pytest.param("/healthz/", True, id="exact-paths-only"),
        pytest.param("/healthzx", True, id="not-a-prefix"),
        pytest.param("/", True, id="other"),
    ],
)
def test_exempt_paths_are_not_counted(path: str, counted: bool) -> None:
    store = MemoryStore(clock=FakeClock())
    limited = RateLimit(Counting(), "1/minute", store=store, exempt=["/healthz", "/metrics"])
    replies = [call(limited, path=path) for _ in range(3)]
    assert [r.status_code for r in replies] == ([200, 429, 429] if counted else [200] * 3)
    assert (replies[0].header("RateLimit-Limit") is not None) == counted


@pytest.mark.parametrize(
    ("outer", "inner"),
    [
        pytest.param("10/hour", "3/minute", id="tighter-inside"),
        pytest.param("3/minute", "10/hour", id="tighter-outside"),
    ],
)
def test_two_layers_report_the_tighter_limit(outer: str, inner: str) -> None:
    """The draft: with several policies, the one closest to its limit is the one reported."""
    store = MemoryStore(clock=FakeClock())
    app = RateLimit(RateLimit(Counting(), inner, store=store), outer, store=store)
    replies = [call(app) for _ in range(4)]
    assert [fields(r) for r in replies] == [
        ("3", "2", "60"),
        ("3", "1", "60"),
        ("3", "0", "60"),
        ("3", "0", "60"),
    ]
    assert replies[3].status_code == 429
    assert all(len([h for h in r.headers if h[0] == "RateLimit-Limit"]) == 1 for r in replies)


# -- the store fails: 503 (fail closed) or through (fail open) --------------------------


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[tuple[SQLiteStore, Callable[[], None]]]:
    """A real SQLite store whose write lock another connection holds (an outage)."""
    with locked_sqlite(tmp_path / "locked.db") as locked:
        locked.lock()
        yield locked.store, locked.release


@pytest.mark.parametrize(
    ("fail_open", "status"),
    [pytest.param(False, 503, id="fail-closed"), pytest.param(True, 200, id="fail-open")],
)
def test_a_store_outage_is_logged_then_503_or_let_through(
    locked_store: tuple[SQLiteStore, Callable[[], None]],
    caplog: pytest.LogCaptureFixture,
    fail_open: bool,
    status: int,
) -> None:
    store, release = locked_store
    app = Counting()
    limited = RateLimit(app, "1/minute", store=store, fail_open=fail_open)
    caplog.set_level(logging.WARNING, logger="microweb")
    reply = call(limited)
    assert reply.status_code == status
    assert app.calls == (1 if fail_open else 0)
    assert fields(reply) == (None, None, None), "nothing was counted"
    if fail_open:
        assert reply.header("Retry-After") is None
    else:
        # RFC 9110 §15.6.4 / §10.2.3: 503 with when to retry; problem+json like other errors.
        assert reply.header("Retry-After") == "5"
        assert reply.header("Content-Type") == PROBLEM_JSON
        assert json.loads(reply.body)["status"] == 503
    warnings = [r for r in caplog.records if r.name == "microweb" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "database is locked" in warnings[0].getMessage()
    # The outage ends: counting resumes.
    release()
    assert [call(limited).status_code for _ in range(2)] == [200, 429]


def test_a_redis_outage_fails_closed(redis_server: RedisServer, redis_url: str) -> None:
    """The same with Redis down (connection refused): 503, then counting resumes."""
    store = RedisStore(redis_url)
    limited = RateLimit(Counting(), "1/minute", store=store)
    try:
        with redis_server.outage():
            reply = call(limited)
            assert (reply.status_code, reply.header("Retry-After")) == (503, "5")
        assert [call(limited).status_code for _ in range(2)] == [200, 429]
    finally:
        store.close()


# -- options are checked at construction ------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"limit": "100"}, id="no-period"),
        pytest.param({"limit": "0/minute"}, id="zero"),
        pytest.param({"limit": "-1/minute"}, id="negative"),
        pytest.param({"limit": "1/0 minutes"}, id="zero-period"),
        pytest.param({"limit": "100/fortnight"}, id="unknown-unit"),
        pytest.param({"limit": "100/minute; burst"}, id="trailing-junk"),
        pytest.param({"limit": "1.5/minute"}, id="fraction"),
        pytest.param({"limit": "\u0661\u0660/minute"}, id="non-ascii-digits"),
        pytest.param({"limit": 100}, id="not-a-string"),
        pytest.param({"key": "REMOTE_ADDR"}, id="key-not-callable"),
        pytest.param({"exempt": "/healthz"}, id="exempt-one-string"),
        pytest.param({"exempt": ["healthz"]}, id="exempt-not-a-path"),
        pytest.param({"fail_open": "yes"}, id="fail-open-not-bool"),
    ],
)
def test_bad_options_are_a_value_error_at_construction(options: dict[str, Any]) -> None:
    options.setdefault("store", MemoryStore())
    with pytest.raises(ValueError, match="RateLimit"):
        RateLimit(plain_app, **options)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        pytest.param("100/minute", (100, 60), id="minute"),
        pytest.param("100/Minute", (100, 60), id="case"),
        pytest.param(" 7 / 2 hours ", (7, 7200), id="spaces-and-multiple"),
        pytest.param("1/1 day", (1, 86400), id="one-day"),
        pytest.param("10/seconds", (10, 1), id="plural"),
    ],
)
def test_limit_specs(spec: str, parsed: tuple[int, int]) -> None:
    assert parse_limit(spec) == parsed


def test_no_store_means_the_default_sqlite_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROWEB_STORE", str(tmp_path / "default.db"))
    limited = RateLimit(plain_app, "1/minute")
    try:
        assert isinstance(limited.store, SQLiteStore)
        assert limited.store.path == str(tmp_path / "default.db")
        assert limited.clock is limited.store.clock
        assert [call(limited).status_code for _ in range(2)] == [200, 429]
    finally:
        limited.store.close()


# -- around any WSGI app, and in a microweb App's stack ----------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS)
def test_around_any_wsgi_app(name: str, factory: Callable[[], WSGIApp]) -> None:
    client = Client(
        RateLimit(factory(), "3/minute", store=MemoryStore(clock=FakeClock()), exempt=["/up"])
    )
    ok = client.get("/x", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=200)
    assert ok.json["path"] == "/x"
    assert ok.headers["RateLimit-Remaining"] == "2"
    # The app's own errors are counted and carry the fields too.
    error = client.get("/error", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=500)
    assert error.headers["RateLimit-Remaining"] == "1"
    client.post("/x", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=200)
    refused = client.get("/x", extra_environ={"REMOTE_ADDR": "192.0.2.1"}, status=429)
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert "RateLimit-Limit" not in client.get("/up", status=200).headers


def test_in_a_microweb_app_behind_proxyfix_and_cors() -> None:
    """A 429 still carries the CORS grant, and a preflight is answered, never counted."""
    store = MemoryStore(clock=FakeClock())
    app = App()

    @app.post("/notes")
    def create(req: Request) -> dict[str, bool]:
        return {"created": True}

    app.use(RateLimit, limit="2/minute", store=store)
    app.use(CORS, allow_origins=["https://example.com"], allow_methods=["POST"])
    app.use(ProxyFix, x_for=1)
    client = Client(app)
    origin = {"Origin": "https://example.com"}
    peer = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(5):
        preflight = client.options(
            "/notes",
            headers={**origin, "Access-Control-Request-Method": "POST"},
            extra_environ=peer,
            status=204,
        )
        assert "RateLimit-Limit" not in preflight.headers
    real = {**origin, "X-Forwarded-For": "203.0.113.7"}
    assert client.post_json("/notes", {}, headers=real, extra_environ=peer).json == {
        "created": True
    }
    second = client.post_json("/notes", {}, headers=real, extra_environ=peer, status=200)
    assert second.headers["RateLimit-Remaining"] == "0"
    assert second.headers["Access-Control-Allow-Origin"] == "https://example.com"
    refused = client.post_json("/notes", {}, headers=real, extra_environ=peer, status=429)
    assert refused.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert refused.headers["Retry-After"] == "60"
    # Another client behind the same proxy has its own quota.
    other = {**origin, "X-Forwarded-For": "203.0.113.8"}
    client.post_json("/notes", {}, headers=other, extra_environ=peer, status=200)


# -- e2e: one count across 4 gunicorn workers -----------------------------------------


def _get(url: str, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", "/", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.e2e
def test_e2e_four_gunicorn_workers_share_one_exact_count(
    gunicorn_server: StartServer, store_spec: str
) -> None:
    url = gunicorn_server(
        "tests.rate_limit_app:app",
        workers=4,
        env={"RATE_LIMIT_STORE": store_spec, "RATE_LIMIT_T0": str(time.time())},
    )
    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(lambda _: _get(url, {}), range(1000)))
    assert (statuses.count(200), statuses.count(429)) == (100, 900)
    # Rotating X-Forwarded-For (the app's ProxyFix trusts only 10.255.255.254) buys nothing.
    spoofs = [{"X-Forwarded-For": f"6.6.6.{i}"} for i in range(50)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        spoofed = list(pool.map(lambda headers: _get(url, headers), spoofs))
    assert spoofed == [429] * 50
