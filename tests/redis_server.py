"""A real redis-server for tests: started on a free port, ready without sleeping.

How a server starts (`RedisServer.start`):

1. Pick a port: bind a socket to 127.0.0.1 port 0 (the kernel picks a free
   one), note it, close the socket. redis-server must bind the port itself,
   so there is a short window in which another process could take it; then
   redis-server exits with "Address already in use" and we try another port.
2. Start ``redis-server`` in the foreground with no persistence (``--save ""
   --appendonly no``) in a temporary directory, its log on a pipe.
3. A reader thread copies the log into `log` and sets an `Event` when it
   sees "Ready to accept connections" — or when the pipe closes (the server
   exited). `start` waits on that event (with a timeout): event-driven, no
   polling, no sleep. Draining the pipe for the server's whole life also
   means a chatty server can never block on a full pipe.

`stop()` and `start()` on the same object restart Redis on the same port
(redis-server sets SO_REUSEADDR), which is what outage tests need;
`pause()`/`resume()` (SIGSTOP/SIGCONT) make a server that accepts connections
but never answers, which is what timeout tests need.

Fixtures (conftest.py imports them): `redis_server`, one server for the whole
session, and `redis_url`, which makes sure it is running (a test may have
stopped it), empties it, and gives its URL.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from debian import ensure_installed

REDIS_SERVER = Path("/usr/bin/redis-server")
READY = "Ready to accept connections"
START_TIMEOUT = 10.0  # seconds for redis-server to say it is ready, or to exit
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 5


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process on 127.0.0.1, restartable on the same port."""

    def __init__(self, directory: Path) -> None:
        self.executable = ensure_installed(REDIS_SERVER, "redis-server")
        self.directory = directory
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> str:
        """Start redis-server (on the same port as before, if it ran) and return its URL."""
        if self.running():
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        restart = self.port != 0
        for _ in range(1 if restart else PORT_ATTEMPTS):
            port = self.port if restart else free_port()
            first_line = len(self.log)
            if self._launch(port):
                self.port = port
                return self.url
            if "Address already in use" not in "".join(self.log[first_line:]):
                break  # another reason: no use trying other ports
        log = "".join(self.log[-20:])
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}:\n{log}")

    def _launch(self, port: int) -> bool:
        """Start redis-server on `port`; True once it is ready, False if it exited."""
        command = [
            str(self.executable),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        outcome: list[str] = []  # the reader's verdict: "ready", then "exited"
        decided = threading.Event()
        self._reader = threading.Thread(
            target=self._read_log,
            args=(process, outcome, decided),
            name=f"redis-log-{port}",
            daemon=True,
        )
        self._reader.start()
        if not decided.wait(START_TIMEOUT):
            self._terminate()
            raise RuntimeError(f"redis-server on port {port} not ready in {START_TIMEOUT}s")
        if outcome[0] == "ready":
            return True
        self._terminate()  # it exited: reap it
        return False

    def _read_log(
        self, process: subprocess.Popen[str], outcome: list[str], decided: threading.Event
    ) -> None:
        """Copy the server's log into `self.log`; decide when it is ready or has exited."""
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self.log.append(line)
                if READY in line and not outcome:
                    outcome.append("ready")
                    decided.set()
        outcome.append("exited")  # EOF: the server closed its log, i.e. exited
        decided.set()

    def _terminate(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop the server (SIGTERM, by pid) and wait for it; the port is kept for `start`."""
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a paused (SIGSTOPped) process would not act on SIGTERM
        self._terminate()

    def pause(self) -> None:
        """SIGSTOP: connections are still accepted by the kernel, but nothing answers."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    @contextmanager
    def outage(self) -> Iterator[None]:
        """Redis is down inside the block, and up again (same port) after it, whatever happens."""
        self.stop()
        try:
            yield
        finally:
            if not self.running():
                self.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Redis hangs inside the block (SIGSTOP), and answers again after it."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def client(self) -> redis.Redis:
        """A plain redis-py client, for looking at what a store wrote (close it after use)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=STOP_TIMEOUT)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the test session (stopped at the end).

    A test that stops or pauses it must use `RedisServer.outage()` or
    `RedisServer.paused()` (which restore it), or ask for `redis_url`, which
    restarts it before and after the test.
    """
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The URL of a running, empty Redis database."""
    _ensure_running(redis_server)
    redis_server.flushall()
    yield redis_server.url
    _ensure_running(redis_server)


def _ensure_running(server: RedisServer) -> None:
    server.resume()  # harmless on a running process; undoes a pause a test left behind
    if not server.running():
        server.start()
