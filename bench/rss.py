"""Peak memory of one gunicorn worker: microweb's examples/hello.py against a bare app.

    python bench/rss.py                   # 3 servers per app, 200 requests each
    python bench/rss.py --repeat 5 --requests 500

For each app, `--repeat` times: start gunicorn (1 sync worker) on a free
127.0.0.1 port, send `--requests` GETs to ``/`` on one keep-alive
connection, then read ``VmHWM`` (the peak resident set size) of the worker
from ``/proc/<pid>/status`` and stop the server. The worker is the master's
only child. Linux only (``/proc``).

The apps: ``examples.hello:app`` (``import microweb``, one route),
``rss_bare:app``, a PEP 3333 callable answering the same ``Hello, World!``
with nothing imported (the floor that gunicorn and Python themselves
cost), and ``rss_bare:webob_app``, the same after ``import webob`` (the
floor of any app on WebOb).

Bytecode: an installed package has its ``.pyc`` files (pip compiles them),
so a worker does not compile microweb's source, whose transient memory
would count in its peak. The servers run with bytecode writing on (into a
temporary ``PYTHONPYCACHEPREFIX``, even if ``PYTHONDONTWRITEBYTECODE`` is
set) and each app is served once, unmeasured, before it is measured.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = {"microweb": "examples.hello:app", "bare": "rss_bare:app", "webob": "rss_bare:webob_app"}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # NOTE: the command name (field 2) may hold spaces; the ppid follows its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def server_environment(cache: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GUNICORN_CMD_ARGS", "PYTHONDONTWRITEBYTECODE")
    }
    return {**env, "PYTHONPYCACHEPREFIX": cache, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}"}


def measure(app: str, requests: int, env: dict[str, str]) -> int:
    """The worker's peak RSS in KiB after `requests` requests to `app`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    command = [
        sys.executable, "-m", "gunicorn", "--bind", f"fd://{listener.fileno()}",
        "--workers", "1", "--no-control-socket", app,
    ]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, pass_fds=(listener.fileno(),), stderr=subprocess.DEVNULL
    )
    listener.close()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(requests):
            connection.request("GET", "/")
            response = connection.getresponse()
            if response.read() != b"Hello, World!":
                raise RuntimeError(f"{app} answered {response.status}, not Hello, World!")
        connection.close()
        (worker,) = children(server.pid)
        return peak_kib(worker)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"gunicorn, 1 sync worker, {args.requests} requests; worker VmHWM in MiB")
    with tempfile.TemporaryDirectory(prefix="microweb-rss-") as cache:
        env = server_environment(cache)
        for name, app in APPS.items():
            measure(app, 1, env)  # NOTE: not counted: it writes the bytecode
            peaks = [measure(app, args.requests, env) / 1024 for _ in range(args.repeat)]
            cells = " ".join(f"{p:.1f}" for p in peaks)
            print(f"{name:<9} {app:<20} median {statistics.median(peaks):5.1f}  ({cells})")


if __name__ == "__main__":
    main(sys.argv[1:])
