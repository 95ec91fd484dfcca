"""Faults through real processes: first starts, signals, kills and outages under load.

Each test runs real gunicorn (tests/servers.py) and real clients on
127.0.0.1, and is bounded in time: loads are a few hundred requests, and
every wait is on an event (a reply, a process exit, a log line), never a
sleep.
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from servers import TIMEOUT, fetch, open_raw
from worker_ready import ReadyListener

pytestmark = pytest.mark.e2e

MILK = {"title": "milk", "body": "2 litres"}


@pytest.fixture
def ready() -> Iterator[ReadyListener]:
    listener = ReadyListener()
    yield listener
    listener.close()


def test_fresh_starts_answer_concurrent_first_requests(gunicorn_server, ready, tmp_path):
    """8 fresh starts of the notes example, 6 concurrent first requests each: no 500.

    Each worker sets the database up when it builds the app (WAL mode and the
    table), both at once on a new file, taking turns (setup_database). When
    that was done by each worker's first request instead, the two workers'
    first requests raced and 2 to 6 of 24 fresh starts answered a 500
    ("database is locked" on the switch to WAL).
    """
    urls = []
    for n in range(8):
        env = {"NOTES_DB": str(tmp_path / f"{n}.db"), **ready.env}
        urls.append(gunicorn_server("examples.notes:app", env=env, args=ready.args))
    ready.wait(2 * len(urls))  # both workers of every server have loaded the app
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
