"""The store interface: a tiny key-value API with TTLs, atomic add and atomic increment.

Every stateful feature of microweb (server sessions, JWT revocation, rate
limits, idempotency records) needs the same five operations on state that
all gunicorn workers — and, with Redis, all machines — share:

========================  ===================================================
``get(key)``              the value as ``bytes``, or ``None`` (absent or expired)
``set(key, value, ttl)``  store unconditionally (last writer wins)
``add(key, value, ttl)``  store only if absent or expired -> ``True`` if stored
``incr(key, ttl)``        add 1 and return the new value (creates at 1)
``delete(key)``           remove (no error when absent)
========================  ===================================================

Data model, shared by every implementation so that they are interchangeable:

- keys are non-empty ``str`` of at most `MAX_KEY_LENGTH` characters;
- values are ``bytes``; a ``str`` is stored as its UTF-8 encoding, so
  ``get`` always returns ``bytes``;
- a counter made by ``incr`` is stored as ASCII decimal (``b"42"``), as Redis
  stores it, so ``get`` on a counter gives ``b"42"``; ``incr`` on a value that
  is not such a number raises ``ValueError`` and leaves it unchanged;
- ``ttl`` is a number of seconds (``int`` or ``float``, > 0); ``None`` means no
  expiry. An expired key behaves exactly like an absent one. ``incr``'s
  ``ttl`` applies only when it creates the counter: incrementing a live
  counter keeps its expiry (a fixed window, as a rate limit needs).

Atomicity is the point of ``add`` and ``incr``: a read-then-write done by the
caller (``if get(k) is None: set(k, v)``) lets two workers both see "absent"
and both proceed. ``add`` is the one primitive that elects a single winner
among racing workers (an idempotency key's first request, a session id), and
``incr`` never loses an update (rate-limit counters). Each store documents how
it achieves that with its engine's own guarantees (`microweb.stores.sqlite`,
`microweb.stores.redis_store`).

`Store` is the structural type features program against; `BaseStore` is an
optional base class holding the argument validation and the injectable clock
(tests pass a fake clock so TTL tests never sleep).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

__all__ = [
    "COUNTER_MAX",
    "MAX_KEY_LENGTH",
    "STORE_RETRY_AFTER",
    "BaseStore",
    "Clock",
    "Store",
    "StoreError",
    "Value",
    "fail_open_flag",
    "parse_counter",
]

MAX_KEY_LENGTH = 512
Value = str | bytes
Clock = Callable[[], float]

# The only spelling of a counter that incr accepts: what str(int) produces, as in Redis.
_COUNTER = re.compile(rb"0|-?[1-9][0-9]*")
# Counters are signed 64-bit integers (Redis's and SQLite's INTEGER range).
COUNTER_MAX = 2**63 - 1
#: The ``Retry-After`` (seconds) of every 503 a feature sends because its store
#: failed (RateLimit, Idempotency, sessions, JWT revocation, the App's mapping of
#: a `StoreError`): the outage's length is unknown, so a short pause that keeps
#: clients from retrying in a tight loop. One store, one outage, one hint.
STORE_RETRY_AFTER = 5


class StoreError(Exception):
    """The store cannot be reached or used: unwritable file, lock held beyond the timeout,
    connection refused. Callers choose what that means (fail closed with 503, or fail open);
    a store never hangs waiting for its engine beyond its configured timeout."""


def fail_open_flag(owner: str, value: object) -> bool:
    """A feature's ``fail_open`` option (serve on a `StoreError`, or answer 503), checked."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner}(fail_open=...) is True or False, not {value!r}")
    return value


@runtime_checkable
class Store(Protocol):
    """What every store provides: the operations and data model of `microweb.stores.base`."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: Value, ttl: float | None = None) -> None: ...

    def add(self, key: str, value: Value, ttl: float | None = None) -> bool: ...

    def incr(self, key: str, ttl: float | None = None) -> int: ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...


class BaseStore:
    """Validation and the clock, shared by the concrete stores.

    Subclasses call `_check_key`, `_to_bytes` and `_expires_at` at the top of
    each operation, so that a wrong argument is the same ``TypeError`` or
    ``ValueError`` whichever store is configured.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    def close(self) -> None:
        """Release connections. The default has none to release."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _check_key(key: str) -> None:
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, not {type(key).__name__}")
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"store keys are 1 to {MAX_KEY_LENGTH} characters, got {len(key)}")

    @staticmethod
    def _to_bytes(value: Value) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes):
            return value
        raise TypeError(f"store values are str or bytes, not {type(value).__name__}")

    def _expires_at(self, ttl: float | None) -> float | None:
        """The absolute expiry time for `ttl` seconds from now (None: never)."""
        if ttl is None:
            return None
        # NOTE: bool is an int subclass; ttl=True is surely a mistake, not "1 second".
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            raise TypeError(f"ttl is a number of seconds or None, not {type(ttl).__name__}")
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(
                f"ttl must be a finite number of seconds > 0 (None: no expiry), got {ttl!r}"
            )
        return self.clock() + ttl


def parse_counter(value: bytes) -> int:
    """The integer a counter holds, checked to be incrementable.

    ``ValueError`` when `value` is not a canonical decimal integer, or when
    adding 1 would leave the signed 64-bit range (Redis refuses both too).
    """
    if _COUNTER.fullmatch(value) is None:
        raise ValueError(f"the stored value is not an integer counter: {value[:32]!r}")
    number = int(value)
    if not -COUNTER_MAX - 1 <= number < COUNTER_MAX:
        raise ValueError(f"incrementing {number} would overflow a 64-bit counter")
    return number
