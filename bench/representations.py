"""What ETag and GZip cost, and how close GZip is to zlib itself.

    python bench/representations.py [--rounds N]

Two measurements, each a median of paired ratios over `--rounds` rounds
(the two sides of a pair run back to back, in shuffled order, so machine
noise hits both alike):

1. **etag+gzip**: ``GET /data`` answering a 20 KB JSON document, by a
   microweb app with ``app.use(GZip)`` and ``app.use(ETag)`` (the client
   sends ``Accept-Encoding: gzip``), against the same app without them.
   The extra work is real: hashing 20 KB, compressing it, rewriting headers.
   A third line shows a revalidation (``If-None-Match`` with the tag
   received), which answers 304 without compressing anything.
2. **gzip throughput**: the GZip middleware around a bare WSGI app that
   returns a 1 MB JSON body, against ``zlib.compress`` of the same bytes at
   the same level (what gzip costs with no framework at all).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import environ_template, time_calls

from microweb import App
from microweb.middleware import ETag, GZip

DOC = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"]} for i in range(400)]}


def data_app(with_middleware: bool) -> App:
    app = App()
    app.add_route("/data", lambda req: DOC, ["GET"], name="data")
    if with_middleware:
        app.use(GZip)
        app.use(ETag)
    return app


def paired(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[float, float]:
    """Median of a/b over `rounds` pairs, and the median of a (in its own unit)."""
    ratios, firsts = [], []
    for _ in range(rounds):
        order = [0, 1]
        random.shuffle(order)
        results = {}
        for side in order:
            results[side] = (a, b)[side]()
        ratios.append(results[0] / results[1])
        firsts.append(results[0])
    return statistics.median(ratios), statistics.median(firsts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds

    body = json.dumps(DOC).encode()
    template = dict(environ_template("GET", "/data"), HTTP_ACCEPT_ENCODING="gzip")
    plain, wrapped = data_app(False), data_app(True)
    n = 400
    ratio, cost = paired(
        lambda: time_calls(wrapped, template, b"", n),
        lambda: time_calls(plain, template, b"", n),
        rounds,
    )
    print(f"JSON body: {len(body)} bytes; {rounds} rounds; medians of paired ratios")
    print(f"etag+gzip 200   {cost / 1000:8.1f} µs/request   {ratio:5.2f}x the app without them")
    etag = _etag_of(wrapped, template)
    revalidate = dict(template, HTTP_IF_NONE_MATCH=etag)
    ratio, cost = paired(
        lambda: time_calls(wrapped, revalidate, b"", n),
        lambda: time_calls(plain, template, b"", n),
        rounds,
    )
    print(f"etag+gzip 304   {cost / 1000:8.1f} µs/request   {ratio:5.2f}x the app without them")

    big = json.dumps({"rows": [DOC] * 50}).encode()

    def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(big)))]
        )
        return [big]

    gz = GZip(bare, compresslevel=6)

    def zlib_once() -> float:
        started = perf_counter_ns()
        zlib.compress(big, 6)
        return float(perf_counter_ns() - started)

    ratio, cost = paired(lambda: time_calls(gz, template, b"", 1), zlib_once, rounds)
    print(
        f"gzip 1 MB       {cost / 1e6:8.2f} ms/request   {ratio:5.2f}x zlib.compress "
        f"({len(big) / 1e6:.2f} MB, level 6)"
    )


def _etag_of(app: App, template: dict[str, Any]) -> str:
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.update((name.lower(), value) for name, value in headers)
        return None

    environ = dict(template)
    environ["wsgi.input"] = __import__("io").BytesIO()
    body = b"".join(app(environ, start_response))
    assert (
        seen["content-encoding"] == "gzip"
        and gzip.decompress(body) == json.dumps(DOC, separators=(",", ":")).encode()
    ), "etag+gzip app answered something else"
    return seen["etag"]


if __name__ == "__main__":
    main()
