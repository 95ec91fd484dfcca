"""Know when gunicorn workers are ready, without polling: a hook that phones home.

Used twice: gunicorn loads this file as a config file (``-c
/abs/path/tests/worker_ready.py``) and calls `post_worker_init` in each
worker once it has loaded the app; the test process imports it for
`ReadyListener`, which owns the socket the hook connects to. The hook sends
its pid and closes, so a test can wait for "both workers have loaded the
app" or "the replacement of the worker I killed is up" as an event.

Every e2e server of the suite starts this way (servers.py, microweb_run.py,
``microweb dev`` in test_devserver.py, the deployment recipe in
test_deploy.py, the reader's server in doc_walk.py): its first request is
sent once a worker has loaded the app, so no client timeout races a boot
on a loaded machine.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ENV = "MICROWEB_TEST_READY_PORT"
CONFIG = str(Path(__file__).resolve())  # absolute: servers start in other directories too
# A failure bound, not a synchronisation: the wait ends at the event, or at
# the server's exit; this only stops a hung start from hanging the suite.
READY_TIMEOUT = 60.0  # seconds: generous, 2 shared cores, many helpers' tests at once


def post_worker_init(worker: Any) -> None:
    """gunicorn's hook: the worker has loaded the app and is about to accept."""
    port = os.environ.get(ENV)
    if port:
        try:
            with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as sock:
                sock.sendall(str(os.getpid()).encode())
        except ConnectionRefusedError:
            # NOTE: the test stopped listening (it has what it waited for); a
            # worker started later (a reload, a replacement) must still serve.
            pass


class ReadyListener:
    """The test side: `args` and `env` for the server, then `wait(n)` for n ready workers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.args = ("-c", CONFIG)
        self.env = {ENV: str(self.sock.getsockname()[1])}

    def wait(
        self,
        count: int = 1,
        server: subprocess.Popen[bytes] | None = None,
        timeout: float = READY_TIMEOUT,
    ) -> list[int]:
        """The pids of the next `count` workers to become ready.

        With `server` (gunicorn's master, or what execs it), a server that
        exits first ends the wait early: the pids seen so far are returned,
        and its log says why. `TimeoutError` if neither happens in `timeout`.
        """
        exited = os.pidfd_open(server.pid) if server is not None else None  # readable at exit
        watched = [self.sock] if exited is None else [self.sock, exited]
        deadline = time.monotonic() + timeout
        pids: list[int] = []
        try:
            while len(pids) < count:
                left = max(deadline - time.monotonic(), 0)
                readable = select.select(watched, [], [], left)[0]
                if self.sock in readable:
                    pids.append(self._accept())
                elif exited in readable:
                    break
                else:
                    raise TimeoutError(f"{len(pids)} of {count} workers ready in {timeout}s")
        finally:
            if exited is not None:
                os.close(exited)
        return pids

    def _accept(self) -> int:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as message:
            conn.settimeout(10)
            return int(message.read())  # the hook closes after its pid

    def close(self) -> None:
        self.sock.close()
