"""The app tests/test_faults.py stops with SIGTERM while requests are in flight.

``GET /slow`` tells the test it has started (it phones the test's
`worker_ready.ReadyListener`, as gunicorn's post_worker_init hook does),
then works for ``SLOW_SECONDS`` (a stand-in for a slow query) and answers.
The test therefore sends SIGTERM when it knows every request is inside a
handler, without guessing with a sleep.
"""

from __future__ import annotations

import os
import socket
import time

from microweb import App, Request

SLOW_SECONDS = 1.0

app = App()


@app.get("/slow")
def slow(req: Request) -> str:
    port = int(os.environ["MICROWEB_TEST_READY_PORT"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(str(os.getpid()).encode())
    time.sleep(SLOW_SECONDS)  # the work in flight when SIGTERM arrives
    return "done"
