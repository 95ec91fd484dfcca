"""The store interface (microweb.stores): the same tests run against every store.

`STORES` maps a name to a factory; the `store` fixture is parametrized over
it, so each behaviour test runs once per store. A new store (the Redis store
of issue 6) joins by adding a factory here — and to `SHARED` when it is shared
across processes, which puts it in the multi-process race tests too.

Time never sleeps: stores take a `FakeClock`, and tests move it with
`StoreCase.advance`. A store whose expiry runs on a server's clock (Redis) can
make its `advance` really sleep; that is why TTLs here are a fraction of a second.
"""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from microweb.stores import MAX_KEY_LENGTH, MemoryStore, SQLiteStore, Store, StoreError
from microweb.stores.base import COUNTER_MAX

TTL = 0.25  # seconds; small so that a real-clock store's tests stay fast


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


def _memory(tmp_path: Path, clock: FakeClock) -> Store:
    return MemoryStore(clock=clock)


def _sqlite(tmp_path: Path, clock: FakeClock) -> Store:
    return SQLiteStore(tmp_path / "store.db", clock=clock)


def _sqlite_without_returning(tmp_path: Path, clock: FakeClock) -> Store:
    """The fallback for SQLite < 3.35 (no RETURNING): incr inside BEGIN IMMEDIATE."""
    store = SQLiteStore(tmp_path / "store.db", clock=clock)
    store.use_returning = False
    return store


STORES: dict[str, Callable[[Path, FakeClock], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "sqlite-no-returning": _sqlite_without_returning,
}
SHARED = ["sqlite", "sqlite-no-returning"]  # stores that several processes share


def _case(name: str, tmp_path: Path) -> Iterator[StoreCase]:
    clock = FakeClock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    store = STORES[name](tmp_path, clock)
    try:
        yield StoreCase(store, advance, name)
    finally:
        store.close()


@pytest.fixture(params=list(STORES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    yield from _case(request.param, tmp_path)


@pytest.fixture(params=SHARED)
def shared_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    yield from _case(request.param, tmp_path)


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
    case.store.set("k", "v", ttl=1)
    case.advance(0.9)
    assert case.store.get("k") == b"v"
    case.advance(0.2)
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


def test_sqlite_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "s.db", timeout=0)
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "s.db", sweep_every=0)
    with pytest.raises(ValueError):
        MemoryStore(sweep_every=0)


def _report_connection(store: SQLiteStore, barrier: Any, ids: Any) -> None:
    ids.put(id(store._conn()))


def test_sqlite_reconnects_after_fork(tmp_path: Path) -> None:
    """An SQLite connection must never cross fork(): the child opens its own."""
    with SQLiteStore(tmp_path / "s.db") as store:
        ids = _fork.SimpleQueue()
        _run_processes(1, _report_connection, store, ids)
        assert ids.get() != id(store._conn())
        ids.close()
