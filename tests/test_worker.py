"""The app's logs under ``microweb run`` (microweb/worker.py), through real gunicorn.

Each row serves a small app from a temporary directory with ``microweb
run`` (one worker), asks it for a page that logs an INFO and a WARNING
record then raises (a 500), stops it, and reads what the operator would
read: the server's stderr.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from microweb_run import microweb_run
from servers import fetch

pytestmark = pytest.mark.e2e

APP = '''\
import logging
from microweb import App
CONFIGURE
app = App()


@app.get("/x")
def crash(req):
    logging.getLogger("logapp").info("an info line")
    logging.getLogger("logapp").warning("a warning line")
    raise RuntimeError("boom")
'''
# gunicorn's own format: [2026-12-05 07:45:34 +0000] [27644] [LEVEL] ...
STAMP = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] "
ERROR = STAMP + r"\[ERROR\] microweb: unhandled exception in GET /x: RuntimeError: boom$"
TRACEBACK = r"\nTraceback \(most recent call last\):\n(  .*\n)+RuntimeError: boom$"
WARNING = STAMP + r"\[WARNING\] logapp: a warning line$"
INFO = STAMP + r"\[INFO\] logapp: an info line$"
# An app's own logging config, in a format of its own.
BASIC_CONFIG = 'logging.basicConfig(format="app-format %(levelname)s %(name)s: %(message)s")'
JSON_CONFIG = {
    "version": 1,
    "formatters": {"mine": {"format": "json-config %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "mine"}},
    "loggers": {"logapp": {"handlers": ["err"], "level": "INFO"}},
    "root": {"level": "WARNING", "handlers": []},  # so only the explicit check leaves it alone
}


@pytest.mark.parametrize(
    ("configure", "args", "shown", "hidden"),
    [
        pytest.param(
            "", (), [ERROR + TRACEBACK, WARNING], ["an info line"], id="defaults-warning-and-up"
        ),
        pytest.param("", ("--log-level", "info"), [ERROR, WARNING, INFO], [], id="log-level-info"),
        pytest.param(
            "", ("--log-level", "error"), [ERROR], ["a warning line"], id="log-level-error"
        ),
        pytest.param(
            BASIC_CONFIG, (),
            ["^app-format WARNING logapp: a warning line$",
             "^app-format ERROR microweb: unhandled exception in GET /x: RuntimeError: boom$"],
            [WARNING, ERROR], id="app-configured-logging-itself",
        ),
        pytest.param(
            "", ("--log-config-json", "LOG_CONFIG"),
            ["^json-config WARNING logapp: a warning line$",
             "^json-config INFO logapp: an info line$"],
            [WARNING, INFO, ERROR], id="log-config-json-is-left-alone",
        ),
    ],
)  # fmt: skip
def test_microweb_run_logs_app_records_in_gunicorns_format(
    tmp_path: Path, configure: str, args: tuple[str, ...], shown: list[str], hidden: list[str]
) -> None:
    (tmp_path / "logapp.py").write_text(APP.replace("CONFIGURE", configure))
    (tmp_path / "log.json").write_text(json.dumps(JSON_CONFIG))
    args = tuple(str(tmp_path / "log.json") if arg == "LOG_CONFIG" else arg for arg in args)
    log = tmp_path / "log"
    options = ("--workers", "1", "--pythonpath", str(tmp_path), *args)
    with microweb_run("logapp:app", log, args=options) as (url, _):
        assert fetch(url, "GET", "/x").status == 500
    text = log.read_text()
    for pattern in shown:
        assert re.search(pattern, text, re.M), (pattern, text)
    for pattern in hidden:
        assert not re.search(pattern, text, re.M), (pattern, text)
