"""microweb/testing.py: the Client a user's tests get from the `testing` extra."""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

import pytest

from microweb import App
from microweb.testing import Client


def test_the_testing_extra_pulls_only_pytest_and_webtest() -> None:
    """`pip install 'microweb[testing]'` brings no Flask, Redis or cryptography."""
    extra = [r for r in metadata.requires("microweb") or [] if 'extra == "testing"' in r]
    assert {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in extra} == {
        "pytest",
        "webtest",
    }


def test_the_client_drives_an_app_in_process() -> None:
    app = App()
    app.get("/")(lambda req: {"ok": True})
    assert Client(app).get("/", status=200).json == {"ok": True}


def test_the_client_fails_an_app_that_breaks_pep_3333() -> None:
    """Lint is always on: a str body (PEP 3333 wants bytes) fails the test."""

    def broken(environ: dict[str, Any], start_response: Any) -> list[str]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]

    with pytest.raises(AssertionError):
        Client(broken).get("/")
