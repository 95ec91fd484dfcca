"""`microweb dev` (microweb/devserver.py) under real gunicorn: reload, logs, debug page.

Each test serves a small module from a temporary directory, as a user's
project would be, through ``python -m microweb dev`` (the CLI, then gunicorn
by exec). Waits are polls with a bounded deadline, never sleeps.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import REPO_ROOT, TIMEOUT, fetch

from microweb.devserver import banner

pytestmark = pytest.mark.e2e

DEADLINE = 30.0  # seconds for a reload or a log line to show up on a busy machine
SOURCE = '''\
import logging

from microweb import App

app = App()
log = logging.getLogger(__name__)


@app.get("/")
def index(req):
    log.info("index served")
    return "VERSION"


@app.get("/crash")
def crash(req):
    raise RuntimeError("boom")
'''
# gunicorn's own format: [2026-12-05 07:45:34 +0000] [27644] [INFO] ...
STAMP = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\]"


def poll(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {DEADLINE}s")
        time.sleep(0.1)  # between polls, not a synchronisation


@contextmanager
def microweb(command: str, project: Path, module: str) -> Iterator[tuple[str, Path]]:
    """`microweb COMMAND module:app` serving from `project`; (its URL, its log)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    log = project / f"{command}.log"
    # NOTE: PYTHONPATH: this checkout's microweb, as the tests import it.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("GUNICORN_CMD_ARGS", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "microweb", command, f"{module}:app",
             "--bind", f"fd://{listener.fileno()}", "--graceful-timeout", "1"],
            cwd=project, env=env, pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    listener.close()
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    module = f"devapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(SOURCE.replace("VERSION", "first"))
    return tmp_path, module


def save_until(path: Path, source: str, served: Callable[[], bool], what: str) -> None:
    """Save `source` to `path`, then poll until `served()` says the server runs it."""
    path.write_text(source)
    edited = time.time()

    def reloaded() -> bool:
        # NOTE: gunicorn's polling reloader remembers a file's mtime the first
        # time it sees it, which may be after our edit; moving the mtime on
        # (as a second save would) makes the change visible whenever it looks.
        nonlocal edited
        edited += 1
        os.utime(path, (edited, edited))
        try:
            return served()
        except ConnectionResetError:  # a worker that was replaced mid-request
            return False

    poll(reloaded, what)


def test_an_edited_module_is_served_by_the_next_worker(project: tuple[Path, str]) -> None:
    directory, module = project
    path = directory / f"{module}.py"
    with microweb("dev", directory, module) as (url, log):
        assert fetch(url, "GET", "/").body == b"first"
        save_until(path, SOURCE.replace("VERSION", "second"),
                   lambda: fetch(url, "GET", "/").body == b"second", "reload")  # fmt: skip
        assert "Worker reloading" in log.read_text()


def test_an_import_error_is_served_as_the_debug_page_until_it_is_fixed(
    project: tuple[Path, str],
) -> None:
    """gunicorn alone stops for good when a reloaded module raises at import."""
    directory, module = project
    path = directory / f"{module}.py"
    broken = SOURCE.replace("app = App()", "app = App()\nundefined_name")

    def failing() -> bool:
        reply = fetch(url, "GET", "/", headers={"Accept": "application/json"})
        return reply.status == 500

    with microweb("dev", directory, module) as (url, log):
        assert fetch(url, "GET", "/").body == b"first"  # started (the CLI checks the import)
        save_until(path, broken, failing, "the import error")
        problem = fetch(url, "GET", "/", headers={"Accept": "application/json"}).json()
        assert problem["exception"] == "NameError: name 'undefined_name' is not defined"
        assert problem["traceback"][-1]["code"] == "undefined_name"
        save_until(path, SOURCE.replace("VERSION", "fixed"),
                   lambda: fetch(url, "GET", "/").body == b"fixed", "the fix")  # fmt: skip
    assert f"[ERROR] microweb: importing {module}:app failed" in log.read_text()


def test_app_logs_warnings_and_500s_have_a_timestamp_and_a_level(
    project: tuple[Path, str],
) -> None:
    directory, module = project
    with microweb("dev", directory, module) as (url, log):
        assert fetch(url, "GET", "/").status == 200
        crash = fetch(url, "GET", "/crash", headers={"Accept": "application/json"})
        poll(lambda: "RuntimeError: boom" in log.read_text(), "traceback in the log")
    text = log.read_text()
    assert re.search(rf"^{STAMP} \[INFO\] {module}: index served$", text, re.M), text
    error = rf"^{STAMP} \[ERROR\] microweb: unhandled exception in GET /crash: RuntimeError: boom$"
    assert re.search(error, text, re.M)
    # the debug page, with no change to the app's code
    assert crash.status == 500
    problem = crash.json()
    assert problem["exception"] == "RuntimeError: boom"
    assert problem["traceback"][-1] == {
        "file": f"{module}.py", "line": 17, "function": "crash",
        "code": 'raise RuntimeError("boom")',
    }  # fmt: skip
    # the banner, before gunicorn's first line
    assert text.index("development mode: do not expose") < text.index("Starting gunicorn")
    assert "routes      2 " in text


def test_microweb_run_never_shows_the_debug_page(project: tuple[Path, str]) -> None:
    directory, module = project
    with microweb("run", directory, module) as (url, _):
        crash = fetch(url, "GET", "/crash", headers={"Accept": "application/json"})
    assert crash.status == 500
    assert crash.json() == {"type": "about:blank", "title": "Internal Server Error", "status": 500}


def test_the_banner_fits_a_screen() -> None:
    from microweb import App

    text = banner("notes:app", App(), ["127.0.0.1:8000"])
    assert len(text.splitlines()) <= 10 and max(map(len, text.splitlines())) <= 80
    assert "http://127.0.0.1:8000" in text and "routes      0" in text
    assert "app logs at INFO" in text
    assert "app logs at your config" in banner("notes:app", App(), ["127.0.0.1:8000"], level=None)
    assert "https://0.0.0.0:8443 (every interface!)" in banner(
        "notes:app", App(), ["0.0.0.0:8443"], tls=True
    )
