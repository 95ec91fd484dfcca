"""The deployment recipe when one of its parts fails: an instance stopped, Redis down or hung.

The recipe as in test_deploy.py (tests/deployment.py starts it ready), with
clients that keep sending while a part goes away. What is checked is what
docs/deploying.md promises ("Retries", "When Redis goes down"):

- stopping an instance while clients keep sending loses no GET (nginx
  retries it on the other instance) and, with client retries under one
  ``Idempotency-Key``, runs no POST twice;
- Redis down or hung: 503 (fail closed) at once when it refuses, after the
  store's timeout (not a second one) when it hangs, and service again once
  Redis is back.

Counts and timings are printed (``pytest -s`` or ``-rP`` shows them).
Nothing sleeps: the client stream and the test step through
`threading.Event`s and a `threading.Condition`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from deployment import (
    REDIS_TIMEOUT,
    bearer,
    deployment,
    get_token,
    instance,
    logs,
    post_note,
    tools,
)
from servers import Reply, fetch

from examples.deploy.run import Deployment

pytestmark = pytest.mark.e2e

__all__ = ["deployment", "tools"]  # the fixtures: the recipe, and nginx and redis-server


# --- (a) one instance stopped while clients keep sending ----------------------------------


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


# --- (b) Redis down, Redis hung ----------------------------------------------------------


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
