"""Bad input on the wire, through real gunicorn: every case is a 4xx/5xx the RFC names.

gunicorn rejects much malformed HTTP itself, but passes some of it to the
app: a request without ``Host``, a method it has never heard of, and a
chunked body whose chunk size is not hex (which surfaces as an ``IOError``
from ``wsgi.input.read()``). These tests send raw bytes so that nothing
between the test and gunicorn can tidy the request up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import open_raw, read_to_eof, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("db")) / "notes.db"
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        yield start("examples.notes:app", env={"NOTES_DB": str(db)})


def exchange(url: str, raw: bytes) -> tuple[int, bytes]:
    """Send `raw`, read until the server closes; the status code and the whole reply."""
    with open_raw(url) as sock:
        sock.sendall(raw)
        reply = read_to_eof(sock)
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", reply)
    assert match, reply[:200]
    return int(match.group(1)), reply


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


def test_rfc9112_3_2_http11_without_host_is_400(url: str) -> None:
    status, _ = exchange(url, request("GET /notes HTTP/1.1\nConnection: close\n"))
    assert status == 400


def test_rfc9110_9_1_unknown_method_is_501(url: str) -> None:
    status, _ = exchange(url, request("FROB /notes HTTP/1.1\nHost: x\nConnection: close\n"))
    assert status == 501


def test_rfc9112_7_1_invalid_chunk_size_is_400_not_500(url: str) -> None:
    raw = request(
        "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\nConnection: close\n",
        b"zz\r\n{}\r\n0\r\n\r\n",
    )
    status, reply = exchange(url, raw)
    assert 400 <= status < 500, reply[:300]


def test_rfc9110_15_5_14_oversized_chunked_body_is_413(url: str) -> None:
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
    raw = request(
        "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\nConnection: close\n",
        body,
    )
    status, _ = exchange(url, raw)
    assert status == 413


def test_rfc9110_15_5_14_content_length_over_the_cap_is_413_before_reading(url: str) -> None:
    """Only the headers are sent: the 413 comes without waiting for 2 MiB of body."""
    raw = request(
        "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Content-Length: 2097152\nConnection: close\n"
    )
    status, reply = exchange(url, raw)
    assert status == 413
    assert b"application/problem+json" in reply


def test_chunked_json_body_within_the_cap_is_read(url: str) -> None:
    payload = b'{"title": "chunked", "body": "ok"}'
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    raw = request(
        "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        "Transfer-Encoding: chunked\nConnection: close\n",
        body,
    )
    status, reply = exchange(url, raw)
    assert status == 201, reply[:300]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/notes/%FF", id="non-utf8-path"),
        pytest.param("/notes?limit=%FF", id="non-utf8-query"),
    ],
)
def test_non_utf8_request_targets_are_400(url: str, target: str) -> None:
    status, _ = exchange(url, request(f"GET {target} HTTP/1.1\nHost: x\nConnection: close\n"))
    assert status == 400


def test_malformed_json_is_400_and_never_a_traceback(url: str) -> None:
    body = b'{"title": '
    raw = request(
        "POST /notes HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {len(body)}\nConnection: close\n",
        body,
    )
    status, reply = exchange(url, raw)
    assert status == 400
    assert b"Traceback" not in reply and b".py" not in reply


def test_rfc9110_9_3_7_options_asterisk_asks_about_the_server(url: str) -> None:
    status, reply = exchange(url, request("OPTIONS * HTTP/1.1\nHost: x\nConnection: close\n"))
    assert status == 204, reply
