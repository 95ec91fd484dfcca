"""`microweb dev` (microweb/devserver.py) under real gunicorn: reload, logs, debug page.

Each test serves a small module from a temporary directory, as a user's
project would be, through ``python -m microweb dev`` (the CLI, then gunicorn
by exec). A request is sent once a worker has loaded the module: the first
one after worker_ready's signal, and after a save, once the worker started
for the change is ready. Only the log line is polled, with a bounded
deadline; nothing sleeps as a synchronisation.
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
from worker_ready import ReadyListener

from microweb.cli import WORKERS
from microweb.devserver import banner

pytestmark = pytest.mark.e2e

DEADLINE = 30.0  # seconds for a reload or a log line to show up on a busy machine
# gunicorn's polling reloader looks once a second; then a new worker boots.
RELOAD_WAIT = 10.0  # seconds before saving again (see `save`)
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
def microweb(
    command: str, project: Path, module: str
) -> Iterator[tuple[str, Path, ReadyListener]]:
    """`microweb COMMAND module:app` serving from `project`, its workers ready;
    (its URL, its log, the listener that hears of each new worker)."""
    ready = ReadyListener()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    log = project / f"{command}.log"
    # NOTE: PYTHONPATH: this checkout's microweb, as the tests import it.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **ready.env}
    env.pop("GUNICORN_CMD_ARGS", None)
    env.pop("WEB_CONCURRENCY", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "microweb", command, f"{module}:app",
             "--bind", f"fd://{listener.fileno()}", "--graceful-timeout", "1", *ready.args],
            cwd=project, env=env, pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    listener.close()
    try:
        workers = 1 if command == "dev" else int(WORKERS)
        assert len(ready.wait(workers, process)) == workers, log.read_text()
        yield f"http://127.0.0.1:{port}", log, ready
    finally:
        ready.close()
        process.terminate()
        process.wait(timeout=TIMEOUT)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    module = f"devapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(SOURCE.replace("VERSION", "first"))
    return tmp_path, module


def save(path: Path, source: str, ready: ReadyListener) -> None:
    """Save `source` to `path`; return once the worker started for the change is ready."""
    path.write_text(source)
    edited = time.time()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        # NOTE: gunicorn's polling reloader remembers a file's mtime the first
        # time it sees it, which may be after our edit; moving the mtime on
        # (as a second save would) makes the change visible whenever it looks.
        edited += 1
        os.utime(path, (edited, edited))
        try:
            ready.wait(1, timeout=RELOAD_WAIT)
            return
        except TimeoutError:
            continue  # the reloader had not seen the file before the edit: save again
    raise AssertionError(f"no reload within {DEADLINE}s")


def test_an_edited_module_is_served_by_the_next_worker(project: tuple[Path, str]) -> None:
    directory, module = project
    path = directory / f"{module}.py"
    with microweb("dev", directory, module) as (url, log, ready):
        assert fetch(url, "GET", "/").body == b"first"
        save(path, SOURCE.replace("VERSION", "second"), ready)
        assert fetch(url, "GET", "/").body == b"second"
        assert "Worker reloading" in log.read_text()


def test_an_import_error_is_served_as_the_debug_page_until_it_is_fixed(
    project: tuple[Path, str],
) -> None:
    """gunicorn alone stops for good when a reloaded module raises at import."""
    directory, module = project
    path = directory / f"{module}.py"
    broken = SOURCE.replace("app = App()", "app = App()\nundefined_name")
    with microweb("dev", directory, module) as (url, log, ready):
        assert fetch(url, "GET", "/").body == b"first"  # started (the CLI checks the import)
        save(path, broken, ready)
        reply = fetch(url, "GET", "/", headers={"Accept": "application/json"})
        assert reply.status == 500
        problem = reply.json()
        assert problem["exception"] == "NameError: name 'undefined_name' is not defined"
        assert problem["traceback"][-1]["code"] == "undefined_name"
        save(path, SOURCE.replace("VERSION", "fixed"), ready)
        assert fetch(url, "GET", "/").body == b"fixed"
    assert f"[ERROR] microweb: importing {module}:app failed" in log.read_text()


def test_app_logs_warnings_and_500s_have_a_timestamp_and_a_level(
    project: tuple[Path, str],
) -> None:
    directory, module = project
    with microweb("dev", directory, module) as (url, log, _):
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
    with microweb("run", directory, module) as (url, _, _):
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


def test_the_banner_of_a_plain_wsgi_app_says_debug_is_off() -> None:
    """`load` turns debug on in a microweb App only; a Flask app has no debug page, no routes."""
    from middleware_apps import flask_app

    text = banner("legacy:app", flask_app(), ["127.0.0.1:8000"])
    assert max(map(len, text.splitlines())) <= 80
    assert "  debug       off: not a microweb App, so no debug page; app logs at INFO" in text
    assert "debug       on" not in text and "routes" not in text and "middleware" not in text


FLASK_SOURCE = """\
import flask

app = flask.Flask(__name__)


@app.get("/crash")
def crash():
    raise RuntimeError("boom")
"""


def test_a_plain_wsgi_app_is_served_without_the_debug_page(tmp_path: Path) -> None:
    """What the banner says of a Flask app is what a 500 shows: its own page, no traceback."""
    module = f"flaskapp_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(FLASK_SOURCE)
    with microweb("dev", tmp_path, module) as (url, log, _):
        crash = fetch(url, "GET", "/crash", headers={"Accept": "application/json"})
    assert crash.status == 500
    assert b"boom" not in crash.body and "json" not in crash.headers.get("Content-Type", "")
    text = log.read_text()
    assert "debug       off: not a microweb App" in text
    assert f"{module}:app is not a microweb App: no debug page" in text
