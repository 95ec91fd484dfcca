"""Stores: the state that all gunicorn workers (and, with Redis, all machines) share.

One small interface (`Store`: get, set with TTL, atomic add, atomic incr,
delete — see `microweb.stores.base`) with interchangeable implementations:

- `MemoryStore` — a dict in this process; tests and single-process development
  only (not shared across gunicorn workers);
- `SQLiteStore` — the default: a file shared by every worker on one machine;
- `RedisStore` — many machines (``pip install microweb[redis]``), imported on
  first use so that the ``redis`` client stays optional.

`default_store()` is what a feature uses when it is given no store.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import MAX_KEY_LENGTH, BaseStore, Store, StoreError
from .memory import MemoryStore

if TYPE_CHECKING:
    from .redis_store import RedisStore
    from .sqlite import SQLiteStore

__all__ = [
    "MAX_KEY_LENGTH",
    "BaseStore",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "default_store",
]

#: Environment variable naming the SQLite file of `default_store()`.
STORE_PATH_ENV = "MICROWEB_STORE"


def default_path() -> Path:
    """``$MICROWEB_STORE``, else ``microweb-<uid>.db`` in the temp directory."""
    configured = os.environ.get(STORE_PATH_ENV)
    if configured:
        return Path(configured)
    # NOTE: one file per user: every gunicorn worker of this user on this machine
    # shares it (the point), and another user's processes cannot write into it.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"microweb-{uid}.db"


def default_store() -> SQLiteStore:
    """The store a feature uses when given none: `SQLiteStore` at `default_path()`.

    Shared by all workers on this machine. Features prefix their keys
    (``ratelimit:``, ``idempotency:``) so that they can share one file; two
    *apps* on one machine should each be given their own store.
    """
    from .sqlite import SQLiteStore

    return SQLiteStore(default_path())


def __getattr__(name: str) -> Any:
    # PEP 562: `RedisStore` is imported only when asked for, so that the
    # optional `redis` client is needed only by those who use it; `SQLiteStore`
    # too, so that `sqlite3` loads only in apps that keep state (worker RSS).
    if name == "RedisStore":
        from .redis_store import RedisStore

        return RedisStore
    if name == "SQLiteStore":
        from .sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
