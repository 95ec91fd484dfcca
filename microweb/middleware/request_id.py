"""`RequestID`: one id per request, on the response, in the environ and in every log line.

When a user reports "it failed at 10:32", the id on the response (and in the
proxy's and the app's logs) is what ties the pieces together. A request
gets its id in `before`, from one of two places:

1. **The client or a proxy in front sent one** (``X-Request-ID`` by
   default): it is kept if it is *well formed*: 1 to 128 characters from
   ``A-Z a-z 0-9 . _ : -``. That covers what proxies send (nginx's
   ``$request_id``, Heroku's router) and UUIDs, so one id can follow a
   request through every hop.
2. **Otherwise** a new one: 128 random bits as 32 hex digits, from
   `os.urandom` (see `new_request_id`).

The id is then

- in ``environ["microweb.request_id"]`` (a microweb handler reads
  ``req.environ["microweb.request_id"]``, a Flask one
  ``flask.request.environ[...]``);
- in the `current_request_id` context variable, which the
  `RequestIDFilter` logging filter copies onto every log record as
  ``record.request_id``, so a format string can say ``%(request_id)s``.
  Records logged where no request has been served (at startup, in
  gunicorn's master process, in other threads) say ``-``;
- on the response, in the same header (`after`). **It replaces a value the
  app set itself**: the header must name the id in the environ and the
  logs, or it correlates nothing. (An app that wants a different id wants a
  different middleware.)

Logging setup, with the filter on the *handler* (a filter on a logger does
not see records propagated from its child loggers)::

    logging.config.dictConfig({
        "version": 1,
        "filters": {"request_id": {"()": "microweb.middleware.request_id.RequestIDFilter"}},
        "formatters": {"line": {"format": "%(asctime)s [%(request_id)s] %(name)s: %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler",
                                 "filters": ["request_id"], "formatter": "line"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    })

gunicorn's access log can show it too: ``--access-logformat
'%(h)s "%(r)s" %(s)s %({x-request-id}o)s'`` prints the response header.

NOTE: the context variable is *set* at the start of each request and never
reset: the middleware hooks have no "after the body is sent" step, and a
streamed body's log lines (written while the server iterates it, after
`after` ran) must still carry the id. Each thread (gunicorn's gthread
workers) or greenlet has its own value, so concurrent requests never see
each other's id; a line logged by a worker *between* two requests carries
the id of the request it last served.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar

from ..http import TOKEN, has_header, replace_headers
from ..layer import Middleware
from ..types import Environ, Headers, WSGIApp

#: Where the id is kept in the WSGI environ.
ENVIRON_KEY = "microweb.request_id"

#: The id of the request being served in this thread or task; ``"-"`` outside one.
current_request_id: ContextVar[str] = ContextVar("microweb.request_id", default="-")

# SECURITY: an incoming id is written into log lines and echoed in a response
# header. Anything beyond this short, plain alphabet (CR/LF, quotes, spaces,
# ANSI escapes, megabytes of text, an empty value) could forge log lines,
# split headers or fill disks, so it is replaced, never echoed or escaped.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_request_id() -> str:
    """A fresh id: 128 random bits from `os.urandom`, as 32 lower-case hex digits.

    PERF: the bits are drawn `BATCH` ids at a time (`_draw`), so an id costs
    one ``next`` on a list iterator: 0.13 µs a call, the draws included
    (0.17 when `_draw` sliced the hex string in a loop), against 0.7 µs for
    ``f"{random.getrandbits(128):032x}"`` and 0.85 µs for
    ``os.urandom(16).hex()`` per call, measured for bench/'s stack column.

    NOTE: unguessable, but not a secret: it is logged and sent back to the
    client. Never use it as a token (CSRF, sessions, reset links).
    """
    global _ids
    try:
        return next(_ids)
    except StopIteration:  # the batch is used up: draw the next one
        _ids = _draw()
        return next(_ids)


#: How many ids are drawn at a time (4 KiB from the OS).
BATCH = 256


def _draw() -> Iterator[str]:
    """The next `BATCH` ids of this process."""
    # PERF: `hex` puts a space after every 16 bytes and `split` cuts there, both
    # in C: 0.09 µs an id (os.urandom's 0.04 included), against 0.13 for
    # slicing the hex string in a Python loop.
    return iter(os.urandom(16 * BATCH).hex(" ", 16).split())


def _forget_after_fork() -> None:
    """A forked worker (gunicorn's) must not hand out the ids its parent will."""
    global _ids
    _ids = iter(())


# NOTE: `next` on a list iterator is one C call, so two threads never get the
# same id; two threads finding the batch used up both draw one (harmless).
_ids: Iterator[str] = iter(())
os.register_at_fork(after_in_child=_forget_after_fork)


class RequestID(Middleware):
    """Give each request an id: kept from `header` if well formed, else generated."""

    def __init__(self, app: WSGIApp, header: str = "X-Request-ID") -> None:
        super().__init__(app)
        # RFC 9110 §5.1: a field name is a token. "_" is refused too: the environ
        # spells "-" and "_" alike (HTTP_X_REQUEST_ID), and proxies drop "_" ones.
        if not isinstance(header, str) or not TOKEN.fullmatch(header) or "_" in header:
            raise ValueError(
                f"RequestID(header={header!r}) is not a header name: use letters, digits "
                "and '-' (RFC 9110 §5.1; '_' is ambiguous in a WSGI environ)"
            )
        self.header = header
        self.header_lower = header.lower()
        # PEP 3333 / CGI: request header "X-Request-ID" is environ "HTTP_X_REQUEST_ID".
        self.environ_key = "HTTP_" + header.upper().replace("-", "_")

    def before(self, environ: Environ) -> WSGIApp | None:
        incoming = environ.get(self.environ_key, "")
        # NOTE: two headers of the same name arrive joined by "," (RFC 9110
        # §5.3), which is not in the alphabet: the pair is replaced too.
        well_formed = incoming and WELL_FORMED_ID.fullmatch(incoming)
        request_id = incoming if well_formed else new_request_id()
        environ[ENVIRON_KEY] = request_id
        current_request_id.set(request_id)
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        if has_header(headers, self.header_lower):  # PERF: usually not: a plain append
            replace_headers(headers, [(self.header, environ[ENVIRON_KEY])])
        else:
            headers.append((self.header, environ[ENVIRON_KEY]))


class RequestIDFilter(logging.Filter):
    """Set ``record.request_id`` (the current request's id, ``"-"`` outside one).

    It never drops a record. A record that already has a ``request_id``
    (``logger.info(..., extra={"request_id": ...})``) keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True
