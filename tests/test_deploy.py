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
- an early 401 reaches the client through nginx, a buffered body unread;
- ``run.py start`` and ``stop`` (the command line).

What happens when a part fails (an instance stopped, Redis down or hung) is
test_deploy_failures.py; WebSockets through nginx, test_deploy_websocket.py.
Counts are printed (``pytest -s`` or ``-rP`` shows them). Nothing sleeps:
concurrent requests meet at a `threading.Barrier`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
from deployment import (
    ALICE,
    GUNICORN_ARGS,
    INSTANCE_ENV,
    bearer,
    deployment,
    get_token,
    instance,
    post_note,
    running,
    tools,
)
from servers import REPO_ROOT, Reply, fetch

from examples.deploy.processes import alive
from examples.deploy.run import Deployment

pytestmark = pytest.mark.e2e

__all__ = ["deployment", "tools"]  # the fixtures: the recipe, and nginx and redis-server
COOKIE = "sid"  # ServerSessions' default cookie name


# --- a browser's side of the login form (bearer tokens: tests/deployment.py) ----------------


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


# --- (e) an answer before the body is read -----------------------------------------------


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


# --- the command line ---------------------------------------------------------------------


def test_run_py_starts_the_set_in_the_background_and_stops_it_by_pid(
    tools: None, tmp_path: Path
) -> None:
    """``run.py start`` returns with everything running; ``run.py stop`` ends every PID."""
    run_dir = tmp_path / "run"

    def run_py(*args: str) -> subprocess.CompletedProcess[str]:
        script = REPO_ROOT / "examples" / "deploy" / "run.py"
        command = [sys.executable, str(script), *args, "--dir", str(run_dir)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    started = run_py("start", "--port", "0")
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads((run_dir / "state.json").read_text())
        assert set(state["pids"]) == {"redis", "a", "b", "nginx"}
        replies = [fetch(state["url"], "GET", "/healthz") for _ in range(2)]
        assert {instance(reply) for reply in replies} == {"a", "b"}
    finally:
        stopped = run_py("stop")
    assert stopped.returncode == 0, stopped.stderr
    for name, pid in state["pids"].items():
        assert not alive(pid, ""), f"{name} (pid {pid}) is still running"
    assert json.loads((run_dir / "state.json").read_text())["pids"] == {}
