"""`MemoryStore`: a dict in this process, behind one lock.

For tests and single-process development only. Every gunicorn worker is a
separate process with its own copy of the dict, so a MemoryStore is **not**
shared across workers: a rate limit would be per worker, a session revoked in
one worker would live on in the others. Use `SQLiteStore` (one machine) or
the Redis store (many machines) when it runs under gunicorn.

Data structure: ``{key: (value, expires)}`` where ``expires`` is an absolute
clock time or ``None``. Expired entries are treated as absent, removed when
read, and swept in bulk every ``sweep_every`` writes so that keys nobody reads
again do not accumulate.

Atomicity: every operation runs entirely under ``self._lock``, so the check and
the write inside ``add`` and ``incr`` cannot interleave with another thread's —
two threads racing ``add`` on one key get exactly one ``True``, and concurrent
``incr`` calls never lose an update.
"""

from __future__ import annotations

import threading
import time

from .base import BaseStore, Clock, Value, parse_counter

__all__ = ["MemoryStore"]


class MemoryStore(BaseStore):
    """An in-process store (thread-safe; not shared across processes)."""

    def __init__(self, clock: Clock = time.time, sweep_every: int = 1000) -> None:
        super().__init__(clock)
        if sweep_every < 1:
            raise ValueError("sweep_every must be >= 1")
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._writes = 0

    def _live(self, key: str, now: float) -> bytes | None:
        """The value of `key` if present and not expired (caller holds the lock)."""
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= now:
            del self._data[key]
            return None
        return value

    def _put(self, key: str, value: bytes, expires: float | None, now: float) -> None:
        """Write an entry; every `sweep_every` writes, drop all expired entries (lock held)."""
        self._data[key] = (value, expires)
        self._writes += 1
        if self._writes >= self._sweep_every:
            self._writes = 0
            dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
            for k in dead:
                del self._data[k]

    def get(self, key: str) -> bytes | None:
        self._check_key(key)
        with self._lock:
            return self._live(key, self.clock())

    def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        self._check_key(key)
        data, expires = self._to_bytes(value), self._expires_at(ttl)
        with self._lock:
            self._put(key, data, expires, self.clock())

    def add(self, key: str, value: Value, ttl: float | None = None) -> bool:
        self._check_key(key)
        data, expires = self._to_bytes(value), self._expires_at(ttl)
        with self._lock:
            now = self.clock()
            if self._live(key, now) is not None:
                return False
            self._put(key, data, expires, now)
            return True

    def incr(self, key: str, ttl: float | None = None) -> int:
        self._check_key(key)
        expires = self._expires_at(ttl)
        with self._lock:
            now = self.clock()
            current = self._live(key, now)
            if current is None:
                count = 1
            else:
                count = parse_counter(current) + 1
                expires = self._data[key][1]
            self._put(key, str(count).encode("ascii"), expires, now)
            return count

    def delete(self, key: str) -> None:
        self._check_key(key)
        with self._lock:
            self._data.pop(key, None)
