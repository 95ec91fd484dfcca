"""examples/files.py end to end: real gunicorn (2 sync workers), stdlib clients, and curl.

Upload, list, download, then resume the way ``curl -C -`` does: it asks for
``Range: bytes=<bytes it has>-`` (RFC 9110 §14.1.2) and appends the 206 to
its partial file. When the ``curl`` program is installed, it is run for real.
The in-process checks (WSGI lint) come first; they are fast and say which
rule broke.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import fetch, open_raw, read_to_eof, serving

from examples.files import create_app
from microweb.testing import Client

DATA = os.urandom(300_000)  # several 64 KiB blocks, not a multiple of one
BIG = os.urandom(3_000_000)  # seeded on disk: the sendfile path, above the upload cap
CURL = shutil.which("curl")


def multipart(filename: str, content: bytes, field: str = "file") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def upload(url: str, filename: str, content: bytes, field: str = "file") -> Any:
    body, content_type = multipart(filename, content, field)
    return fetch(url, "POST", "/files", body=body, headers={"Content-Type": content_type})


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("files")
    (directory / "big.bin").write_bytes(BIG)
    return directory


@pytest.fixture(scope="module")
def url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, files_dir: Path
) -> Iterator[str]:
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        base = start(
            "examples.files:app",
            env={"FILES_DIR": str(files_dir), "FILES_MAX_BYTES": str(1_048_576)},
        )
        assert upload(base, "data.bin", DATA).status == 201
        yield base


# --- in-process, through WebTest's linter -----------------------------------------------


@pytest.mark.parametrize(
    ("filename", "field", "status"),
    [
        pytest.param("a.txt", "file", 201, id="created-rfc9110-s15.3.2"),
        pytest.param("a.txt", "other", 400, id="no-file-field"),
        pytest.param("", "file", 400, id="no-file-chosen"),
        pytest.param(".env", "file", 422, id="dotfile-would-not-be-served"),
        pytest.param("CON.txt", "file", 422, id="windows-device-name"),
        pytest.param("../../escape.txt", "file", 201, id="path-stripped-to-basename-rfc7578"),
    ],
)
def test_upload_rows(tmp_path: Path, filename: str, field: str, status: int) -> None:
    client = Client(create_app(tmp_path / "files"))
    client.post("/files", upload_files=[(field, filename, b"x")], status=status)
    stored = sorted(os.listdir(tmp_path / "files"))
    assert stored == ([os.path.basename(filename)] if status == 201 else [])
    assert not (tmp_path / "escape.txt").exists()


def test_upload_never_overwrites_409(tmp_path: Path) -> None:
    client = Client(create_app(tmp_path))
    client.post("/files", upload_files=[("file", "a.txt", b"first")], status=201)
    client.post("/files", upload_files=[("file", "a.txt", b"second")], status=409)
    assert (tmp_path / "a.txt").read_bytes() == b"first"
    assert os.listdir(tmp_path) == ["a.txt"]  # no temporary file left behind


def test_list_skips_dotfiles_and_directories(tmp_path: Path) -> None:
    (tmp_path / ".upload-123").write_bytes(b"half")
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.txt").write_bytes(b"bb")
    (tmp_path / "a b.txt").write_bytes(b"a")
    listed = Client(create_app(tmp_path)).get("/files").json["files"]
    assert listed == [
        {"name": "a b.txt", "size": 1, "url": "/files/a%20b.txt"},
        {"name": "b.txt", "size": 2, "url": "/files/b.txt"},
    ]


def test_download_is_an_attachment(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(b"<script>alert(1)</script>")
    client = Client(create_app(tmp_path))
    for headers in ({}, {"Range": "bytes=0-1"}):
        response = client.get("/files/page.html", headers=headers)
        assert response.headers["Content-Disposition"] == "attachment"  # RFC 6266
        assert response.headers["Content-Security-Policy"] == "sandbox"
    assert "Content-Disposition" not in client.get("/files/nope.html", status=404).headers


# --- real gunicorn ----------------------------------------------------------------------

e2e = pytest.mark.e2e


@e2e
def test_upload_list_download(url: str) -> None:
    created = upload(url, "notes.txt", b"hello, world\n")
    assert created.status == 201
    assert created.headers["Location"] == "/files/notes.txt"
    assert created.json() == {"name": "notes.txt", "size": 13, "url": "/files/notes.txt"}

    listed = {f["name"]: f["size"] for f in fetch(url, "GET", "/files").json()["files"]}
    assert listed["notes.txt"] == 13
    assert listed["data.bin"] == len(DATA)

    got = fetch(url, "GET", "/files/notes.txt")
    assert (got.status, got.body) == (200, b"hello, world\n")
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.headers["Accept-Ranges"] == "bytes"
    # RFC 9110 §13.1.2: revalidation with the ETag is a 304.
    again = fetch(url, "GET", "/files/notes.txt", headers={"If-None-Match": got.headers["ETag"]})
    assert (again.status, again.body) == (304, b"")


@e2e
def test_whole_file_through_sendfile(url: str) -> None:
    got = fetch(url, "GET", "/files/big.bin")
    assert got.status == 200
    assert got.headers["Content-Length"] == str(len(BIG))
    assert got.body == BIG


@e2e
def test_upload_over_the_cap_413(url: str) -> None:
    assert upload(url, "huge.bin", b"x" * 1_100_000).status == 413


@e2e
@pytest.mark.parametrize("have", [0, 1, 65_536, 100_001, len(DATA) - 1])
def test_resume_like_curl_rfc9110_s14_1_2(url: str, have: int) -> None:
    first = fetch(url, "GET", "/files/data.bin")
    rest = fetch(
        url,
        "GET",
        "/files/data.bin",
        headers={"Range": f"bytes={have}-", "If-Range": first.headers["ETag"]},
    )
    assert rest.status == 206
    assert rest.headers["Content-Range"] == f"bytes {have}-{len(DATA) - 1}/{len(DATA)}"
    assert rest.headers["Content-Length"] == str(len(DATA) - have)
    assert DATA[:have] + rest.body == DATA


@e2e
@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        pytest.param({"Range": "bytes=-100"}, 206, DATA[-100:], id="suffix-s14.1.2"),
        pytest.param({"Range": "bytes=-999999999"}, 206, DATA, id="suffix-longer-than-file"),
        pytest.param({"Range": f"bytes={len(DATA)}-"}, 416, None, id="resume-past-end-416"),
        pytest.param({"Range": "bytes=5-4"}, 200, DATA, id="invalid-ignored-s14.1.1"),
        pytest.param(
            {"Range": "bytes=0-", "If-Range": '"stale"'}, 200, DATA, id="stale-if-range-s13.1.5"
        ),
        pytest.param(
            {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(1000))},
            200,
            DATA,
            id="1000-ranges-ignored",
        ),
    ],
)
def test_range_rows(url: str, headers: dict[str, str], status: int, body: bytes | None) -> None:
    reply = fetch(url, "GET", "/files/data.bin", headers=headers)
    assert reply.status == status
    if body is not None:
        assert reply.body == body
    else:
        assert reply.headers["Content-Range"] == f"bytes */{len(DATA)}"


@e2e
def test_multiple_ranges_rfc9110_s14_6(url: str) -> None:
    reply = fetch(url, "GET", "/files/data.bin", headers={"Range": "bytes=0-9,-10"})
    assert reply.status == 206
    assert reply.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert DATA[:10] in reply.body and DATA[-10:] in reply.body
    assert f"Content-Range: bytes 0-9/{len(DATA)}".encode() in reply.body


@e2e
@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/files/..%2f..%2fetc%2fpasswd", id="encoded-slashes"),
        pytest.param("/files/%2e%2e/%2e%2e/etc/passwd", id="pct-2e2e"),
        pytest.param("/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", id="all-encoded"),
        pytest.param("/files/..%5c..%5cetc%5cpasswd", id="encoded-backslashes"),
        pytest.param("/files/.upload-x", id="dotfile"),
        pytest.param("/files/%00", id="nul"),
        pytest.param("/files/CON", id="windows-device"),
    ],
)
def test_traversal_through_gunicorn_404(url: str, target: str) -> None:
    # NOTE: a raw request line: http.client would normalise nothing, but this is exact.
    with open_raw(url) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = read_to_eof(sock)
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"404", status_line
    assert b"root:" not in reply


@e2e
@pytest.mark.skipif(CURL is None, reason="curl is not installed")
@pytest.mark.parametrize("have", [1, 70_000, len(DATA) - 1, len(DATA)])
def test_curl_continue_at(url: str, tmp_path: Path, have: int) -> None:
    # The partial file holds bytes the server never sent: if curl resumed
    # with a Range (and did not fetch it all again), they are still there.
    partial = tmp_path / "partial"
    partial.write_bytes(b"X" * have)
    # NOTE: no --fail: curl takes the 416 to "bytes=<whole size>-" as "already complete".
    command = [str(CURL), "-sS", "-C", "-", "-o", str(partial), url + "/files/data.bin"]
    subprocess.run(command, check=True, timeout=30, capture_output=True)
    assert partial.read_bytes() == b"X" * have + DATA[have:]
