"""The command line: ``microweb run module:app`` and ``microweb routes module:app``.

``microweb run`` starts gunicorn (never a home-made server) with defaults
that suit a small app in production; any gunicorn option given after the
app overrides them, e.g. ``microweb run notes:app --workers 4`` or
``--worker-class gthread --threads 8`` for long-lived streams (SSE), where
a sync worker would be held by one client for the whole stream.

=========================  ==============================================
default                    why
=========================  ==============================================
``--bind 127.0.0.1:8000``  loopback only: exposing the app is a decision
``--workers 2*CPU+1``      gunicorn's own advice for sync workers
                           (``WEB_CONCURRENCY`` wins when set)
``--timeout 30``           a stuck worker is killed and replaced
``--graceful-timeout 30``  on SIGTERM, requests in flight may finish
``--keep-alive 5``         idle keep-alive connections are dropped soon
``--limit-request-line``   4094 bytes: long request lines get 414
``--limit-request-fields`` 100 headers at most; each at most 8190 bytes
``--access-logfile -``     one line per request on stdout
``--header-map drop``      ``X_Forwarded_For`` (underscore) is dropped, never
                           merged with ``X-Forwarded-For`` (a spoofing
                           path around ProxyFix); set here so a config
                           file cannot quietly change it
=========================  ==============================================

NOTE: gunicorn 27 opens a control socket at ``~/.gunicorn/gunicorn.ctl``,
one path per user. Several instances on one machine must each be given
their own (``--control-socket PATH``) or none (``--no-control-socket``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

DEFAULTS = [
    "--timeout", "30",
    "--graceful-timeout", "30",
    "--keep-alive", "5",
    "--limit-request-line", "4094",
    "--limit-request-fields", "100",
    "--limit-request-field_size", "8190",
    "--access-logfile", "-",
    "--header-map", "drop",
]  # fmt: skip


def gunicorn_argv(target: str, options: list[str]) -> list[str]:
    """The gunicorn command line for `target`: our defaults, then the user's options."""
    argv = [sys.executable, "-m", "gunicorn", *DEFAULTS]
    # NOTE: gunicorn's --bind appends rather than replaces, so the default
    # bind is only added when the user gave none.
    if not any(o in ("-b", "--bind") or o.startswith("--bind=") for o in options):
        argv += ["--bind", "127.0.0.1:8000"]
    if "WEB_CONCURRENCY" not in os.environ:
        argv += ["--workers", str(2 * (os.cpu_count() or 1) + 1)]
    return [*argv, *options, target]


def load_app(target: str) -> Any:
    """Import ``module:attribute`` the way gunicorn does (the cwd is importable)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected module:app, got {target!r}")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"{module_name} has no attribute {attribute!r}") from None


def describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def routes_table(app: Any) -> str:
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
    for position, (layer, options) in enumerate(app.middleware, 1):
        args = ", ".join(f"{k}={v!r}" for k, v in options.items())
        lines.append(f"  {position}. {getattr(layer, '__name__', layer)}({args})")
    lines.append(f"  {len(app.middleware) + 1}. the app: routing and handlers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="microweb", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve module:app with gunicorn")
    run.add_argument("target", help="module:app, e.g. examples.notes:app")
    routes = commands.add_parser("routes", help="print the routes and middleware of module:app")
    routes.add_argument("target")
    new = commands.add_parser("new", help="write a starter app and its test into DIRECTORY")
    new.add_argument("directory")
    args, rest = parser.parse_known_args(argv)
    if args.command == "new":
        from .starter import create  # microweb/starter.py

        try:
            print(create(Path(args.directory)))
        except OSError as exc:  # a file exists already, or DIRECTORY is a file
            parser.exit(2, f"microweb new: {exc}\n")
        return
    if args.command == "routes":
        if rest:
            parser.error(f"unexpected arguments: {' '.join(rest)}")
        print(routes_table(load_app(args.target)))
        return
    command = gunicorn_argv(args.target, rest)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
