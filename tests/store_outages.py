"""Real stores that fail, for the tests of what a feature does when its store is down.

No mocks: each is a real store meeting a real failure.

- `refused_redis()`: a `RedisStore` pointed at a port nothing listens on;
  every operation is a fast `StoreError` (connection refused).
- `locked_sqlite(path)`: an `SQLiteStore` whose write lock another
  connection holds (``BEGIN IMMEDIATE``, as a stuck writer would): reads
  still work, every write is a `StoreError` ("database is locked") after
  the store's short timeout. ``release()`` ends the outage.
- `read_only(*paths)`: files made read-only even for the descriptors
  already open on them (``chattr +i``; root only, else the test is skipped).

For an outage that ends on a running server, use the `redis_server`
fixture's ``outage()`` (tests/redis_server.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis_server import free_port

from microweb.stores import SQLiteStore
from microweb.stores.redis_store import RedisStore


@contextmanager
def refused_redis() -> Iterator[RedisStore]:
    with RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5) as store:
        yield store


class LockedSQLite:
    """An SQLite store plus the connection holding its write lock."""

    def __init__(self, path: Path) -> None:
        self.store = SQLiteStore(path, timeout=0.05)
        self.store.get("warm-up")  # creates the table before the lock is taken
        self._holder: sqlite3.Connection | None = None

    def lock(self) -> None:
        self._holder = sqlite3.connect(self.store.path, isolation_level=None)
        self._holder.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None


@contextmanager
def locked_sqlite(path: Path) -> Iterator[LockedSQLite]:
    """An SQLite store, not yet locked: call ``lock()`` to start the outage."""
    locked = LockedSQLite(path)
    try:
        yield locked
    finally:
        locked.release()
        locked.store.close()


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """Make files read-only even for open descriptors (and for root): chattr +i."""
    if os.geteuid() != 0:
        pytest.skip("needs root for chattr +i (chmod does not affect open files)")
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if done.returncode:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
