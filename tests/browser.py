"""A real browser for end-to-end tests: Debian's headless `chromium`.

`ensure_chromium()` returns the path of ``/usr/bin/chromium``, installing
the package with ``apt-get`` first when it is missing (CI runs the suite as
root on Debian). An install that fails *fails the test* with apt's output:
a browser test that silently skips proves nothing.

`dump_dom(url)` loads one page and returns its DOM as the page's scripts
left it. It uses Chromium's own one-shot mode::

    chromium --headless --virtual-time-budget=10000 --dump-dom URL

With ``--virtual-time-budget``, the page runs on *virtual* time that only
advances while no network fetch is pending, and the DOM is dumped when the
budget is spent. So a page that awaits a chain of ``fetch()`` calls (and
their CORS preflights) finishes before the dump, with no sleep in the test.
Pages should still write a "done" marker with their results, so that a
page that did not finish is told apart from a page that found nothing
(``tests/test_cors_browser.py`` checks for one).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from debian import ensure_installed

CHROMIUM = Path("/usr/bin/chromium")
PAGE_TIMEOUT = 60.0  # seconds: chromium start, page load, every fetch, the dump


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed with apt-get when missing (fails the test otherwise)."""
    return ensure_installed(CHROMIUM, "chromium")


def dump_dom(url: str, profile: Path, budget_ms: int = 10_000) -> str:
    """The DOM of `url` once its scripts have run (see the module docs)."""
    command = [
        str(ensure_chromium()),
        "--headless",
        # NOTE: Chromium's sandbox needs user namespaces, which containers
        # (and root in CI) usually do not have. The page is our own.
        "--no-sandbox",
        "--disable-gpu",
        # /dev/shm is 64 MB in a default container; Chromium's renderer can run out.
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"chromium did not finish {url} in {PAGE_TIMEOUT}s: {exc.stderr!r}")
    if result.returncode != 0 or not result.stdout.strip():
        pytest.fail(
            f"chromium exited {result.returncode} on {url}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}",
            pytrace=False,
        )
    return result.stdout
