"""CPU time per request under gunicorn: the secure_api stack against the same app bare.

    python bench/gunicorn_cpu.py                 # 5 rounds of 3 s per app, GET /hello

Four apps run under gunicorn (sync workers, 2 of them, access log off):
``apps_microweb.build(200)`` (bare) and ``apps_stack.build(200)`` (stack: the
five layers of examples/secure_api.py), and two plain WSGI functions below,
one answering hello (plain), one adding by hand the eight headers the stack
adds (headers, checked byte for byte against the stack before anything
runs): what gunicorn itself spends on writing those. `wrk`
(Debian's ``wrk`` package) loads each over keep-alive connections. A round
runs wrk once per app, in a shuffled order, and reads the workers' CPU time
(user + system, /proc/PID/stat) before and after: CPU µs per request is
that difference over the requests wrk completed, which moves much less than
throughput when other processes share the machine. Reported: the median
per app with half the interquartile range, and the median of the per-round
ratios stack / bare and headers / plain.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[1:1] = [str(HERE), str(HERE.parent)]  # NOTE: the checkout's microweb, as bench/run.py

from microweb.middleware.security_headers import DEFAULT_PERMISSIONS_POLICY  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
APPS = {
    "bare": "apps_microweb:build(200)",
    "stack": "apps_stack:build(200)",
    "plain": "gunicorn_cpu:plain",
    "headers": "gunicorn_cpu:with_stack_headers",
}
HELLO = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "13")]
#: What the stack adds to a plain-http hello (CORS without an Origin: Vary only).
STACK_HEADERS = [
    ("Vary", "Origin"),
    ("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    # NOTE: the default value, byte for byte: gunicorn checks every value character
    # by character, so a shorter one (as this list had) understates the floor.
    ("Permissions-Policy", DEFAULT_PERMISSIONS_POLICY),
    ("X-Request-ID", "0123456789abcdef0123456789abcdef"),
]


def plain(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    start_response("200 OK", list(HELLO))
    return [b"Hello, World!"]


def with_stack_headers(
    environ: dict[str, object], start_response: Callable[..., object]
) -> list[bytes]:
    start_response("200 OK", [*HELLO, *STACK_HEADERS])
    return [b"Hello, World!"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(target: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--no-control-socket", "--log-level", "warning",
        "--pythonpath", f"{HERE},{HERE.parent}", target,
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=HERE.parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(workers(server.pid)) == 2:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                pass
        time.sleep(0.1)  # NOTE: polling a server start, not synchronising a test
    server.kill()
    raise SystemExit(f"gunicorn {target} did not start")


def workers(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICKS


def load(port: int, path: str, seconds: int) -> int:
    """Run wrk; the number of requests it completed."""
    out = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    return int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]


def check_stack_headers() -> None:
    """Stop unless `STACK_HEADERS` is what the stack adds to hello (the id aside)."""
    import apps_microweb
    import apps_stack
    from harness import BASE_ENVIRON

    def sent(app: Callable[..., object]) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        environ = dict(BASE_ENVIRON, PATH_INFO="/hello")
        app(environ, lambda status, headers, *exc_info: seen.extend(headers))
        return [(name, "id" if name == "X-Request-ID" else value) for name, value in seen]

    added = [h for h in sent(apps_stack.build(200)) if h not in sent(apps_microweb.build(200))]
    expected = [(name, "id" if name == "X-Request-ID" else v) for name, v in STACK_HEADERS]
    if sorted(added) != sorted(expected):
        raise SystemExit(f"STACK_HEADERS is not what the stack adds: {added}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--path", default="/hello")
    args = parser.parse_args()
    check_stack_headers()
    servers = {name: (port := free_port(), start(target, port)) for name, target in APPS.items()}
    results: dict[str, list[float]] = {name: [] for name in APPS}
    try:
        for port, _ in servers.values():
            load(port, args.path, 1)  # warm up
        for _ in range(args.rounds):
            names = random.sample(list(APPS), len(APPS))
            for name in names:
                port, server = servers[name]
                pids = workers(server.pid)
                before = cpu_seconds(pids)
                requests = load(port, args.path, args.seconds)
                results[name].append((cpu_seconds(pids) - before) / requests * 1e6)
    finally:
        for _, server in servers.values():
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    for name, values in results.items():
        print(f"{name:8} {statistics.median(values):7.1f} µs CPU/request ±{spread(values):.1f}"
              f"  rounds: {', '.join(f'{v:.1f}' for v in values)}")  # fmt: skip
    for top, bottom in (("stack", "bare"), ("headers", "plain")):
        ratios = [t / b for t, b in zip(results[top], results[bottom], strict=True)]
        print(f"{top} / {bottom}: {statistics.median(ratios):.3f} ±{spread(ratios):.3f}")


def spread(values: list[float]) -> float:
    """Half the interquartile range."""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / 2


if __name__ == "__main__":
    main()
