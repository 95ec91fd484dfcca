"""Static files: `StaticFiles(directory)`, a PEP 3333 app serving the files in `directory`.

``app.static("/static", directory)`` mounts one (``App.mount``), so the file
asked for is ``PATH_INFO``, relative to `directory`. It is a plain WSGI app and
works on its own too. One request, in the order `StaticFiles.__call__` runs it:

1. **Method.** GET and HEAD are served; OPTIONS answers 204; anything else
   405. Both carry ``Allow: GET, HEAD, OPTIONS`` (RFC 9110 §15.5.6).
2. **Path.** ``PATH_INFO`` becomes a real path inside `directory`, or 404
   (`StaticFiles.resolve`: no ``..``, no dotfiles, no symlink out, ...).
3. **Open.** The file is opened first and its metadata read from the open
   descriptor, so the validators describe the very bytes that will be sent.
4. **Preconditions** (RFC 9110 §13.2.2, in its order): ``If-Match`` and
   ``If-Unmodified-Since`` (412), ``If-None-Match`` and ``If-Modified-Since`` (304).
5. **Range** (RFC 9110 §14): ``If-Range``, then `parse_range` (``ranges.py``)
   decides: the whole file (200), one range (206), several (206
   ``multipart/byteranges``), or none satisfiable (416 with
   ``Content-Range: bytes */size``).
6. **Send.** A whole file goes through ``wsgi.file_wrapper`` when the server
   offers one (gunicorn then uses ``sendfile``); ranges go through `FileBody`,
   which reads bounded blocks. Every path closes the file.

The data structure: a body is a list of `Part`\\ s, each "these header bytes,
then `length` bytes of the file from `start`", plus a tail. A whole file is
one part with no header; a range is one part; ``multipart/byteranges`` is a
part per range whose header is the boundary line and the part's own
``Content-Type``/``Content-Range``, and a tail that closes the boundary.

WebOb's ``FileApp`` is not used: WebOb 1.8 answers 416 to a suffix range
longer than the file (§14.1.2 wants the whole file, 206), serves only the
first of several ranges and raises on ``bytes=--5``.
"""

from __future__ import annotations

import mimetypes
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from io import BufferedReader
from typing import NamedTuple

from .http import evaluate, http_date, not_modified_headers, parse_http_date
from .ranges import MAX_RANGES, parse_range
from .response import PHRASES, TEXT, Reply, status_line
from .types import Environ, Headers, StartResponse

BLOCK_SIZE = 65_536  # bytes read (and sent) at a time for ranges
ALLOW = "GET, HEAD, OPTIONS"

# SECURITY: names Windows maps to devices in every directory ("CON.txt" too).
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789¹²³"}
)
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
# RFC 9239: text/javascript is the one JavaScript type (Python 3.11 says application/...).
_TYPE_OVERRIDES = {".js": "text/javascript", ".mjs": "text/javascript"}
# NOTE: mimetypes calls "x.tar.gz" an x-tar with a gzip *encoding*. A file is sent
# as stored, never with Content-Encoding (a client would unpack the download).
_ENCODED_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2"}


class Part(NamedTuple):
    """`head` bytes, then `length` bytes of the file starting at `start`."""

    head: bytes
    start: int
    length: int


class FileBody:
    """A WSGI body: the file's `parts` in blocks of at most `BLOCK_SIZE`, then `tail`.

    ``close()`` closes the file; the server calls it however the response
    ends (PEP 3333), even when the client hung up halfway.
    """

    def __init__(self, file: BufferedReader, parts: list[Part], tail: bytes = b"") -> None:
        self.file = file
        self.parts = parts
        self.tail = tail

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if part.head:
                yield part.head
            self.file.seek(part.start)
            remaining = part.length
            while remaining > 0:
                block = self.file.read(min(BLOCK_SIZE, remaining))
                if not block:
                    # NOTE: the file shrank after Content-Length was sent. Stop
                    # short: the client sees a truncated body, never wrong bytes.
                    return
                remaining -= len(block)
                yield block
        if self.tail:
            yield self.tail

    def close(self) -> None:
        self.file.close()


class StaticFiles:
    """Serve the regular files under `directory` (see the module docs).

    `max_age` sets ``Cache-Control: max-age=N`` (0, the default, sends
    ``no-cache``: store, but revalidate every time, which the ETag makes a
    cheap 304); `immutable` adds ``immutable`` (RFC 8246), for file names
    that change when their content does. `max_ranges` bounds a Range header.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_age: int = 0,
        immutable: bool = False,
        max_ranges: int = MAX_RANGES,
    ) -> None:
        self.root = os.path.realpath(directory)
        if not os.path.isdir(self.root):
            raise ValueError(f"StaticFiles: {os.fspath(directory)!r} is not a directory")
        if max_age < 0 or max_ranges < 1:
            raise ValueError("StaticFiles: max_age must be >= 0 and max_ranges >= 1")
        if immutable and not max_age:
            raise ValueError("StaticFiles: immutable needs a max_age (say 31536000, a year)")
        self.max_ranges = max_ranges
        self.cache_control = f"max-age={max_age}" if max_age else "no-cache"
        if immutable:
            self.cache_control += ", immutable"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # 1. Method: only reading is possible here.
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            return _send(environ, start_response, 204, [("Allow", ALLOW)])
        if method not in ("GET", "HEAD"):
            return _send(environ, start_response, 405, [("Allow", ALLOW)])
        # 2. Path, and 3. open: anything but a regular file inside the root is a 404.
        path = self.resolve(environ)
        file = _open_regular_file(path) if path is not None else None
        if path is None or file is None:
            return _send(environ, start_response, 404, [])
        try:
            return self._serve(environ, start_response, file, path)
        except BaseException:
            file.close()
            raise

    def resolve(self, environ: Environ) -> str | None:
        """The real path of the file ``PATH_INFO`` names inside the root, or None (404).

        Each segment must be a plain name (`is_plain_name`); the real path,
        symlinks resolved, must still be inside the root.
        """
        # SECURITY: gunicorn decodes %2F into "/" in PATH_INFO, so "a%2Fb" would
        # reach the file a/b; only the raw request target still tells them apart.
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        if _ENCODED_SEPARATOR.search(raw.partition("?")[0]):
            return None
        try:
            # PEP 3333: PATH_INFO carries the URL's bytes as latin-1; file names are UTF-8.
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except UnicodeError:
            return None
        if not path.startswith("/"):
            return None
        segments = path[1:].split("/")
        if not all(is_plain_name(segment) for segment in segments):
            return None
        real = os.path.realpath(os.path.join(self.root, *segments))
        # SECURITY: a symlink inside the root may point anywhere. Compare whole
        # path components: "/srv/static-secret".startswith("/srv/static") is True.
        if os.path.commonpath([self.root, real]) != self.root:
            return None
        return real

    def _serve(
        self, environ: Environ, start_response: StartResponse, file: BufferedReader, path: str
    ) -> Iterable[bytes]:
        st = os.fstat(file.fileno())
        size, mtime = st.st_size, int(st.st_mtime)
        # RFC 9110 §8.8.3: a strong ETag. Size, modification time (ns) and inode
        # change whenever the content does, including an atomic rename over the file.
        etag = f'"{size:x}-{st.st_mtime_ns:x}-{st.st_ino:x}"'
        headers: Headers = [
            ("ETag", etag),
            ("Last-Modified", http_date(mtime)),  # RFC 9110 §8.8.2
            ("Cache-Control", self.cache_control),
        ]
        # 4. Preconditions, in the order of RFC 9110 §13.2.2 (`http.evaluate`).
        failure = evaluate(environ, etag, mtime)
        if failure is not None:
            file.close()
            kept = not_modified_headers(headers) if failure.status == 304 else []
            return _send(environ, start_response, failure.status, kept)
        # 5. Range: defined for GET only (RFC 9110 §14.2); HEAD gets the 200's headers.
        content_type = guess_type(path)
        headers.append(("Accept-Ranges", "bytes"))  # RFC 9110 §14.3
        ranges = None
        if (
            environ["REQUEST_METHOD"] == "GET"
            and "HTTP_RANGE" in environ
            and _if_range_holds(environ.get("HTTP_IF_RANGE"), etag, mtime)
        ):
            ranges = parse_range(environ["HTTP_RANGE"], size, self.max_ranges)
        if ranges == []:
            file.close()
            headers.append(("Content-Range", f"bytes */{size}"))  # RFC 9110 §15.5.17
            return _send(environ, start_response, 416, headers)
        # 6. Send.
        if ranges is None:
            headers += [("Content-Type", content_type), ("Content-Length", str(size))]
            start_response(status_line(200), headers)
            if environ["REQUEST_METHOD"] == "HEAD":
                file.close()
                return []
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                return wrapper(file, BLOCK_SIZE)  # type: ignore[no-any-return]
            return FileBody(file, [Part(b"", 0, size)])
        if len(ranges) == 1:
            (start, end), tail = ranges[0], b""
            parts = [Part(b"", start, end - start + 1)]
            headers += [
                ("Content-Type", content_type),
                ("Content-Range", f"bytes {start}-{end}/{size}"),
            ]
        else:
            # RFC 9110 §14.6: one part per range, each with its own Content-Range.
            boundary = secrets.token_hex(16)
            parts = [
                Part(
                    (b"\r\n" if i else b"")  # the CRLF before a boundary belongs to it
                    + f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Range: bytes {start}-{end}/{size}\r\n\r\n".encode(),
                    start,
                    end - start + 1,
                )
                for i, (start, end) in enumerate(ranges)
            ]
            tail = f"\r\n--{boundary}--\r\n".encode()
            headers.append(("Content-Type", f"multipart/byteranges; boundary={boundary}"))
        length = sum(len(part.head) + part.length for part in parts) + len(tail)
        headers.append(("Content-Length", str(length)))
        start_response(status_line(206), headers)
        return FileBody(file, parts, tail)


def guess_type(name: str) -> str:
    """The Content-Type for a file name: from its extension, UTF-8 for text."""
    mime, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        mime = _ENCODED_TYPES.get(encoding)
    mime = _TYPE_OVERRIDES.get(os.path.splitext(name)[1].lower(), mime)
    if mime is None:
        return "application/octet-stream"
    return f"{mime}; charset=utf-8" if mime.startswith("text/") else mime


def is_plain_name(segment: str) -> bool:
    """Is `segment` a file name that means the same on every OS? Refused:

    ``""`` (from ``//`` or a trailing ``/``: no directory listings); ``.``,
    ``..`` and every dotfile (``.env``, ``.git``: never published by
    accident); a trailing dot or space (Windows drops them: ``a.txt.`` is
    ``a.txt``); ``\\`` and ``:`` (separators, drive letters, NTFS streams);
    NUL and control characters; Windows device names (``CON``, ``nul.txt``).
    """
    if not segment or segment[0] == "." or segment[-1] in ". ":
        return False
    if not segment.isprintable() or any(c in segment for c in "\\:"):
        return False  # isprintable() is False for NUL and every control character
    return segment.split(".")[0].rstrip(" ").upper() not in _WINDOWS_DEVICES


def _open_regular_file(path: str) -> BufferedReader | None:
    # SECURITY: O_NOFOLLOW refuses a symlink swapped in after `resolve` checked
    # the path; O_NONBLOCK keeps a FIFO from blocking the worker on open.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, a device, a FIFO
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _if_range_holds(value: str | None, etag: str, mtime: int) -> bool:
    """RFC 9110 §13.1.5: may the Range be honoured? A stale validator means no (send 200)."""
    if value is None:
        return True
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison: a weak tag never matches
    # §8.8.2.2: a date is a strong validator only if it is at least a second old
    # (two writes within the second it names would share it).
    return parse_http_date(value) == mtime and mtime < int(time.time())


def _send(
    environ: Environ, start_response: StartResponse, status: int, headers: Headers
) -> Iterable[bytes]:
    """A response without the file: 204 or 304 with no body, or a 4xx with its reason phrase."""
    # RFC 9110 §15.3.5, §15.4.5: a 204 and a 304 never have content.
    body = b"" if status in (204, 304) else f"{PHRASES[status]}\n".encode()
    return Reply(status, headers, body, TEXT)(environ, start_response)
