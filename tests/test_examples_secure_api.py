"""examples/secure_api.py under real gunicorn: the recommended stack on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import fetch, serving

pytestmark = pytest.mark.e2e

PAGE = "http://app.example"


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("db")) / "notes.db"
    env = {"NOTES_DB": str(db), "ALLOWED_HOSTS": "127.0.0.1", "CORS_ORIGINS": PAGE}
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start("examples.secure_api:app", env=env)


def test_ordinary_request_gets_security_headers_and_a_request_id(url: str) -> None:
    reply = fetch(url, "GET", "/notes")
    assert reply.status == 200
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert len(reply.headers["X-Request-ID"]) == 32
    # RFC 6797 §7.2: no HSTS on a plain-http response.
    assert reply.headers["Strict-Transport-Security"] is None
    assert reply.headers["Vary"] == "Origin"


def test_rfc6797_hsts_when_the_trusted_proxy_says_https(url: str) -> None:
    """The test client connects from 127.0.0.1, the trusted proxy address."""
    reply = fetch(url, "GET", "/notes", headers={"X-Forwarded-Proto": "https"})
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")


def test_rfc9110_7_2_unknown_host_is_400_with_security_headers(url: str) -> None:
    reply = fetch(url, "GET", "/notes", headers={"Host": "evil.example"})
    assert reply.status == 400
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert b"evil.example" not in reply.body


def test_a_well_formed_incoming_request_id_is_kept(url: str) -> None:
    reply = fetch(url, "GET", "/notes", headers={"X-Request-ID": "abc-123"})
    assert reply.headers["X-Request-ID"] == "abc-123"
    hostile = fetch(url, "GET", "/notes", headers={"X-Request-ID": "a b<script>"})
    assert hostile.headers["X-Request-ID"] != "a b<script>"


@pytest.mark.parametrize(
    ("origin", "granted"),
    [
        pytest.param(PAGE, True, id="allowed-origin"),
        pytest.param("http://app.example.evil.example", False, id="lookalike"),
        pytest.param("null", False, id="null-origin"),
    ],
)
def test_fetch_cors_preflight_for_a_put_with_authorization(
    url: str, origin: str, granted: bool
) -> None:
    """Fetch §3.3.4: the preflight is answered by CORS itself, before the app."""
    reply = fetch(url, "OPTIONS", "/notes/1", headers={
        "Origin": origin,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type",
    })  # fmt: skip
    if granted:
        assert reply.status == 204
        assert reply.headers["Access-Control-Allow-Origin"] == PAGE
        assert "PUT" in reply.headers["Access-Control-Allow-Methods"]
    else:
        assert reply.status == 403
        assert reply.headers["Access-Control-Allow-Origin"] is None
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_force_https_redirects_with_308(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = {"NOTES_DB": str(tmp_path / "n.db"), "ALLOWED_HOSTS": "127.0.0.1", "FORCE_HTTPS": "1"}
    with serving(request.node, tmp_path) as start:
        url = start("examples.secure_api:app", env=env)
        reply = fetch(url, "POST", "/notes?x=1", json_body={"title": "t", "body": "b"})
        assert reply.status == 308  # RFC 9110 §15.4.9: method and body kept
        assert reply.headers["Location"] == "https://127.0.0.1/notes?x=1"
        https = fetch(url, "GET", "/notes", headers={"X-Forwarded-Proto": "https"})
        assert https.status == 200
