"""microweb/debug_page.py: the 500 page of an app with debug=True (what `microweb dev` sets).

Negotiated as every error is (RFC 9110 §12.5.1); the JSON form is RFC 9457
problem details with extension members (§3.2).
"""

from __future__ import annotations

import inspect

import pytest

from microweb import App, Request
from microweb.testing import Client

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CREDENTIALS = "Bearer " + "t0ken"  # NOTE: not a literal: the page shows this file's lines


def failing() -> None:
    raise KeyError("note 7")


def make_app(debug: bool = True) -> App:
    app = App(debug=debug)

    @app.get("/crash")
    def crash(req: Request) -> None:
        total = 1
        return total / 0  # type: ignore[return-value]

    @app.get("/chained")
    def chained(req: Request) -> None:
        try:
            failing()
        except KeyError as exc:
            raise RuntimeError("lookup failed") from exc

    return app


CRASH_LINE = inspect.getsource(make_app).splitlines()[6].strip()  # "return total / 0 ..."


def test_rfc9457_json_has_the_traceback_as_a_list_of_frames() -> None:
    res = Client(make_app()).get("/crash?x=1", headers={"Accept": "application/json"}, status=500)
    assert res.headers["Content-Type"] == "application/problem+json"
    problem = res.json
    assert (problem["status"], problem["title"]) == (500, "Internal Server Error")
    assert problem["exception"] == "ZeroDivisionError: division by zero"
    frames = problem["traceback"]
    assert isinstance(frames, list)
    assert frames[-1]["function"] == "crash"  # innermost last, as Python prints it
    assert frames[-1]["file"] == "tests/test_debug_page.py" or frames[-1]["file"].endswith(
        "test_debug_page.py"
    )
    assert frames[-1]["code"] == CRASH_LINE
    assert isinstance(frames[-1]["line"], int)
    assert problem["request"] == {"method": "GET", "path": "/crash", "query": "x=1"}
    assert "chain" not in problem


def test_json_lists_the_exceptions_a_500_was_raised_from() -> None:
    res = Client(make_app()).get("/chained", status=500)  # no Accept: JSON (RFC 9457)
    problem = res.json
    assert problem["exception"] == "RuntimeError: lookup failed"
    assert [e["exception"] for e in problem["chain"]] == ["KeyError: 'note 7'"]
    assert problem["chain"][0]["traceback"][-1]["function"] == "failing"


def test_html_says_how_chained_exceptions_are_linked() -> None:
    page = Client(make_app()).get("/chained", headers={"Accept": BROWSER}, status=500).text
    assert page.index("KeyError: &#x27;note 7&#x27;") < page.index("direct cause")
    assert page.index("direct cause") < page.index("RuntimeError: lookup failed</h2>")


def test_html_for_browsers_shows_source_lines_and_the_request() -> None:
    res = Client(make_app()).get(
        "/crash?x=1",
        headers={"Accept": BROWSER, "Cookie": "session=s3cret", "X-Trace": "abc"},
        status=500,
    )
    assert res.headers["Content-Type"] == "text/html; charset=utf-8"
    page = res.text
    assert "<h1>ZeroDivisionError: division by zero</h1>" in page
    assert "Traceback (most recent call last)" in page
    assert "in crash" in page
    assert "<mark>" in page and "return total / 0" in page  # the line that ran, marked
    assert "total = 1" in page  # and the lines around it
    assert "GET /crash?x=1" in page
    assert "X-Trace" in page and "abc" in page


def test_html_hides_credentials_and_escapes_everything() -> None:
    """SECURITY: a shared screenshot leaks no cookie; exception text is escaped (CWE-79)."""
    app = App(debug=True)

    @app.get("/")
    def crash(req: Request) -> None:
        raise RuntimeError("<script>alert(1)</script>")

    res = Client(app).get(
        "/", headers={"Accept": BROWSER, "Authorization": CREDENTIALS}, status=500
    )
    assert "t0ken" not in res.text
    assert "(12 characters, hidden)" in res.text
    assert "<script>" not in res.text and "&lt;script&gt;" in res.text


@pytest.mark.parametrize("accept", [pytest.param(BROWSER, id="html"), pytest.param("", id="json")])
def test_without_debug_nothing_of_the_exception_is_shown(accept: str) -> None:
    res = Client(make_app(debug=False)).get("/crash", headers={"Accept": accept}, status=500)
    assert "ZeroDivisionError" not in res.text
    assert "test_debug_page" not in res.text
