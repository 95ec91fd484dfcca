"""The command line: ``microweb run``, ``microweb dev`` and ``microweb routes``.

``microweb run module:app`` serves the app with gunicorn (microweb has no
server of its own). It checks what it can before it hands over, so that a
mistake is one line naming it rather than a traceback per worker:

1. parse the arguments with gunicorn's own option parser, so any gunicorn
   option may come before or after ``module:app``;
2. import the target here (`import_target`): a typo, an import error or a
   missing attribute ends the command with one line and exit status 2;
3. check that each TCP address to listen on is free (`check_addresses`);
4. replace this process with gunicorn (``os.execv``), given microweb's
   `DEFAULTS` for every option the user did not set (on the command line
   or in ``GUNICORN_CMD_ARGS``), then the user's options, then the target
   as a call of `microweb.worker.load`, which gives the app's logs
   gunicorn's format in each worker (at the level of `app_log_level`).

``microweb dev module:app`` does the same with `DEV_DEFAULTS` (one worker,
``--reload``), prints a banner, and serves the app through
`microweb.devserver`, which also turns on ``debug`` in each worker, and
logs INFO too. ``microweb run`` never turns debug on.

``microweb routes module:app`` prints the route table and the middleware
stack; ``microweb new DIRECTORY`` writes a starter app (`microweb.starter`).
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import socket
import sys
import traceback
from argparse import ArgumentParser, Namespace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from gunicorn.config import Config  # type: ignore[import-untyped]
from gunicorn.errors import AppImportError  # type: ignore[import-untyped]
from gunicorn.glogging import Logger  # type: ignore[import-untyped]
from gunicorn.util import import_app, parse_address  # type: ignore[import-untyped]

from . import __version__
from .app import App
from .types import WSGIApp
from .worker import worker_target

WORKERS = str(2 * (os.cpu_count() or 1) + 1)

#: microweb's gunicorn options, as a table: option -> (value, or None for a
#: flag; why). A row is left out when the user sets that option (or, for
#: ``--workers``, ``WEB_CONCURRENCY``), so the user's choice always wins.
DEFAULTS: dict[str, tuple[str | None, str]] = {
    "--bind": ("127.0.0.1:8000", "loopback only: exposing the app is a decision"),
    "--workers": (WORKERS, "2 x CPUs + 1 (gunicorn's advice); WEB_CONCURRENCY wins"),
    "--worker-class": ("gthread", "a thread per connection: slow clients hold threads"),
    "--threads": ("32", "per worker: more than a burst of 20 slow clients (docs/decisions/cli.md)"),
    "--timeout": ("30", "a stuck worker is killed and replaced"),
    "--graceful-timeout": ("30", "on SIGTERM, requests in flight may finish"),
    "--keep-alive": ("5", "idle keep-alive connections are dropped soon"),
    "--limit-request-line": ("4094", "a longer request line gets 414"),
    "--limit-request-fields": ("100", "at most 100 header fields..."),
    "--limit-request-field_size": ("8190", "...of at most 8190 bytes each"),
    "--access-logfile": ("-", "one line per request on stdout"),
    "--header-map": ("drop", "X_Forwarded_For is dropped, not merged (ProxyFix)"),
    "--no-control-socket": (None, "gunicorn's default socket is shared per user"),
}  # fmt: skip

#: ``microweb dev``: the same, for one developer on their own machine.
DEV_DEFAULTS: dict[str, tuple[str | None, str]] = {
    **DEFAULTS,
    "--workers": ("1", "one process: one log, one place for state"),
    "--reload": (None, "a new worker when a source file changes"),
}

USAGE = "microweb {command} [gunicorn options] module:app [gunicorn options]"

HELP = """\
usage: microweb run [gunicorn options] module:app [gunicorn options]
       microweb dev [gunicorn options] module:app [gunicorn options]
       microweb routes module:app
       microweb new DIRECTORY
       microweb --version

commands:
  run     serve module:app with gunicorn (production; app logs at WARNING)
  dev     serve it for development: one worker, reload on change, debug page,
          app logs at INFO (development mode: never expose it)
  routes  print the route table and the middleware stack
  new     write a starter app and its test into DIRECTORY

Any gunicorn option (`python -m gunicorn --help` lists them) goes before or
after module:app; an option you give replaces microweb's default for it:

{table}

`microweb dev` changes: {dev_changes}.

Each worker serves up to --threads connections at once, one thread each
(Long-lived responses: EventStream, slow downloads, WebSockets, hold one
thread each). With `--worker-class sync`, a worker serves one connection at
a time and is killed after --timeout seconds of one response.

Exit status 2: microweb refused to start (a bad target, an import error, an
address in use) and said why in one line; otherwise gunicorn's own.
"""


class StartError(Exception):
    """Why the app cannot be served: one line, printed instead of a traceback."""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    command, options = (argv[0], argv[1:]) if argv else ("--help", [])
    if command in ("-h", "--help") or "-h" in options or "--help" in options:
        print(help_text())
        return
    if command == "--version":
        print(version())
        return
    if command not in COMMANDS:
        print(f"microweb: unknown command {command!r}; try {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    try:
        COMMANDS[command](options)
    except StartError as exc:
        print(f"microweb {command}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run(options: list[str]) -> None:
    target, given, app = prepare("run", options)
    if getattr(app, "debug", False) is True:
        print(
            "microweb run: warning: the app has debug=True: tracebacks reach clients "
            "(`microweb dev` turns debug on for development only)",
            file=sys.stderr,
        )
    argv = gunicorn_argv(target, options, DEFAULTS)
    argv[-1] = worker_target("microweb.worker:load", target, app_log_level(given, "WARNING"))
    exec_gunicorn(argv)


def dev(options: list[str]) -> None:
    from .devserver import banner

    target, given, app = prepare("dev", options)
    argv = gunicorn_argv(target, options, DEV_DEFAULTS)
    level = app_log_level(given, "INFO")
    print(banner(target, app, listening_on(given), given.certfile is not None, level), flush=True)
    argv[-1] = worker_target("microweb.devserver:load", target, level)
    exec_gunicorn(argv)


def routes(options: list[str]) -> None:
    if len(options) != 1:
        raise StartError("usage: microweb routes module:app")
    app = import_target(options[0], [os.getcwd()])
    if not isinstance(app, App):
        raise StartError(f"{options[0]} is not a microweb App: it has no route table")
    print(routes_table(app))


def new(options: list[str]) -> None:
    from .starter import create  # microweb/starter.py

    if len(options) != 1:
        raise StartError("usage: microweb new DIRECTORY")
    try:
        print(create(Path(options[0])))
    except OSError as exc:  # a file exists already, or DIRECTORY is a file
        raise StartError(str(exc)) from None


COMMANDS = {"run": run, "dev": dev, "routes": routes, "new": new}


def prepare(command: str, options: list[str]) -> tuple[str, Namespace, WSGIApp]:
    """The target, the gunicorn settings the user gave, and the app, imported and checked."""
    parsed = gunicorn_parser(command).parse_args(options)
    if len(parsed.args) != 1:
        raise StartError(f"expected one module:app, got {parsed.args or 'none'}")
    target = parsed.args[0]
    given = user_settings(options)
    chdir = Path(given.chdir or os.getcwd()).resolve()
    search = [str(chdir / path) for path in (given.pythonpath or "").split(",") if path]
    app = import_target(target, [*search, str(chdir)])
    if not given.reuse_port:  # NOTE: --reuse-port shares a port on purpose
        check_addresses(listening_on(given))
    return target, given, app


def gunicorn_argv(
    target: str, options: list[str], defaults: dict[str, tuple[str | None, str]] = DEFAULTS
) -> list[str]:
    """``python -m gunicorn``, the defaults the user did not override, `options`, `target`.

    `options` may hold the target too (anywhere among them); it goes last.
    """
    given = user_settings(options)
    # NOTE: gunicorn's --bind appends to the default list rather than
    # replacing it, and --no-control-socket beats --control-socket: so a
    # default is dropped, not overridden, when the user sets its setting.
    replaced = {"--no-control-socket": "control_socket"}
    argv = [sys.executable, "-m", "gunicorn"]
    for option, (value, _why) in defaults.items():
        setting = replaced.get(option, gunicorn_settings()[option])
        if getattr(given, setting) is not None:
            continue
        if option == "--workers" and "WEB_CONCURRENCY" in os.environ:
            continue
        # NOTE: gunicorn turns a sync worker with threads > 1 into gthread: a
        # user who picks the worker class gets gunicorn's threads for it, not ours.
        if option == "--threads" and given.worker_class is not None:
            continue
        argv += [option] if value is None else [option, value]
    rest = list(options)
    if target in rest:
        rest.remove(target)
    return [*argv, *rest, target]


@cache
def gunicorn_settings() -> dict[str, str]:
    """gunicorn's command-line options -> the names of its settings."""
    return {flag: name for name, setting in Config().settings.items() for flag in setting.cli or ()}


def gunicorn_parser(command: str) -> ArgumentParser:
    """gunicorn's own option parser, so microweb accepts exactly what gunicorn does."""
    parser: ArgumentParser = Config(
        usage=USAGE.format(command=command), prog=f"microweb {command}"
    ).parser()
    return parser


def user_settings(options: list[str]) -> Namespace:
    """The settings given in `options` or ``GUNICORN_CMD_ARGS`` (None where not given)."""
    parser = gunicorn_parser("run")
    from_env = vars(parser.parse_args(shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))))
    given = vars(parser.parse_args(options))
    return Namespace(**{k: v if v is not None else from_env[k] for k, v in given.items()})


def app_log_level(given: Namespace, default: str) -> str | None:
    """The level of the app's logs: gunicorn's ``--log-level`` when given, else `default`.

    None when the user configured logging (``--log-config``, ``--log-config-json``).
    """
    if given.logconfig is not None or given.logconfig_json is not None:
        return None
    if given.loglevel is None:
        return default
    # NOTE: read as gunicorn reads it for its own error log: an unknown name is INFO.
    level = Logger.LOG_LEVELS.get(given.loglevel.lower(), logging.INFO)
    return logging.getLevelName(level)  # type: ignore[no-any-return]


def listening_on(given: Namespace) -> list[str]:
    return list(given.bind or [DEFAULTS["--bind"][0]])


def import_target(target: str, search: list[str]) -> WSGIApp:
    """Import ``module:app`` as gunicorn will (`search` first on sys.path); the app.

    Raises `StartError` with one line that names what failed.
    """
    module, colon, _ = target.partition(":")
    if not colon or not module:
        raise StartError(f"expected module:app (like examples.hello:app), not {target!r}")
    saved = sys.path[:]
    sys.path[:0] = search
    try:
        app: WSGIApp = import_app(target)
    except AppImportError as exc:  # no such attribute, or not callable
        raise StartError(f"{target}: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module + ".").startswith(exc.name + "."):
            raise StartError(f"importing {module} failed: {where(exc)}") from None
        raise StartError(
            f"no module named {exc.name!r} in {search[-1]} (give --chdir DIR to serve from DIR)"
        ) from None
    except Exception as exc:  # anything the app's module raised while importing
        raise StartError(f"importing {module} failed: {where(exc)}") from None
    finally:
        sys.path[:] = saved
    return app


def where(exc: BaseException) -> str:
    """``Type: message (file:line)``: the exception and the line that raised it."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}:{exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{place}"


def check_addresses(binds: list[str]) -> None:
    """Raise `StartError` naming the first TCP address that gunicorn could not listen on."""
    for bind in binds:
        try:
            address = parse_address(bind)
        except RuntimeError as exc:
            raise StartError(f"--bind {bind}: {exc}") from None
        if not isinstance(address, tuple):
            continue  # a Unix socket or an inherited file descriptor
        host, port = address
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, kind, proto, _, sockaddr = found[0]
        except socket.gaierror as exc:
            raise StartError(f"--bind {bind}: cannot resolve {host!r} ({exc.strerror})") from None
        with socket.socket(family, kind, proto) as probe:
            # NOTE: gunicorn sets SO_REUSEADDR too, so a port left in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartError(
                        f"port {port} on {host} is in use; choose another with --bind {host}:PORT"
                    ) from None
                raise StartError(f"--bind {bind}: cannot listen there ({exc.strerror})") from None


def exec_gunicorn(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


def help_text() -> str:
    width = max(len(option) for option in DEV_DEFAULTS)
    table = "\n".join(
        f"  {option.ljust(width)}  {(value or '').ljust(14)}  {why}"
        for option, (value, why) in DEFAULTS.items()
    )
    changes = ", ".join(
        f"{option} {value or ''}".strip()
        for option, (value, _why) in DEV_DEFAULTS.items()
        if DEFAULTS.get(option) != (value, _why)
    )
    return HELP.format(table=table, dev_changes=changes)


def version() -> str:
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("gunicorn", "WebOb"))
    return f"microweb {__version__} ({versions}, Python {sys.version.split()[0]})"


def describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def routes_table(app: App) -> str:
    """The route table, the mounts, and the middleware stack in request order."""
    rows = [("METHODS", "PATH", "NAME", "HANDLER")]
    for route in app.router.routes:
        methods = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
        handler = describe(route.handler)
        rows.append((", ".join(sorted(methods)), route.template, route.name, handler))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])
        for row in rows
    ]
    lines.append("(every path also answers OPTIONS; a GET route also answers HEAD)")
    for mount in app.router.mounts.values():
        lines.append(f"mount {mount.prefix} -> {describe(mount.app)}")
    lines.append("")
    lines.append("middleware, in the order a request meets them:")
    from .middleware import describe_stack  # what runs, per layer (microweb/middleware)

    lines += describe_stack(app.middleware)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
