"""A streaming app for the GZip wire test (test_middleware_gzip.py), served by gunicorn.

``GET /events`` streams NDJSON (compressible) and ``GET /sse`` an event
stream (never compressed): each yields its first event, then blocks
opening the FIFO named by ``$GZIP_STREAM_FIFO`` until the test writes a
line to it, then yields the second event. The test therefore decides when
the second event exists; nothing waits on a clock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from microweb import App, Request
from microweb.middleware.gzip import GZip
from microweb.response import Stream

app = App()
app.use(GZip)


def events(first: bytes, second: bytes) -> Iterator[bytes]:
    yield first
    with open(os.environ["GZIP_STREAM_FIFO"], "rb") as fifo:  # blocks until the test writes
        fifo.readline()
    yield second


@app.get("/events")
def ndjson(req: Request) -> Stream:
    return Stream(events(b'{"event": 1}\n', b'{"event": 2}\n'), "application/x-ndjson")


@app.get("/sse")
def sse(req: Request) -> Stream:
    return Stream(events(b"data: 1\n\n", b"data: 2\n\n"), "text/event-stream")
