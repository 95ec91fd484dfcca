"""Handlers whose return values microweb cannot send, served by gunicorn (test_response.py).

``GET /set`` returns a set (a 500 before any header); ``GET /object-stream``
a generator whose first item is not bytes or str (a 500 too: its first chunk
is read before the status is sent); ``GET /midway`` a stream that raises
after its first chunk went out (cut short, logged).
"""

from __future__ import annotations

from collections.abc import Iterator

from microweb import App, Request

app = App()


@app.get("/set")
def returns_set(req: Request) -> set[str]:
    return {"a", "b"}


@app.get("/object-stream")
def object_stream(req: Request) -> Iterator[object]:
    yield object()


@app.get("/midway")
def fails_midway(req: Request) -> Iterator[bytes]:
    yield b"first chunk\n"
    raise RuntimeError("the data source went away")
