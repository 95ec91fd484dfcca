"""A test client: WebTest's `TestApp` with the WSGI linter always on.

``Client(app)`` drives any WSGI app in-process. Every request and response
goes through ``webtest.lint``, which fails the test when the app breaks
PEP 3333 (a bad status line, non-str headers, a body after HEAD...). Use
WebTest's API as it is: ``client.get("/notes", status=200).json``.
"""

from typing import Any

from webtest import TestApp  # type: ignore[import-untyped]

from .types import WSGIApp


class Client(TestApp):  # type: ignore[misc]  # WebTest ships no type hints
    """``TestApp`` with ``lint=True`` forced (it cannot be turned off here)."""

    def __init__(self, app: WSGIApp, **kwargs: Any) -> None:
        kwargs["lint"] = True
        super().__init__(app, **kwargs)
