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

Virtual time does not wait for a WebSocket: a message that arrives after
the page has loaded may come after the dump (a reply sent 0.3 s late was
missing from it). `dom_when(url, profile, done)` waits for an event instead:
it drives Chromium through the DevTools protocol (``--remote-debugging-port``,
spoken over a WebSocket), loads the page, and returns its DOM once the
JavaScript expression `done` holds, checked at every change of the DOM.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_installed
from websockets.sync.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
PAGE_TIMEOUT = 60.0  # seconds: chromium start, page load, every fetch, the dump


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed with apt-get when missing (fails the test otherwise)."""
    return ensure_installed(CHROMIUM, "chromium")


def headless(profile: Path) -> list[str]:
    return [
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
    ]


def dump_dom(url: str, profile: Path, budget_ms: int = 10_000) -> str:
    """The DOM of `url` once its scripts have run (see the module docs)."""
    command = [
        *headless(profile),
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


# Resolves with the DOM once DONE holds: checked now, then at every change of the DOM.
WHEN = """new Promise((resolve) => {
  const check = () => {
    if (!(DONE)) return false;
    observer.disconnect();
    resolve(document.documentElement.outerHTML);
    return true;
  };
  const observer = new MutationObserver(check);
  if (!check()) observer.observe(document, {subtree: true, childList: true, characterData: true});
})"""


class DevTools:
    """Chromium's DevTools protocol: commands answered by id, events by name, in one session."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.seen: list[dict[str, Any]] = []  # every message, so an early event is not lost
        self.session: str | None = None

    def call(self, method: str, what: str = "", **params: Any) -> dict[str, Any]:
        """`method`'s result; `what` names it in the failure message when no answer comes."""
        command = {"id": next(self.ids), "method": method, "params": params}
        if self.session is not None:
            command["sessionId"] = self.session
        self.ws.send(json.dumps(command))
        reply = self.wait(lambda message: message.get("id") == command["id"], what or method)
        if "error" in reply:
            pytest.fail(f"chromium: {method} failed: {reply['error']}", pytrace=False)
        result: dict[str, Any] = reply["result"]
        return result

    def wait(self, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first message, seen or to come, for which `wanted(message)` is true."""
        index = 0
        while True:
            if index == len(self.seen):
                try:
                    self.seen.append(json.loads(self.ws.recv(timeout=PAGE_TIMEOUT)))
                except TimeoutError:
                    pytest.fail(f"chromium: no {what} within {PAGE_TIMEOUT}s", pytrace=False)
            if wanted(self.seen[index]):
                return self.seen[index]
            index += 1


def dom_when(url: str, profile: Path, done: str) -> str:
    """The DOM of `url` once the JavaScript expression `done` is true (see the module docs)."""
    command = [*headless(profile), "--remote-debugging-port=0", "about:blank"]
    with subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        # A failure bound: a chromium that never says where it listens is killed
        # (from then on, each wait for a DevTools message has its own bound).
        guard = threading.Timer(PAGE_TIMEOUT, process.kill)
        guard.start()
        # NOTE: stderr is read to its end (after the line we need, by a thread),
        # so a chatty chromium never blocks on a full pipe.
        drain = threading.Thread(target=process.stderr.read)
        try:
            for line in process.stderr:
                if line.startswith("DevTools listening on "):
                    break
            else:
                pytest.fail(f"chromium exited {process.wait()} before listening", pytrace=False)
            guard.cancel()
            drain.start()
            return dom_of(line.removeprefix("DevTools listening on ").strip(), url, done)
        finally:
            guard.cancel()
            process.kill()
            if drain.is_alive():
                drain.join()


def dom_of(endpoint: str, url: str, done: str) -> str:
    """Through chromium's DevTools `endpoint`: load `url` in a new tab, wait for `done`."""
    with connect(endpoint, max_size=None, open_timeout=PAGE_TIMEOUT) as ws:
        devtools = DevTools(ws)
        target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
        attached = devtools.call("Target.attachToTarget", targetId=target, flatten=True)
        devtools.session = attached["sessionId"]
        devtools.call("Page.enable")
        devtools.call("Page.navigate", url=url)
        devtools.wait(lambda message: message.get("method") == "Page.loadEventFired", "load")
        expression = WHEN.replace("DONE", done)
        value = devtools.call(
            "Runtime.evaluate", f"DOM where {done}",
            expression=expression, awaitPromise=True, returnByValue=True,
        )  # fmt: skip
        dom: str = value["result"]["value"]
        return dom
