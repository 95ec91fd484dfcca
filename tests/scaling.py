"""How the cost of some work grows with its input: the check behind "no quadratic time" tests.

A wall-clock bound ("10,000 parts in under 0.5 s") is the wrong instrument:
on a loaded machine (two cores shared by several test runs) a linear parser
blows it, and on a fast one a quadratic parser can pass it. `assert_linear`
compares the work with itself instead:

- the same operation on an input `FACTOR` times bigger: linear work costs
  about `FACTOR` times more, quadratic work about `FACTOR` squared (100x);
- timed on this thread's CPU clock (`time.thread_time`): time spent waiting
  for a core that another process holds is not counted, so the ratio does
  not move with the machine's load;
- the best of `REPEATS` runs of each size, which drops a run slowed by a
  cache that another process flushed; the garbage collector is off while a
  run is timed (a collection costs what the whole process holds, not the work);
- a run under `FLOOR` counts as `FLOOR`: at that scale the clock measures a
  page fault, not the work (a quadratic parser takes tens of milliseconds on
  the bigger inputs these tests give it).

The work is given as ``prepare(size)``, which builds the input (not timed)
and returns the call to time; it is called afresh for every run, so an
input that is consumed (a stream) is new each time.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FACTOR = 10
#: The most a 10x bigger input may cost, relative. The linear parsers measure 7.5-11.3x
#: (alone, and beside two CPU-bound processes on two cores); deliberately quadratic
#: versions of them (a tokenizer that slices the rest of an If-None-Match list, a
#: duplicate-name check by MultiDict's `in`, a rescan of the whole file part at every
#: chunk) 28-72x.
LIMIT = 20
REPEATS = 3
FLOOR = 0.0002  # seconds


def cpu_seconds(prepare: Callable[[int], Callable[[], T]], size: int) -> tuple[float, T]:
    """This thread's CPU time for the work at `size` (the best of `REPEATS` runs), and
    what the last run returned."""
    best = math.inf
    for _ in range(REPEATS):
        work = prepare(size)
        gc.disable()
        try:
            started = time.thread_time()
            result = work()
            best = min(best, time.thread_time() - started)
        finally:
            gc.enable()
    return max(best, FLOOR), result


def assert_linear(prepare: Callable[[int], Callable[[], T]], size: int) -> T:
    """The work at `size` * `FACTOR` costs at most `LIMIT` times the work at `size`.

    Returns what the work at the bigger size returned, for the test's other checks.
    """
    small, _ = cpu_seconds(prepare, size)
    big, result = cpu_seconds(prepare, size * FACTOR)
    ratio = big / small
    assert ratio < LIMIT, (
        f"{FACTOR}x the input cost {ratio:.0f}x the CPU time ({small * 1e3:.1f} ms at "
        f"{size}, {big * 1e3:.1f} ms at {size * FACTOR}): not linear"
    )
    return result
