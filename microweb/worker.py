"""What each gunicorn worker runs under ``microweb run`` and ``microweb dev``: the app's logs.

gunicorn configures only its own loggers: left alone, an app's records and
microweb's (the ``microweb`` logger: 500 tracebacks, store outages) reach
Python's last-resort handler, the message alone, WARNING and up. So the CLI
gives gunicorn, instead of ``module:app``, a call it makes in each worker::

    python -m gunicorn ... "microweb.worker:load('notes:app', 'WARNING')"

`load` imports the app as gunicorn would, then sends the root logger's
records to stderr in gunicorn's format at that level (``cli.app_log_level``:
WARNING for ``run``, INFO for ``dev``, else ``--log-level``; None with
``--log-config``), unless the app configured logging itself.
``microweb.devserver.load`` calls it, then turns the debug page on.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.util import import_app  # type: ignore[import-untyped]

from .types import WSGIApp

# NOTE: gunicorn's error-log format (gunicorn.glogging), plus the logger's name.
LOG_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"


def worker_target(loader: str, target: str, level: str | None) -> str:
    """What gunicorn is given instead of `target`: a call of `loader` with literal arguments."""
    return f"{loader}({target!r}, {level!r})"


def load(target: str, level: str | None) -> WSGIApp:
    """Called by gunicorn in each worker: the app, then its logging at `level`."""
    try:
        app: WSGIApp = import_app(target)  # NOTE: gunicorn has checked that it is callable
        return app
    finally:
        # NOTE: after the import, so an app that configures logging when it is
        # imported keeps its own: basicConfig does nothing once the root logger
        # has a handler. A failed import is logged in this format too.
        if level is not None:
            logging.basicConfig(
                level=level, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, stream=sys.stderr
            )
