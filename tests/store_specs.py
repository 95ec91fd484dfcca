"""A store named by one string, for apps that gunicorn serves in e2e tests.

The test passes the string in an environment variable; every gunicorn worker
builds its own store from it: ``sqlite:<path>`` (all workers share the file)
or a ``redis://`` URL (all workers, and all instances, share the server).
The `store_spec` fixture (conftest.py) gives one of each, so an e2e test runs
once per shared store.
"""

from __future__ import annotations

from microweb.stores import SQLiteStore, Store


def store_from_spec(spec: str) -> Store:
    if spec.startswith("redis://"):
        from microweb.stores import RedisStore

        store: Store = RedisStore(spec)
        return store
    return SQLiteStore(spec.removeprefix("sqlite:"))
