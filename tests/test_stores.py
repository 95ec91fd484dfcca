"""The store interface (microweb.stores): the same tests run against every store.

`STORES` maps a name to a factory; the `store` fixture is parametrized over
it, so each behaviour test runs once per store. A new store (the Redis store
of issue 6) joins by adding a factory here — and to `SHARED` when it is shared
across processes, which puts it in the multi-process race tests too.

Time never sleeps: stores take a `FakeClock`, and tests move it with
`StoreCase.advance`. Redis expires keys on its own clock, which no test can
set; there `advance` does to the store's keys what that much time would do:
it takes the time off each one's remaining TTL (``PEXPIRE``), and deletes
the keys it takes down to zero. TTLs are long (a minute) so that the real
time a loaded machine spends between two steps is nothing beside them.

The "redis" store runs against a real redis-server (tests/redis_server.py,
emptied before each test); its specific tests (TTL kept by the Lua incr,
outages, timeouts, recovery, fork) are at the bottom.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer, free_port
from store_outages import read_only

from microweb.stores import (
    MAX_KEY_LENGTH,
    MemoryStore,
    RedisStore,
    SQLiteStore,
    Store,
    StoreError,
)
from microweb.stores.base import COUNTER_MAX, fail_open_flag

TTL = 60.0  # seconds; nothing waits for it (see the module docstring)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class StoreCase:
    """A store under test and the way to move its clock forward."""

    store: Store
    advance: Callable[[float], None]
    name: str
    extras: dict[str, Any] = field(default_factory=dict)


def _memory(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Store:
    return MemoryStore(clock=clock)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Store:
    return SQLiteStore(tmp_path / "store.db", clock=clock)


def _sqlite_without_returning(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Store:
    """The fallback for SQLite < 3.35 (no RETURNING): incr inside BEGIN IMMEDIATE."""
    store = SQLiteStore(tmp_path / "store.db", clock=clock)
    store.use_returning = False
    return store


def _redis(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Store:
    """A real redis-server, emptied for this test; `clock` cannot drive it (`_redis_advance`)."""
    return RedisStore(request.getfixturevalue("redis_url"), prefix="test:")


STORES: dict[str, Callable[[pytest.FixtureRequest, Path, FakeClock], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-no-returning": _sqlite_without_returning,
    "redis": _redis,
}
SHARED = ["sqlite", "sqlite-no-returning", "redis"]  # stores that several processes share


def _redis_advance(store: RedisStore) -> Callable[[float], None]:
    """`advance` for a store whose keys expire on the Redis server's clock."""

    def advance(seconds: float) -> None:
        client, elapsed = store.client, round(seconds * 1000)
        for key in client.scan_iter(match=store.prefix + "*"):
            left = client.pttl(key)  # milliseconds; -1: no expiry; -2: gone already
            if left > elapsed:
                client.pexpire(key, left - elapsed)
            elif left >= 0:
                client.delete(key)

    return advance


def _case(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    clock = FakeClock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    store = STORES[name](request, tmp_path, clock)
    if isinstance(store, RedisStore):
        advance = _redis_advance(store)
    try:
        yield StoreCase(store, advance, name)
    finally:
        store.close()


@pytest.fixture(params=list(STORES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    yield from _case(request.param, request, tmp_path)


@pytest.fixture(params=SHARED)
def shared_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    yield from _case(request.param, request, tmp_path)


# -- the interface ---------------------------------------------------------------------


def test_implements_the_protocol(case: StoreCase) -> None:
    assert isinstance(case.store, Store)


def test_absent_key_reads_none(case: StoreCase) -> None:
    assert case.store.get("nope") is None


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param(b"raw", b"raw", id="bytes"),
        pytest.param("héllo ☃", "héllo ☃".encode(), id="str-as-utf8"),
        pytest.param(b"", b"", id="empty-bytes"),
        pytest.param("", b"", id="empty-str"),
        pytest.param(bytes(range(256)), bytes(range(256)), id="every-byte"),
        pytest.param(b"x" * 100_000, b"x" * 100_000, id="100kB"),
    ],
)
def test_set_then_get(case: StoreCase, value: str | bytes, stored: bytes) -> None:
    case.store.set("k", value)
    got = case.store.get("k")
    assert got == stored
    assert type(got) is bytes


def test_set_overwrites_value_and_ttl(case: StoreCase) -> None:
    case.store.set("k", "old", ttl=TTL)
    case.store.set("k", "new")  # no ttl: the new value never expires
    case.advance(TTL * 2)
    assert case.store.get("k") == b"new"


def test_delete(case: StoreCase) -> None:
    case.store.set("k", "v")
    case.store.delete("k")
    assert case.store.get("k") is None
    case.store.delete("k")  # deleting an absent key is not an error


@pytest.mark.parametrize("operation", ["set", "add"])
def test_ttl_expires(case: StoreCase, operation: str) -> None:
    getattr(case.store, operation)("k", "v", ttl=TTL)
    case.advance(TTL * 0.5)
    assert case.store.get("k") == b"v"
    case.advance(TTL * 0.6)
    assert case.store.get("k") is None


def test_integer_ttl(case: StoreCase) -> None:
    case.store.set("k", "v", ttl=60)  # seconds, as a float ttl is
    case.advance(50)
    assert case.store.get("k") == b"v"
    case.advance(20)
    assert case.store.get("k") is None


# -- add: only if absent ---------------------------------------------------------------


def test_add_only_if_absent(case: StoreCase) -> None:
    assert case.store.add("k", "first") is True
    assert case.store.add("k", "second") is False
    assert case.store.get("k") == b"first"


def test_add_after_delete(case: StoreCase) -> None:
    case.store.add("k", "first")
    case.store.delete("k")
    assert case.store.add("k", "again") is True
    assert case.store.get("k") == b"again"


def test_add_after_expiry_takes_the_new_value_and_ttl(case: StoreCase) -> None:
    assert case.store.add("k", "first", ttl=TTL) is True
    case.advance(TTL * 1.1)
    # NOTE: no get() in between: add itself must see the old row as absent.
    assert case.store.add("k", "second", ttl=TTL * 2) is True
    assert case.store.get("k") == b"second"
    case.advance(TTL * 1.5)
    assert case.store.get("k") == b"second"  # the new ttl, not the old one
    case.advance(TTL)
    assert case.store.get("k") is None


def test_add_does_not_replace_a_value_set_without_ttl(case: StoreCase) -> None:
    case.store.set("k", "kept")
    case.advance(TTL * 100)
    assert case.store.add("k", "other", ttl=TTL) is False
    assert case.store.get("k") == b"kept"


# -- incr: atomic counter --------------------------------------------------------------


def test_incr_creates_at_one_and_counts(case: StoreCase) -> None:
    assert [case.store.incr("n") for _ in range(3)] == [1, 2, 3]
    assert case.store.get("n") == b"3"  # stored as decimal, as Redis does


def test_incr_ttl_applies_at_creation_and_is_kept(case: StoreCase) -> None:
    """A fixed window: later increments do not push the expiry back."""
    assert case.store.incr("n", ttl=TTL) == 1
    case.advance(TTL * 0.6)
    assert case.store.incr("n", ttl=TTL) == 2
    case.advance(TTL * 0.5)  # 1.1 TTL after creation
    assert case.store.get("n") is None
    assert case.store.incr("n", ttl=TTL) == 1  # a new window


def test_incr_restarts_an_expired_counter_without_a_read(case: StoreCase) -> None:
    case.store.incr("n", ttl=TTL)
    case.store.incr("n", ttl=TTL)
    case.advance(TTL * 1.1)
    assert case.store.incr("n", ttl=TTL) == 1


def test_incr_keeps_no_ttl_on_an_existing_key(case: StoreCase) -> None:
    case.store.set("n", "5")
    assert case.store.incr("n", ttl=TTL) == 6
    case.advance(TTL * 2)
    assert case.store.get("n") == b"6"


@pytest.mark.parametrize(
    ("start", "result"),
    [
        pytest.param(b"0", 1, id="zero"),
        pytest.param(b"-5", -4, id="negative"),
        pytest.param(str(COUNTER_MAX - 1).encode(), COUNTER_MAX, id="up-to-int64-max"),
    ],
)
def test_incr_existing_number(case: StoreCase, start: bytes, result: int) -> None:
    case.store.set("n", start)
    assert case.store.incr("n") == result
    assert case.store.get("n") == str(result).encode()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"abc", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b"1.5", id="float"),
        pytest.param(b"01", id="leading-zero"),
        pytest.param(b"-0", id="minus-zero"),
        pytest.param(b"+1", id="plus-sign"),
        pytest.param(b" 1", id="space"),
        pytest.param(b"1\n", id="newline"),
        pytest.param(str(COUNTER_MAX).encode(), id="would-overflow"),
        pytest.param(b"99999999999999999999", id="beyond-int64"),
    ],
)
def test_incr_refuses_a_non_counter_and_leaves_it(case: StoreCase, value: bytes) -> None:
    case.store.set("n", value)
    with pytest.raises(ValueError):
        case.store.incr("n")
    assert case.store.get("n") == value


# -- argument validation (the same errors from every store) ----------------------------

OPERATIONS: dict[str, Callable[[Store, Any, Any, Any], object]] = {
    "get": lambda s, k, v, t: s.get(k),
    "set": lambda s, k, v, t: s.set(k, v, ttl=t),
    "add": lambda s, k, v, t: s.add(k, v, ttl=t),
    "incr": lambda s, k, v, t: s.incr(k, ttl=t),
    "delete": lambda s, k, v, t: s.delete(k),
}
BAD_KEYS = [
    pytest.param(b"k", TypeError, id="bytes-key"),
    pytest.param(1, TypeError, id="int-key"),
    pytest.param(None, TypeError, id="none-key"),
    pytest.param("", ValueError, id="empty-key"),
    pytest.param("k" * (MAX_KEY_LENGTH + 1), ValueError, id="long-key"),
]
BAD_TTLS = [
    pytest.param(0, ValueError, id="zero"),
    pytest.param(-1, ValueError, id="negative"),
    pytest.param(-0.5, ValueError, id="negative-float"),
    pytest.param(math.nan, ValueError, id="nan"),
    pytest.param(math.inf, ValueError, id="inf"),
    pytest.param("5", TypeError, id="str"),
    pytest.param(True, TypeError, id="bool"),
]


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(("key", "error"), BAD_KEYS)
def test_bad_key(case: StoreCase, operation: str, key: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        OPERATIONS[operation](case.store, key, b"v", None)


@pytest.mark.parametrize("operation", ["set", "add", "incr"])
@pytest.mark.parametrize(("ttl", "error"), BAD_TTLS)
def test_bad_ttl(case: StoreCase, operation: str, ttl: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        OPERATIONS[operation](case.store, "k", b"v", ttl)
    assert case.store.get("k") is None  # nothing was written


@pytest.mark.parametrize("operation", ["set", "add"])
@pytest.mark.parametrize("value", [1, None, bytearray(b"v"), ["v"]], ids=repr)
def test_bad_value(case: StoreCase, operation: str, value: Any) -> None:
    with pytest.raises(TypeError):
        OPERATIONS[operation](case.store, "k", value, None)


def test_longest_key_is_accepted(case: StoreCase) -> None:
    key = "é" * MAX_KEY_LENGTH
    case.store.set(key, "v")
    assert case.store.get(key) == b"v"


# -- concurrency: exact totals ---------------------------------------------------------


def _in_threads(count: int, target: Callable[[], None]) -> None:
    barrier = threading.Barrier(count)

    def run() -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_incr_without_losing_updates(case: StoreCase) -> None:
    def count() -> None:
        for _ in range(200):
            case.store.incr("n", ttl=60)

    _in_threads(8, count)
    assert case.store.get("n") == b"1600"


def test_threads_racing_add_elect_one_winner(case: StoreCase) -> None:
    wins: list[bool] = []
    _in_threads(16, lambda: wins.append(case.store.add("lock", "mine", ttl=60)))
    assert sorted(wins) == [False] * 15 + [True]


# NOTE: fork, so the children use the very store object the parent opened (and
# used) before forking — the situation of gunicorn workers forked from a master.
_fork = multiprocessing.get_context("fork")


def _incr_many(store: Store, barrier: Any, times: int) -> None:
    barrier.wait()
    for _ in range(times):
        store.incr("n", ttl=60)


def _add_once(store: Store, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(store.add("lock", "mine", ttl=60))


def _run_processes(count: int, target: Callable[..., None], *args: Any) -> None:
    barrier = _fork.Barrier(count)
    procs = [
        _fork.Process(target=target, args=(*args[:1], barrier, *args[1:])) for _ in range(count)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0] * count


def test_processes_incr_without_losing_updates(shared_case: StoreCase) -> None:
    store = shared_case.store
    assert store.incr("n", ttl=60) == 1  # the parent's connection exists before the fork
    _run_processes(4, _incr_many, store, 250)
    assert store.get("n") == b"1001"  # and still works after it


def test_processes_racing_add_elect_one_winner(shared_case: StoreCase) -> None:
    results = _fork.SimpleQueue()
    _run_processes(8, _add_once, shared_case.store, results)
    wins = [results.get() for _ in range(8)]
    assert sorted(wins) == [False] * 7 + [True]
    results.close()


# -- SQLiteStore specifics ---------------------------------------------------------------


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    clock = FakeClock()
    with SQLiteStore(tmp_path / "s.db", clock=clock) as store:
        store.set("k", "v")
        store.set("short", "v", ttl=TTL)
        store.incr("n")
    with SQLiteStore(tmp_path / "s.db", clock=clock) as again:
        assert again.get("k") == b"v"
        assert again.incr("n") == 2
        clock.now += TTL * 2
        assert again.get("short") is None  # the expiry survived too


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db"):
        conn = sqlite3.connect(tmp_path / "s.db")
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


def _rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        count: int = conn.execute("SELECT count(*) FROM kv").fetchone()[0]
        return count
    finally:
        conn.close()


def test_sqlite_reclaims_expired_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "s.db"
    with SQLiteStore(path, clock=clock, sweep_every=6) as store:
        store.set("read-later", "v", ttl=TTL)
        for i in range(3):
            store.set(f"never-read-{i}", "v", ttl=TTL)
        clock.now += TTL * 2
        assert _rows(path) == 4
        assert store.get("read-later") is None  # delete-on-read (the 5th write)
        assert _rows(path) == 3
        store.set("live", "v")  # the 6th write sweeps
        assert _rows(path) == 1


def test_memory_reclaims_expired_entries() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock, sweep_every=3)
    store.set("a", "v", ttl=TTL)
    store.set("b", "v", ttl=TTL)
    clock.now += TTL * 2
    store.set("live", "v")  # the 3rd write sweeps
    assert list(store._data) == ["live"]


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("missing-dir/s.db", id="missing-directory"),
        pytest.param("", id="a-directory"),
    ],
)
def test_sqlite_unusable_path_is_a_store_error(tmp_path: Path, where: str) -> None:
    with pytest.raises(StoreError, match="SQLite store"):
        SQLiteStore(tmp_path / where)


def test_sqlite_lock_held_too_long_is_a_store_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, timeout=0.2) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            assert store.get("k") is None  # WAL: reads still work
            started = time.monotonic()
            for write in (lambda: store.set("k", "v"), lambda: store.incr("n")):
                with pytest.raises(StoreError, match="locked"):
                    write()
            assert time.monotonic() - started < 3
            blocker.execute("ROLLBACK")
            store.set("k", "v")  # and it recovers once the lock is released
            assert store.get("k") == b"v"
        finally:
            blocker.close()


def test_sqlite_file_removed_at_runtime_is_a_store_error(tmp_path: Path) -> None:
    """Not writes into a deleted file that nobody reads again, nor a new empty file."""
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.set("k", "v")
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            (tmp_path / name).unlink()
        for operation in (lambda: store.get("k"), lambda: store.set("k", "v")):
            with pytest.raises(StoreError, match="gone"):
                operation()
        assert not path.exists()


def test_sqlite_file_replaced_at_runtime_is_used(tmp_path: Path) -> None:
    """A restored backup (another file at the same path) is what the store reads from then on."""
    path = tmp_path / "s.db"
    with SQLiteStore(tmp_path / "backup.db") as backup:
        backup.set("k", "from the backup")
    with SQLiteStore(path) as store:
        store.set("k", "v")
        for name in ("s.db-wal", "s.db-shm"):  # the old file's log goes with it
            (tmp_path / name).unlink()
        os.replace(tmp_path / "backup.db", path)
        assert store.get("k") == b"from the backup"


def test_sqlite_read_only_file_is_a_store_error_for_writes(tmp_path: Path) -> None:
    """Every write, incr's RETURNING included (it fails only when its row is fetched).

    Once the file is writable again, the store recovers, in a thread whose
    first connection was opened during the fault too (SQLite opens such a
    connection read-only for good; the store replaces it after an error).
    """
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store, ThreadPoolExecutor(1) as late_thread:
        store.set("k", "v")
        with read_only(path, tmp_path / "s.db-wal"):
            assert store.get("k") == b"v"
            for write in (lambda: store.set("k", "w"), lambda: store.incr("n")):
                with pytest.raises(StoreError):
                    write()
            with pytest.raises(StoreError):
                late_thread.submit(store.set, "late", "v").result()
        store.set("k", "w")
        late_thread.submit(store.set, "late", "v").result()
        assert (store.get("k"), store.get("late")) == (b"w", b"v")


def test_sqlite_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "s.db", timeout=0)
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "s.db", sweep_every=0)
    with pytest.raises(ValueError):
        MemoryStore(sweep_every=0)


def _report_connection(store: SQLiteStore, barrier: Any, ids: Any) -> None:
    ids.put(id(store._conn()))


def _open_store(path: Path, barrier: Any, results: Any) -> None:
    barrier.wait()  # every process builds its store at the same moment, as workers do
    try:
        with SQLiteStore(path) as store:
            store.set("k", "v")
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def test_sqlite_processes_set_up_a_fresh_file_together(tmp_path: Path) -> None:
    """Two workers starting at once on a new file: the switch to WAL must not fail in either.

    Without setup_database's lock about 1 pair in 16 fails ("database is locked").
    """
    results = _fork.SimpleQueue()
    for trial in range(20):
        _run_processes(2, _open_store, tmp_path / f"s{trial}.db", results)
        assert [results.get(), results.get()] == ["ok", "ok"]
    results.close()


def test_sqlite_reconnects_after_fork(tmp_path: Path) -> None:
    """An SQLite connection must never cross fork(): the child opens its own."""
    with SQLiteStore(tmp_path / "s.db") as store:
        parent = id(store._conn())  # the parent's connection exists before the fork
        ids = _fork.SimpleQueue()
        _run_processes(1, _report_connection, store, ids)
        assert ids.get() != parent == id(store._conn())
        ids.close()


# -- RedisStore specifics ----------------------------------------------------------------
#
# Against the session's real redis-server (tests/redis_server.py). Outage tests stop it
# with `outage()` or hang it with `paused()` (SIGSTOP), both of which restore it.

REDIS_TIMEOUT = 0.25  # seconds: the store's connect and reply timeout in these tests
# A failure must come within the timeout, not after seconds or never (redis-py's default
# is no timeout at all). Generous: a loaded CI machine adds its own delays to the
# timeout. That no operation is retried is counted, not timed (the hung-server test).
FAIL_FAST = 2.0


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the same database, to look at what the store wrote."""
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisStore]:
    with RedisStore(redis_url, prefix="app:", timeout=REDIS_TIMEOUT) as store:
        yield store


def test_redis_incr_with_ttl_keeps_a_live_counters_expiry(
    redis_store: RedisStore, raw_redis: redis.Redis
) -> None:
    """The Lua incr: SET NX PX only creates; INCR keeps the TTL (a fixed window)."""
    assert redis_store.incr("n", ttl=10) == 1
    assert 9_000 < raw_redis.pttl("app:n") <= 10_000
    assert redis_store.incr("n", ttl=100) == 2  # not pushed back to 100 s
    assert 9_000 < raw_redis.pttl("app:n") <= 10_000
    assert redis_store.incr("plain") == 1
    assert raw_redis.pttl("app:plain") == -1  # no ttl: none set
    redis_store.set("kept", "5")
    assert redis_store.incr("kept", ttl=10) == 6
    assert raw_redis.pttl("app:kept") == -1  # a live key without expiry gets none


@pytest.mark.parametrize(
    ("ttl", "px"),
    [
        pytest.param(1e-9, 1, id="tiny-is-1ms-not-PX-0"),
        pytest.param(0.0015, 2, id="rounded-up"),
        pytest.param(2, 2000, id="int-seconds"),
        pytest.param(1e300, 10**15, id="huge-is-capped"),
    ],
)
def test_redis_ttl_is_whole_milliseconds_rounded_up(
    redis_store: RedisStore, raw_redis: redis.Redis, ttl: float, px: int
) -> None:
    assert redis_store._px(ttl) == px
    redis_store.set("k", "v", ttl=ttl)  # Redis refuses PX 0 and PX beyond its range
    assert raw_redis.pttl("app:k") <= px


def test_redis_prefixes_isolate_stores_sharing_a_database(
    redis_url: str, raw_redis: redis.Redis
) -> None:
    with (
        RedisStore(redis_url, prefix="a:") as a,
        RedisStore(redis_url, prefix="b:") as b,
        RedisStore(redis_url) as bare,
    ):
        a.set("k", "from a")
        b.set("k", "from b")
        assert (a.incr("n"), a.incr("n"), b.incr("n")) == (1, 2, 1)
        assert (a.get("k"), b.get("k"), bare.get("k")) == (b"from a", b"from b", None)
        assert bare.get("a:k") == b"from a"  # the prefix is just the front of the key
        a.delete("k")
        assert (a.get("k"), b.get("k")) == (None, b"from b")
        assert sorted(raw_redis.keys()) == [b"a:n", b"b:k", b"b:n"]


def test_redis_stopped_is_a_store_error_then_recovers(
    redis_server: RedisServer, redis_store: RedisStore
) -> None:
    redis_store.set("k", "v")  # a connection is pooled before the outage
    with redis_server.outage():
        for name, operation in OPERATIONS.items():
            started = time.monotonic()
            with pytest.raises(StoreError, match=re.escape(f"127.0.0.1:{redis_server.port}")):
                operation(redis_store, "k", b"v", 10)
            assert time.monotonic() - started < FAIL_FAST, name
    # Back (empty: no persistence). The very first operation works: no retry is
    # configured, the pool replaces the connection the restart closed.
    assert redis_store.get("k") is None
    assert redis_store.incr("n", ttl=10) == 1  # and the forgotten script is reloaded


def test_redis_restart_while_idle_does_not_fail_the_next_operation(
    redis_server: RedisServer, redis_store: RedisStore
) -> None:
    """What a worker sees after Redis restarted between two requests."""
    assert redis_store.incr("n", ttl=10) == 1  # a pooled connection, the script loaded
    redis_server.stop()
    redis_server.start()
    assert redis_store.incr("n", ttl=10) == 1  # no StoreError: recovered at once
    assert redis_store.add("k", "v") is True


def _connections_received(server: RedisServer) -> int:
    """How many connections the server has accepted, this one included.

    On a new connection: the server accepts in order, so every connection
    made before this one (those queued while it was paused) is counted.
    """
    with server.client() as client:
        count: int = client.info("stats")["total_connections_received"]
        return count


def test_redis_hung_server_is_a_store_error_within_the_timeout(
    redis_server: RedisServer, redis_store: RedisStore
) -> None:
    """SIGSTOP: the kernel still accepts connections, but no reply ever comes.

    Each operation fails once the timeout has passed, and is not retried: a
    retry would reconnect, and the server, once resumed, counts at most one
    connection per operation (the pooled store's first one reuses its own).
    """
    redis_store.set("k", "v")
    before = _connections_received(redis_server)
    with redis_server.paused():
        fresh = RedisStore(redis_server.url, timeout=REDIS_TIMEOUT)  # must connect now
        for store in (redis_store, fresh):
            for name, operation in OPERATIONS.items():
                started = time.monotonic()
                with pytest.raises(StoreError, match=r"[Tt]imeout"):
                    # NOTE: another key: a timed-out write may still be applied on resume.
                    operation(store, "other", b"v", 10)
                elapsed = time.monotonic() - started
                assert REDIS_TIMEOUT * 0.9 < elapsed < FAIL_FAST, name
        fresh.close()
    attempts = _connections_received(redis_server) - before - 1
    assert attempts <= 2 * len(OPERATIONS), f"{attempts} connections: retried"
    assert redis_store.get("k") == b"v"  # answers again once resumed


def test_redis_nothing_listening_is_a_store_error() -> None:
    with RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=REDIS_TIMEOUT) as store:
        for name, operation in OPERATIONS.items():
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"[Cc]onnect"):
                operation(store, "k", b"v", 10)
            assert time.monotonic() - started < FAIL_FAST, name


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"url": "http://127.0.0.1:6379/0"}, ValueError, id="scheme"),
        pytest.param({"url": "redis://127.0.0.1:port/0"}, ValueError, id="port"),
        pytest.param({"url": "redis://127.0.0.1:6379/zero"}, ValueError, id="db"),
        pytest.param({"url": ""}, ValueError, id="empty-url"),
        pytest.param({"url": None}, TypeError, id="url-none"),
        pytest.param({"timeout": 0}, ValueError, id="timeout-zero"),
        pytest.param({"timeout": math.inf}, ValueError, id="timeout-inf"),
        pytest.param({"timeout": "1"}, TypeError, id="timeout-str"),
        pytest.param({"prefix": b"p:"}, TypeError, id="prefix-bytes"),
    ],
)
def test_redis_bad_options_are_refused_at_construction(
    options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        RedisStore(**options)


def test_redis_a_given_client_is_used_and_left_open(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        store = RedisStore(client=client, prefix="p:")
        store.set("k", "v")
        store.close()
        assert client.get("p:k") == b"v"  # the caller's client still works
    with (
        redis.Redis.from_url(redis_url, decode_responses=True) as text_client,
        pytest.raises(ValueError, match="decode_responses"),
    ):
        RedisStore(client=text_client)


def _use_after_fork(store: RedisStore, barrier: Any, results: Any) -> None:
    results.put((os.getpid(), store.get("k"), store.incr("n"), store.client.client_id()))


def test_redis_works_after_fork(redis_store: RedisStore) -> None:
    """A gunicorn worker uses the store its master created: redis-py's pool resets on a new pid."""
    redis_store.set("k", "parent")
    parent_connection = redis_store.client.client_id()
    results = _fork.SimpleQueue()
    _run_processes(2, _use_after_fork, redis_store, results)
    children = [results.get() for _ in range(2)]
    results.close()
    assert {(value, count > 0) for _, value, count, _ in children} == {(b"parent", True)}
    assert sorted(count for _, _, count, _ in children) == [1, 2]
    # Each child opened its own connection, and left the parent's alone (not shut down).
    assert parent_connection not in {connection for *_, connection in children}
    assert redis_store.client.client_id() == parent_connection
    assert redis_store.incr("n") == 3


def test_repr_names_the_store_but_never_a_password(tmp_path: Path) -> None:
    """`microweb routes` prints the stack with each layer's store: where, never a secret."""
    from microweb.stores import RedisStore

    assert repr(SQLiteStore(tmp_path / "s.db")) == f"SQLiteStore({str(tmp_path / 's.db')!r})"
    store = RedisStore("redis://user:s3cret@127.0.0.1:6399/2", prefix="app:")
    assert repr(store) == "RedisStore('127.0.0.1:6399', prefix='app:')"
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    "value",
    [pytest.param("yes", id="str"), pytest.param(1, id="int"), pytest.param(None, id="none")],
)
def test_fail_open_is_true_or_false_and_the_error_names_its_owner(value: Any) -> None:
    with pytest.raises(ValueError, match=r"^Owner\(fail_open=\.\.\.\) is True or False"):
        fail_open_flag("Owner", value)
    assert fail_open_flag("Owner", True) is True
    assert fail_open_flag("Owner", False) is False
