"""Faults through real processes: first starts, signals, kills and outages under load.

Each test runs real gunicorn (tests/servers.py) and real clients on
127.0.0.1, and is bounded in time: loads are a few hundred requests, and
every wait is on an event (a reply, a process exit, a log line), never a
sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from servers import fetch
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
