"""The deployment recipe end to end: nginx -> two gunicorn instances -> one Redis.

examples/deploy/run.py's `Deployment` starts the real programs (Debian's nginx
and redis-server, installed when missing; gunicorn) on free 127.0.0.1 ports
in tmp_path, each gunicorn instance ready when started (tests/deployment.py),
and every check below goes through nginx, or to one instance directly, with
a plain HTTP client. What is checked is what the recipe
promises in docs/deploying.md:

- nginx balances over both instances (``X-Instance`` says which answered);
- one rate limit for a client across both instances, which a forged
  ``X-Forwarded-For`` does not reset;
- an ``Idempotency-Key`` runs a POST once, whichever instances its
  concurrent copies land on;
- a session or token revoked through one instance is refused by the other;
- stopping an instance while clients keep sending loses no GET (nginx
  retries it on the other instance) and, with client retries under one
  ``Idempotency-Key``, runs no POST twice;
- Redis down or hung: 503 (fail closed) at once when it refuses, after the
  store's timeout (not a second one) when it hangs, and service again once
  Redis is back.

Counts and timings are printed (``pytest -s`` or ``-rP`` shows them).
Nothing sleeps: concurrent requests meet at a `threading.Barrier`, the
client stream and the test step through `threading.Event`s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from deployment import logs, running, tools
from servers import REPO_ROOT, Reply, fetch

from examples.deploy.processes import alive
from examples.deploy.run import Deployment

pytestmark = pytest.mark.e2e

__all__ = ["tools"]  # the fixture that installs nginx and redis-server

ALICE = {"username": "alice", "password": "wonderland-alice"}
# The instances' RedisStore timeout (REDIS_TIMEOUT), in seconds. The outage
# tests bound a 503's time by it: a store that waits for Redis once too often
# takes a whole timeout more, so the rest of the path (nginx, gunicorn, the
# app, on a busy 2-core machine) gets a whole timeout of headroom.
REDIS_TIMEOUT = 3.0
COOKIE = "sid"  # ServerSessions' default cookie name

INSTANCE_ENV = {"REDIS_TIMEOUT": str(REDIS_TIMEOUT), "RATE_LIMIT": "100000/day"}
# NOTE: a worker forked just as SIGTERM arrives misses it and the master
# waits out the graceful timeout (tests/servers.py): keep stops short.
GUNICORN_ARGS = ("--graceful-timeout", "2")


@pytest.fixture(scope="module")
def deployment(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The recipe, shared by the tests below (each leaves it running as it found it)."""
    run_dir = tmp_path_factory.mktemp("deploy")
    with running(run_dir, env=INSTANCE_ENV, gunicorn_args=GUNICORN_ARGS) as started:
        yield started


# --- small HTTP helpers ---------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_token(url: str) -> str:
    reply = fetch(url, "POST", "/api/token", json_body=ALICE)
    assert reply.status == 200, reply.body
    token: str = reply.json()["access_token"]
    return token


def post_note(url: str, token: str, key: str, text: str) -> Reply:
    headers = bearer(token) | {"Idempotency-Key": key}
    return fetch(url, "POST", "/api/notes", json_body={"text": text}, headers=headers)


def instance(reply: Reply) -> str:
    return reply.headers["X-Instance"]


def same_origin(url: str) -> dict[str, str]:
    """What a browser adds to a form POST on the site's own page (CrossOriginProtection)."""
    return {"Origin": url, "Sec-Fetch-Site": "same-origin"}


def greeting(reply: Reply) -> str | None:
    text = reply.body.decode()
    return text.split("hello ", 1)[1].split("\n", 1)[0] if "hello " in text else None


# --- (a) load balancing -------------------------------------------------------------------


def test_nginx_balances_requests_over_both_instances(deployment: Deployment) -> None:
    replies = [fetch(deployment.url, "GET", "/healthz") for _ in range(6)]
    assert [reply.status for reply in replies] == [200] * 6
    assert {instance(reply) for reply in replies} == {"a", "b"}
    for reply in replies:
        assert reply.json() == {"status": "ok", "instance": instance(reply)}
        assert reply.headers["Server"] == "nginx"  # through the proxy
    # Each instance also answers on its own port, as itself.
    for i, name in enumerate(("a", "b")):
        assert instance(fetch(deployment.instance_url(i), "GET", "/healthz")) == name


# --- (b) one rate limit for both instances ------------------------------------------------


# Far more than the rate-limit test can take (its requests time out long before).
WINDOW_MARGIN = 3600.0  # seconds


def period_with_room(margin: float = WINDOW_MARGIN) -> int:
    """A period in seconds, about a day, whose current fixed window has `margin` seconds left.

    RateLimit numbers its windows ``floor(now / period)``, so a count can
    restart only at a multiple of the period. Day windows (86,400 s) end at
    midnight UTC; 86,401 s windows end one second later each day since 1970,
    i.e. 5.8 hours after midnight in 2026. Within `margin` of one boundary,
    the other is hours away: one of the two always has room, and which one
    is decided before the instances start, so the test cannot straddle a
    window whatever the time of day.
    """
    now = time.time()
    for period in (86_400, 86_401):
        if period - now % period >= margin:
            return period
    raise RuntimeError(f"no window with {margin}s left at {now}")  # not before the year 2206


def test_one_rate_limit_across_both_instances_and_forged_x_forwarded_for(
    tools: None, tmp_path: Path
) -> None:
    """N requests per client in all, not N per instance; a forged X-Forwarded-For changes nothing.

    A fixed window of about a day, chosen so that its boundary, the only
    moment the count could restart, is at least WINDOW_MARGIN away.
    """
    limit = 10
    period = period_with_room()
    env = INSTANCE_ENV | {"RATE_LIMIT": f"{limit}/{period} seconds"}
    with running(tmp_path / "run", env=env, gunicorn_args=GUNICORN_ARGS) as deployment:

        def one(n: int) -> Reply:
            # Every other request claims to come from another address: nginx
            # overwrites the header, so they all count for 127.0.0.1.
            forged = {"X-Forwarded-For": f"203.0.113.{n}"} if n % 2 else {}
            return fetch(deployment.url, "GET", "/api/me", headers=forged)

        with ThreadPoolExecutor(8) as pool:  # concurrent, on both instances at once
            replies = list(pool.map(one, range(3 * limit)))
        allowed = [reply for reply in replies if reply.status != 429]
        refused = [reply for reply in replies if reply.status == 429]
        print(f"\nrate limit {limit}/{period} s, {len(replies)} requests: "
              f"{len(allowed)} allowed, {len(refused)} refused (429)")  # fmt: skip
        assert len(allowed) == limit
        assert {reply.status for reply in allowed} == {401}  # counted, then the handler ran
        assert {instance(reply) for reply in allowed} == {"a", "b"}
        assert {instance(reply) for reply in refused} == {"a", "b"}
        for reply in refused:
            assert int(reply.headers["Retry-After"]) > 0  # RFC 6585 §4
            assert reply.headers["RateLimit-Remaining"] == "0"
        # Directly on an instance (the same client address): the same count.
        assert fetch(deployment.instance_url(0), "GET", "/api/me").status == 429
        # /healthz is exempt: never counted, never refused.
        health = fetch(deployment.url, "GET", "/healthz")
        assert health.status == 200
        assert "RateLimit-Limit" not in health.headers


# --- (c) idempotency across instances -----------------------------------------------------


def test_an_idempotency_key_runs_a_post_once_across_instances(deployment: Deployment) -> None:
    token = get_token(deployment.url)
    key = str(uuid.uuid4())
    copies = 8
    barrier = threading.Barrier(copies)

    def send(_: int) -> Reply:
        barrier.wait(timeout=10)  # all copies leave together
        return post_note(deployment.url, token, key, "pay 10 EUR")

    with ThreadPoolExecutor(copies) as pool:
        replies = list(pool.map(send, range(copies)))
    statuses = [reply.status for reply in replies]
    print(f"\n{copies} concurrent POSTs, one Idempotency-Key: statuses {sorted(statuses)}, "
          f"instances {sorted(instance(reply) for reply in replies)}")  # fmt: skip
    assert {instance(reply) for reply in replies} == {"a", "b"}
    assert set(statuses) <= {201, 409}  # the first, its replays, or "still running"
    created = [reply for reply in replies if reply.status == 201]
    originals = [reply for reply in created if "Idempotent-Replayed" not in reply.headers]
    assert len(originals) == 1
    note = originals[0].json()
    assert all(reply.json() == note for reply in created)
    for reply in replies:
        if reply.status == 409:
            assert reply.headers["Retry-After"]
    # Later retries, on either instance directly: the recorded answer.
    for i in range(2):
        again = post_note(deployment.instance_url(i), token, key, "pay 10 EUR")
        assert (again.status, again.json()) == (201, note)
        assert again.headers["Idempotent-Replayed"] == "true"
    # The key reused for another payload: 422, and nothing runs.
    assert post_note(deployment.url, token, key, "pay 1000 EUR").status == 422
    # The handler ran once: the next note gets the very next id.
    following = post_note(deployment.url, token, str(uuid.uuid4()), "next")
    assert following.status == 201
    assert following.json()["id"] == note["id"] + 1


# --- (d) revocation seen by every instance ------------------------------------------------


def test_a_session_revoked_on_one_instance_is_refused_by_the_other(
    deployment: Deployment,
) -> None:
    a, b = deployment.instance_url(0), deployment.instance_url(1)
    form = {"Content-Type": "application/x-www-form-urlencoded"} | same_origin(a)
    login = fetch(a, "POST", "/login", body=urlencode(ALICE).encode(), headers=form)
    assert login.status == 303
    session_id = SimpleCookie(login.headers["Set-Cookie"])[COOKIE].value
    cookie = {"Cookie": f"{COOKIE}={session_id}"}
    assert greeting(fetch(b, "GET", "/", headers=cookie)) == "alice"  # logged in on b too
    logout = fetch(a, "POST", "/logout", headers=cookie | same_origin(a))
    assert logout.status == 303
    # The old cookie, replayed on the other instance: the session is gone from Redis.
    replay = fetch(b, "GET", "/", headers=cookie)
    assert replay.status == 200
    assert instance(replay) == "b"
    assert greeting(replay) is None


def test_a_token_revoked_on_one_instance_is_refused_by_the_other(
    deployment: Deployment,
) -> None:
    a, b = deployment.instance_url(0), deployment.instance_url(1)
    token = get_token(a)
    assert fetch(b, "GET", "/api/me", headers=bearer(token)).status == 200
    assert fetch(a, "POST", "/api/logout", headers=bearer(token)).status == 204
    refused = fetch(b, "GET", "/api/me", headers=bearer(token))
    assert refused.status == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


# --- (e) one instance stopped while clients keep sending ----------------------------------


class Stream:
    """Client threads sending GETs, and POSTs with an Idempotency-Key, until stopped.

    A POST that fails is retried with the same key (at most `POST_ATTEMPTS`
    times), as a client of an idempotent API does.
    """

    POST_ATTEMPTS = 5

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.gets: list[tuple[int | str, str]] = []  # (status or error, X-Upstream)
        self.posts: list[list[int | str]] = []  # per key: the status (or error) of each attempt
        self.ids: list[int] = []  # the note ids created
        self.done = threading.Event()
        self.progress = threading.Condition()
        self.threads = [
            threading.Thread(target=self.send_gets, name="gets"),
            threading.Thread(target=self.send_posts, name="posts"),
        ]

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def wait_for(self, gets: int, posts: int) -> None:
        """Block until `gets` GETs and `posts` POSTs (keys) have been completed in all."""
        with self.progress:
            reached = self.progress.wait_for(
                lambda: len(self.gets) >= gets and len(self.posts) >= posts, timeout=20
            )
        assert reached, f"the client stream stalled at {len(self.gets)} GETs, {len(self.posts)}"

    def record(self, into: list[Any], outcome: Any) -> None:
        with self.progress:
            into.append(outcome)
            self.progress.notify_all()

    def send_gets(self) -> None:
        while not self.done.is_set():
            try:
                reply = fetch(self.url, "GET", "/api/me", headers=bearer(self.token))
                outcome: tuple[int | str, str] = (reply.status, reply.headers["X-Upstream"])
            except OSError as exc:
                outcome = (type(exc).__name__, "")
            self.record(self.gets, outcome)

    def send_posts(self) -> None:
        while not self.done.is_set():
            key = str(uuid.uuid4())
            attempts: list[int | str] = []
            for _ in range(self.POST_ATTEMPTS):
                try:
                    reply = post_note(self.url, self.token, key, f"note {key}")
                    attempts.append(reply.status)
                except OSError as exc:
                    attempts.append(type(exc).__name__)
                    continue
                if reply.status == 201:
                    self.ids.append(reply.json()["id"])
                    break
            self.record(self.posts, attempts)


def test_stopping_an_instance_loses_no_get_and_runs_no_post_twice(
    deployment: Deployment,
) -> None:
    token = get_token(deployment.url)
    with Stream(deployment.url, token) as stream:
        stream.wait_for(gets=15, posts=5)  # both instances serving
        before = len(stream.gets), len(stream.posts)
        started = time.monotonic()
        assert deployment.stop_instance(0) is None  # SIGTERM; returns once it has exited
        stop_time = time.monotonic() - started
        stream.wait_for(gets=before[0] + 20, posts=before[1] + 8)  # on b alone
        deployment.start_instance(0)  # the same port again; returns once its workers are ready
        assert instance(fetch(deployment.instance_url(0), "GET", "/healthz")) == "a"
        stream.wait_for(gets=len(stream.gets) + 10, posts=len(stream.posts) + 3)
    lost_gets = [get for get in stream.gets if get[0] != 200]
    retried_gets = [get for get in stream.gets if "," in get[1]]  # X-Upstream: "a, b"
    failed_attempts = [status for attempts in stream.posts for status in attempts if status != 201]
    unfinished = [attempts for attempts in stream.posts if attempts[-1] != 201]
    print(
        f"\ninstance a stopped (SIGTERM, {stop_time:.2f}s) and restarted under a stream of "
        f"{len(stream.gets)} GETs and {len(stream.posts)} keyed POSTs: "
        f"{len(lost_gets)} GETs lost, {len(retried_gets)} retried by nginx on the other "
        f"instance; {len(failed_attempts)} POST attempts failed {failed_attempts} and were "
        f"retried by the client with their key; {len(unfinished)} POSTs never succeeded"
    )
    assert lost_gets == []
    assert unfinished == []
    # Each keyed POST ran exactly once: one id per key, no id skipped
    # (a POST run twice would have taken two).
    assert len(stream.ids) == len(stream.posts)
    assert sorted(stream.ids) == list(range(min(stream.ids), min(stream.ids) + len(stream.ids)))


# --- (f) Redis down, Redis hung ----------------------------------------------------------


def timed(request: Callable[[], Reply]) -> tuple[Reply, float]:
    started = time.monotonic()
    reply = request()
    return reply, time.monotonic() - started


def assert_served_again(deployment: Deployment, token: str) -> None:
    """Every worker of both instances works again (each has its own Redis connections)."""
    replies = [fetch(deployment.url, "GET", "/api/me", headers=bearer(token)) for _ in range(8)]
    assert [reply.status for reply in replies] == [200] * 8, logs(deployment)
    created = post_note(deployment.url, token, str(uuid.uuid4()), "after the outage")
    assert created.status == 201


def test_redis_down_is_503_at_once_and_service_returns_with_it(deployment: Deployment) -> None:
    token = get_token(deployment.url)
    assert_served_again(deployment, token)
    assert deployment.stop_redis() is None
    try:
        me, me_time = timed(lambda: fetch(deployment.url, "GET", "/api/me", headers=bearer(token)))
        note, note_time = timed(lambda: post_note(deployment.url, token, str(uuid.uuid4()), "x"))
        health = fetch(deployment.url, "GET", "/healthz")
    finally:
        deployment.start_redis()  # on the same port
    print(f"\nRedis stopped: GET /api/me {me.status} in {me_time * 1000:.0f} ms, "
          f"keyed POST /api/notes {note.status} in {note_time * 1000:.0f} ms")  # fmt: skip
    for reply, elapsed in ((me, me_time), (note, note_time)):
        assert reply.status == 503, reply.body  # fail closed: no unlimited, unprotected requests
        # Refused connections: the store does not wait (a timeout, a retry) at all.
        assert elapsed < REDIS_TIMEOUT
    assert me.headers["Retry-After"]  # RateLimit's: come back in a few seconds
    assert health.status == 200  # the instances themselves are fine
    # NOTE: this Redis keeps nothing on disk, so the sessions and revocations
    # it held are gone; the token is still valid by its signature.
    assert_served_again(deployment, token)


def test_a_hung_redis_is_503_after_the_store_timeout(deployment: Deployment) -> None:
    token = get_token(deployment.url)
    deployment.pause_redis()  # connections are accepted (by the kernel), never answered
    try:
        me, elapsed = timed(lambda: fetch(deployment.url, "GET", "/api/me", headers=bearer(token)))
    finally:
        deployment.resume_redis()
    print(f"\nRedis hung (SIGSTOP): GET /api/me {me.status} after {elapsed * 1000:.0f} ms "
          f"(store timeout {REDIS_TIMEOUT * 1000:.0f} ms)")  # fmt: skip
    assert me.status == 503
    # One store timeout, not none (the store gave up by itself: Redis was
    # still paused) and not two (a retry, or a second operation waiting).
    assert REDIS_TIMEOUT * 0.9 <= elapsed < 2 * REDIS_TIMEOUT
    assert_served_again(deployment, token)


# --- the command line ---------------------------------------------------------------------


def test_an_early_401_reaches_the_client_through_nginx(deployment: Deployment) -> None:
    """RFC 9112 §9.6: the app answers 401 before reading a 900 KB body that nginx has buffered.

    nginx sends the whole body upstream; gunicorn alone reads 64 KiB of what
    the app left unread, then closes, and nginx, still sending, answered 502
    35 times of 40. microweb drains the rest after the answer (wsgi.DrainBody).
    """
    body = b"x" * 900_000
    headers = {"Content-Type": "application/json"}
    statuses = [
        fetch(deployment.url, "POST", "/api/notes", body=body, headers=headers).status
        for _ in range(10)
    ]
    assert statuses == [401] * 10


def test_run_py_starts_the_set_in_the_background_and_stops_it_by_pid(
    tools: None, tmp_path: Path
) -> None:
    """``run.py start`` returns with everything running; ``run.py stop`` ends every PID."""
    script = [sys.executable, str(REPO_ROOT / "examples" / "deploy" / "run.py")]
    run_dir = tmp_path / "run"
    started = subprocess.run(
        [*script, "start", "--dir", str(run_dir), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((run_dir / "state.json").read_text())
        assert set(state["pids"]) == {"redis", "a", "b", "nginx"}
        replies = [fetch(state["url"], "GET", "/healthz") for _ in range(2)]
        assert {instance(reply) for reply in replies} == {"a", "b"}
    finally:
        stopped = subprocess.run(
            [*script, "stop", "--dir", str(run_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr
    for name, pid in state["pids"].items():
        assert not alive(pid, ""), f"{name} (pid {pid}) is still running"
    assert json.loads((run_dir / "state.json").read_text())["pids"] == {}
