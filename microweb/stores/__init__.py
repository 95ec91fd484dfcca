"""Stores: the state that all gunicorn workers (and, with Redis, all machines) share.

One small interface (`Store`: get, set with TTL, atomic add, atomic incr,
delete — see `microweb.stores.base`) with interchangeable implementations:

- `MemoryStore` — a dict in this process; tests and single-process development
  only (not shared across gunicorn workers);
- `SQLiteStore` — the default: a file shared by every worker on one machine;
- the Redis store — many machines (issue 6), behind the same interface.
"""

from .base import MAX_KEY_LENGTH, BaseStore, Store, StoreError
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MAX_KEY_LENGTH", "BaseStore", "MemoryStore", "SQLiteStore", "Store", "StoreError"]
