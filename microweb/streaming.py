"""Server-Sent Events: `EventStream`, a response made of events, and `last_event_id`.

An event stream (HTML Living Standard §9.2, "Server-sent events") is one
long ``text/event-stream`` response. The browser's ``EventSource`` reads it
line by line; each event is a few ``field: value`` lines and a blank line::

    id: 42                 <- the browser remembers it; after a reconnect it
    event: tick               sends it back as ``Last-Event-ID`` (§9.2.4)
    data: first line       <- data may span lines: one ``data:`` line each,
    data: second line         joined again with "\\n" by the browser
                           <- the blank line dispatches the event
    : keep-alive           <- a comment: ignored, but it keeps proxies (and
                              the server's disconnect check) awake

The data structure is the handler's own iterator of events; `EventStream`
formats each one as the server asks for the next chunk, so nothing is
buffered and a slow source is sent as it produces. An event is

- a ``str``: the data of an unnamed event;
- a mapping with any of ``data`` (str), ``event`` (str), ``id`` (str or
  int) and ``retry`` (milliseconds, int) — `format_event` checks it and
  raises `ValueError` for what the browser would misread;
- ``None``: "nothing yet". WSGI has no timers and this module starts no
  threads, so the source decides when to wake up (``queue.get(timeout=5)``
  that yields ``None`` on timeout); with ``heartbeat=N`` a ``None`` becomes
  a ``: keep-alive`` comment once N seconds have passed without output.

`EventStream` is a `microweb.response.Stream`, so `to_response` and HEAD
handling treat it like any streamed body, and ``close()`` (called by the
server when the request ends or the client goes away) reaches the source.

A stream needs a server that can hold a connection open: under gunicorn's
default sync worker it takes a whole worker process and is killed after
``--timeout`` seconds (``WORKER TIMEOUT``). The first `EventStream` a sync
worker serves logs a warning naming the fix, ``--worker-class gthread``
(`warn_sync_worker`; docs/cli.md says when to use gthread).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from time import monotonic
from typing import Any, TypeAlias

import webob

from .response import Stream
from .types import Environ, StartResponse
from .wsgi import close_quietly

logger = logging.getLogger("microweb")

EVENT_STREAM = "text/event-stream; charset=utf-8"
HEARTBEAT = b": keep-alive\n\n"
MAX_ID_LENGTH = 256  # bytes of UTF-8; an id we send must come back through `last_event_id`
Event: TypeAlias = str | Mapping[str, Any] | None

# §9.2.5: a line ends at CRLF, a lone LF or a lone CR, and at nothing else
# (str.splitlines would also split on \v, \f, \x1c..\x1e, \x85, \u2028...).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FIELDS = frozenset({"data", "event", "id", "retry"})


def format_event(event: str | Mapping[str, Any]) -> bytes:
    """One event in the §9.2.5 wire format, UTF-8, ending with its blank line.

    >>> format_event({"id": 7, "event": "note", "data": "a\\nb"})
    b'id: 7\\nevent: note\\ndata: a\\ndata: b\\n\\n'
    """
    if isinstance(event, str):
        return _data_lines(event).encode()
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a str or a dict, not {type(event).__name__}")
    if not event:
        raise ValueError("an event needs at least one of data, id or retry")
    unknown = set(event) - _FIELDS
    if unknown:
        raise ValueError(f"unknown event fields {sorted(unknown)}; use {sorted(_FIELDS)}")
    lines = []
    if "id" in event:
        lines.append(f"id: {_check_id(event['id'])}\n")
    if "event" in event:
        name = event["event"]
        if not isinstance(name, str) or _LINE_BREAK.search(name):
            raise ValueError(f"an event type is a str without CR or LF, not {name!r}")
        if "data" not in event:
            # §9.2.6: with an empty data buffer nothing is dispatched; the type is lost.
            raise ValueError(f"event {name!r} has no data, so browsers would never see it")
        lines.append(f"event: {name}\n")
    if "retry" in event:
        lines.append(_retry_line(event["retry"]))
    if "data" not in event:
        return ("".join(lines) + "\n").encode()  # an id or retry alone: legal, nothing dispatched
    if not isinstance(event["data"], str):
        raise TypeError(f"event data is a str (json.dumps it first), not {event['data']!r}")
    return ("".join(lines) + _data_lines(event["data"])).encode()


def _data_lines(data: str) -> str:
    # NOTE: "data: " + line: the parser drops exactly one space after the
    # colon, so a line that starts with a space keeps it. "" is one empty
    # data line: an event whose data is the empty string (§9.2.6).
    return "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data)) + "\n"


def _check_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"an event id is a str or an int, not {value!r}")
    text = str(value)
    if not _is_event_id(text):
        raise ValueError(
            f"an event id has no control characters and at most {MAX_ID_LENGTH} bytes: {text!r}"
        )
    return text


def _is_event_id(text: str) -> bool:
    # §9.2.6 ignores an id holding NUL, and CR/LF would end its line. SECURITY: one rule
    # (no control character, at most MAX_ID_LENGTH bytes) for the ids we send and take back.
    return not _CONTROL.search(text) and len(text.encode()) <= MAX_ID_LENGTH


def _retry_line(value: Any) -> str:
    # §9.2.6: the retry field is used only when it is all ASCII digits.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"retry is a number of milliseconds >= 0, not {value!r}")
    return f"retry: {value}\n"


def last_event_id(req: webob.Request) -> str | None:
    """The ``Last-Event-ID`` a reconnecting ``EventSource`` sent (§9.2.4), or None.

    The browser sends back the last id it saw, encoded as UTF-8. Anything
    else — longer than `MAX_ID_LENGTH` bytes, not UTF-8, or holding a
    control character — is something a client made up: treat it as absent.
    """
    raw = req.environ.get("HTTP_LAST_EVENT_ID")
    if raw is None:
        return None
    try:
        text = raw.encode("latin-1").decode("utf-8")  # PEP 3333: headers arrive as latin-1
    except UnicodeError:
        return None
    return text if _is_event_id(text) else None


class _EventChunks:
    """The body iterator: each `next()` formats what the source produced next."""

    __slots__ = ("_events", "_heartbeat", "_last_output", "_preamble", "_source")

    def __init__(self, events: Iterable[Event], heartbeat: float | None, preamble: bytes) -> None:
        self._events = events
        self._source: Iterator[Event] = iter(events)
        self._heartbeat = heartbeat
        self._preamble = preamble
        self._last_output = monotonic()

    def __iter__(self) -> _EventChunks:
        return self

    def __next__(self) -> bytes:
        if self._preamble:
            chunk, self._preamble = self._preamble, b""
        else:
            event = next(self._source)  # StopIteration ends the stream
            if event is None:
                heartbeat = self._heartbeat
                if heartbeat is None or monotonic() - self._last_output < heartbeat:
                    # PEP 3333 allows an empty chunk: the server gets control
                    # back (gunicorn sends the headers, if not sent yet).
                    return b""
                chunk = HEARTBEAT
            else:
                chunk = format_event(event)
        self._last_output = monotonic()
        return chunk

    def close(self) -> None:
        # The iterator (a generator, usually) is what holds the resources;
        # an iterable whose __iter__ made a new one is closed too.
        close_quietly(self._source)
        if self._events is not self._source:
            close_quietly(self._events)


class EventStream(Stream):
    """A ``text/event-stream`` response: ``return EventStream(events, heartbeat=15)``.

    `events` yields str, dict or None (see the module docs). `heartbeat`:
    seconds of silence after which a ``None`` is sent as a comment (§9.2.7
    suggests about 15). `retry`: milliseconds the browser waits before it
    reconnects (§9.2.6), sent first.
    """

    __slots__ = ()

    def __init__(
        self,
        events: Iterable[Event],
        *,
        heartbeat: float | None = None,
        retry: int | None = None,
    ) -> None:
        if heartbeat is not None and heartbeat < 0:
            raise ValueError(f"heartbeat is a number of seconds >= 0, not {heartbeat!r}")
        preamble = b"" if retry is None else (_retry_line(retry) + "\n").encode()
        super().__init__(_EventChunks(events, heartbeat, preamble), EVENT_STREAM)
        self.headers += [
            # RFC 9111 §5.2.2.4: no cache may answer from a stored copy; a stream
            # is never the same twice.
            ("Cache-Control", "no-cache"),
            # NOTE: nginx buffers proxied responses unless told not to.
            ("X-Accel-Buffering", "no"),
        ]

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # NOTE: PEP 3333's wsgi.multithread is the signal: gunicorn's sync worker
        # sets it False; gthread, gevent and eventlet set it True. gunicorn.socket
        # keeps other servers (and in-process tests) out of it.
        if environ.get("wsgi.multithread") is False and "gunicorn.socket" in environ:
            warn_sync_worker()
        return super().__call__(environ, start_response)


@cache
def warn_sync_worker() -> None:
    """Say once per process that a sync worker cannot hold streams (called on first use)."""
    logger.warning(
        "EventStream on gunicorn's sync worker: each stream holds a whole worker and is "
        "killed after --timeout seconds (WORKER TIMEOUT); serve this app with "
        "--worker-class gthread --threads N (see docs/cli.md)"
    )
