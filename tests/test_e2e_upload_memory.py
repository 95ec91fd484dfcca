"""Upload memory end to end: a 200 MB upload streams; a chunked one over the cap is refused.

examples/files.py under gunicorn (one sync worker, so the worker that
handles the upload is known: servers.py's readiness signal names it). Memory is the
worker's peak resident set (``VmHWM`` in /proc/<pid>/status) before and
after: the upload is parsed as it arrives and spooled to disk
(microweb.uploads), so the peak must not grow with the body.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator

import pytest
from servers import TIMEOUT, fetch, open_raw

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
CHUNK = b"x" * MiB
BOUNDARY = "memory-test-boundary"


def peak_rss(pid: int) -> int:
    """The process's peak resident set so far, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def files_server(gunicorn_process, tmp_path, max_bytes: int) -> tuple[str, int]:
    """examples/files.py with one worker: its URL, and the pid of the worker, warmed up."""
    env = {"FILES_DIR": str(tmp_path / "files"), "FILES_MAX_BYTES": str(max_bytes)}
    server = gunicorn_process("examples.files:app", env=env, workers=1)
    (pid,) = server.pids
    assert fetch(server.url, "GET", "/files").status == 200  # the first request's costs come first
    return server.url, pid


def multipart(size: int) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for _ in range(size // MiB):
        yield CHUNK
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_a_200_mb_upload_streams_with_bounded_memory(gunicorn_process, tmp_path):
    """A route configured for big uploads (FILES_MAX_BYTES 256 MiB) takes 200 MiB."""
    url, pid = files_server(gunicorn_process, tmp_path, 256 * MiB)
    before = peak_rss(pid)
    size = 200 * MiB
    length = sum(len(part) for part in multipart(size))
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        content_type = f"multipart/form-data; boundary={BOUNDARY}"
        headers = {"Content-Type": content_type, "Content-Length": str(length)}
        connection.request("POST", "/files", body=multipart(size), headers=headers)
        reply = connection.getresponse()
        body = reply.read()
        assert reply.status == 201, body
    finally:
        connection.close()
    growth = peak_rss(pid) - before
    print(f"200 MiB upload: worker peak RSS +{growth / MiB:.1f} MiB")
    assert growth < 20 * MiB


def test_a_chunked_upload_over_the_cap_is_refused_with_bounded_memory(
    gunicorn_process, tmp_path
):
    """RFC 9112 §7.1: no Content-Length; the cap (64 MiB) is counted as the chunks arrive."""
    url, pid = files_server(gunicorn_process, tmp_path, 64 * MiB)
    before = peak_rss(pid)
    head = (
        b"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n\r\n"
    )
    with open_raw(url) as sock:
        sock.settimeout(60)

        def send() -> None:
            with contextlib.suppress(OSError):  # refused: the server stops reading
                sock.sendall(head)
                for part in multipart(100 * MiB):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                sock.sendall(b"0\r\n\r\n")

        sender = threading.Thread(target=send)
        sender.start()
        try:
            status_line = sock.makefile("rb").readline()
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # stop the sender
            sender.join(TIMEOUT)
    assert status_line.split()[1] == b"413"
    growth = peak_rss(pid) - before
    print(f"chunked 100 MiB over a 64 MiB cap: worker peak RSS +{growth / MiB:.1f} MiB")
    assert growth < 20 * MiB
