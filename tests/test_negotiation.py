"""microweb/negotiation.py: choosing a media type from Accept (RFC 9110 §12.5.1), 406 (§15.5.7)."""

from __future__ import annotations

from typing import Any

import pytest

from microweb import App, HTTPError, Request, Response
from microweb.negotiation import negotiate
from microweb.testing import Client

JSON = "application/json"
HTML = "text/html"
CSV = "text/csv"


def request(accept: str | None) -> Request:
    req = Request.blank("/")
    if accept is not None:
        req.headers["Accept"] = accept
    return req


@pytest.mark.parametrize(
    ("accept", "offers", "chosen"),
    [
        pytest.param(None, [JSON, HTML], JSON, id="12.5.1-no-header-means-anything"),
        pytest.param("text/html", [JSON, HTML], HTML, id="exact-type"),
        pytest.param("TEXT/HTML", [JSON, HTML], HTML, id="8.3.1-type-is-case-insensitive"),
        pytest.param("*/*", [CSV, JSON], CSV, id="any-type-server-order"),
        pytest.param("text/*", [JSON, HTML], HTML, id="subtype-wildcard"),
        pytest.param(
            "text/html;q=0.5, application/json", [HTML, JSON], JSON, id="12.4.2-q-value-ranks"
        ),
        pytest.param(
            "text/html, application/json", [JSON, HTML], JSON, id="tie-keeps-server-order"
        ),
        pytest.param(
            "text/*;q=0.1, text/html", [CSV, HTML], HTML, id="12.5.1-most-specific-range-wins"
        ),
        pytest.param(
            "text/*, text/html;q=0.2", [HTML, CSV], CSV, id="12.5.1-specific-range-lowers-type"
        ),
        pytest.param(
            "application/json;q=0, */*", [JSON, HTML], HTML, id="12.4.2-q0-is-not-acceptable"
        ),
        pytest.param(
            "text/html;level=1, text/html;q=0.5",
            ["text/html", "text/html;level=1"],
            "text/html;level=1",
            id="12.5.1-parameters-are-more-specific",
        ),
        pytest.param("text/html;q=0.001", [JSON, HTML], HTML, id="12.4.2-lowest-q-still-ok"),
        pytest.param("not a media range;;;", [JSON, HTML], JSON, id="12.5.1-invalid-disregarded"),
        pytest.param(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            [JSON, HTML],
            HTML,
            id="browser-navigation",
        ),
    ],
)
def test_rfc9110_12_5_1_negotiate_picks_the_best_offer(
    accept: str | None, offers: list[str], chosen: str
) -> None:
    assert negotiate(request(accept), offers) == chosen


@pytest.mark.parametrize(
    ("accept", "offers"),
    [
        pytest.param("image/png", [JSON, HTML], id="other-type"),
        pytest.param("", [JSON, HTML], id="12.5.1-empty-header-is-an-empty-list"),
        pytest.param("application/json;q=0", [JSON], id="q0-refuses-the-only-offer"),
        pytest.param("text/*", [JSON], id="wildcard-misses"),
        pytest.param("*/*;q=0", [JSON, HTML], id="q0-refuses-everything"),
        pytest.param("text/html;level=2", [HTML], id="parameter-must-match"),
    ],
)
def test_rfc9110_15_5_7_nothing_acceptable_is_406(accept: str, offers: list[str]) -> None:
    """RFC 9110 §15.5.7: 406 lists what is available; §12.5.5: Vary: Accept."""
    with pytest.raises(HTTPError) as raised:
        negotiate(request(accept), offers)
    assert raised.value.status == 406
    assert ("Vary", "Accept") in raised.value.headers
    assert raised.value.detail is not None
    assert all(offer in raised.value.detail for offer in offers)


@pytest.mark.parametrize(
    ("offers", "error"),
    [
        pytest.param([], ValueError, id="no-offers"),
        pytest.param("application/json", TypeError, id="a-string-not-a-list"),
        pytest.param(["text/*"], ValueError, id="wildcard-offer"),
        pytest.param(["*/*"], ValueError, id="any-offer"),
        pytest.param([JSON, "html"], ValueError, id="not-a-media-type"),
    ],
)
def test_bad_offers_are_a_programming_error(offers: Any, error: type) -> None:
    """WebOb skips offers it cannot parse; a typo must fail loudly, not be a 406 forever."""
    with pytest.raises(error):
        negotiate(request("*/*"), offers)


# -- Through an app, under WSGI lint --------------------------------------------------


def report_app() -> App:
    app = App()

    @app.get("/report")
    def report(req: Request) -> Response:
        media_type = negotiate(req, [JSON, CSV])
        body = b"a,b\r\n1,2\r\n" if media_type == CSV else b'{"a":1,"b":2}'
        return Response(body, content_type=media_type, vary="Accept")

    return app


@pytest.mark.parametrize(
    ("accept", "content_type", "body"),
    [
        pytest.param("text/csv", CSV, b"a,b\r\n1,2\r\n", id="csv"),
        pytest.param("application/json, text/csv;q=0.5", JSON, b'{"a":1,"b":2}', id="json"),
        pytest.param("*/*", JSON, b'{"a":1,"b":2}', id="any-gets-the-first-offer"),
    ],
)
def test_rfc9110_12_5_5_negotiated_response_varies_on_accept(
    accept: str, content_type: str, body: bytes
) -> None:
    res = Client(report_app()).get("/report", headers={"Accept": accept}, status=200)
    assert res.content_type == content_type  # WebOb adds a charset to text/csv
    assert res.headers["Vary"] == "Accept"
    assert res.body == body


@pytest.mark.parametrize(
    ("accept", "error_type"),
    [
        pytest.param("image/png", "application/problem+json", id="api-client"),
        pytest.param("text/html, image/png", "text/html; charset=utf-8", id="browser"),
    ],
)
def test_rfc9110_15_5_7_406_through_the_app(accept: str, error_type: str) -> None:
    """The 406 renders like any error (problem+json or HTML), with Vary: Accept; §12.5.1
    lets the error body disregard Accept."""
    res = Client(report_app()).get("/report", headers={"Accept": accept}, status=406)
    assert res.headers["Content-Type"] == error_type
    assert res.headers["Vary"] == "Accept"
    assert b"application/json, text/csv" in res.body
