"""`call`: one in-process request through `wsgiref.validate`, for bad input.

WebTest (`microweb.testing.Client`) is the usual client; its linter refuses
unknown methods and its request builder fixes up malformed requests, which
is exactly what the bad-input tests need to send.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import WSGIWarning, validator


class Raw:
    """The outcome of one request sent with `call`, the lower-level path."""

    def __init__(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.status_code = int(status.split()[0])
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


def environ(
    method: str = "GET", path: str = "/", body: bytes = b"", **extra: Any
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    env.update(extra)
    return env


def call(app: Any, method: str = "GET", path: str = "/", body: bytes = b"", **extra: Any) -> Raw:
    """Send one request through `wsgiref.validate` (which, unlike WebTest's
    lint, lets any method and any path through: bad input is the point)."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    with warnings.catch_warnings():
        # wsgiref's validator warns about methods it does not know; sending
        # those is what the bad-input tests are for.
        warnings.filterwarnings("ignore", "Unknown REQUEST_METHOD", WSGIWarning)
        result: Iterable[bytes] = validator(app)(
            environ(method, path, body, **extra), start_response
        )
    try:
        data = b"".join(result)
    finally:
        result.close()  # type: ignore[attr-defined]
    return Raw(captured["status"], captured["headers"], data)
