"""What shared state costs per request: RateLimit and Idempotency, on SQLite and on Redis.

    python bench/scale.py [--rounds N] [--redis-url URL]

Each line is a ratio to ``GET /hello`` on the same app without middleware
(median of paired ratios, the pairs run back to back in shuffled order):

- **ratelimit**: ``GET /hello`` through `RateLimit` (one atomic ``incr``
  per request; the limit is set high enough never to answer 429);
- **idempotency first**: ``POST /hello`` with a new ``Idempotency-Key``
  each time: the election (``add``), the app, the record (``set``);
- **idempotency replay**: ``POST /hello`` with a key already recorded: one
  ``get``, the handler does not run.

Each runs on `SQLiteStore` (a file in a temp dir) and on `RedisStore`. For
Redis the script starts Debian's ``redis-server`` on a free loopback port in
a temp dir (or uses ``--redis-url``); without one, the Redis lines say so
and are not printed as numbers. Redis costs a loopback round trip per store
operation: compare it with the network hop it saves (all instances share it).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import environ_template, time_calls
from identity import status_of
from representations import paired

from microweb import App, Request
from microweb.middleware.idempotency import Idempotency
from microweb.middleware.rate_limit import RateLimit
from microweb.stores import SQLiteStore, Store

WSGI = Callable[..., Any]


def hello_app() -> App:
    app = App()

    @app.route("/hello", methods=["GET", "POST"])
    def hello(req: Request) -> str:
        return "Hello, World!"

    return app


def fresh_keys(app: WSGI) -> WSGI:
    """`app`, with a new ``Idempotency-Key`` on every request (the first-run path)."""
    counter = itertools.count()

    def with_new_key(environ: dict[str, Any], start_response: Any) -> Any:
        environ["HTTP_IDEMPOTENCY_KEY"] = f"k{next(counter)}"
        return app(environ, start_response)

    return with_new_key


@contextmanager
def redis_server(url: str | None) -> Iterator[str | None]:
    """A Redis URL: `url`, or a redis-server started here for the run (None: none found)."""
    if url or not shutil.which("redis-server"):
        yield url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        server = subprocess.Popen([*args, "--dir", workdir], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            for line in server.stdout:  # ready when it says so: no sleep, no polling
                if "Ready to accept connections" in line:
                    break
            else:
                raise SystemExit("redis-server exited before it was ready")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait()


def stores(workdir: Path, redis_url: str | None) -> Iterator[tuple[str, Store | None]]:
    yield "sqlite", SQLiteStore(workdir / "bench.db")
    if redis_url is None:
        yield "redis", None
        return
    from microweb.stores import RedisStore

    yield "redis", RedisStore(redis_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--redis-url", default=None)
    options = parser.parse_args()
    plain = hello_app()
    get_hello = environ_template("GET", "/hello")
    post_hello = environ_template("POST", "/hello")
    replay = dict(post_hello, HTTP_IDEMPOTENCY_KEY="the-same-key")
    n = 500
    print(f"{options.rounds} rounds; medians of paired ratios to GET /hello without middleware")
    with tempfile.TemporaryDirectory() as tmp, redis_server(options.redis_url) as redis_url:
        for name, store in stores(Path(tmp), redis_url):
            if store is None:
                print(f"{name}: no redis-server found (install Debian's redis-server)")
                continue
            limited = RateLimit(hello_app(), limit="1000000000/day", store=store)
            idempotent = Idempotency(hello_app(), store=store)
            first = fresh_keys(idempotent)
            cases: list[tuple[str, WSGI, dict[str, Any]]] = [
                ("ratelimit", limited, get_hello),
                ("idempotency first", first, post_hello),
                ("idempotency replay", idempotent, replay),
            ]
            for label, app, template in cases:
                assert status_of(app, template) == "200 OK", label
                ratio, cost = paired(
                    lambda app=app, template=template: time_calls(app, template, b"", n),
                    lambda: time_calls(plain, get_hello, b"", n),
                    options.rounds,
                )
                line = f"{label} ({name})"
                print(f"{line:28} {cost / 1000:7.2f} µs/request   {ratio:6.2f}x hello")
            store.close()


if __name__ == "__main__":
    main()
