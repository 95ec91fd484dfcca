"""Real gunicorn for end-to-end tests, with no port race and no sleep.

How a server starts (`GunicornServer.start`):

1. The test process creates a TCP socket, binds it to 127.0.0.1 port 0 (the
   kernel picks a free port) and calls `listen()`. From this moment a client
   can connect: the kernel completes the handshake and queues the connection
   in the listen backlog, whoever is going to `accept()` it.
2. gunicorn starts as a subprocess with `--bind fd://N` and the socket's file
   descriptor passed down (`pass_fds`). gunicorn adopts the already-listening
   socket instead of binding its own (see `gunicorn.sock.create_sockets`), and
   its workers accept the queued connections once they have loaded the app.
3. The test process closes its own copy of the socket, so when gunicorn exits
   the socket goes away with it and a late client is refused, not left hanging.

4. `start` returns once every worker has loaded the app: gunicorn runs
   worker_ready.py's `post_worker_init` hook (``-c``), which phones the
   test's `ReadyListener`. A client that connected earlier would simply wait
   in the backlog, but its timeout would then race the boot of a worker on
   a loaded machine; the first request is sent after the signal instead.

There is therefore nothing to poll. If gunicorn cannot start (say the app
does not import), it exits, which ends the wait for its workers (a pidfd),
the socket closes with it and a client sees a reset.

gunicorn's stdout and stderr (its error log and, with `--access-logfile -`,
the access log) go to a file rather than a pipe, so a chatty server can never
block on a full pipe; `log()` reads it back for failure reports.

The small HTTP helpers below use only the standard library (`http.client`
and `socket`), so what the tests check is what any client would see.

The `gunicorn_server` fixture and a report hook are at the bottom; conftest.py
imports them, which is what makes pytest see them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from worker_ready import ReadyListener

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # seconds: for one HTTP exchange and for gunicorn to stop


class GunicornServer:
    """One gunicorn master (and its workers) serving `app` ("module:attr")."""

    def __init__(
        self,
        app: str,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        args: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.log_path = log_path
        self.env = env or {}
        self.workers = workers
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        # Tells when workers have loaded the app: the first ones (`start`), and
        # any later one (a replacement, a reload) for the tests that wait on that.
        self.ready = ReadyListener()
        self.pids: list[int] = []  # the first workers' pids, as they became ready

    def start(self) -> str:
        """Start gunicorn, wait until its workers are ready, return its base URL.

        The URL is e.g. "http://127.0.0.1:40123". If gunicorn exits during
        the start, the URL is returned all the same: a client sees a reset.
        """
        # 1. A listening socket on a free port, owned by this process for now.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            host, port = listener.getsockname()
            fd = listener.fileno()
            command = [
                sys.executable, "-m", "gunicorn",
                "--bind", f"fd://{fd}",
                "--workers", str(self.workers),
                "--access-logfile", "-",
                # NOTE: a worker that is being forked as SIGTERM arrives misses it
                # (its handlers are not installed yet) and the master waits out the
                # graceful timeout before killing it; keep that wait short in tests.
                "--graceful-timeout", "1",
                # NOTE: gunicorn 27's control socket defaults to one path per
                # user (~/.gunicorn/gunicorn.ctl), which concurrent servers would share.
                "--no-control-socket",
                *self.ready.args,
                *self.args,
                self.app,
            ]  # fmt: skip
            env = {**os.environ, **self.ready.env, **self.env}
            # NOTE: a developer's GUNICORN_CMD_ARGS would silently change the server under test.
            env.pop("GUNICORN_CMD_ARGS", None)
            # 2. gunicorn inherits the socket; cwd is the repo root so that
            #    `python -m` puts it on sys.path and "examples.notes:app" imports.
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    env=env,
                    pass_fds=(fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        finally:
            # 3. gunicorn holds the socket now; our copy would outlive it.
            listener.close()
        # 4. Each worker phones home once it has loaded the app.
        self.pids = self.ready.wait(self.workers, self.process)
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time.

        Returns the exit status; raises `RuntimeError` when gunicorn had to be killed.
        """
        self.ready.close()
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RuntimeError(
                    f"gunicorn {self.app} ignored SIGTERM for {TIMEOUT}s and was killed"
                ) from None
        return process.returncode

    def exited_early(self) -> bool:
        """True when gunicorn stopped on its own (a crash) before `stop()`."""
        return self.process is not None and self.process.poll() is not None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError(f"e2e tests only talk to 127.0.0.1:<port>, not {url!r}")
    return parts.hostname, parts.port


def fetch(
    url: str,
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Reply:
    """One request on a fresh connection to 127.0.0.1; the whole reply is read."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("Content-Type", "application/json")
    host, port = _address(url)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def open_raw(url: str) -> socket.socket:
    """A plain TCP connection to the server, for checks below http.client."""
    host, port = _address(url)
    return socket.create_connection((host, port), timeout=TIMEOUT)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# --- the pytest plugin -----------------------------------------------------------

_SERVERS = pytest.StashKey[list[GunicornServer]]()

StartServer = Callable[..., str]


@pytest.fixture
def gunicorn_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """Start gunicorn for an app, return its base URL, and stop it after the test.

        url = gunicorn_server("examples.notes:app", env={"NOTES_DB": str(db)})

    Keyword options: `env` (added to this process's environment), `workers`
    (default 2) and `args` (more gunicorn command-line arguments). A test
    that fails gets each server's log in its report; a server that crashed,
    or exited non-zero, fails the test at teardown.
    """
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start


@pytest.fixture
def gunicorn_process(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., GunicornServer]]:
    """Like `gunicorn_server`, but gives the started `GunicornServer`, for tests that
    signal its master or its workers (`.process`, `.pids`) or wait for more of them
    (`.ready`). The test may stop it itself; it must have exited 0 at teardown.
    """
    servers = request.node.stash.setdefault(_SERVERS, [])
    log_dir = tmp_path_factory.mktemp("gunicorn")

    def start(app: str, **options: Any) -> GunicornServer:
        started = GunicornServer(app, log_dir / f"{len(servers)}.log", **options)
        servers.append(started)
        started.start()
        return started

    yield start
    for started in servers:
        assert started.stop() == 0, f"gunicorn {started.app} exited with an error"


@contextmanager
def serving(node: pytest.Item | pytest.Collector, log_dir: Path) -> Iterator[StartServer]:
    """What a server fixture of any scope does; `node` is its `request.node`.

    A module-scoped server, shared by a table of tests (test_examples.py):

        @pytest.fixture(scope="module")
        def notes_url(request, tmp_path_factory):
            with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
                yield start("examples.notes:app", env=...)
    """
    servers = node.stash.setdefault(_SERVERS, [])

    def start(
        app: str,
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        args: tuple[str, ...] = (),
    ) -> str:
        log_path = log_dir / f"{len(servers)}.log"
        server = GunicornServer(app, log_path, env=env, workers=workers, args=args)
        servers.append(server)
        return server.start()

    problems = []
    try:
        yield start
    finally:
        for server in servers:
            crashed = server.exited_early()
            try:
                status = server.stop()
            except RuntimeError as exc:
                problems.append(str(exc))
                continue
            if crashed:
                problems.append(f"gunicorn {server.app} exited on its own, status {status}")
            elif status != 0:
                problems.append(f"gunicorn {server.app} exited with status {status} on SIGTERM")
    if problems:
        # The logs themselves are attached by pytest_runtest_makereport below.
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Attach the log of each gunicorn the test used to its report when it fails."""
    report = yield
    if report.failed:
        # The test's own servers, and those of module- or session-scoped fixtures.
        for node in item.listchain():
            for server in node.stash.get(_SERVERS, []):
                report.sections.append((f"gunicorn {server.app} log", server.log()))
    return report
