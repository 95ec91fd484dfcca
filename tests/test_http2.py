"""HTTP/2 (RFC 9113) to every example, served by gunicorn's gthread worker over TLS.

gunicorn 27 serves HTTP/2 to WSGI apps (``--http-protocols h2,h1``, the
``h2`` library: ``microweb[http2]``), negotiated by ALPN on a TLS
connection (tests/tls.py makes the certificate). The client is httpx with
``http2=True``. Nothing in microweb knows which version carried a request:
these tests show the examples work unchanged, including what HTTP/2 does
differently: several requests at once on one connection, an SSE stream
beside them, a multipart upload and a range request as DATA frames.

RFC 9113 §8.2.2 forbids connection-specific header fields (``Connection``,
``Keep-Alive``, ``Proxy-Connection``, ``Transfer-Encoding``, ``Upgrade``).
gunicorn drops them from what an app sends, so the wire cannot show a
mistake; the last test scans what each example's WSGI app itself sends,
in-process, for every request of the table.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import serving
from tls import TLS, make_tls
from wsgi_call import call

from microweb.stores import MemoryStore

pytestmark = pytest.mark.e2e

H2 = ("--worker-class", "gthread", "--threads", "8", "--http-protocols", "h2,h1")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
JWT_KEY = "an-http2-test-key-of-at-least-32-bytes"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


def env_for(name: str, tmp: Path, redis_url: str | None = None) -> dict[str, str]:
    (tmp / "files").mkdir(exist_ok=True)
    return {
        "notes": {"NOTES_DB": str(tmp / "notes.db")},
        "secure_api": {"NOTES_DB": str(tmp / "notes.db"), "FORCE_HTTPS": "1"},
        "files": {"FILES_DIR": str(tmp / "files")},
        "clock_sse": {"CLOCK_INTERVAL": "0.05"},
        "accounts": {"ACCOUNTS_DB": str(tmp / "accounts.db"), "JWT_KEY": JWT_KEY},
        "deploy.app": {"REDIS_URL": redis_url or "", "JWT_KEY": JWT_KEY, "INSTANCE": "h2"},
    }.get(name, {})


# Each example: the requests it gets, and the status each must answer.
REQUESTS: dict[str, list[tuple[str, str, int]]] = {
    "hello": [("GET", "/", 200), ("HEAD", "/", 200), ("OPTIONS", "/", 204),
              ("POST", "/", 405), ("GET", "/nowhere", 404)],
    "notes": [("GET", "/notes", 200), ("GET", "/notes/1", 404), ("DELETE", "/notes", 405)],
    "secure_api": [("GET", "/notes", 200), ("GET", "/notes/x", 404)],
    "files": [("GET", "/files", 200), ("GET", "/files/missing.txt", 404)],
    "clock_sse": [("GET", "/", 200), ("HEAD", "/clock", 200)],
    "accounts": [("GET", "/", 200), ("GET", "/login", 200), ("GET", "/api/me", 401)],
    "chat": [("GET", "/", 200), ("GET", "/healthz", 200), ("GET", "/ws", 426)],
    "deploy.app": [("GET", "/healthz", 200), ("GET", "/api/me", 401)],
}  # fmt: skip


@pytest.fixture
def serve(request: pytest.FixtureRequest, tls: TLS, tmp_path: Path) -> Iterator[Any]:
    """Start an example under HTTP/2 + TLS: ``serve("hello") -> "https://127.0.0.1:port"``."""
    with serving(request.node, tmp_path) as start:

        def serve_one(name: str) -> str:
            redis_url = request.getfixturevalue("redis_url") if name == "deploy.app" else None
            url = start(f"examples.{name}:app", env=env_for(name, tmp_path, redis_url),
                        workers=1, args=(*H2, *tls.args))  # fmt: skip
            return url.replace("http://", "https://")

        yield serve_one


def client(url: str, tls: TLS) -> httpx.Client:
    return httpx.Client(base_url=url, http2=True, verify=tls.context, timeout=10)


@pytest.mark.parametrize("name", list(REQUESTS))
def test_rfc9113_every_example_answers_over_http2(serve: Any, tls: TLS, name: str) -> None:
    url = serve(name)
    with client(url, tls) as http:
        for method, path, status in REQUESTS[name]:
            response = http.request(method, path)
            assert (method, path, response.status_code) == (method, path, status)
            assert response.http_version == "HTTP/2"
            assert not HOP_BY_HOP & {k.lower() for k in response.headers}, response.headers


def test_rfc9113_5_concurrent_requests_share_one_connection(serve: Any, tls: TLS) -> None:
    """Ten requests at once with ``max_connections=1``: ten streams on one connection.

    NOTE: gunicorn's gthread worker serves the streams of one HTTP/2
    connection one after another, in that connection's thread: they share
    the connection, not the time (docs/https.md, "What HTTP/2 changes").
    """
    url = serve("notes")

    async def run() -> list[tuple[int, str]]:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, http2=True, verify=tls.context,
                                     limits=limits, timeout=10) as http:  # fmt: skip
            created = await asyncio.gather(
                *(http.post("/notes", json={"title": f"n{i}", "body": ""}) for i in range(10))
            )
            listed = await http.get("/notes")
            assert len(listed.json()["notes"]) == 10
            return [(r.status_code, r.http_version) for r in created]

    assert asyncio.run(run()) == [(201, "HTTP/2")] * 10


def test_rfc9113_sse_stream_over_http2(serve: Any, tls: TLS) -> None:
    """The event stream arrives as DATA frames, event by event, and ends when we leave."""
    url = serve("clock_sse")
    with client(url, tls) as http, http.stream("GET", "/clock") as stream:
        assert stream.http_version == "HTTP/2"
        assert stream.headers["content-type"].startswith("text/event-stream")
        ids = []
        for line in stream.iter_lines():
            if line.startswith("id:"):
                ids.append(line)
            if len(ids) == 3:
                break
    assert ids == ["id: 1", "id: 2", "id: 3"]


def test_rfc9113_upload_and_rfc9110_14_range_over_http2(serve: Any, tls: TLS) -> None:
    url = serve("files")
    content = bytes(range(256)) * 400  # 100 KiB: several DATA frames each way
    with client(url, tls) as http:
        created = http.post("/files", files={"file": ("data.bin", content)})
        assert (created.status_code, created.http_version) == (201, "HTTP/2")
        part = http.get("/files/data.bin", headers={"Range": "bytes=1000-1999"})
        assert (part.status_code, part.http_version) == (206, "HTTP/2")
        assert part.content == content[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(content)}"
        whole = http.get("/files/data.bin")
        assert whole.content == content


# -- What the apps themselves send (RFC 9113 §8.2.2), in-process ------------------------


def apps(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each example's WSGI app, built in this process with its options."""
    # NOTE: secure_api and deploy.app build an app at import, from the environment.
    monkeypatch.setenv("FORCE_HTTPS", "1")
    monkeypatch.setenv("NOTES_DB", str(tmp / "secure.db"))
    monkeypatch.setenv("JWT_KEY", JWT_KEY)
    from examples import accounts, chat, clock_sse, files, hello, notes, secure_api
    from examples.deploy.app import create_site

    (tmp / "files").mkdir()
    return {
        "hello": hello.app,
        "notes": notes.create_app(tmp / "notes.db"),
        "secure_api": secure_api.secure(notes.create_app(tmp / "secure.db")),
        "files": files.create_app(tmp / "files"),
        "clock_sse": clock_sse.app,
        "accounts": accounts.create_app(tmp / "accounts.db", JWT_KEY),
        "chat": chat.app,
        "deploy.app": create_site(MemoryStore(), JWT_KEY, instance="scan"),  # type: ignore[arg-type]
    }


def test_rfc9113_8_2_2_no_example_sends_hop_by_hop_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request of the table, as HTTP/1.1 and HTTP/2, http and https, to each WSGI app.

    The one exception is RFC 9110 §15.5.22: a 426 over HTTP/1.1 must name
    the protocol to upgrade to (``Upgrade: websocket``); over HTTP/2 it does not.
    """
    seen = 0
    for name, app in apps(tmp_path, monkeypatch).items():
        for method, path, _ in REQUESTS[name]:
            for protocol, scheme in itertools.product(("HTTP/1.1", "HTTP/2"), ("http", "https")):
                extra = {"SERVER_PROTOCOL": protocol, "wsgi.url_scheme": scheme}
                reply = call(app, method, path, HTTP_ACCEPT="application/json", **extra)
                names = {k.lower() for k, _ in reply.headers}
                if protocol == "HTTP/1.1" and reply.status_code == 426:
                    names.discard("upgrade")
                assert not HOP_BY_HOP & names, (name, protocol, method, path, reply.headers)
                seen += 1
    assert seen == 4 * sum(len(rows) for rows in REQUESTS.values())  # every row was scanned
