"""PEP 3333 plumbing shared by the app and the middleware.

- `EncodedStream`: the body iterable of a streamed response. It encodes
  ``str`` chunks as UTF-8 as they come, never buffers, and passes ``close()``
  through to the handler's iterator, which the server calls even when the
  client went away (PEP 3333: "the server must call close() ... upon
  completion of the current request", Werkzeug's ``ClosingIterator``).
  A stream that fails after the status is sent is logged, naming its
  handler (`describe`), and cut short: the server closes the connection.
- `close_quietly`: call an iterable's ``close()`` when it has one.
- `Captured`: a ``start_response`` that holds a response back, for the
  middleware that decide on the whole of it (ETag, Idempotency).
- `drain_after` and `DrainBody`: once an answer is sent, read and discard
  what the app left unread of the request body (up to a bound), so that a
  client still sending it reads the answer instead of a reset
  (RFC 9112 §9.6; docs/decisions/http.md, "Early answers reach the client").
- `Mount`: hand a request to another WSGI app under a path prefix, moving
  the prefix from ``PATH_INFO`` to ``SCRIPT_NAME`` (PEP 3333, "URL
  Reconstruction"), so the mounted app builds its own URLs correctly.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .handler_checks import handler_location
from .http import declares_body
from .types import Environ, Headers, StartResponse, WSGIApp

logger = logging.getLogger("microweb")


def close_quietly(iterable: Any) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class Captured:
    """The ``start_response`` a middleware hands the app to hold the response back.

    It keeps the status, headers and ``exc_info``, and what the app sent
    through ``write()`` (PEP 3333), until the middleware decides what to
    send. An app that returns before starting (a generator that calls
    ``start_response`` on its first step, as PEP 3333 allows) is a stream
    to pass on: set `forward`, and the late call goes straight to the server.
    """

    __slots__ = ("exc_info", "forward", "headers", "status", "written")

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: Headers = []
        self.exc_info: Any = None
        self.written: list[bytes] = []
        self.forward: StartResponse | None = None

    def __call__(self, status: str, headers: Headers, exc_info: Any = None) -> Any:
        if self.forward is not None:
            return self.forward(status, headers, exc_info)
        # PEP 3333: a second call is only allowed with exc_info, and replaces
        # the first while nothing was sent; nothing is sent before the end here.
        if self.status is not None and exc_info is None:
            raise RuntimeError("start_response called a second time without exc_info")
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.written.append

    def header(self, lower_name: str) -> str | None:
        """The value of the first header called `lower_name` (given in lower case), or None."""
        for name, value in self.headers:
            if name.lower() == lower_name:
                return value
        return None


#: How much of an unread request body is read and discarded after an answer (bytes).
DRAIN_LIMIT = 16 * 1024 * 1024
#: ... and for how long at most (seconds), whatever the client's pace,
DRAIN_SECONDS = 5.0
#: ... and how long a client may send nothing before the drain stops (seconds): a client
#: that sent only its headers and waits for the answer must not be held for DRAIN_SECONDS.
DRAIN_IDLE_SECONDS = 1.0
_DRAIN_READ = 65536


class DrainBody:
    """Around any WSGI app: after each answer, read and discard the unread request body.

    An answer given before the body is read (a 413, 401, 429, 415, a 404 to a
    POST) otherwise reaches a client that writes its whole body before it
    reads (Python's http.client, urllib3 in some cases, a proxy) as a
    connection reset: gunicorn reads at most 64 KiB of a leftover body, then
    closes a socket with unread data, which makes the kernel send RST.
    `App` does this at its exit; wrap a non-microweb app (with microweb
    middleware around it) in `DrainBody` for the same. ``limit`` bounds the
    bytes read (16 MiB by default; ``limit=0`` turns it off).
    """

    def __init__(self, app: WSGIApp, limit: int = DRAIN_LIMIT) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        self.app = app
        self.limit = limit

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")  # the server's, before a reader replaces it
        return drain_after(self.app(environ, start_response), environ, stream, self.limit)


def drain_after(
    body: Iterable[bytes], environ: Environ, stream: Any, limit: int
) -> Iterable[bytes]:
    """`body`, made to drain `stream` (up to `limit` bytes) when the server closes it.

    Only for a request that declares a body, on a server that ends
    ``wsgi.input`` at the end of the body (``wsgi.input_terminated``, which
    gunicorn sets): without it, PEP 3333 lets a read past the body block.
    Under gunicorn, each read is bounded in time through its socket
    (``gunicorn.socket``); elsewhere by the server's own timeouts.
    """
    if not limit or not environ.get("wsgi.input_terminated") or not declares_body(environ):
        return body  # PERF: no body to drain, nothing wrapped (a file_wrapper keeps sendfile)
    return _Draining(body, stream, limit, environ.get("gunicorn.socket"))


class _Draining:
    """A response body whose ``close()`` also drains the request body."""

    __slots__ = ("_body", "_limit", "_sock", "_stream")

    def __init__(self, body: Iterable[bytes], stream: Any, limit: int, sock: Any) -> None:
        self._body = body
        self._stream = stream
        self._limit = limit
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        # NOTE: close() runs once the server has sent the whole answer (PEP 3333),
        # so a client that reads while it writes (a browser, curl) already has it.
        try:
            close_quietly(self._body)
        finally:
            _discard(self._stream, self._limit, self._sock)


def _discard(stream: Any, limit: int, sock: socket.socket | None) -> None:
    """Read `stream` to its end: `limit` bytes, DRAIN_SECONDS, DRAIN_IDLE_SECONDS at most."""
    deadline = time.monotonic() + DRAIN_SECONDS
    timeout = sock.gettimeout() if sock is not None else None
    try:
        while limit > 0 and (left := deadline - time.monotonic()) > 0:
            if sock is not None:
                sock.settimeout(min(left, DRAIN_IDLE_SECONDS))
            chunk = stream.read(min(_DRAIN_READ, limit))
            if not chunk:
                return
            limit -= len(chunk)
    except Exception:
        # NOTE: the client hung up, or sent a malformed chunk: the answer is sent,
        # and the server closes the connection either way (gunicorn raises its own
        # exception types for a bad body, not only OSError).
        return
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)  # the server's own, for a kept-alive connection


def describe(handler: Any) -> str:
    """How a log line names a handler: ``hello (app.py:12)``."""
    if handler is None:
        return "a handler"
    name = getattr(handler, "__qualname__", None) or type(handler).__name__
    return f"{name} ({handler_location(handler)})"


class EncodedStream:
    """Iterate a handler's chunks as bytes; pass ``close()`` through.

    `iterator` and `first` are where `Stream.peek` left the iteration: the
    chunk it read is sent first. `handler` names the stream in the log.
    """

    __slots__ = ("_chunks", "_first", "_handler", "_iterator")

    def __init__(
        self,
        chunks: Iterable[bytes | str],
        iterator: Iterator[bytes | str] | None = None,
        first: bytes | str | None = None,
        handler: Any = None,
    ) -> None:
        self._chunks = chunks
        self._iterator: Iterator[bytes | str] = iter(chunks) if iterator is None else iterator
        self._first = first
        self._handler = handler

    def __iter__(self) -> EncodedStream:
        return self

    def __next__(self) -> bytes:
        chunk = self._first
        if chunk is not None:
            self._first = None
        else:
            try:
                chunk = next(self._iterator)
            except StopIteration:
                raise
            except Exception:
                # NOTE: the status line is already on the wire; all that is left
                # is to log and cut the stream, so the client sees it truncated
                # (a chunked body without its last chunk) rather than complete.
                logger.exception(
                    "the stream of %s raised; it is cut short", describe(self._handler)
                )
                raise
        if type(chunk) is bytes:
            return chunk
        if isinstance(chunk, str):
            return chunk.encode()
        logger.error(
            "the stream of %s yielded a %s (a chunk is bytes or str); it is cut short",
            describe(self._handler), type(chunk).__name__,
        )  # fmt: skip
        raise TypeError(f"a streamed chunk is bytes or str, not {type(chunk).__name__}")

    def close(self) -> None:
        close_quietly(self._chunks)


class Mount:
    """A WSGI app mounted under `prefix` (see `App.mount`)."""

    __slots__ = ("app", "prefix", "wsgi_prefix")

    def __init__(self, prefix: str, app: WSGIApp) -> None:
        self.prefix = prefix
        self.app = app
        # PATH_INFO holds the URL's bytes decoded as latin-1 (PEP 3333), so
        # the prefix is compared in that form too.
        self.wsgi_prefix = prefix.encode().decode("latin-1")

    def matches(self, path_info: str) -> bool:
        return path_info == self.wsgi_prefix or path_info.startswith(self.wsgi_prefix + "/")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.wsgi_prefix
        environ["PATH_INFO"] = environ.get("PATH_INFO", "")[len(self.wsgi_prefix) :]
        return self.app(environ, start_response)
