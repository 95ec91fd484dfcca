"""WebSocket echo round trips: microweb on gunicorn gthread beside `websockets`' asyncio server.

    python bench/websocket.py                     # 5 rounds of 2 s per measurement
    python bench/websocket.py --rounds 3 --seconds 1 --connections 100

Two servers, each in its own process, each echoing every message back:

- **microweb**: ``@app.websocket("/echo")`` under gunicorn, one worker,
  ``--worker-class gthread --threads connections+10`` (a thread per socket);
- **websockets**: the `websockets` library's own asyncio server, one
  process, one event loop (a small object per socket).

One client, the `websockets` asyncio client in this process, measures
both the same way: round trips per second (send 32 bytes of text, await
the echo) on **one** connection, then summed over **N** connections that
all run at once. Rounds alternate the servers' order; each number is the
median of the rounds, with the spread (min-max), and the ratio is
microweb / websockets from the same run. Both sides share the machine with
the client: read ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "x" * 32


def make_app() -> Any:
    """The microweb server: gunicorn imports ``bench.websocket:make_app()``."""
    from microweb import App

    app = App()

    @app.websocket("/echo", ping_interval=None)
    def echo(req: Any, ws: Any) -> None:
        for message in ws:
            ws.send(message)

    return app


async def serve_websockets(fd: int) -> None:
    """The asyncio server, on an inherited listening socket."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    listener = socket.socket(fileno=fd)
    async with serve(echo, sock=listener, ping_interval=None) as server:
        await server.serve_forever()


def start(kind: str, connections: int) -> tuple[subprocess.Popen[bytes], str]:
    """A server process on a listening socket bound here (no port race, no readiness poll)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(connections + 16)
    fd, port = listener.fileno(), listener.getsockname()[1]
    if kind == "microweb":
        command = [
            sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1",
            "--worker-class", "gthread", "--threads", str(connections + 10),
            "--no-control-socket", "--log-level", "warning", "bench.websocket:make_app()",
        ]  # fmt: skip
    else:
        code = f"import asyncio, bench.websocket as b; asyncio.run(b.serve_websockets({fd}))"
        command = [sys.executable, "-c", code]
    process = subprocess.Popen(command, cwd=ROOT, pass_fds=(fd,), stdin=subprocess.DEVNULL)
    listener.close()
    return process, f"ws://127.0.0.1:{port}/echo"


async def round_trips(ws: Any, deadline: float) -> int:
    done = 0
    while time.perf_counter() < deadline:
        await ws.send(PAYLOAD)
        await ws.recv()
        done += 1
    return done


async def measure(uri: str, connections: int, seconds: float) -> float:
    """Round trips per second, summed over `connections` that run at once."""
    from websockets.asyncio.client import connect

    sockets = [await connect(uri, ping_interval=None, open_timeout=30) for _ in range(connections)]
    try:
        for ws in sockets:  # warm up: every connection served once before timing
            await ws.send(PAYLOAD)
            await ws.recv()
        started = time.perf_counter()
        deadline = started + seconds
        counts = await asyncio.gather(*(round_trips(ws, deadline) for ws in sockets))
        return sum(counts) / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


def run(arguments: argparse.Namespace) -> None:
    servers = {kind: start(kind, arguments.connections) for kind in ("microweb", "websockets")}
    results: dict[tuple[str, int], list[float]] = {}
    try:
        for round_number in range(arguments.rounds):
            order = list(servers) if round_number % 2 == 0 else list(reversed(servers))
            for kind in order:
                for connections in (1, arguments.connections):
                    rate = asyncio.run(measure(servers[kind][1], connections, arguments.seconds))
                    results.setdefault((kind, connections), []).append(rate)
                    print(f"round {round_number + 1}: {kind:10} {connections:4} conn "
                          f"{rate:10.0f} round trips/s", flush=True)  # fmt: skip
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=10)
    print(f"\nmedian of {arguments.rounds} rounds (min-max), round trips/s:")
    for connections in (1, arguments.connections):
        ours, theirs = results[("microweb", connections)], results[("websockets", connections)]
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"{connections:4} conn  microweb {statistics.median(ours):8.0f} "
              f"({min(ours):.0f}-{max(ours):.0f})   websockets {statistics.median(theirs):8.0f} "
              f"({min(theirs):.0f}-{max(theirs):.0f})   ratio {ratio:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=100)
    arguments = parser.parse_args()
    os.environ.pop("GUNICORN_CMD_ARGS", None)
    run(arguments)


if __name__ == "__main__":
    main()
