"""StaticFiles (microweb/static.py): validators, conditionals, ranges, path safety.

Every request goes through a WSGI linter: WebTest's (`Client`) for ordinary
requests, `wsgiref.validate` (`call`) for the raw paths a real server can
hand over (gunicorn decodes %2e and %2f before the app sees PATH_INFO).
The app is mounted the way `App.static` mounts it: ``app.mount(prefix, StaticFiles(...))``.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any, ClassVar

import pytest
from scaling import assert_linear
from wsgi_call import call

from microweb import App
from microweb.ranges import MAX_RANGES, parse_range
from microweb.static import FileBody, Part, StaticFiles, guess_type
from microweb.testing import Client

DATA = bytes(range(256)) * 4  # data.bin: 1024 bytes, each offset recognisable
SIZE = len(DATA)
MTIME = 1_700_000_000  # a fixed Last-Modified, long past: a strong validator
LAST_MODIFIED = formatdate(MTIME, usegmt=True)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """static/ with files, symlinks in and out, a FIFO, and a sibling static-secret/."""
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "hello.txt").write_text("hello, world\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "sub" / "inner.txt").write_text("inner")
    (root / "café.txt").write_text("café")
    # Files that exist and must still be refused.
    (root / ".env").write_text("SECRET=1")
    (root / "con.txt").write_text("a Windows device name")
    (root / "nul").write_text("a Windows device name")
    os.mkfifo(root / "pipe.txt")  # opening it for reading would block
    secret = tmp_path / "static-secret"
    secret.mkdir()
    (secret / "key.txt").write_text("KEY")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    os.symlink("../static-secret/key.txt", root / "relative-escape.txt")
    os.symlink(secret, root / "secretdir")
    os.symlink(root / "hello.txt", root / "alias.txt")  # stays inside: served
    for path in (root / "data.bin", root / "hello.txt"):
        os.utime(path, (MTIME, MTIME))
    return root


@pytest.fixture
def client(tree: Path) -> Any:
    app = App()
    app.mount("/static", StaticFiles(tree))
    return Client(app)


def etag_of(client: Any, path: str = "/static/data.bin") -> str:
    return str(client.get(path).headers["ETag"])


# --- content types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("a.txt", "text/plain; charset=utf-8", id="text-gets-utf8"),
        pytest.param("a.html", "text/html; charset=utf-8", id="html"),
        pytest.param("a.css", "text/css; charset=utf-8", id="css"),
        pytest.param("a.js", "text/javascript; charset=utf-8", id="js-rfc9239"),
        pytest.param("a.json", "application/json", id="json-no-charset-rfc8259"),
        pytest.param("a.png", "image/png", id="png"),
        pytest.param("A.PNG", "image/png", id="extension-case-insensitive"),
        pytest.param("a.tar.gz", "application/gzip", id="gz-never-content-encoding"),
        pytest.param("README", "application/octet-stream", id="no-extension"),
        pytest.param("a.unknownext", "application/octet-stream", id="unknown-extension"),
    ],
)
def test_content_type_from_extension(name: str, expected: str) -> None:
    assert guess_type(name) == expected


# --- the whole file: 200 and HEAD ------------------------------------------------------


def test_get_whole_file_rfc9110_s8_8(client: Any) -> None:
    response = client.get("/static/data.bin", status=200)
    assert response.body == DATA
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Accept-Ranges"] == "bytes"  # RFC 9110 §14.3
    assert response.headers["Last-Modified"] == LAST_MODIFIED  # §8.8.2
    assert response.headers["Cache-Control"] == "no-cache"
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")  # §8.8.3


def test_head_has_get_headers_and_no_body_rfc9110_s9_3_2(client: Any) -> None:
    get = client.get("/static/hello.txt")
    head = client.head("/static/hello.txt", status=200)
    assert head.body == b""
    for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges"):
        assert head.headers[name] == get.headers[name]


def test_head_ignores_range_rfc9110_s14_2(client: Any) -> None:
    head = client.head("/static/data.bin", headers={"Range": "bytes=0-9"}, status=200)
    assert head.headers["Content-Length"] == str(SIZE)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/static/sub/inner.txt", b"inner", id="subdirectory"),
        pytest.param("/static/alias.txt", b"hello, world\n", id="symlink-inside-root"),
        pytest.param("/static/caf%C3%A9.txt", "café".encode(), id="utf8-name"),
        pytest.param("/static/empty.txt", b"", id="empty-file"),
    ],
)
def test_served(client: Any, path: str, body: bytes) -> None:
    assert client.get(path, status=200).body == body


@pytest.mark.parametrize(
    ("method", "status"),
    [
        pytest.param("POST", 405, id="post-405-rfc9110-s15.5.6"),
        pytest.param("PUT", 405, id="put-405"),
        pytest.param("DELETE", 405, id="delete-405"),
        pytest.param("PATCH", 405, id="patch-405"),
        pytest.param("OPTIONS", 204, id="options-204-rfc9110-s9.3.7"),
    ],
)
def test_methods_carry_allow(client: Any, method: str, status: int) -> None:
    response = client.request("/static/hello.txt", method=method, status=status)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


# --- ranges: RFC 9110 §14 -------------------------------------------------------------

WHOLE = (200, None, DATA)
UNSATISFIABLE = (416, f"bytes */{SIZE}", None)


def partial(first: int, last: int) -> tuple[int, str, bytes]:
    return 206, f"bytes {first}-{last}/{SIZE}", DATA[first : last + 1]


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        pytest.param("bytes=0-9", partial(0, 9), id="int-range-s14.1.2"),
        pytest.param("bytes=10-10", partial(10, 10), id="one-byte"),
        pytest.param("bytes=1000-", partial(1000, 1023), id="open-range-s14.1.2"),
        pytest.param("bytes=-24", partial(1000, 1023), id="suffix-s14.1.2"),
        pytest.param("bytes=-5000", partial(0, 1023), id="suffix-longer-than-file-whole-206"),
        pytest.param("bytes=1000-5000", partial(1000, 1023), id="last-pos-clamped-s14.1.2"),
        pytest.param("bytes=0-" + "9" * 40, partial(0, 1023), id="huge-last-pos-clamped"),
        pytest.param("bytes=-" + "9" * 5000, partial(0, 1023), id="huge-suffix-whole"),
        pytest.param("BYTES=0-1", partial(0, 1), id="unit-case-insensitive-s14.1"),
        pytest.param("bytes= 0-1 ,", partial(0, 1), id="ows-and-empty-element-s5.6.1"),
        pytest.param("bytes=0-1,1024-", partial(0, 1), id="unsatisfiable-part-dropped"),
        pytest.param("bytes=1024-", UNSATISFIABLE, id="first-pos-at-length-416-s15.5.17"),
        pytest.param("bytes=" + "9" * 5000 + "-", UNSATISFIABLE, id="huge-first-pos-416"),
        pytest.param("bytes=-0", UNSATISFIABLE, id="zero-suffix-416-s14.1.1"),
        pytest.param("bytes=1024-,2000-3000", UNSATISFIABLE, id="all-unsatisfiable-416"),
        pytest.param("bytes=5-4", WHOLE, id="last-before-first-ignored-s14.1.1"),
        pytest.param("bytes=--5", WHOLE, id="double-dash-ignored"),
        pytest.param("bytes=-", WHOLE, id="lone-dash-ignored"),
        pytest.param("bytes=", WHOLE, id="empty-set-ignored"),
        pytest.param("bytes=a-b", WHOLE, id="not-digits-ignored"),
        pytest.param("bytes=0-1,x", WHOLE, id="one-bad-spec-ignores-all"),
        pytest.param("bytes=+1-2", WHOLE, id="signed-ignored"),
        pytest.param("bytes 0-1", WHOLE, id="no-equals-ignored"),
        pytest.param("items=0-1", WHOLE, id="unknown-unit-ignored-s14.2"),
        pytest.param("bytes=0-,0-", WHOLE, id="overlapping-ranges-ignored-s14.2"),
        pytest.param("bytes=" + ",".join(["0-0"] * 17), WHOLE, id="over-max-ranges-ignored"),
    ],
)
def test_range(client: Any, range_header: str, expected: tuple[int, Any, Any]) -> None:
    status, content_range, body = expected
    response = client.get("/static/data.bin", headers={"Range": range_header}, status=status)
    assert response.headers.get("Content-Range") == content_range
    assert response.headers["Accept-Ranges"] == "bytes"
    if body is not None:
        assert response.body == body
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["Content-Type"] == "application/octet-stream"


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    assert message.is_multipart()
    return [
        (part["Content-Type"], part["Content-Range"], part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        pytest.param("bytes=0-9,20-29", [(0, 9), (20, 29)], id="two-ranges-s14.6"),
        pytest.param("bytes=-4,0-3", [(1020, 1023), (0, 3)], id="order-kept-suffix-first"),
        pytest.param(
            "bytes=" + ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES)),
            [(i * 10, i * 10 + 1) for i in range(MAX_RANGES)],
            id="max-ranges-served",
        ),
        pytest.param("bytes=0-1,2000-,5-6", [(0, 1), (5, 6)], id="unsatisfiable-dropped"),
    ],
)
def test_multiple_ranges_multipart_byteranges_rfc9110_s14_6(
    client: Any, range_header: str, expected: list[tuple[int, int]]
) -> None:
    response = client.get("/static/data.bin", headers={"Range": range_header}, status=206)
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    assert "Content-Range" not in response.headers  # §14.4: it is in each part
    assert response.headers["Content-Length"] == str(len(response.body))
    assert response.body.endswith(b"--\r\n")
    parts = parse_multipart(content_type, response.body)
    assert parts == [
        ("application/octet-stream", f"bytes {a}-{b}/{SIZE}", DATA[a : b + 1]) for a, b in expected
    ]


def test_two_requests_get_different_boundaries(client: Any) -> None:
    headers = {"Range": "bytes=0-0,2-2"}
    first = client.get("/static/data.bin", headers=headers).headers["Content-Type"]
    assert first != client.get("/static/data.bin", headers=headers).headers["Content-Type"]


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        pytest.param("bytes=0-", 0, None, id="empty-file-int-range-ignored"),
        pytest.param("bytes=-5", 0, None, id="empty-file-suffix-ignored"),
        pytest.param("bytes=0-0", 1, [(0, 0)], id="one-byte-file"),
        pytest.param("bytes=0-1,1-2", 10, [(0, 1), (1, 2)], id="small-overlap-within-size-kept"),
        pytest.param("bytes=0-9,0-0", 10, None, id="overlap-over-size-ignored"),
        pytest.param("bytes=\t0-1\t", 10, [(0, 1)], id="tab-is-ows"),
        pytest.param("bytes=\u0660-\u0669", 10, None, id="unicode-digits-not-digits"),
    ],
)
def test_parse_range(header: str, size: int, expected: Any) -> None:
    assert parse_range(header, size) == expected


# --- If-Range: RFC 9110 §13.1.5 -------------------------------------------------------


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        pytest.param("{etag}", 206, id="current-etag-206"),
        pytest.param('"stale"', 200, id="stale-etag-whole-200"),
        pytest.param("W/{etag}", 200, id="weak-etag-never-matches-strong-comparison"),
        pytest.param(LAST_MODIFIED, 206, id="exact-last-modified-206"),
        pytest.param(formatdate(MTIME + 60, usegmt=True), 200, id="other-date-200"),
        pytest.param(formatdate(MTIME - 60, usegmt=True), 200, id="older-date-200"),
        pytest.param("not a date", 200, id="garbage-200"),
    ],
)
def test_if_range(client: Any, if_range: str, status: int) -> None:
    headers = {"Range": "bytes=0-9", "If-Range": if_range.format(etag=etag_of(client))}
    response = client.get("/static/data.bin", headers=headers, status=status)
    assert response.body == (DATA[:10] if status == 206 else DATA)


def test_if_range_date_of_a_file_modified_this_second_is_weak_rfc9110_s8_8_2_2(
    client: Any, tree: Path
) -> None:
    now = int(time.time()) + 5  # modified "now" from the server's point of view
    os.utime(tree / "data.bin", (now, now))
    headers = {"Range": "bytes=0-9", "If-Range": formatdate(now, usegmt=True)}
    client.get("/static/data.bin", headers=headers, status=200)


# --- conditional requests: RFC 9110 §13 -----------------------------------------------

PAST = formatdate(MTIME - 60, usegmt=True)
FUTURE = formatdate(MTIME + 60, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"If-None-Match": "{etag}"}, 304, id="inm-match-304-s13.1.2"),
        pytest.param({"If-None-Match": "W/{etag}"}, 304, id="inm-weak-comparison"),
        pytest.param({"If-None-Match": '"x", {etag}'}, 304, id="inm-list"),
        pytest.param({"If-None-Match": "*"}, 304, id="inm-star"),
        pytest.param({"If-None-Match": '"other"'}, 200, id="inm-other-200"),
        pytest.param({"If-Modified-Since": LAST_MODIFIED}, 304, id="ims-equal-304-s13.1.3"),
        pytest.param({"If-Modified-Since": FUTURE}, 304, id="ims-later-304"),
        pytest.param({"If-Modified-Since": PAST}, 200, id="ims-earlier-200"),
        pytest.param({"If-Modified-Since": "yesterday"}, 200, id="ims-garbage-ignored"),
        pytest.param({"If-Modified-Since": "Fri, 31 Dec 99999 23:59:59 GMT"}, 200, id="ims-huge"),
        pytest.param(
            {"If-None-Match": '"other"', "If-Modified-Since": FUTURE}, 200, id="inm-wins-over-ims"
        ),
        pytest.param({"If-Match": "{etag}"}, 200, id="if-match-200-s13.1.1"),
        pytest.param({"If-Match": "*"}, 200, id="if-match-star"),
        pytest.param({"If-Match": '"other"'}, 412, id="if-match-other-412"),
        pytest.param({"If-Match": "W/{etag}"}, 412, id="if-match-strong-comparison"),
        pytest.param({"If-Unmodified-Since": PAST}, 412, id="ius-earlier-412-s13.1.4"),
        pytest.param({"If-Unmodified-Since": FUTURE}, 200, id="ius-later-200"),
        pytest.param(
            {"If-Match": "{etag}", "If-Unmodified-Since": PAST}, 200, id="if-match-wins-over-ius"
        ),
        pytest.param(
            {"If-None-Match": "{etag}", "Range": "bytes=0-1"}, 304, id="304-before-range-s13.2.2"
        ),
    ],
)
def test_conditional_requests(client: Any, headers: dict[str, str], status: int) -> None:
    etag = etag_of(client)
    headers = {name: value.format(etag=etag) for name, value in headers.items()}
    response = client.get("/static/data.bin", headers=headers, status=status)
    if status == 304:
        # RFC 9110 §15.4.5: no content; the 200's ETag and Cache-Control, and no
        # Last-Modified beside the ETag (it guides cache updates only without one).
        assert response.body == b""
        assert response.headers["ETag"] == etag
        assert "Last-Modified" not in response.headers
        assert response.headers["Cache-Control"] == "no-cache"
        assert "Content-Length" not in response.headers
    elif status == 200:
        assert response.body == DATA


BASE_NS = MTIME * 10**9 + 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda p: os.utime(p, ns=(BASE_NS + 1, BASE_NS + 1)), id="mtime-ns-same-second"
        ),
        pytest.param(lambda p: os.utime(p, ns=(BASE_NS + 10**9,) * 2), id="mtime-new-second"),
        pytest.param(lambda p: p.write_bytes(DATA + b"x"), id="size"),
        pytest.param(lambda p: p.write_bytes(DATA[::-1]), id="same-size-new-content"),
    ],
)
def test_etag_changes_with_the_file_rfc9110_s8_8_3(client: Any, tree: Path, change: Any) -> None:
    path = tree / "data.bin"
    os.utime(path, ns=(BASE_NS, BASE_NS))
    before = etag_of(client)
    change(path)
    assert etag_of(client) != before
    client.get("/static/data.bin", headers={"If-None-Match": before}, status=200)


def test_etag_changes_when_the_file_is_replaced_by_rename(client: Any, tree: Path) -> None:
    path, replacement = tree / "data.bin", tree / "new.bin"
    os.utime(path, ns=(BASE_NS, BASE_NS))
    before = etag_of(client)
    replacement.write_bytes(DATA)
    os.utime(replacement, ns=(BASE_NS, BASE_NS))  # same size, same mtime: a new inode only
    os.replace(replacement, path)
    assert etag_of(client) != before


# --- Cache-Control and options --------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, "no-cache", id="default-revalidate"),
        pytest.param({"max_age": 3600}, "max-age=3600", id="max-age-rfc9111-s5.2.2.1"),
        pytest.param(
            {"max_age": 31536000, "immutable": True}, "max-age=31536000, immutable", id="rfc8246"
        ),
    ],
)
def test_cache_control(tree: Path, options: dict[str, Any], expected: str) -> None:
    client = Client(StaticFiles(tree, **options))
    assert client.get("/hello.txt").headers["Cache-Control"] == expected
    assert client.get("/nope.txt", status=404).headers.get("Cache-Control") is None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"max_age": -1}, id="negative-max-age"),
        pytest.param({"immutable": True}, id="immutable-without-max-age"),
        pytest.param({"max_ranges": 0}, id="no-ranges"),
    ],
)
def test_bad_options_fail_at_construction(tree: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StaticFiles(tree, **options)


@pytest.mark.parametrize("name", ["missing", "hello.txt"])
def test_directory_must_exist(tree: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        StaticFiles(tree / name)


# --- path safety: everything below is a 404 -------------------------------------------

# (PATH_INFO as gunicorn hands it over: percent-decoded, bytes as latin-1; raw URI)
REFUSED = [
    pytest.param("/../outside.txt", None, id="dot-dot"),
    pytest.param("/sub/../../outside.txt", None, id="dot-dot-deeper"),
    pytest.param("/sub/../hello.txt", None, id="dot-dot-even-inside"),
    pytest.param("/../outside.txt", "/%2e%2e/outside.txt", id="pct-2e2e-decoded-by-server"),
    pytest.param("/%2e%2e/outside.txt", None, id="pct-2e2e-not-decoded"),
    pytest.param("/./hello.txt", None, id="dot-segment"),
    pytest.param("/sub/inner.txt", "/sub%2Finner.txt", id="encoded-slash-exists"),
    pytest.param("/sub/inner.txt", "/sub%2finner.txt?x=1", id="encoded-slash-lowercase"),
    pytest.param("/sub\\inner.txt", "/sub%5Cinner.txt", id="encoded-backslash"),
    pytest.param("/..\\outside.txt", None, id="backslash-dot-dot"),
    pytest.param("//etc/passwd", None, id="absolute-double-slash"),
    pytest.param("/etc/passwd", None, id="absolute-joined-under-root"),
    pytest.param("/C:/Windows/win.ini", None, id="drive-letter"),
    pytest.param("/hello.txt::$DATA", None, id="ntfs-stream"),
    pytest.param("/hello.txt\x00.png", None, id="nul"),
    pytest.param("/hello\n.txt", None, id="control-char"),
    pytest.param("/escape.txt", None, id="symlink-out"),
    pytest.param("/relative-escape.txt", None, id="relative-symlink-to-sibling"),
    pytest.param("/secretdir/key.txt", None, id="symlinked-dir-to-sibling"),
    pytest.param("/../static-secret/key.txt", None, id="sibling-sharing-prefix"),
    pytest.param("/con.txt", None, id="windows-con-with-extension"),
    pytest.param("/nul", None, id="windows-nul"),
    pytest.param("/AUX", None, id="windows-aux"),
    pytest.param("/COM1.log", None, id="windows-com1"),
    pytest.param("/lpt9", None, id="windows-lpt9"),
    pytest.param("/hello.txt.", None, id="trailing-dot"),
    pytest.param("/hello.txt ", None, id="trailing-space"),
    pytest.param("/.env", None, id="dotfile"),
    pytest.param("/sub/.hidden", None, id="dotfile-in-subdir"),
    pytest.param("/sub", None, id="directory"),
    pytest.param("/sub/", None, id="directory-slash"),
    pytest.param("/", None, id="root"),
    pytest.param("", None, id="empty-path-info"),
    pytest.param("/hello.txt/", None, id="file-with-slash"),
    pytest.param("/pipe.txt", None, id="fifo-never-blocks"),
    pytest.param("/\xff.txt", None, id="not-utf8"),
    pytest.param("/missing.txt", None, id="missing"),
]


@pytest.mark.parametrize(("path_info", "raw_uri"), REFUSED)
def test_path_refused_404(tree: Path, path_info: str, raw_uri: str | None) -> None:
    extra = {"RAW_URI": raw_uri} if raw_uri else {}
    response = call(StaticFiles(tree), "GET", path_info, **extra)
    assert response.status_code == 404
    assert response.body == b"Not Found\n"


@pytest.mark.parametrize(("path_info", "raw_uri"), REFUSED[:12])
def test_path_refused_404_when_mounted(tree: Path, path_info: str, raw_uri: str | None) -> None:
    app = App()
    app.mount("/static", StaticFiles(tree))
    extra = {"RAW_URI": "/static" + raw_uri} if raw_uri else {}
    assert call(app, "GET", "/static" + path_info, **extra).status_code == 404


def test_raw_uri_without_encoding_is_served(tree: Path) -> None:
    response = call(StaticFiles(tree), "GET", "/sub/inner.txt", RAW_URI="/sub/inner.txt")
    assert (response.status_code, response.body) == (200, b"inner")


# --- bodies: file_wrapper, bounded reads, files closed ---------------------------------


class RecordingWrapper:
    """A PEP 3333 wsgi.file_wrapper that remembers being used."""

    used: ClassVar[list[int]] = []

    def __init__(self, file: Any, block_size: int) -> None:
        RecordingWrapper.used.append(block_size)
        self.file = file

    def __iter__(self) -> Any:
        return iter(lambda: self.file.read(8192), b"")

    def close(self) -> None:
        self.file.close()


@pytest.mark.parametrize(
    ("headers", "wrapped"),
    [
        pytest.param({}, True, id="whole-file-uses-file-wrapper-pep3333"),
        pytest.param({"HTTP_RANGE": "bytes=0-9"}, False, id="range-reads-blocks"),
        pytest.param({"HTTP_RANGE": "bytes=0-1,5-6"}, False, id="multipart-reads-blocks"),
    ],
)
def test_file_wrapper(tree: Path, headers: dict[str, str], wrapped: bool) -> None:
    RecordingWrapper.used.clear()
    extra = {"wsgi.file_wrapper": RecordingWrapper, **headers}
    response = call(StaticFiles(tree), "GET", "/data.bin", **extra)
    assert response.status_code == (206 if headers else 200)
    assert bool(RecordingWrapper.used) == wrapped


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_every_response_closes_the_file(client: Any) -> None:
    etag = etag_of(client)
    before = open_fds()
    for headers in (
        {},
        {"Range": "bytes=0-9"},
        {"Range": "bytes=0-1,4-5"},
        {"Range": "bytes=5000-"},
        {"If-None-Match": etag},
        {"If-Match": '"other"'},
    ):
        client.get("/static/data.bin", headers=headers, status="*")
    client.head("/static/data.bin")
    client.get("/static/sub", status=404)
    assert open_fds() == before


def test_body_reads_bounded_blocks_and_stops_if_the_file_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 200_000)
    body = FileBody(open(path, "rb"), [Part(b"head", 0, 200_000)], b"tail")  # noqa: SIM115
    chunks = iter(body)
    assert next(chunks) == b"head"
    assert len(next(chunks)) == 65_536
    path.write_bytes(b"")  # truncated under us: stop, short of Content-Length
    assert list(chunks) == []
    body.close()
    assert body.file.closed


# --- hostile Range headers: linear work ------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "count"),
    [
        pytest.param(lambda n: ",".join(f"{i}-{i}" for i in range(n)), 10_000, id="10000-ranges"),
        pytest.param(lambda n: ",".join(["0-"] * n), 10_000, id="10000-whole-file-ranges"),
        pytest.param(lambda n: "9" * n + "-", 100_000, id="100k-digit-number"),
        pytest.param(lambda n: "," * n + "0-1", 100_000, id="100k-empty-elements"),
    ],
)
def test_hostile_range_is_linear(client: Any, shape: Callable[[int], str], count: int) -> None:
    """Hostile: the whole header costs about 10 times a tenth of it (scaling.py: CPU time,
    WebTest and lint included), and is ignored (200) or refused (416), never 206."""

    def request(size: int) -> Callable[[], None]:
        header = "bytes=" + shape(size)

        def work() -> None:
            response = client.get("/static/data.bin", headers={"Range": header}, status="*")
            assert response.status_int in (200, 416)

        return work

    assert_linear(request, count // 10)
