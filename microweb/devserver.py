"""Development mode (``microweb dev module:app``): the banner, and what each worker turns on.

``microweb dev`` (``cli.py``) execs gunicorn with ``--reload`` and one
worker, and gives it not the user's target but a call of `load`::

    python -m gunicorn ... --reload "microweb.devserver:load('notes:app', 'INFO')"

gunicorn calls `load` in each new worker (a worker is replaced whenever a
source file changes), and `load`

1. imports the target and sets up the app's logs as ``microweb run`` does
   (`microweb.worker.load`), at INFO unless ``--log-level`` says otherwise:
   a handler's ``logging.getLogger(__name__).info(...)`` shows up on stderr
   with a timestamp, the process id and the level, and so do the warnings
   and 500 tracebacks that microweb logs on the ``microweb`` logger;
2. sets ``app.debug = True``: a 500 then shows the debug page
   (`microweb.debug_page`), to a browser as HTML and to an API client as
   problem+json with the traceback as a list of frames.

An edit that breaks the import (a typo, a NameError at module level) does
not stop the server: `load` logs it and serves `import_failed`, which
answers every request with the debug page of the import error, and keeps
the files of its traceback watched, so the next save reloads the worker.

The user's code is not edited, and nothing is read from the environment:
``microweb run`` gives gunicorn `microweb.worker.load`, which never turns
debug on, so the debug page cannot be on in production by accident.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterable
from types import ModuleType

from . import debug_page, worker
from .app import App
from .errors import HTTPError
from .request import Request
from .types import Environ, StartResponse, WSGIApp

logger = logging.getLogger("microweb")


def load(target: str, level: str | None) -> WSGIApp:
    """Called by gunicorn in each worker: the app and its logs (`microweb.worker`), debug on."""
    # 1. The app, as gunicorn would have imported it, and its logging.
    try:
        app = worker.load(target, level)
    except Exception as exc:
        # NOTE: in reload mode gunicorn survives only a SyntaxError; any other
        # import error would stop the whole development server.
        logger.exception("importing %s failed; the worker reloads when a file is saved", target)
        return import_failed(target, exc)
    # 2. The debug page: only a microweb App has one.
    if isinstance(app, App):
        app.debug = True
    else:
        logger.warning("%s is not a microweb App: no debug page (errors are still logged)", target)
    return app


def import_failed(target: str, exc: Exception) -> WSGIApp:
    """A WSGI app answering the debug page of `exc`; the files it names stay watched."""
    # NOTE: gunicorn's reloader watches the files of the modules in sys.modules,
    # and a module that failed to import is not there; a stand-in is.
    for number, frame in enumerate(traceback.extract_tb(exc.__traceback__)):
        watched = ModuleType(f"{__name__}.watched_{number}")
        watched.__file__ = frame.filename
        sys.modules[watched.__name__] = watched
    error = HTTPError(500, f"importing {target} failed: fix it and save, the worker reloads")

    def answer(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return debug_page.render(Request(environ), error, exc)(environ, start_response)

    return answer


def banner(
    target: str, app: WSGIApp, binds: list[str], tls: bool = False, level: str | None = "INFO"
) -> str:
    """The one-screen summary printed before gunicorn starts."""
    urls = ", ".join(url_of(bind, "https" if tls else "http") for bind in binds)
    logs = f"app logs at {level or 'your config'}"
    if isinstance(app, App):
        stack = " -> ".join(getattr(layer, "__name__", repr(layer)) for layer, _ in app.middleware)
        about = [
            f"  routes      {len(app.router.routes)} (`microweb routes {target}` lists them)",
            f"  middleware  {stack or 'none'} (then the app)",
            f"  debug       on: a 500 shows the traceback; {logs}",
        ]
    else:  # NOTE: as in `load`: only a microweb App has routes to list and a debug page
        about = [f"  debug       off: not a microweb App, so no debug page; {logs}"]
    return "\n".join(
        [
            f"microweb dev {target}",
            f"  serving     {urls}",
            *about,
            "  reload      on: a changed .py file restarts the worker",
            "  development mode: do not expose (use `microweb run` to serve for real)",
        ]
    )


def url_of(bind: str, scheme: str = "http") -> str:
    if bind.startswith(("unix:", "fd://")):
        return bind
    address = bind.removeprefix("tcp://")
    everywhere = address.startswith(("0.0.0.0", "[::]"))
    return f"{scheme}://{address}" + (" (every interface!)" if everywhere else "")
