"""The multipart parse behind ``req.form`` and ``req.files`` (RFC 7578, RFC 2046 §5.1).

`parse` pushes the body's chunks into the ``multipart`` package's
`PushMultipartParser` and collects its events into fields and `Upload`
files; `microweb.uploads` explains how, and which limits stop which
attack. This module is imported on the first form an app reads, so that
an app without forms never loads the ``multipart`` package.
"""

from __future__ import annotations

from collections.abc import Iterator
from tempfile import SpooledTemporaryFile
from typing import Any

from multipart import (  # type: ignore[import-untyped]  # ships no type hints
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)
from webob.multidict import MultiDict

from .errors import HTTPError
from .uploads import DEFAULT_LIMITS, Fields, Files, FormLimits, Upload


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter, checked against RFC 2046 §5.1.1 (1-70 characters), or 400."""
    _, options = parse_options_header(content_type)
    boundary: str = options.get("boundary", "")
    if not 1 <= len(boundary) <= 70 or not boundary.isascii() or not boundary.isprintable():
        raise HTTPError(400, "The multipart Content-Type has no valid boundary.")
    return boundary.encode("ascii")


def parse(
    content_type: str, body: Iterator[bytes], limits: FormLimits | None = None
) -> tuple[Fields, Files]:
    """Parse a multipart/form-data `body` (`request.body_chunks`) into (fields, files), or 4xx."""
    boundary = boundary_of(content_type)
    form = _Form(limits or DEFAULT_LIMITS)
    try:
        form.feed(boundary, body)
    except ParserLimitReached as exc:
        form.discard()
        raise HTTPError(413, f"The multipart body exceeds a limit: {exc}.") from exc
    except ParserError as exc:
        form.discard()
        raise HTTPError(400, f"The multipart body is malformed: {exc}.") from exc
    except BaseException:
        form.discard()
        raise
    return form.fields, form.files


class _Form:
    """The state of one parse: the part being read, and the finished ones."""

    def __init__(self, limits: FormLimits) -> None:
        self.limits = limits
        self.fields: Fields = MultiDict()
        self.files: Files = MultiDict()
        self.segment: Any = None  # the multipart.MultipartSegment being read
        self.text = bytearray()  # its bytes, if it is a field
        self.spool: SpooledTemporaryFile[bytes] | None = None  # or its file

    def feed(self, boundary: bytes, chunks: Iterator[bytes]) -> None:
        limits = self.limits
        parser = PushMultipartParser(
            boundary,
            max_header_size=limits.max_header_size,
            max_segment_count=limits.max_parts,
        )
        head = self._skip_preamble(b"--" + boundary, chunks)
        self._handle(parser.parse(head))
        for chunk in chunks:
            self._handle(parser.parse(chunk))
        self._handle(parser.parse(b""))  # end of input: ParserError unless complete

    def _skip_preamble(self, dash_boundary: bytes, chunks: Iterator[bytes]) -> bytes:
        """The body up to and past its first boundary, once it is found close to the start.

        RFC 2046 §5.1.1 allows a preamble; `PushMultipartParser` skips any amount.
        """
        head = bytearray()
        window = self.limits.max_preamble_size + len(dash_boundary)
        for chunk in chunks:
            head += chunk
            if head.find(dash_boundary, 0, window) != -1:
                return bytes(head)
            if len(head) >= window:
                break
        if not head:
            raise ParserError("the body is empty")
        raise ParserError(f"no boundary in the first {window} bytes")

    def _handle(self, events: Iterator[Any]) -> None:
        for event in events:
            if isinstance(event, bytes):
                if self.spool is not None:
                    self.spool.write(event)
                elif len(self.text) + len(event) > self.limits.max_field_size:
                    raise ParserLimitReached(f"a field is over {self.limits.max_field_size} bytes")
                else:
                    self.text += event
            elif isinstance(event, MultipartSegment):
                self.segment = event
                if event.filename is not None:
                    # NOTE: closed by its Upload, or by discard() on failure.
                    self.spool = SpooledTemporaryFile(max_size=self.limits.spool_size)  # noqa: SIM115
            else:
                self._finish_part()

    def _finish_part(self) -> None:
        segment, spool = self.segment, self.spool
        name: str = segment.name
        if spool is None:
            try:
                self.fields.add(name, self.text.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ParserError(f"field {name!r} is not valid UTF-8") from exc
            self.text.clear()
            return
        spool.seek(0)
        content_type = segment.content_type or "text/plain"
        upload = Upload(name, segment.filename, content_type, spool, segment.size)
        self.files.add(name, upload)
        self.spool = None

    def discard(self) -> None:
        """Close every file already spooled (the parse failed)."""
        if self.spool is not None:
            self.spool.close()
        for upload in self.files.values():
            upload.close()
