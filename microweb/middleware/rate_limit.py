"""`RateLimit`: at most N requests per client per window, counted in a shared store.

What it owns
------------
Counting requests per client, refusing the excess with **429 Too Many
Requests** (RFC 6585 §4) and a ``Retry-After`` (RFC 9110 §10.2.3: delay in
seconds), and telling every counted client where it stands with the headers
of draft-ietf-httpapi-ratelimit-headers (the three-field form)::

    RateLimit-Limit: 100        the quota of the window
    RateLimit-Remaining: 41     what is left of it after this request
    RateLimit-Reset: 17         delta-seconds until the window resets

(Later revisions of the draft fold these into structured ``RateLimit`` and
``RateLimit-Policy`` fields; the three fields above are what clients and
proxies widely read today.)

Algorithm: a fixed window counter
---------------------------------
Time is cut into windows of one period (``"100/minute"``: 60 s), numbered
``floor(now / period)``. Each request does **one** store operation,
``store.incr("ratelimit:<spec>:<client>:<window>", ttl=period)``, and is
allowed while the returned count is at most N. ``incr`` is atomic in every
store (an SQL upsert for SQLite, ``INCR`` for Redis), so every gunicorn
worker and every instance sharing the store sees one exact count: a
read-then-write (``get``, compare, ``set``) would let racing workers each
see 99 and all proceed. The ttl lets the store forget old windows.

The trade-off: a client may send N requests at the end of one window and N
more at the start of the next, 2N within a moment around the boundary.
Sliding windows or token buckets smooth that, at the price of several store
operations (or a script) per request; for "stop a client hammering the
app" one atomic increment is the better bargain.

The key: ``REMOTE_ADDR``, after ProxyFix
----------------------------------------
By default a client is its address, ``environ["REMOTE_ADDR"]``, never a raw
``X-Forwarded-For`` or ``Forwarded`` header: a client writes those, and one
that sent ``X-Forwarded-For: <random>`` with each request would get a fresh
quota each time. Behind a proxy, every client would share the proxy's
address, so put `ProxyFix` in front: it rewrites ``REMOTE_ADDR`` to the
address its trusted hops report, and only that. ``key=`` takes any
``key(request) -> str | None`` instead (an API key, a JWT subject the caller
decoded); ``None`` means "do not limit this request". It runs outside the
app's error handlers, so it must return, not raise. Keys that are long or
unusual are hashed (SHA-256), so a store key never exceeds its 512 chars.

Failure
-------
If the store fails (`StoreError`: a locked or unwritable file, Redis down),
a warning goes to the ``microweb`` logger and the request is refused with
503 and ``Retry-After`` (**fail closed**, the default: a limiter that
silently stops limiting during an outage is what an attacker would cause).
``fail_open=True`` lets the request through instead, without RateLimit
headers, when availability matters more than the limit.

Where it goes in the stack
--------------------------
After ProxyFix (it reads the address ProxyFix established) and after CORS:
preflights are answered before they are counted, and a 429 still carries
the CORS grant, so a page's script can read why it was refused. Before
CrossOriginProtection, sessions and the app: a refused request loads no
session and runs no handler. Paths in ``exempt`` (``"/healthz"``) are
neither counted nor given headers.

Per request, the ``after`` hook reads what ``before`` counted from
``environ["microweb.rate_limit"]``; with two RateLimit layers (say
``"10/second"`` and ``"1000/day"``), that is the one with the least left,
and only it is reported.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from functools import partial

from ..errors import ErrorPage, HTTPError, store_unavailable
from ..http import has_header
from ..layer import Middleware, exact_paths
from ..request import Request
from ..stores import Store, StoreError, default_store
from ..stores.base import Clock, fail_open_flag
from ..types import Environ, Headers, WSGIApp

logger = logging.getLogger("microweb")

#: Where `before` leaves (limit, remaining, reset) for `after`.
STATE = "microweb.rate_limit"

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# "100/minute", "100 / minute", "10/5 minutes", "1/day".
_SPEC = re.compile(r"\s*([0-9]+)\s*/\s*(?:([0-9]+)\s*)?(second|minute|hour|day)s?\s*", re.A | re.I)
# A client key used in store keys as it is: short, printable ASCII (an IPv4 or
# IPv6 address, a user id). Anything else is hashed; "#" marks a hash, so a
# raw key can never equal one.
_PLAIN_KEY = re.compile(r"[!-\"$-~]{1,100}")

KeyFunc = Callable[[Request], "str | None"]
State = tuple[int, int, int]  # (limit, remaining, reset in seconds)


def parse_limit(spec: object) -> tuple[int, int]:
    """``"100/minute"`` -> ``(100, 60)``; ``"10/5 minutes"`` -> ``(10, 300)``; else ValueError."""
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(
            f"RateLimit(limit={spec!r}): write 'N/unit' or 'N/M units', unit one of "
            "second, minute, hour, day (e.g. '100/minute', '10/5 minutes')"
        )
    count, multiple, unit = int(match[1]), int(match[2] or 1), match[3].lower()
    if count < 1 or multiple < 1:
        raise ValueError(f"RateLimit(limit={spec!r}): the count and the period must be >= 1")
    return count, multiple * _PERIODS[unit]


def client_part(key: str) -> str:
    """`key` as it goes into a store key: itself if short and plain, else ``#<sha256>``."""
    if _PLAIN_KEY.fullmatch(key):
        return key
    return "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class RateLimit(Middleware):
    """Fixed-window rate limiting per client in a shared store (see the module docs).

    ``limit``: ``"N/second|minute|hour|day"`` or ``"N/M units"``. ``store``:
    any `Store`; ``None`` is `default_store()` (SQLite, shared by the
    workers of one machine). ``key``: ``key(request) -> str | None``; the
    default is the client address. ``exempt``: exact paths not counted.
    ``fail_open``: let requests through when the store fails (default: 503).
    ``clock``: the time windows are numbered by; ``None`` takes the store's
    own clock when it has one (so a fake clock in tests moves both), else
    `time.time`.
    """

    def __init__(
        self,
        app: WSGIApp,
        limit: str = "100/minute",
        store: Store | None = None,
        key: KeyFunc | None = None,
        exempt: Iterable[str] = (),
        fail_open: bool = False,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(app)
        self.limit, self.period = parse_limit(limit)
        if key is not None and not callable(key):
            raise ValueError(f"RateLimit(key=...) must be a function of the request, not {key!r}")
        self.exempt = exact_paths("RateLimit(exempt=...)", exempt)
        self.fail_open = fail_open_flag("RateLimit", fail_open)
        self.store: Store = default_store() if store is None else store
        self.key = key
        self.clock: Clock = clock or getattr(self.store, "clock", None) or time.time
        # Precomputed: the store key's prefix, and the 429 and 503 bodies in
        # both negotiated forms.
        self.prefix = f"ratelimit:{self.limit}/{self.period}:"
        period_text = f"{self.period} seconds" if self.period != 1 else "second"
        self.too_many = ErrorPage(
            HTTPError(429, f"Too many requests: the limit is {self.limit} per {period_text}.")
        )
        detail = "The rate limiter cannot count requests now."
        self.unavailable = ErrorPage(store_unavailable(detail))

    def before(self, environ: Environ) -> WSGIApp | None:
        # 1. Who is asking? Exempt paths and key None are not limited.
        if environ.get("PATH_INFO", "") in self.exempt:
            return None
        if self.key is None:
            # SECURITY: the address ProxyFix established (or the peer's), never
            # a forwarded header. A server that gives none (a unix socket
            # without ProxyFix): all such requests share one quota.
            client: str = environ.get("REMOTE_ADDR") or "-"
        else:
            chosen = self.key(Request(environ))
            if chosen is None:
                return None
            client = chosen
        # 2. Count this request in the current window: one atomic store operation.
        now = self.clock()
        window = int(now // self.period)
        try:
            count = self.store.incr(f"{self.prefix}{client_part(client)}:{window}", self.period)
        except StoreError as exc:
            action = "letting the request through" if self.fail_open else "answering 503"
            logger.warning("RateLimit: the store failed (%s); %s", exc, action)
            return None if self.fail_open else self.unavailable
        # 3. Where the client stands. RFC 9110 §10.2.3: Retry-After is a whole
        #    number of seconds, so round up (never 0: "now" would be a lie).
        reset = max(1, math.ceil((window + 1) * self.period - now))
        remaining = max(0, self.limit - count)
        state = (self.limit, remaining, reset)
        previous: State | None = environ.get(STATE)
        if previous is None or remaining < previous[1]:
            environ[STATE] = state  # NOTE: with two RateLimit layers, report the tighter one
        if count <= self.limit:
            return None
        # 4. RFC 6585 §4: over the limit, 429 with when to come back.
        headers = [("Retry-After", str(reset)), *self.fields(state)]
        return partial(self.too_many, extra=headers)

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        # NOTE: present already when an inner RateLimit layer added them
        # (from the same, tightest, state): they are not added twice.
        state: State | None = environ.get(STATE)
        if state is not None and not has_header(headers, "ratelimit-limit"):
            headers.extend(self.fields(state))

    @staticmethod
    def fields(state: State) -> Headers:
        limit, remaining, reset = state
        return [
            ("RateLimit-Limit", str(limit)),
            ("RateLimit-Remaining", str(remaining)),
            ("RateLimit-Reset", str(reset)),
        ]


__all__ = ["STATE", "RateLimit", "client_part", "parse_limit"]
