"""Hostile input end to end: gunicorn's invalid-request corpus and floods, under `microweb run`.

The notes example is served by ``microweb run`` with its defaults (two
workers, so that the table runs quickly). Each hostile request must get a
4xx, or have its connection closed without an answer, never a 5xx, and the
server must answer a normal request after each one.

The corpus is gunicorn's own (tests/requests/invalid in its source
distribution, version 27.0.1), kept in tests/data/gunicorn_invalid/ with
gunicorn's LICENSE and NOTICE. Its files spell CR LF as the four
characters ``\\r\\n`` and drop real newlines; `corpus_request` undoes that
the way gunicorn's own test loader (tests/treq.py) does.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from microweb_run import microweb_run
from servers import fetch, open_raw

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parent / "data" / "gunicorn_invalid"


def corpus_request(path: Path) -> bytes:
    data = path.read_bytes().replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    return data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("hostile")
    env = {"NOTES_DB": str(tmp / "notes.db")}
    with microweb_run("examples.notes:app", tmp / "log", args=("--workers", "2"), env=env) as (
        base,
        _,
    ):
        yield base


def exchange(url: str, raw: bytes) -> int | None:
    """Send `raw`, half-close, read until the server closes: the status, or None (closed)."""
    with open_raw(url) as sock:
        try:
            sock.sendall(raw)
            with contextlib.suppress(OSError):  # the server may have answered and closed
                sock.shutdown(socket.SHUT_WR)  # an incomplete request ends here
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            return None
    if not answer:
        return None
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), answer[:200]
    return int(status_line.split()[1])


def assert_alive(url: str) -> None:
    assert fetch(url, "GET", "/notes").status == 200


def test_gunicorns_invalid_request_corpus_never_gets_a_5xx(url: str) -> None:
    """Every request of the corpus: 4xx or closed, and the server still answers."""
    files = sorted(CORPUS.glob("*.http"))
    assert len(files) >= 80
    outcomes: dict[str, int | None] = {}
    for path in files:
        outcomes[path.name] = exchange(url, corpus_request(path))
        assert_alive(url)
    answered = [status for status in outcomes.values() if status is not None]
    print(
        f"corpus: {len(files)} requests, {len(answered)} answered, statuses {sorted(set(answered))}"
    )
    assert not {name: s for name, s in outcomes.items() if s is not None and s >= 500}
    assert not {name: s for name, s in outcomes.items() if s is not None and s < 400}


def head(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post_json(body: bytes) -> bytes:
    return (
        b"POST /notes HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


MANY_KEYS = b"{" + b",".join(b'"k%d":1' % i for i in range(10_000)) + b"}"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(head("/notes", *(f"X-H{i}: v" for i in range(200))), id="200-headers"),
        pytest.param(head("/notes", "X-Big: " + "a" * 65536), id="64KB-header"),
        pytest.param(head("/notes?" + "&".join(f"p{i}=1" for i in range(10_000))), id="10k-params"),
        pytest.param(head("/notes/" + "a" * 100_000), id="100KB-url"),
        pytest.param(post_json(b"[" * 100_000), id="100k-nested-json-arrays"),
        pytest.param(post_json(b'{"a":' * 50_000), id="50k-nested-json-objects"),
        pytest.param(post_json(MANY_KEYS), id="json-object-10k-keys"),
        pytest.param(head("/notes/\xff\xfe"), id="invalid-utf8-path-raw"),
        pytest.param(head("/notes/%FF%FE"), id="invalid-utf8-path-escaped"),
        pytest.param(head("/notes?limit=%FF"), id="invalid-utf8-query"),
        pytest.param(head("/notes?%FF=1&limit=\xff"), id="invalid-utf8-query-raw"),
        pytest.param(post_json(b'{"title": "\xff", "body": "x"}'), id="invalid-utf8-json"),
        pytest.param(post_json(b'{"title": "\\ud800", "body": "x"}'), id="lone-surrogate-json"),
        pytest.param(head("/notes", "Content-Length: -1"), id="negative-content-length"),
        pytest.param(
            head("/notes", "Transfer-Encoding: chunked", "Content-Length: 5"), id="te-and-cl"
        ),
    ],
)
def test_floods_get_a_4xx_or_a_close(url: str, raw: bytes) -> None:
    status = exchange(url, raw)
    assert status is None or 400 <= status < 500, status
    assert_alive(url)


@pytest.fixture(scope="module")
def accounts_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """examples/accounts.py: sessions in a cookie-named store, so it parses cookies."""
    tmp = tmp_path_factory.mktemp("accounts")
    env = {"ACCOUNTS_DB": str(tmp / "accounts.db"), "INSECURE_COOKIES": "1"}
    with microweb_run("examples.accounts:app", tmp / "log", args=("--workers", "1"), env=env) as (
        base,
        _,
    ):
        yield base


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("session=\xff\xfe; a=%FF", id="invalid-utf8"),
        pytest.param("; ".join(f"c{i}=v" for i in range(1000)), id="1000-cookies"),
        pytest.param("session=" + "A" * 8000, id="8000-byte-session-id"),
        pytest.param('session="unterminated', id="unterminated-quote"),
    ],
)
def test_hostile_cookies_are_no_session_never_a_5xx(accounts_url: str, cookie: str) -> None:
    """A cookie the app cannot use is no session (DESIGN.md: never a 500): as without one."""
    plain = exchange(accounts_url, head("/"))
    assert exchange(accounts_url, head("/", f"Cookie: {cookie}")) == plain
    assert plain is not None and plain < 500
