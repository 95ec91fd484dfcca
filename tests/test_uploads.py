"""microweb/uploads.py: req.form and req.files from multipart/form-data (RFC 7578).

Well-formed forms go through `microweb.testing.Client` (WebTest builds them
with ``upload_files=``, lint on). Malformed and hostile bodies are built by
hand, byte by byte, and sent through `wsgiref.validate.validator`; a hostile
body comes from `LazyInput`, which makes its bytes only as they are read, so
a test can count how much of a 50 MB body the server actually pulled in.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from scaling import assert_linear
from servers import StartServer
from upload_app import make_app
from webtest import Upload as WebTestUpload  # type: ignore[import-untyped]

from microweb.testing import Client
from microweb.uploads import FormLimits, Upload, safe_filename

B = b"b0undary-42"
CT = "multipart/form-data; boundary=" + B.decode()
MiB = 1_048_576
# CPU seconds on the test's thread (`send`): "well under a second" for a hostile body whose
# reads are bounded. Where the work grows with the body, the tests check how (scaling.py).
FAST = 0.5


# -- Building bodies by hand ------------------------------------------------------------


def part(name: str, value: bytes, filename: str | None = None, *headers: str) -> bytes:
    """One part: Content-Disposition (RFC 7578 §4.2), extra header lines, then the value."""
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    lines = [disposition, *headers]
    return "".join(line + "\r\n" for line in lines).encode() + b"\r\n" + value


def multipart(*parts: bytes, boundary: bytes = B, preamble: bytes = b"") -> bytes:
    """RFC 2046 §5.1.1: [preamble CRLF] --boundary CRLF part (CRLF --boundary CRLF part)*
    CRLF --boundary-- CRLF."""
    opening = preamble + b"\r\n" if preamble else b""
    middle = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return opening + middle + b"--" + boundary + b"--\r\n"


class LazyInput:
    """A ``wsgi.input`` whose bytes come from an iterator as they are read; `produced`
    counts how many were handed out."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self.produced = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        cut = len(self._buffer) if size < 0 else size
        data, self._buffer = self._buffer[:cut], self._buffer[cut:]
        self.produced += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:  # wsgiref's validator wants them present
        raise NotImplementedError

    def readlines(self, hint: int = -1) -> list[bytes]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[bytes]:
        raise NotImplementedError


def lazy(head: bytes, filler: bytes, count: int, tail: bytes = b"") -> LazyInput:
    """`head`, then `filler` `count` times, then `tail`; nothing is built in advance."""

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(count):
            yield filler
        yield tail

    return LazyInput(chunks())


@dataclass
class Result:
    status: int
    body: bytes
    seconds: float  # CPU time: waiting for a core that another process holds is not counted

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    app: Any,
    body: bytes | LazyInput,
    content_type: str = CT,
    length: int | None = None,
    chunked: bool = False,
    path: str = "/upload",
) -> Result:
    """POST `body` through `wsgiref.validate.validator`; with `chunked`, no Content-Length."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": path}
    environ.update(SCRIPT_NAME="", QUERY_STRING="")
    setup_testing_defaults(environ)
    environ["CONTENT_TYPE"] = content_type
    environ["wsgi.input"] = io.BytesIO(body) if isinstance(body, bytes) else body
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(len(body) if isinstance(body, bytes) else length)
    started: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        started.append(status)
        return lambda data: None

    began = time.thread_time()
    app_iter = validator(app)(environ, start_response)
    try:
        data = b"".join(app_iter)
    finally:
        app_iter.close()  # type: ignore[attr-defined]  # the validator's iterator has it
    return Result(int(started[-1].split()[0]), data, time.thread_time() - began)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_info(filename: str, content_type: str, data: bytes, raw: str | None = None) -> Any:
    return {
        "filename": filename,
        "raw_filename": filename if raw is None else raw,
        "content_type": content_type,
        "size": len(data),
        "sha256": sha(data),
    }


# -- Well-formed forms, through WebTest -------------------------------------------------


def test_fields_and_files_through_webtest() -> None:
    """RFC 7578 §4.2 (one part per field, the file's name as a hint), §4.3 (several
    files under one field name), §4.4 (each file's media type), §5.1 (UTF-8 values)."""
    big = bytes(range(256)) * 1024  # 256 KiB: spooled to disk
    res = Client(make_app()).post(
        "/upload",
        params=[("title", "été"), ("tag", "a"), ("tag", "b")],
        upload_files=[("doc", "notes.txt", b"hello\r\n"), ("doc", "big.bin", big)],
    )
    assert res.json["fields"] == {"title": ["été"], "tag": ["a", "b"]}
    assert res.json["files"] == {
        "doc": [
            file_info("notes.txt", "text/plain", b"hello\r\n"),
            file_info("big.bin", "application/octet-stream", big),
        ]
    }


def test_upload_with_declared_type_through_webtest() -> None:
    """RFC 7578 §4.4: the part's Content-Type is the file's media type (parameters dropped)."""
    params = {"photo": WebTestUpload("p.png", b"\x89PNG\r\n\x1a\n", "image/png")}
    res = Client(make_app()).post("/upload", params=params)
    assert res.json["files"]["photo"] == [file_info("p.png", "image/png", b"\x89PNG\r\n\x1a\n")]


def test_urlencoded_form_still_works_and_has_no_files() -> None:
    """application/x-www-form-urlencoded (HTML §4.10.21.7): split on & only, no files."""
    client = Client(make_app())
    res = client.post("/upload", "a=1;b=2&a=%C3%A9t%C3%A9",
                      content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert res.json == {"fields": {"a": ["1;b=2", "été"]}, "files": {}}


def test_other_bodies_have_no_form() -> None:
    """RFC 7578 §1: only multipart/form-data (and urlencoded) bodies carry form fields."""
    res = Client(make_app()).post("/upload", b'{"a": 1}', content_type="application/json")
    assert res.json == {"fields": {}, "files": {}}


@pytest.mark.parametrize("path", [pytest.param("/files-first", id="files-then-form"),
                                  pytest.param("/body-first", id="body-then-form")])  # fmt: skip
def test_parsed_once_whichever_accessor_comes_first(path: str) -> None:
    """RFC 7578 §4.2: req.files then req.form see one parse; a body read whole first
    (req.body) is parsed from memory."""
    body = multipart(part("a", b"1"), part("f", b"data", "f.txt"))
    res = send(make_app(), body, path=path)
    assert res.status == 200, res.body
    assert res.json()["files"] in (["f"], {"f": [file_info("f.txt", "text/plain", b"data")]})


# -- Hand-built bodies that are valid ----------------------------------------------------

VALID = [
    pytest.param(
        multipart(part("a", b"x"), part("f", b"", "")),
        {"a": ["x"]},
        {"f": [file_info("", "text/plain", b"")]},
        id="RFC7578-4.2-empty-filename-is-a-file-with-no-name",
    ),
    pytest.param(
        multipart(part("f", b"1", "C:\\Users\\me\\evil.txt")),
        {},
        {"f": [file_info("evil.txt", "text/plain", b"1", raw="evil.txt")]},
        id="RFC7578-4.2-windows-path-reduced-to-basename",
    ),
    pytest.param(
        multipart(part("f", b"1", "../../etc/passwd")),
        {},
        {"f": [file_info("passwd", "text/plain", b"1", raw="../../etc/passwd")]},
        id="RFC7578-4.2-filename-path-dropped",
    ),
    pytest.param(
        multipart(part("f", b"1", "..")),
        {},
        {"f": [file_info("", "text/plain", b"1", raw="..")]},
        id="RFC7578-4.2-dot-dot-filename-becomes-empty",
    ),
    pytest.param(
        multipart(part("f", b"1", "a%22b.txt")),
        {},
        {"f": [file_info('a"b.txt', "text/plain", b"1")]},
        id="RFC7578-4.2-html5-percent-escaped-quote",
    ),
    pytest.param(
        multipart(
            part("a", b"x", None, "Content-Type: text/plain; charset=utf-8", "X-Extra: ignored")
        ),
        {"a": ["x"]},
        {},
        id="RFC7578-4.8-other-headers-ignored",
    ),
    pytest.param(
        multipart(part("a", b"line1\r\n--b0undary-4 not a delimiter\r\n\r")),
        {"a": ["line1\r\n--b0undary-4 not a delimiter\r\n\r"]},
        {},
        id="RFC2046-5.1.1-near-miss-delimiter-is-data",
    ),
    pytest.param(
        multipart(part("a", b"1"), preamble=b"This is a preamble."),
        {"a": ["1"]},
        {},
        id="RFC2046-5.1.1-short-preamble-ignored",
    ),
    pytest.param(
        multipart(part("a", b"1")) + b"epilogue",
        {"a": ["1"]},
        {},
        id="RFC2046-5.1.1-epilogue-ignored",
    ),
    pytest.param(
        multipart(part("\u540d", "\u5024".encode())),
        {"\u540d": ["\u5024"]},
        {},
        id="RFC7578-5.1-utf8-name-and-value",
    ),
    pytest.param(multipart(), {}, {}, id="RFC2046-5.1.1-no-parts"),
]


@pytest.mark.parametrize(("body", "fields", "files"), VALID)
def test_valid_multipart(body: bytes, fields: Any, files: Any) -> None:
    result = send(make_app(), body)
    assert result.status == 200, result.body
    assert result.json() == {"fields": fields, "files": files}


def test_boundary_may_be_quoted() -> None:
    """RFC 7578 §4.1 / RFC 2046 §5.1.1: the boundary parameter may be a quoted-string."""
    result = send(make_app(), multipart(part("a", b"1")), content_type=f'{CT[:-11]}"{B.decode()}"')
    assert result.json()["fields"] == {"a": ["1"]}


@pytest.mark.parametrize("chunked", [pytest.param(False, id="content-length"),
                                     pytest.param(True, id="chunked")])  # fmt: skip
def test_file_at_the_body_cap_is_accepted(chunked: bool) -> None:
    """RFC 9110 §15.5.14 / RFC 9112 §7.1: a body of exactly max_body_size bytes, chunked or
    not, is parsed; the file's size is bounded only by it."""
    envelope = len(multipart(part("f", b"", "f.bin")))
    data = b"\r" * (MiB - envelope)
    result = send(make_app(max_body_size=MiB), multipart(part("f", data, "f.bin")),
                  chunked=chunked)  # fmt: skip
    assert result.status == 200, result.body
    assert result.json()["files"]["f"] == [file_info("f.bin", "text/plain", data)]


# -- Malformed bodies: 400, never 500 ---------------------------------------------------

MALFORMED = [
    pytest.param(
        multipart(part("a", b"1")), "multipart/form-data", id="RFC7578-4.1-missing-boundary"
    ),
    pytest.param(
        multipart(part("a", b"1"), boundary=b"x" * 71),
        "multipart/form-data; boundary=" + "x" * 71,
        id="RFC2046-5.1.1-boundary-over-70-chars",
    ),
    pytest.param(multipart(part("a", b"1")), CT + "-other", id="RFC2046-5.1.1-wrong-boundary"),
    pytest.param(multipart(part("a", b"1"))[:-15], CT, id="RFC2046-5.1.1-truncated-body"),
    pytest.param(multipart(part("a", b"1"))[:-4], CT, id="RFC2046-5.1.1-no-close-delimiter"),
    pytest.param(b"", CT, id="RFC2046-5.1.1-empty-body"),
    pytest.param(
        b"--" + B + b"\r\nContent-Type: text/plain\r\n\r\n1\r\n--" + B + b"--\r\n",
        CT,
        id="RFC7578-4.2-no-content-disposition",
    ),
    pytest.param(
        multipart(b"Content-Disposition: attachment; name=a\r\n\r\n1"),
        CT,
        id="RFC7578-4.2-disposition-not-form-data",
    ),
    pytest.param(
        multipart(b"Content-Disposition form-data; name=a\r\n\r\n1"),
        CT,
        id="RFC7578-4.8-header-without-colon",
    ),
    pytest.param(
        b"--" + B + b"\nContent-Disposition: form-data; name=a\n\n1\n--" + B + b"--",
        CT,
        id="RFC2046-5.1.1-lf-without-cr",
    ),
    pytest.param(multipart(part("a", b"\xff\xfe")), CT, id="RFC7578-5.1-field-not-utf8"),
    pytest.param(
        multipart(b'Content-Disposition: form-data; name="\xff"\r\n\r\n1'),
        CT,
        id="RFC7578-5.1-header-not-utf8",
    ),
    pytest.param(
        b"--" + B + b"junk\r\n" + part("a", b"1") + b"\r\n--" + B + b"--\r\n",
        CT,
        id="RFC2046-5.1.1-junk-after-boundary",
    ),
    pytest.param(
        multipart(part("a", b"1"), preamble=b"p" * 2000), CT, id="RFC2046-5.1.1-preamble-over-1KiB"
    ),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
def test_malformed_multipart_is_400(body: bytes, content_type: str) -> None:
    """RFC 9110 §15.5.1: a multipart body that does not parse is the client's error."""
    result = send(make_app(), body, content_type=content_type)
    assert result.status == 400, result.body
    assert json.loads(result.body)["status"] == 400


# -- Limits: 413 ---------------------------------------------------------------------

SMALL = FormLimits(max_parts=3, max_header_size=200, max_field_size=10)
OVER_LIMIT = [
    pytest.param(multipart(*[part("a", b"1")] * 4), id="RFC7578-7-part-count"),
    pytest.param(
        multipart(part("a", b"1", None, "X-Long: " + "h" * 300)), id="RFC7578-7-header-line-size"
    ),
    pytest.param(
        multipart(b"Content-Disposition: form-data; name=a; x=" + b"h" * 300),
        id="RFC7578-7-unterminated-header",
    ),
    pytest.param(multipart(part("a", b"x" * 11)), id="RFC7578-7-field-size"),
    pytest.param(multipart(part("f", b"x" * 5000, "f.bin")), id="RFC9110-15.5.14-file-over-cap"),
]


@pytest.mark.parametrize("body", OVER_LIMIT)
def test_limits_are_413(body: bytes) -> None:
    """RFC 7578 §7 / RFC 9110 §15.5.14: a form over a FormLimits limit, or a body over
    max_body_size (which also bounds every file), is refused with 413."""
    result = send(make_app(max_body_size=4096, limits=SMALL), body)
    assert result.status == 413, result.body


def test_limits_are_inclusive() -> None:
    """RFC 7578 §7: a form exactly at each limit is accepted."""
    body = multipart(part("a", b"x" * 10), part("b", b"", None, "X-H: " + "h" * 190),
                     part("f", b"y" * 3000, "f.bin"))  # fmt: skip
    result = send(make_app(max_body_size=4096, limits=SMALL), body)
    assert result.status == 200, result.body


@pytest.mark.parametrize(
    "values",
    [pytest.param({"max_parts": -1}, id="negative"), pytest.param({"spool_size": 1.5}, id="float")],
)
def test_form_limits_are_checked(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="FormLimits"):
        FormLimits(**values)


# -- Hostile bodies: bounded, linear, never 500 -----------------------------------------


def hostile_50mb_part(
    chunked: bool, max_body_size: int, disposition: bytes
) -> tuple[Result, LazyInput]:
    size = 50 * MiB
    head = b"--" + B + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n"
    stream = lazy(head, b"x" * 65_536, size // 65_536, b"\r\n--" + B + b"--\r\n")
    app = make_app(max_body_size=max_body_size)
    return send(app, stream, length=len(head) + size + 20, chunked=chunked), stream


FIELD, FILE = b'name="a"', b'name="f"; filename="f.bin"'


@pytest.mark.parametrize(
    ("chunked", "max_body_size", "disposition", "read_at_most"),
    [
        pytest.param(False, MiB, FIELD, 0, id="field-content-length-over-cap-read-nothing"),
        pytest.param(True, MiB, FIELD, 2 * 65_536, id="field-chunked-stopped-by-field-limit"),
        pytest.param(False, 64 * MiB, FIELD, 2 * 65_536, id="field-under-a-big-cap-field-limit"),
        pytest.param(True, MiB, FILE, MiB + 65_536, id="file-chunked-cut-at-the-cap"),
    ],
)
def test_50mb_part(
    chunked: bool, max_body_size: int, disposition: bytes, read_at_most: int
) -> None:
    """RFC 7578 §7 / RFC 9110 §15.5.14: a 50 MB field (or file) is refused with 413 having
    read no more than the field limit (or the cap), never the whole body."""
    result, stream = hostile_50mb_part(chunked, max_body_size, disposition)
    assert result.status == 413, result.body
    assert stream.produced <= read_at_most
    assert result.seconds < FAST


def many_parts(count: int) -> bytes:
    return multipart(*(part(f"f{i}", b"v") for i in range(count)))


@pytest.mark.parametrize(
    ("limits", "status"),
    [
        pytest.param(None, 413, id="default-limit-128"),
        pytest.param(FormLimits(max_parts=10_000), 200, id="allowed-and-still-linear"),
    ],
)
def test_10000_parts(limits: FormLimits | None, status: int) -> None:
    """RFC 7578 §7: 10,000 tiny parts are refused past max_parts; allowed, they parse in
    linear time (10,000 parts cost about 10 times 1,000)."""
    app = make_app(max_body_size=2 * MiB, limits=limits)
    result = assert_linear(lambda count: partial(send, app, many_parts(count)), 1_000)
    assert result.status == status, result.body[:200]
    if status == 200:
        assert len(result.json()["fields"]) == 10_000


@pytest.mark.parametrize(
    ("filler", "max_body_size", "status"),
    [
        pytest.param(b"x", MiB, 413, id="cr-then-10MB-over-the-cap"),
        pytest.param(b"x", 16 * MiB, 200, id="cr-then-10MB-file-allowed"),
        pytest.param(b"\r", 16 * MiB, 200, id="10MB-of-cr"),
        pytest.param(b"\r\n--" + B[:-1], 16 * MiB, 200, id="10MB-of-near-miss-delimiters"),
    ],
)
def test_cr_followed_by_10mb(filler: bytes, max_body_size: int, status: int) -> None:
    """RFC 2046 §5.1.1: a lone CR (or a partial delimiter) starts a possible delimiter; the
    parser must not rescan from it for every chunk that follows (quadratic time: 10 MB
    would cost 100 times 1 MB, not 10)."""
    app = make_app(max_body_size=max_body_size)

    def upload(count: int) -> Callable[[], Result]:
        body = multipart(part("f", b"\r" + filler * count, "f.bin"))
        return partial(send, app, body, chunked=True)

    count = MiB // len(filler)  # 1 MB of it, then 10 MB
    result = assert_linear(upload, count)
    assert result.status == status, result.body[:200]
    if status == 200:
        assert result.json()["files"]["f"][0]["sha256"] == sha(b"\r" + filler * count * 10)


@pytest.mark.parametrize(
    ("chunked", "max_body_size", "status", "read_at_most"),
    [
        pytest.param(False, MiB, 413, 0, id="content-length-over-the-cap-read-nothing"),
        pytest.param(True, MiB, 400, 65_536, id="chunked-refused-after-one-chunk"),
        pytest.param(False, 8 * MiB, 400, 65_536, id="under-a-big-cap-refused-after-one-chunk"),
    ],
)
def test_5mb_preamble(chunked: bool, max_body_size: int, status: int, read_at_most: int) -> None:
    """RFC 2046 §5.1.1: a preamble is allowed but browsers send none; 5 MB of it is
    refused once the first boundary is not within max_preamble_size (400), or before
    reading when the declared length is over the cap (413)."""
    tail = b"\r\n" + many_parts(1)
    stream = lazy(b"", b"p" * 65_536, 80, tail)
    result = send(make_app(max_body_size=max_body_size), stream,
                  length=80 * 65_536 + len(tail), chunked=chunked)  # fmt: skip
    assert result.status == status, result.body
    assert stream.produced <= read_at_most
    assert result.seconds < FAST


# -- Upload and safe_filename -----------------------------------------------------------

FILENAMES = [
    pytest.param("photo.jpg", "photo.jpg", id="plain"),
    pytest.param("../../etc/passwd", "passwd", id="posix-traversal"),
    pytest.param("..\\..\\boot.ini", "boot.ini", id="windows-traversal"),
    pytest.param("/abs/path.txt", "path.txt", id="absolute"),
    pytest.param("a\x00b.txt", "ab.txt", id="nul"),
    pytest.param("a\r\nb\x7f.txt", "ab.txt", id="control-characters"),
    pytest.param("..", "", id="dot-dot"),
    pytest.param(". . ", "", id="dots-and-spaces"),
    pytest.param("dir/", "", id="trailing-slash"),
    pytest.param(".htaccess", ".htaccess", id="dotfile-kept"),
    pytest.param("\u00e9t\u00e9.txt", "\u00e9t\u00e9.txt", id="unicode-kept"),
]


@pytest.mark.parametrize(("raw", "safe"), FILENAMES)
def test_safe_filename(raw: str, safe: str) -> None:
    """RFC 7578 §4.2: the filename is a hint only; never a path into the server."""
    assert safe_filename(raw) == safe


def test_upload_read_and_save(tmp_path: Path) -> None:
    """Upload.save copies the whole file; it refuses to overwrite unless asked."""
    file = io.BytesIO(b"content")
    upload = Upload("f", "dir/a.txt", "text/plain", file, 7)
    assert (upload.filename, upload.raw_filename, upload.size) == ("a.txt", "dir/a.txt", 7)
    assert upload.read(3) == b"con"
    target = tmp_path / upload.filename
    upload.save(target)
    assert target.read_bytes() == b"content"
    assert file.tell() == 0
    with pytest.raises(FileExistsError):
        upload.save(target)
    file.write(b"CONTENT")
    upload.save(target, overwrite=True)
    assert target.read_bytes() == b"CONTENT"
    upload.close()
    assert file.closed


# -- End to end, through gunicorn --------------------------------------------------------


def post_raw(url: str, body: bytes | Iterable[bytes], headers: dict[str, str]) -> tuple[int, Any]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        chunked = not isinstance(body, bytes)
        connection.request("POST", "/upload", body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


BodyOf = Callable[[bytes], "bytes | Iterable[bytes]"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("body_of", "status"),
    [
        pytest.param(lambda body: body, 200, id="content-length"),
        pytest.param(lambda body: iter([body[:100_000], body[100_000:]]), 200, id="chunked"),
    ],
)
def test_upload_through_gunicorn(
    gunicorn_server: StartServer, body_of: BodyOf, status: int
) -> None:
    """RFC 7578 §4.2 through a real server: a 3 MB file spooled to disk arrives intact,
    with a Content-Length or chunked (RFC 9112 §7.1)."""
    url = gunicorn_server("tests.upload_app:app", workers=1)
    data = bytes(range(256)) * (3 * 4096)
    body = multipart(part("note", b"hi"), part("f", data, "x/y.bin", "Content-Type: image/png"))
    got_status, reply = post_raw(url, body_of(body), {"Content-Type": CT})
    assert got_status == status
    assert reply == {
        "fields": {"note": ["hi"]},
        "files": {"f": [file_info("y.bin", "image/png", data, raw="x/y.bin")]},
    }
