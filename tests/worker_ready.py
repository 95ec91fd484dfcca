"""Know when gunicorn workers are ready, without polling: a hook that phones home.

Used twice: gunicorn loads this file as a config file (``-c
tests/worker_ready.py``) and calls `post_worker_init` in each worker once
it has loaded the app; the test process imports it for `ReadyListener`,
which owns the socket the hook connects to. The hook sends its pid and
closes, so a test can wait for "both workers have loaded the app" or "the
replacement of the worker I killed is up" as an event.
"""

from __future__ import annotations

import os
import socket
from typing import Any

ENV = "MICROWEB_TEST_READY_PORT"
CONFIG = "tests/worker_ready.py"  # relative to the repository root, gunicorn's cwd


def post_worker_init(worker: Any) -> None:
    """gunicorn's hook: the worker has loaded the app and is about to accept."""
    port = os.environ.get(ENV)
    if port:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
            sock.sendall(str(os.getpid()).encode())


class ReadyListener:
    """The test side: `args` and `env` for the server, then `wait(n)` for n ready workers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20)  # generous: 2 shared cores, many helpers' tests at once
        self.args = ("-c", CONFIG)
        self.env = {ENV: str(self.sock.getsockname()[1])}

    def wait(self, count: int = 1) -> list[int]:
        """The pids of the next `count` workers to become ready."""
        pids = []
        for _ in range(count):
            conn, _ = self.sock.accept()
            with conn, conn.makefile("rb") as message:
                conn.settimeout(10)
                pids.append(int(message.read()))  # the hook closes after its pid
        return pids

    def close(self) -> None:
        self.sock.close()
