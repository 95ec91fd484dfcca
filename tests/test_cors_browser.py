"""CORS in a real browser: headless Chromium, two gunicorn servers, one page.

The page server (``tests.cors_apps:page``) and the API server
(``tests.cors_apps:api()``) listen on two ports of 127.0.0.1, which the
browser treats as two origins (Fetch §3.2: an origin is scheme, host *and*
port). The page's script ``fetch()``es the API under several CORS
configurations and records what it could read; these tests assert on that
record, then on what reached the API's handlers.

Chromium is Debian's package, installed by tests/browser.py when missing;
a failed install fails these tests with apt's output.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser import dump_dom, ensure_chromium
from servers import fetch, serving

pytestmark = pytest.mark.e2e

RESULTS = re.compile(r'<pre id="results">(.*?)</pre>', re.DOTALL)


@pytest.fixture(scope="module")
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Load the page once: (what its script read, per case; what reached the API)."""
    ensure_chromium()  # before any server: a failed install is the whole story
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        page_url = start("tests.cors_apps:page", workers=1)
        # One worker, so /hits sees every request the API's handlers got.
        api_url = start("tests.cors_apps:api()", workers=1, env={"PAGE_ORIGIN": page_url})
        dom = dump_dom(f"{page_url}/?api={api_url}", tmp_path_factory.mktemp("chromium"))
        match = RESULTS.search(dom)
        assert match and match.group(1), f"the page did not finish its fetches:\n{dom}"
        results = json.loads(html.unescape(match.group(1)))
        hits = fetch(api_url, "GET", "/hits").json()["hits"]
        yield results, hits


BLOCKED = {"read": False, "error": "TypeError"}  # fetch() rejects; the script reads nothing
JSON = "application/json"


def read(body: Any, total: str | None = None) -> dict[str, Any]:
    """What a script reads from an allowed response (Content-Type is always
    readable: Fetch §2.2.2, CORS-safelisted response-header names)."""
    headers = {"Content-Type": JSON, "X-Total-Count": total, "X-Internal": None}
    return {"read": True, "status": 200, "body": body, "headers": headers}


CASES = [
    # Fetch §4.10 CORS check: Access-Control-Allow-Origin is the page's origin;
    # only exposed headers (§3.3.3 Access-Control-Expose-Headers) are visible.
    pytest.param("allowed", read({"notes": ["milk"]}, total="1"), id="allowed-origin-reads-json"),
    # Another port, host or scheme is another origin: the read is blocked.
    pytest.param("other_port", BLOCKED, id="other-port-blocked"),
    pytest.param("other_host", BLOCKED, id="localhost-is-not-127.0.0.1"),
    pytest.param("other_scheme", BLOCKED, id="https-config-blocks-http-page"),
    # Fetch §4.8 CORS-preflight fetch: PUT + Authorization + a JSON body.
    pytest.param("put_allowed", read({"id": 7, "saved": {"title": "milk"}}),
                 id="preflighted-put-with-authorization"),
    pytest.param("put_other_port", BLOCKED, id="preflight-refused-for-other-origin"),
    pytest.param("put_header_not_allowed", BLOCKED, id="preflight-refused-for-header"),
    # Fetch §3.3.5: credentials need the exact origin and Allow-Credentials: true.
    pytest.param("credentials_exact", read({"sid": "s3cret"}), id="credentials-exact-origin"),
    pytest.param("credentials_star", BLOCKED, id="credentials-never-with-star"),
    pytest.param("anonymous_star", read({"sid": None}), id="star-without-credentials"),
    pytest.param("credentials_without_allow_credentials", BLOCKED,
                 id="credentials-need-allow-credentials"),
    pytest.param("anonymous_exact_origin", read({"sid": None}), id="no-cookie-without-credentials"),
    # The driver's premise: the DOM is dumped after slow fetches complete.
    pytest.param("slow", read({"slow": True}), id="dump-waits-for-fetches"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "expected"), CASES)
def test_what_the_page_could_read(
    run: tuple[dict[str, Any], list[str]], case: str, expected: dict[str, Any]
) -> None:
    results, _ = run
    assert results[case] == expected


@pytest.mark.parametrize(
    ("request_line", "reached"),
    [
        # A simple GET is sent; only its *reading* is blocked (Fetch §4.10 checks the response).
        pytest.param("GET /otherport/data", True, id="simple-request-sent"),
        # The cookie went out with `credentials: "include"`, even where the
        # response could not be read: the grant protects the read, not the request.
        pytest.param("GET /star/me", True, id="credentialed-request-sent"),
        pytest.param("PUT /exact/items/7", True, id="granted-put-sent"),
        # A refused preflight stops the actual request before it is sent.
        pytest.param("PUT /otherport/items/8", False, id="refused-put-never-sent"),
        pytest.param("PUT /exact/items/9", False, id="refused-header-never-sent"),
        # Preflights are answered by CORS, never by a handler.
        pytest.param("OPTIONS", False, id="no-preflight-reached-a-handler"),
    ],
)
def test_what_reached_the_api(
    run: tuple[dict[str, Any], list[str]], request_line: str, reached: bool
) -> None:
    _, hits = run
    assert any(hit.startswith(request_line) for hit in hits) == reached, hits
