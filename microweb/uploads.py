"""Uploads: ``req.form`` and ``req.files`` from a ``multipart/form-data`` body (RFC 7578).

How a body is read. `microweb.multipart_form.parse` never holds the body in memory whole:
the request hands it the body's chunks (`request.body_chunks`: 64 KiB reads of
``wsgi.input``, counted against the app's ``max_body_size``), and it pushes each
chunk into the ``multipart`` package's `PushMultipartParser`. That parser keeps no more
than a boundary's worth of bytes between chunks and yields events: a part's
headers, then chunks of its body, then ``None`` at its end. A text field
(a part without a ``filename``) is collected in memory and decoded as UTF-8;
a file (a part with one, even ``filename=""``) goes into a
`tempfile.SpooledTemporaryFile` that moves to disk above ``spool_size``.
The result, two `MultiDict` objects, is built once per request and cached.

The limits (`FormLimits`), and the attack each one stops:

- **Total size** — the app's ``max_body_size`` (1 MiB unless configured):
  a ``Content-Length`` above it is refused before anything is read; a
  chunked body is counted as it streams and cut off at the cap (413,
  RFC 9110 §15.5.14). This also bounds every file: one part cannot be
  bigger than the body. Stops disk and memory exhaustion.
- **Parts** (``max_parts=128``, 413) — each part costs a header parse and
  two dict entries; 10,000 empty parts in a small body would otherwise be
  cheap to send and dear to handle (RFC 7578 §7, CVE-2023-25577 Werkzeug).
- **Header lines** (``max_header_size=8 KiB`` per line, at most 8 lines a
  part, 413) — a header that never ends would otherwise be buffered whole.
- **Text fields** (``max_field_size=64 KiB``, 413) — fields are kept in
  memory, so each is bounded on its own, before the next byte is stored.
- **Preamble** (``max_preamble_size=1 KiB``, 400) — bytes before the first
  boundary (RFC 2046 §5.1.1) are ignored by the standard; browsers send
  none, so a long preamble is a client wasting the server's time.

Time is linear in the body: the parser looks for the delimiter with
``bytes.find`` and re-examines at most a boundary's length at a chunk's end,
so a body of ``\\r`` bytes or near-miss boundaries costs one pass. A body
the parser rejects (no boundary, a bad header, a part without
``Content-Disposition: form-data``, an unterminated stream, invalid UTF-8)
is a 400; nothing here answers 500 to a client's bytes.
"""

from __future__ import annotations

import shutil
import weakref
from dataclasses import dataclass
from os import PathLike
from typing import IO

from webob.multidict import MultiDict


@dataclass(frozen=True)
class FormLimits:
    """Limits on a multipart body; ``App(form_limits=...)`` overrides the defaults."""

    max_parts: int = 128
    max_header_size: int = 8_192
    max_field_size: int = 65_536
    max_preamble_size: int = 1_024
    spool_size: int = 65_536

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"FormLimits.{name} must be an int >= 0, not {value!r}")


DEFAULT_LIMITS = FormLimits()


def safe_filename(raw: str) -> str:
    """The last path segment of `raw`, with no separators, NUL or control characters.

    RFC 7578 §4.2: the filename is only a hint, and a receiver must not use
    it as a path. Names made of dots and spaces only (``..``; Windows drops
    trailing dots and spaces) become ``""``.
    """
    name = raw.replace("\\", "/").rpartition("/")[2]
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    return "" if not name.strip(". ") else name


class Upload:
    """One uploaded file: ``req.files["photo"]``.

    ``name`` is the form field, ``filename`` the client's name for it made
    safe (`safe_filename`; ``""`` when the form was sent with no file chosen),
    ``raw_filename`` exactly what the client sent, ``content_type`` the part's
    media type (lower-cased, no parameters; ``text/plain`` when absent, RFC
    7578 §4.4), ``size`` its length in bytes, ``file`` a binary file object
    positioned at 0. The file is closed when the Upload is garbage-collected
    (at the end of the request) or by `close()`.
    """

    def __init__(
        self, name: str, raw_filename: str, content_type: str, file: IO[bytes], size: int
    ) -> None:
        self.name = name
        self.raw_filename = raw_filename
        self.filename = safe_filename(raw_filename)
        self.content_type = content_type
        self.file = file
        self.size = size
        # NOTE: a spooled file on disk warns (ResourceWarning) if never closed.
        self._closer = weakref.finalize(self, file.close)

    def read(self, size: int = -1) -> bytes:
        """Read from `file` (from its current position, as file objects do)."""
        return self.file.read(size)

    def save(self, path: str | PathLike[str], *, overwrite: bool = False) -> None:
        """Copy the whole file to `path`; `FileExistsError` if it exists, unless `overwrite`.

        SECURITY: build `path` yourself; ``filename`` is safe as a last path
        segment but may collide with another upload's, hence no overwrite by default.
        """
        self.file.seek(0)
        with open(path, "wb" if overwrite else "xb") as target:
            shutil.copyfileobj(self.file, target)
        self.file.seek(0)

    def close(self) -> None:
        self._closer()

    def __repr__(self) -> str:
        return f"<Upload {self.name!r}: {self.filename!r} {self.content_type} {self.size} bytes>"


Fields = MultiDict[str, str]
Files = MultiDict[str, Upload]
