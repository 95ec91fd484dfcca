"""The floors of bench/rss.py: the same ``Hello, World!`` as examples/hello.py.

`app` imports nothing (what gunicorn and Python cost); `webob_app` is the
same after ``import webob`` (the floor of any app built on WebOb).
"""

from collections.abc import Callable, Iterable
from typing import Any

HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "13")]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", HEADERS)
    return [b"Hello, World!"]


def webob_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    import webob  # noqa: F401  # NOTE: in the handler, so that "bare" does not load it

    start_response("200 OK", HEADERS)
    return [b"Hello, World!"]
