"""`SQLiteStore`: one SQLite file shared by every gunicorn worker on a machine.

Data structure: one table ::

    kv(key TEXT PRIMARY KEY, value BLOB, expires REAL)   -- expires: clock time or NULL

plus a partial index on ``expires`` so that the sweep below is cheap.

Concurrency model:

- **WAL journal**: readers never block the (single) writer, and a write is an
  append to the log. SQLite serialises writers with a file lock; a writer that
  finds it held waits up to ``timeout`` seconds (SQLite's busy timeout), then
  the operation raises `StoreError` — never an unbounded wait.
- **Set up once, at startup** (`setup_database`): the schema and the switch to
  WAL (a property of the file, which stays on) run when the store is built,
  in every process that builds one, one process at a time. Connections then
  only set their own options.
- **One connection per process and thread.** A connection is created lazily by
  the thread that uses it. A connection must never be used across ``fork()``
  (SQLite's locks are per process; gunicorn forks its workers after importing
  the app), so each operation checks the process id and opens a fresh
  connection in a child.
- **Every operation is one SQL statement**, run in autocommit mode, i.e. one
  implicit transaction holding the write lock from read to write:

  - ``add`` is ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <row expired>``:
    the existence check and the write are one statement, so of N processes
    racing to add a key exactly one sees a changed row (``rowcount == 1``).
  - ``incr`` is ``INSERT ... ON CONFLICT DO UPDATE SET value = value + 1
    ... RETURNING value`` (SQLite >= 3.35): no other writer can run between
    reading the old count and writing the new one, so no increment is lost.
    With an older SQLite, the same upsert and a ``SELECT`` run inside one
    ``BEGIN IMMEDIATE`` transaction (which takes the write lock up front).

Faults: the file removed at runtime is a `StoreError` for every operation
(a connection would otherwise write on into the deleted file, and a worker
started later would open a new, empty one); a file replaced at the same path
(a restored backup) is used from then on; a connection whose statement
failed is closed, so a fault that passes (a read-only or full disk) does not
outlive itself in a connection SQLite opened read-only meanwhile.

Expiry: an expired row is treated as absent by every operation, deleted when
``get`` meets it, overwritten by ``add``/``incr``/``set``, and every
``sweep_every`` writes (counted per connection) one
``DELETE ... WHERE expires <= now`` reclaims rows nobody reads again.

Durability: ``synchronous=NORMAL`` — in WAL mode a crash of the process loses
nothing; a power loss may lose the last transactions (acceptable for sessions,
rate-limit windows and idempotency records; the data survives restarts).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .base import BaseStore, Clock, StoreError, Value, parse_counter

__all__ = ["SQLiteStore", "setup_database"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL);
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires) WHERE expires IS NOT NULL;
"""
_IN_MEMORY = ":memory:"  # a private database per connection: no file, no WAL
_EXPIRED = "kv.expires IS NOT NULL AND kv.expires <= :now"
# An expired counter restarts at 1 with the new ttl; a live one keeps its expiry.
# The WHERE refuses, as Redis does, a value that is not a canonical integer or that would
# overflow 64 bits: no row changes, RETURNING yields nothing, and incr raises ValueError.
_INCR = f"""INSERT INTO kv (key, value, expires) VALUES (:key, CAST(1 AS BLOB), :expires)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN {_EXPIRED} THEN excluded.value
          ELSE CAST(CAST(kv.value AS INTEGER) + 1 AS BLOB) END,
  expires = CASE WHEN {_EXPIRED} THEN excluded.expires ELSE kv.expires END
WHERE {_EXPIRED} OR (CAST(CAST(kv.value AS INTEGER) AS BLOB) = kv.value
                    AND CAST(kv.value AS INTEGER) < 9223372036854775807)"""
_SET = """INSERT INTO kv (key, value, expires) VALUES (:key, :value, :expires)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires"""
# `add` is `set` on a row that is absent or expired: a live row is left alone.
_ADD = f"{_SET}\nWHERE {_EXPIRED}"


def setup_database(path: str | os.PathLike[str], schema: str, timeout: float = 10.0) -> None:
    """Switch the SQLite file at `path` to WAL and run `schema`, one process at a time.

    Call it at startup (when the app is built), never on a first request.
    `schema` must be idempotent (``CREATE TABLE IF NOT EXISTS ...``): every
    gunicorn worker imports the app, so every worker runs this, usually at
    the same moment on a fresh file. That is why processes take turns here:
    SQLite's switch of a new file to WAL fails at once with "database is
    locked" when another process is switching it too (the busy timeout does
    not apply: both hold a read lock and each waits for the other), so the
    setup holds an advisory lock on a side file, ``<path>.lock``, for the few
    milliseconds it takes. Raises `OSError` or `sqlite3.Error`.
    """
    path = os.fspath(path)
    # NOTE: a side file, not the database: closing any descriptor of the database
    # file would drop the POSIX locks SQLite's other connections in this process hold.
    with open(path + ".lock", "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(schema)
        finally:
            conn.close()


# Abandoned connections inherited across fork(): closing them in the child could
# disturb the parent's use of the file, so the child keeps them referenced, unused.
_inherited: list[sqlite3.Connection] = []


class SQLiteStore(BaseStore):
    """A store in an SQLite file, safe for concurrent processes and threads on one machine."""

    # NOTE: a class attribute so that tests can exercise the pre-3.35 path.
    use_returning = sqlite3.sqlite_version_info >= (3, 35, 0)

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock = time.time,
        timeout: float = 5.0,
        sweep_every: int = 1000,
    ) -> None:
        super().__init__(clock)
        if timeout <= 0 or sweep_every < 1:
            raise ValueError("timeout must be > 0 and sweep_every >= 1")
        self.path = os.fspath(path)
        self.timeout = timeout
        self._sweep_every = sweep_every
        self._local = threading.local()
        self._all: list[tuple[int, sqlite3.Connection]] = []  # (pid, conn), to close them all
        self._all_lock = threading.Lock()
        if self.path == _IN_MEMORY:
            return  # NOTE: each connection is a database of its own (set up in _connect)
        try:  # at startup, so that an unusable file fails here, not at the first request
            setup_database(self.path, _SCHEMA, timeout)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot set up SQLite store {self.path!r}: {exc}") from exc

    # -- connections ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection in this process, opened on first use."""
        pid = os.getpid()
        file = self._file()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == pid and self._local.file == file:
            return conn
        if conn is not None and self._local.pid != pid:
            _inherited.append(conn)  # NOTE: inherited across fork(); never touch it again
        elif conn is not None:
            self._discard(conn)  # the file was replaced (a restored backup): use the new one
        conn = self._connect()
        self._local.conn, self._local.pid, self._local.writes = conn, pid, 0
        self._local.file = file
        with self._all_lock:
            self._all.append((pid, conn))
        return conn

    def _file(self) -> tuple[int, int] | None:
        """Which file the path names now (device, inode); StoreError once it is gone.

        SECURITY: a connection keeps working on a deleted file (the open
        descriptor keeps it alive), so without this check writes would go
        on to a file nobody will read again, and a worker started later
        would open a new, empty one: two stores that look like one (an
        idempotency key could run twice). A removed file is an outage (503).
        PERF: one stat() per operation, about 1 µs next to an SQLite statement's 10-50 µs.
        """
        if self.path == _IN_MEMORY:
            return None
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise StoreError(f"SQLite store {self.path!r} is gone: {exc}") from exc
        return st.st_dev, st.st_ino

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: autocommit; each statement is its own transaction.
            # check_same_thread=False only so that close() may run on another thread;
            # each connection is otherwise used by the thread that opened it.
            # mode=rw: never create the file here (setup_database did, at startup): a
            # file removed since is an outage, not a new empty store.
            target = self.path if self.path == _IN_MEMORY else f"file:{quote(self.path)}?mode=rw"
            conn = sqlite3.connect(
                target,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=True,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        # NOTE: a per-connection option, unlike WAL and the schema (setup_database).
        conn.execute("PRAGMA synchronous=NORMAL")
        if self.path == _IN_MEMORY:
            conn.executescript(_SCHEMA)
        return conn

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def close(self) -> None:
        """Close every connection this process opened (other threads' too)."""
        pid = os.getpid()
        with self._all_lock:
            mine = [conn for owner, conn in self._all if owner == pid]
            self._all = [(o, c) for o, c in self._all if o != pid]
        for conn in mine:
            conn.close()
        self._local = threading.local()

    # -- execution -----------------------------------------------------------------

    def _run(self, sql: str, params: Mapping[str, object], write: bool) -> tuple[list[Any], int]:
        """Run one statement to its end: (its rows, how many rows it changed)."""
        conn = self._conn()
        try:
            cur = conn.execute(sql, params)
            # NOTE: fetched here, inside the try: a write with RETURNING completes (and
            # can fail, say on a read-only file) only when its rows are fetched.
            rows = cur.fetchall()
            if write:
                self._after_write(conn)
            return rows, cur.rowcount
        except sqlite3.Error as exc:
            # NOTE: the next operation opens a fresh connection. One opened while the
            # file could not be written (read-only, a full disk) stays read-only for
            # good, and would keep failing after the fault is gone.
            self._discard(conn)
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    def _discard(self, conn: sqlite3.Connection) -> None:
        """Close this thread's connection `conn`; the next operation opens another."""
        with self._all_lock:
            self._all = [(o, c) for o, c in self._all if c is not conn]
        conn.close()
        self._local.conn = None

    def _after_write(self, conn: sqlite3.Connection) -> None:
        """Every `sweep_every` writes on this connection, delete all expired rows."""
        self._local.writes += 1
        if self._local.writes >= self._sweep_every:
            self._local.writes = 0
            conn.execute("DELETE FROM kv WHERE expires <= ?", (self.clock(),))

    # -- the Store interface -------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        self._check_key(key)
        now = self.clock()
        rows, _ = self._run("SELECT value, expires FROM kv WHERE key = :key", {"key": key}, False)
        if not rows:
            return None
        value, expires = rows[0]
        if expires is not None and expires <= now:
            # Conditional delete: a concurrent set/add may have revived the key meanwhile.
            sql = f"DELETE FROM kv WHERE key = :key AND {_EXPIRED}"
            self._run(sql, {"key": key, "now": now}, True)
            return None
        return bytes(value)

    def set(self, key: str, value: Value, ttl: float | None = None) -> None:
        self._check_key(key)
        params = {"key": key, "value": self._to_bytes(value), "expires": self._expires_at(ttl)}
        self._run(_SET, params, True)

    def add(self, key: str, value: Value, ttl: float | None = None) -> bool:
        self._check_key(key)
        data, expires = self._to_bytes(value), self._expires_at(ttl)
        params = {"key": key, "value": data, "expires": expires, "now": self.clock()}
        return self._run(_ADD, params, True)[1] == 1

    def incr(self, key: str, ttl: float | None = None) -> int:
        self._check_key(key)
        params = {"key": key, "expires": self._expires_at(ttl), "now": self.clock()}
        if self.use_returning:
            rows, _ = self._run(_INCR + " RETURNING value", params, True)
            row = rows[0] if rows else None
        else:
            row = self._incr_in_transaction(params)
        if row is None:  # the WHERE refused: the stored value is not a counter
            current = self.get(key)
            parse_counter(current or b"")  # raises ValueError naming the value
            raise StoreError(f"incr of {key!r} changed no row")  # unreachable in practice
        return int(row[0])

    def _incr_in_transaction(self, params: Mapping[str, object]) -> tuple[bytes] | None:
        """The pre-3.35 path: upsert then read back, inside one BEGIN IMMEDIATE."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading
            try:
                changed = conn.execute(_INCR, params).rowcount
                row = conn.execute("SELECT value FROM kv WHERE key = :key", params).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._after_write(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        return (bytes(row[0]),) if changed == 1 and row is not None else None

    def delete(self, key: str) -> None:
        self._check_key(key)
        self._run("DELETE FROM kv WHERE key = :key", {"key": key}, True)
