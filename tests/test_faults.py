"""Faults through real processes: first starts, signals, kills and outages under load.

Each test runs real gunicorn (tests/servers.py) and real clients on
127.0.0.1, and is bounded in time: loads are a few hundred requests, and
every wait is on an event (a reply, a process exit, a log line), never a
sleep.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
from microweb_run import microweb_run
from servers import TIMEOUT, GunicornServer, Reply, fetch, open_raw
from store_outages import read_only

from microweb.cli import DEFAULTS

pytestmark = pytest.mark.e2e

MILK = {"title": "milk", "body": "2 litres"}


class Load:
    """`threads` clients creating and reading notes until stopped; every failure recorded.

    A failure is an exception (a dropped connection) or an unexpected
    status; `wait_for(n)` returns once n exchanges have succeeded in all.
    """

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.done = 0
        self.failures: list[int | str] = []
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _exchange(self, method: str, path: str, expected: int, **kw: Any) -> Reply | None:
        try:
            reply = fetch(self.url, method, path, **kw)
        except (OSError, http.client.HTTPException) as exc:  # IncompleteRead is not an OSError
            outcome: int | str = type(exc).__name__
        else:
            if reply.status == expected:
                with self._progress:
                    self.done += 1
                    self._progress.notify_all()
                return reply
            outcome = reply.status
        with self._progress:
            self.failures.append(outcome)
        return None

    def _client(self) -> None:
        while not self._stop.is_set():
            created = self._exchange("POST", "/notes", 201, json_body=MILK)
            if created is not None:
                self._exchange("GET", f"/notes/{created.json()['id']}", 200)

    def wait_for(self, count: int) -> None:
        with self._progress:
            if not self._progress.wait_for(lambda: self.done >= count, timeout=60):
                raise TimeoutError(f"{self.done} exchanges, not {count}: {self.failures}")


def notes_server(
    gunicorn_process: Callable[..., GunicornServer], db: Path, **kw: Any
) -> GunicornServer:
    return gunicorn_process("examples.notes:app", env={"NOTES_DB": str(db)}, **kw)


def test_sighup_twice_under_load_loses_no_request(gunicorn_process, tmp_path):
    """SIGHUP is gunicorn's graceful reload: new workers start, old ones finish their request."""
    gunicorn = notes_server(gunicorn_process, tmp_path / "notes.db")
    first = set(gunicorn.pids)
    assert gunicorn.process is not None
    with Load(gunicorn.url) as load:
        load.wait_for(20)
        for _ in range(2):
            gunicorn.process.send_signal(signal.SIGHUP)
            assert first.isdisjoint(gunicorn.ready.wait(2))  # two new workers, ready
            load.wait_for(load.done + 20)  # and serving
    print(f"SIGHUP x2: {load.done} exchanges, failures: {load.failures}")
    assert load.failures == []


def test_kill_9_of_a_worker_costs_at_most_its_request(gunicorn_process, tmp_path):
    """A worker killed outright: only the request it was serving (a sync worker has one) may fail.

    No survivor answers 5xx, the master replaces the worker, and it serves.
    """
    gunicorn = notes_server(gunicorn_process, tmp_path / "notes.db")
    victim, survivor = gunicorn.pids
    with Load(gunicorn.url) as load:
        load.wait_for(20)
        os.kill(victim, signal.SIGKILL)
        (replacement,) = gunicorn.ready.wait(1)
        load.wait_for(load.done + 40)
    print(f"kill -9: {load.done} exchanges, failures: {load.failures}")
    assert replacement not in (victim, survivor)
    assert len(load.failures) <= 1, load.failures
    assert not [status for status in load.failures if isinstance(status, int)]


def test_sigterm_lets_10_slow_requests_finish_on_gthread(gunicorn_process):
    """SIGTERM is a graceful stop: the requests in handlers complete (within --graceful-timeout)."""
    args = ("-k", "gthread", "--threads", "8", "--graceful-timeout", "20")
    gunicorn = gunicorn_process("tests.slow_app:app", args=args)
    assert gunicorn.process is not None
    with ThreadPoolExecutor(10) as pool:
        replies = [pool.submit(fetch, gunicorn.url, "GET", "/slow") for _ in range(10)]
        gunicorn.ready.wait(10)  # all ten are inside the handler (slow_app phones too)
        gunicorn.process.send_signal(signal.SIGTERM)
        outcomes = [(reply.result().status, reply.result().body) for reply in replies]
    assert outcomes == [(200, b"done")] * 10
    assert gunicorn.process.wait(timeout=TIMEOUT) == 0


@pytest.mark.parametrize("fault", ["removed", "read-only"])
def test_store_file_lost_at_runtime_is_503_with_retry_after(gunicorn_process, tmp_path, fault):
    """RFC 9110 §15.6.4: a store outage is a 503 with Retry-After, never a traceback.

    Removed: the workers' open connections would otherwise write on into the
    deleted file (SQLiteStore checks that the path still names its file).
    Read-only (chattr +i, which holds even for open descriptors): writes fail.
    """
    path = tmp_path / "store.db"
    env = {"RATE_LIMIT_STORE": f"sqlite:{path}", "RATE_LIMIT_T0": str(time.time())}
    # NOTE: both workers have built their store (at startup) before the fault, as
    # `gunicorn_process` returns once they are ready: a worker starting after the file is
    # removed would rightly create a new one.
    gunicorn = gunicorn_process("tests.rate_limit_app:app", env=env)
    assert fetch(gunicorn.url, "GET", "/").status == 200
    files = [path, path.with_name("store.db-wal")]
    with contextlib.ExitStack() as fault_on:
        if fault == "removed":
            for file in [*files, path.with_name("store.db-shm")]:
                file.unlink()
        else:
            fault_on.enter_context(read_only(*files))
        for _ in range(4):  # each worker, whichever answers
            reply = fetch(gunicorn.url, "GET", "/")
            assert reply.status == 503
            assert reply.headers["Retry-After"].isdigit()
            for leak in (b"Traceback", b"sqlite", b"SQLite", b"store.db"):
                assert leak not in reply.body
    if fault == "read-only":
        assert fetch(gunicorn.url, "GET", "/").status == 200  # recovered


def test_fresh_starts_answer_concurrent_first_requests(gunicorn_server, tmp_path):
    """8 fresh starts of the notes example, 6 concurrent first requests each: no 500.

    Each worker sets the database up when it builds the app (WAL mode and the
    table), both at once on a new file, taking turns (setup_database). When
    that was done by each worker's first request instead, the two workers'
    first requests raced and 2 to 6 of 24 fresh starts answered a 500
    ("database is locked" on the switch to WAL).
    """
    # Each start returns once both workers of that server have loaded the app.
    urls = [
        gunicorn_server("examples.notes:app", env={"NOTES_DB": str(tmp_path / f"{n}.db")})
        for n in range(8)
    ]
    first_requests = [(url, i) for url in urls for i in range(6)]
    barrier = Barrier(len(first_requests))

    def first_request(url: str, i: int) -> int:
        barrier.wait()  # all at once: both workers of a server take a first request
        if i % 2:
            return fetch(url, "POST", "/notes", json_body=MILK).status
        return fetch(url, "GET", "/notes").status

    with ThreadPoolExecutor(len(first_requests)) as pool:
        statuses = list(pool.map(lambda args: first_request(*args), first_requests))
    assert statuses == [200, 201] * (len(first_requests) // 2)


# --- early answers reach the client (RFC 9112 §9.6) ------------------------------------

FIVE_MB = b"x" * (5 * 1024 * 1024)


def post_with_http_client(url: str) -> int | str:
    """http.client writes the whole body before it reads: a reset mid-body loses the answer."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        connection.request("POST", "/notes", FIVE_MB, {"Content-Type": "application/json"})
        return connection.getresponse().status
    except OSError as exc:
        return type(exc).__name__
    finally:
        connection.close()


def post_with_curl(url: str, body_file: str) -> int | str:
    """curl sends Expect: 100-continue (gunicorn answers 100), and reads while it writes."""
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]
    command += ["-H", "Content-Type: application/json", "--data-binary", f"@{body_file}"]
    done = subprocess.run([*command, f"{url}/notes"], capture_output=True, text=True, check=False)
    return int(done.stdout) if done.stdout.isdigit() else done.stderr.strip()


def post_reading_while_writing(url: str) -> int | str:
    """As a browser does: one thread writes the body while the answer is read."""
    head = b"POST /notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(FIVE_MB)
    with open_raw(url) as sock:

        def write() -> None:
            with contextlib.suppress(OSError):  # once answered, the server may stop reading
                sock.sendall(head + FIVE_MB)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            status_line = sock.makefile("rb").readline()
        except OSError as exc:
            return type(exc).__name__
        finally:
            writer.join()
    return int(status_line.split()[1]) if status_line else "closed"


@pytest.mark.parametrize(
    "worker",
    [pytest.param((), id="sync"), pytest.param(("-k", "gthread", "--threads", "4"), id="gthread")],
)
def test_an_early_413_reaches_every_kind_of_client(gunicorn_server, tmp_path, worker):
    """A 5 MB body over the 1 MiB cap: each client kind reads the 413, 20 times of 20.

    RFC 9112 §9.6: closing with unread data makes the kernel send a reset,
    which can destroy the answer before the client reads it. gunicorn reads
    at most 64 KiB of a leftover body; microweb drains the rest (wsgi.DrainBody).
    Before, http.client saw the 413 0 times of 20 (BrokenPipeError).
    """
    url = gunicorn_server(
        "examples.notes:app", env={"NOTES_DB": str(tmp_path / "notes.db")}, args=worker
    )
    body_file = tmp_path / "body"
    body_file.write_bytes(FIVE_MB)
    clients = {
        "http.client": lambda: post_with_http_client(url),
        "curl": lambda: post_with_curl(url, str(body_file)),
        "reads-while-writing": lambda: post_reading_while_writing(url),
    }
    seen = {name: [client() for _ in range(20)] for name, client in clients.items()}
    assert seen == {name: [413] * 20 for name in clients}


# --- slow clients, under `microweb run`'s defaults ---------------------------------------

# What a request stuck behind a blocked worker waits: the master kills it at --timeout.
STUCK = float(str(DEFAULTS["--timeout"][0]))


def test_20_slow_clients_do_not_starve_a_get_under_the_defaults(tmp_path):
    """20 connections sending their head one byte a second: a normal GET is not held up.

    Under `microweb run`'s defaults (`microweb.cli.DEFAULTS`: gthread
    workers, 32 threads each) a slow client holds one thread, not a worker
    process; with sync workers (one connection per process) the GET waited
    until the master killed a blocked worker, at --timeout (30 s), or longer.
    So the bound is half of --timeout, which no load on the machine comes
    near, and the client gives up at --timeout. The slow clients come once
    every worker of the default count is up (microweb_run waits for each
    one's worker_ready hook): a gthread worker accepts all it can, so during
    the first moment after a start the first worker up takes every queued
    connection (docs/decisions/cli.md, "Worker defaults").
    """
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 100
        with contextlib.suppress(OSError):
            for byte in head:
                sock.send(bytes([byte]))
                if stop.wait(1.0):  # the pace of the attack, not a synchronisation
                    return

    slow: list[socket.socket] = []
    trickling: list[threading.Thread] = []
    with microweb_run("examples.hello:app", tmp_path / "log") as (url, _):
        try:
            slow += [open_raw(url) for _ in range(20)]
            trickling += [threading.Thread(target=trickle, args=(sock,)) for sock in slow]
            for thread in trickling:
                thread.start()
            waits = []
            for _ in range(3):
                started = time.monotonic()
                reply = fetch(url, "GET", "/", timeout=STUCK)
                waits.append(time.monotonic() - started)
                assert reply.status == 200
            print(f"GET under 20 slow clients: {[round(w, 3) for w in waits]} s")
            assert max(waits) < STUCK / 2, waits
        finally:
            stop.set()
            for thread in trickling:
                thread.join()
            for sock in slow:
                sock.close()
