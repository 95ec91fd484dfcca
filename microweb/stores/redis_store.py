"""`RedisStore`: the store on a Redis server, shared by every worker on every machine.

What it owns: the mapping of the five `Store` operations onto Redis commands,
the translation of Redis's errors into the store's (``ValueError``,
`StoreError`), and a redis-py client configured to fail fast. The data model
is `microweb.stores.base`'s: keys are ``prefix + key``, values are the bytes
given (``str`` as UTF-8), counters are ASCII decimal — which is Redis's own
representation of an integer string, so ``get`` on a counter gives ``b"42"``.

Every operation is one Redis command, and Redis runs each command (and each
Lua script) alone, start to finish, on its single command thread; that is
where the atomicity comes from:

====================  ==================================  =========================
operation             Redis                               why it is atomic
====================  ==================================  =========================
``get(k)``            ``GET k``                           one command
``set(k, v, ttl)``    ``SET k v [PX ms]``                 one command (replaces the TTL)
``add(k, v, ttl)``    ``SET k v NX [PX ms]``              NX: the existence check and
                                                          the write are one command,
                                                          so one racer gets ``OK``
``incr(k)``           ``INCR k``                          one command
``incr(k, ttl)``      Lua: ``SET k 0 NX PX ms; INCR k``   a script runs alone; a live
                                                          counter keeps its expiry
``delete(k)``         ``DEL k``                           one command
====================  ==================================  =========================

``incr`` with a ttl is one round trip: the script is registered once
(``register_script``: ``EVALSHA``, falling back to ``EVAL`` when the server
has forgotten it, as after a restart). ``SET ... NX`` creates the counter at 0
with its expiry only when it is absent (Redis drops expired keys on access, so
an expired counter is absent), then ``INCR`` adds 1 and, unlike ``SET``, keeps
the key's TTL: a fixed window, as a rate limit needs. ``INCR`` refuses a value
that is not a canonical 64-bit decimal ("not an integer or out of range") or
that would overflow; the script stops there having changed nothing, and the
store raises ``ValueError``.

Expiry runs on the Redis server's clock (``PX`` is relative, in milliseconds,
rounded *up* so that a tiny ttl is never the invalid ``PX 0``); the store's
`clock` is not used for it. Every machine therefore agrees on when a key
expires, whatever their own clocks say.

Failures: connection refused, a timeout and any other Redis error become
`StoreError` (with the server's address, never its password). The client
waits at most ``timeout`` seconds to connect and ``timeout`` seconds for a
reply, and does **not** retry: a store fails fast, and the feature decides
whether that means 503 (fail closed) or carrying on (fail open). A write that
timed out may still have been applied by a slow server. Recovery is
automatic: the pool checks a pooled connection before handing it out (a
socket that Redis closed, as when it restarts, is reopened), and
``health_check_interval`` PINGs a connection idle that long before reusing
it; the script is reloaded on ``NOSCRIPT``. The first operation after Redis
is back works.

Fork safety (gunicorn forks its workers after importing the app): redis-py's
`ConnectionPool` records the pid that created it and, on every checkout
(``_checkpid``), resets itself when the pid has changed, so a forked worker
opens its own connections and never writes to a socket it shares with its
parent (``Connection.disconnect`` only shuts a socket down in the process
that opened it). No connection is opened before the first operation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from .base import BaseStore, StoreError, Value

__all__ = ["RedisStore"]

# KEYS[1]: the counter; ARGV[1]: its ttl in milliseconds, applied only when it is created.
_INCR_WITH_TTL = """
redis.call('SET', KEYS[1], '0', 'NX', 'PX', ARGV[1])
return redis.call('INCR', KEYS[1])
"""
# Redis's replies to INCR on a value that is not a counter, or that would overflow.
_NOT_A_COUNTER = ("not an integer or out of range", "would overflow")
# NOTE: Redis refuses an expiry beyond its own time range ("invalid expire time");
# a ttl longer than ~31,700 years is stored as that, indistinguishable from "longer".
_MAX_PX = 10**15
# Seconds a pooled connection may sit idle before it is PINGed on reuse.
HEALTH_CHECK_INTERVAL = 30


class RedisStore(BaseStore):
    """A store on a Redis server: shared by every process on every machine using `url`.

    `url` is redis-py's: ``redis://[[user]:password@]host[:port][/db]``,
    ``rediss://`` (TLS) or ``unix:///path.sock?db=0``. `prefix` is put in
    front of every key, so that several apps can share one database. `timeout`
    (seconds) bounds connecting and each reply. `client` is an already
    configured ``redis.Redis`` to use instead of `url` (its timeouts and
    retries are then the caller's, and so is closing it).

    Nothing connects until the first operation: a Redis that is down at start
    shows as `StoreError` on use, not as an app that cannot start.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "",
        timeout: float = 0.5,
        client: redis.Redis | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix is a str, not {type(prefix).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(f"timeout is a number of seconds, not {type(timeout).__name__}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
        self.prefix = prefix
        self.timeout = timeout
        self._owns_client = client is None
        if client is None:
            _check_url(url)
            client = redis.Redis.from_url(  # ValueError for a malformed URL
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                # NOTE: fail fast, said explicitly: redis-py's default differs between
                # Redis() (retries with backoff) and from_url() (none), and across versions.
                retry=Retry(NoBackoff(), 0),
                health_check_interval=HEALTH_CHECK_INTERVAL,
            )
        kwargs = client.connection_pool.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ValueError("RedisStore needs a client with decode_responses=False (bytes)")
        self.client = client
        # For messages: where the server is, never the password of the URL.
        host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
        self.address = kwargs.get("path") or f"{host}:{port}"
        self._incr_with_ttl: Script = client.register_script(_INCR_WITH_TTL)

    def __repr__(self) -> str:
        # NOTE: the address, never the URL: a URL may carry a password.
        return f"RedisStore({self.address!r}, prefix={self.prefix!r})"

    def close(self) -> None:
        """Disconnect the pool (only when this store created the client)."""
        if self._owns_client:
            self.client.close()

    # -- helpers -------------------------------------------------------------------

    def _key(self, key: str) -> str:
        self._check_key(key)
        return self.prefix + key

    def _px(self, ttl: float | None) -> int | None:
        """`ttl` seconds as Redis's PX milliseconds, checked as every store checks it."""
        self._expires_at(ttl)  # the same TypeError/ValueError as the other stores
        if ttl is None:
            return None
        return min(math.ceil(ttl * 1000), _MAX_PX)

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate redis-py's exceptions into the store's."""
        try:
            yield
        except RedisError as exc:  # ConnectionError, TimeoutError, ResponseError, ...
            if isinstance(exc, ResponseError) and any(r in str(exc) for r in _NOT_A_COUNTER):
                raise ValueError(f"the stored value is not an integer counter: {exc}") from exc
            raise StoreError(f"Redis store {self.address}: {operation}: {exc}") from exc

    # -- the Store interface -------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        name = self._key(key)
        with self._errors("GET"):
            value = self.client.get(name)
        return None if value is None else self._to_bytes(value)

    def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        name, data, px = self._key(key), self._to_bytes(value), self._px(ttl)
        with self._errors("SET"):
            self.client.set(name, data, px=px)

    def add(self, key: str, value: Value, ttl: float | None = None) -> bool:
        name, data, px = self._key(key), self._to_bytes(value), self._px(ttl)
        with self._errors("SET NX"):
            stored: Any = self.client.set(name, data, nx=True, px=px)
        return stored is True

    def incr(self, key: str, ttl: float | None = None) -> int:
        name, px = self._key(key), self._px(ttl)
        with self._errors("INCR"):
            if px is None:
                count: Any = self.client.incr(name)
            else:
                count = self._incr_with_ttl(keys=[name], args=[px])
        return int(count)

    def delete(self, key: str) -> None:
        name = self._key(key)
        with self._errors("DEL"):
            self.client.delete(name)


def _check_url(url: str) -> None:
    """Refuse what redis-py would silently misread (it ignores a non-numeric db)."""
    if not isinstance(url, str):
        raise TypeError(f"url is a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"the database in a Redis URL is a number, not {db!r}")
