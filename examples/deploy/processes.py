"""Process plumbing for run.py: start a server ready to serve, stop it by PID, with deadlines.

What it owns
------------
How one process of the deployment is started, known to be ready, and
stopped, without sleeping or polling. run.py's `Deployment` decides *which*
processes run, in what order and with what configuration; this module knows
nothing about Redis keys, gunicorn apps or nginx.conf.

Readiness:

- **gunicorn and nginx are handed a socket that is already listening.**
  `listening_socket` binds 127.0.0.1:port and calls ``listen()``; the
  descriptor is passed down (gunicorn: ``--bind fd://N``; nginx: the
  ``NGINX=N;`` environment variable, see `spawn_nginx`). From that moment a
  client's connection is queued by the kernel until a worker accepts it, so
  there is nothing to wait for. Restarting an instance rebinds the same port
  (``SO_REUSEADDR``), which nginx's upstream block names.
- **redis-server says when it is ready** (`spawn_notified`): started with
  ``--supervised systemd``, it sends ``READY=1`` to the datagram socket named
  by ``NOTIFY_SOCKET`` (the sd_notify protocol) once it accepts connections;
  we wait on that socket, with a deadline, watching for an early exit.
- **Stopping waits for the exit itself** (`stop_process`: ``waitpid`` for our
  children, a pidfd for processes a previous ``run.py start`` left running),
  with a deadline, after which the process group is killed.

Every process gets its own session (`spawn`), so a Ctrl-C in the terminal
that ran ``start`` does not reach it, and its own log file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds: for redis-server to be ready, for nginx -t
STOP_TIMEOUT = 15.0  # seconds: for a process to exit after its stop signal


class DeployError(RuntimeError):
    """A process of the deployment could not be started or stopped."""


# --- sockets ------------------------------------------------------------------------------


def listening_socket(port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:`port` (0: the kernel picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # NOTE: so that a restarted instance can take its port back while
    # connections of its previous life are still in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def free_port() -> int:
    """A port nothing listens on now (redis-server binds it itself: a short race)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# --- starting -----------------------------------------------------------------------------


def spawn(command: list[str], log: Path, **options: Any) -> subprocess.Popen[bytes]:
    """Start `command` in its own session, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, led by `pid`
            **options,
        )


def spawn_nginx(command: list[str], log: Path, listener: socket.socket) -> subprocess.Popen[bytes]:
    """Start nginx adopting `listener` instead of binding its ``listen`` address itself.

    ``NGINX=<fd>;`` is how an nginx binary upgrade passes its sockets to the
    new binary: nginx adopts an inherited socket whose address matches a
    ``listen`` directive. The caller still closes its own copy of `listener`.
    """
    fd = listener.fileno()
    env = {**os.environ, "NGINX": f"{fd};"}
    return spawn(command, log, env=env, pass_fds=(fd,))


def spawn_notified(
    command: list[str], log: Path, notify_path: Path
) -> subprocess.Popen[bytes] | None:
    """Start `command` and return it once it has sent ``READY=1`` to ``NOTIFY_SOCKET``.

    None if it exited first (say, its port was taken: the caller may try
    another); DeployError, after killing it, if it is neither ready nor gone
    within START_TIMEOUT.
    """
    notify_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        process = spawn(command, log, env={**os.environ, "NOTIFY_SOCKET": str(notify_path)})
        exited = os.pidfd_open(process.pid)  # readable once the process exits
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while (left := deadline - time.monotonic()) > 0:
                readable, _, _ = select.select([notify.fileno(), exited], [], [], left)
                if notify.fileno() in readable and b"READY=1" in notify.recv(4096):
                    return process
                if exited in readable:
                    break
        finally:
            os.close(exited)
            notify_path.unlink(missing_ok=True)
    if process.poll() is None:
        name = Path(command[0]).name
        stop_process(process.pid, name, signal.SIGKILL, process)
        raise DeployError(f"{name} not ready in {START_TIMEOUT}s")
    return None


# --- stopping -----------------------------------------------------------------------------


def alive(pid: int, name: str) -> bool:
    """Is `pid` running, and is it still the `name` we started (not a reused PID)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # proc(5): the state follows the command name in parentheses; Z is a
    # zombie, exited and waiting for its parent (init, once `start` returned).
    if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] in (b"Z", b"X"):
        return False
    return name.encode() in cmdline


def wait_exit(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Wait until `pid` exits; True if it did within `timeout`."""
    if process is not None:  # our child: waitpid, which also reaps it
        try:
            process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:  # started by an earlier `run.py start`: a pidfd becomes readable at exit
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def stop_process(
    pid: int, name: str, sig: signal.Signals, process: subprocess.Popen[bytes] | None = None
) -> str | None:
    """Send `sig` to `pid`, wait for it to exit, SIGKILL its group if it does not.

    `process` is its Popen if we started it (else `pid` is checked to still
    be `name` first). Returns a problem to report, or None.
    """
    if process is None and not alive(pid, name):
        return None
    if process is not None and process.poll() is not None:
        return f"{name} (pid {pid}) had exited on its own, status {process.returncode}"
    try:
        os.kill(pid, sig)
        # A stopped process (Deployment.pause_redis) acts on the signal only once continued.
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return None
    if wait_exit(pid, process, STOP_TIMEOUT):
        return None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the group `spawn` made: gunicorn's workers too
    wait_exit(pid, process, STOP_TIMEOUT)
    return f"{name} (pid {pid}) ignored {sig.name} for {STOP_TIMEOUT}s and was killed"
