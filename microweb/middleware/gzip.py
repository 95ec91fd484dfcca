"""`GZip`: compress response bodies the client can decode (RFC 9110 §8.4, §12.5.3).

A plain WSGI wrapper (it changes the body). One request, step by step
(docs/compression.md explains each decision):

1. **Negotiate** (§12.5.3): `negotiate` picks ``"br"`` (when ``brotli``
   imports), ``"gzip"`` or identity from ``Accept-Encoding``: highest q
   wins, ties go to br, gzip, identity; ``gzip;q=0`` refuses, ``*`` counts,
   junk q-values drop their entry. No header means identity; identity
   refused and nothing else acceptable still sends identity (not a 406).
2. **Validators in** (§13.1.1-2): ``"x-gzip"`` in ``If-None-Match`` /
   ``If-Match`` becomes ``"x"`` for the layers inside, in a copy of the environ.
3. **Decide at start_response**: a 2xx other than 204/205/206, without
   ``Content-Encoding`` or ``no-transform`` (RFC 9111 §5.2.2.6), of a
   compressible type (`compressible`) gets ``Vary: Accept-Encoding``
   (§12.5.5), compressed or not; it is compressed when a coding was
   negotiated and its known size is at least `minimum_size`.
4. **Encode**: a list body at once, with ``Content-Length``; any other
   iterable as a stream, sync-flushed chunk by chunk (`EncodedBody`),
   without ``Content-Length``; ``close()`` always passed through.
5. **Validators out** (§8.8.3, §15.4.5): a compressed response's ETag
   ``"x"`` becomes ``"x-gzip"``; a 304 for a client holding ``"x-gzip"`` says so.

HEAD (§9.3.2) gets GET's headers, minus ``Content-Length`` (§8.6), and no body.
"""

from __future__ import annotations

import importlib
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ..http import add_vary, parse_etag, replace_headers
from ..types import Environ, Headers, StartResponse, WSGIApp
from ..wsgi import close_quietly


class Encoder(Protocol):
    def chunk(self, data: bytes) -> bytes: ...  # compress and flush: decodable at once
    def finish(self, data: bytes = b"") -> bytes: ...  # the end of the stream


class GzipEncoder:
    """gzip (RFC 1952) via zlib. zlib writes mtime 0: the same input, the same bytes."""

    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes = b"") -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class BrotliEncoder:
    """br (RFC 7932), when the optional ``brotli`` package is installed."""

    QUALITY = 4  # NOTE: brotli's default, 11, is for precompressed files, far too slow here.
    __slots__ = ("_b",)

    def __init__(self, level: int) -> None:
        self._b = brotli.Compressor(quality=self.QUALITY)

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._b.process(data) + self._b.flush())

    def finish(self, data: bytes = b"") -> bytes:
        return bytes(self._b.process(data) + self._b.finish())


brotli: Any
try:
    brotli = importlib.import_module("brotli")
except ImportError:
    brotli = None

#: Codings this server can produce, most preferred first (its tie-break, §12.5.3).
ENCODERS: dict[str, Callable[[int], Encoder]] = {"gzip": GzipEncoder}
if brotli is not None:
    ENCODERS = {"br": BrotliEncoder, "gzip": GzipEncoder}

# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
COMPRESSIBLE = frozenset(
    {
        "application/json", "application/xml", "application/javascript", "application/ecmascript",
        "application/x-javascript", "application/x-ndjson", "application/wasm", "image/svg+xml",
    }
)  # fmt: skip
NO_BODY = frozenset({"204", "205", "206"})  # §15.3.5, §15.3.6, §15.3.7 (a range of identity)


def accept_weights(value: str) -> dict[str, float]:
    """``Accept-Encoding`` as {coding: q}; a coding listed twice keeps its lowest q."""
    weights: dict[str, float] = {}
    for entry in value.split(","):  # PERF: one pass, linear in the header's length
        coding, _, params = entry.partition(";")
        coding = coding.strip().lower()
        q = 1.0
        if params:
            name, _, number = params.partition("=")
            number = number.strip()
            if name.strip().lower() != "q" or not QVALUE.match(number):
                continue  # junk weight: ignore the entry, not the header
            q = float(number)
        if coding == "x-gzip":
            coding = "gzip"  # RFC 9110 §8.4.1.3: "x-gzip" is an alias
        if coding:
            weights[coding] = min(q, weights.get(coding, q))
    return weights


def negotiate(value: str | None) -> str | None:
    """The coding to send for this ``Accept-Encoding`` (RFC 9110 §12.5.3), or ``None``."""
    if not value:
        return None  # absent: see the module docs; empty: identity only
    weights = accept_weights(value)
    star = weights.get("*")
    best, best_q = None, 0.0
    for coding in ENCODERS:
        q = weights.get(coding, 0.0 if star is None else star)
        if q > best_q:
            best, best_q = coding, q
    # identity is acceptable unless refused; unlisted, it yields to any coding.
    identity_q = weights.get("identity", 0.0001 if star is None else star)
    return best if best is not None and best_q >= identity_q else None


def compressible(content_type: str) -> bool:
    """Whether a body of this media type is worth compressing (text-like, not SSE)."""
    mime = content_type.partition(";")[0].strip().lower()
    if mime.startswith("text/"):
        # NOTE: an event stream is left alone, like every proxy and browser expects.
        return mime != "text/event-stream"
    return mime in COMPRESSIBLE or mime.endswith(("+json", "+xml"))


def suffixed(etag: str, coding: str) -> str:
    """``"x"`` -> ``"x-gzip"``, ``W/"x"`` -> ``W/"x-gzip"`` (unquoted values are left)."""
    if etag.endswith('"') and len(etag) >= 2:
        return f'{etag[:-1]}-{coding}"'
    return etag


class GZip:
    """Compress responses with gzip (or br); see the module docs for the rules."""

    def __init__(self, app: WSGIApp, minimum_size: int = 500, compresslevel: int = 6) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be >= 0, not {minimum_size}")
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel is 0 (none) to 9 (best), not {compresslevel}")
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        # `"<tag>-<coding>"` in a request header, for each coding (step 2).
        self.suffix_patterns = {coding: re.compile(f'"([^"]*)-{coding}"') for coding in ENCODERS}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # 1. Negotiate the coding from Accept-Encoding ("" is identity).
        coding = negotiate(environ.get("HTTP_ACCEPT_ENCODING")) or ""
        # 2. Give the layers inside the identity ETags the client's tags stand for.
        held: set[str] = set()
        if coding:
            environ = self.identity_validators(environ, coding, held)
        # 3. Decide at start_response; 4. encode the body; 5. fix validators.
        exchange = Exchange(self, environ, start_response, coding, held)
        return exchange.body(self.app(environ, exchange.start))

    def identity_validators(self, environ: Environ, coding: str, held: set[str]) -> Environ:
        """`environ`, or a copy with ``"x-<coding>"`` tags turned back into ``"x"``.

        `held` collects the identity tags (``x``) whose encoded form the client sent.
        """

        def strip(match: re.Match[str]) -> str:
            held.add(match[1])
            return f'"{match[1]}"'

        copy = None
        for key in ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH"):
            value = environ.get(key)
            if value and f"-{coding}" in value:
                copy = copy if copy is not None else dict(environ)
                copy[key] = self.suffix_patterns[coding].sub(strip, value)
        # NOTE: a copy, so layers outside GZip (an ETag middleware hashing the
        # compressed bytes) still see the tags the client sent.
        return environ if copy is None else copy


class Exchange:
    """One request's compression state, from ``start_response`` to the body's end."""

    __slots__ = (
        "coding", "encoder", "environ", "gzip", "head", "held", "pending", "server_start",
        "server_write", "start_called",
    )  # fmt: skip

    def __init__(
        self, gzip: GZip, environ: Environ, start: StartResponse, coding: str, held: set[str]
    ) -> None:
        self.gzip, self.environ, self.server_start = gzip, environ, start
        self.coding, self.held = coding, held
        # (status, headers, exc_info) of a response to encode, until its body is seen.
        self.pending: tuple[str, Headers, Any] | None = None
        self.start_called = self.head = False
        self.encoder: Encoder | None = None
        self.server_write: Callable[[bytes], Any] | None = None

    def start(self, status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], Any]:
        """The app's ``start_response``: step 3, decide (see the module docs)."""
        self.start_called, self.pending = True, None
        code, fields = status[:3], {name.lower(): value for name, value in headers}
        if code == "304":
            self.not_modified(headers, fields)
            return self.server_start(status, headers, exc_info)
        if not (
            code[0] == "2"
            and code not in NO_BODY
            and "content-encoding" not in fields
            and compressible(fields.get("content-type", ""))
            and "no-transform" not in fields.get("cache-control", "").lower()
        ):
            return self.server_start(status, headers, exc_info)
        add_vary(headers, "Accept-Encoding")
        length = fields.get("content-length", "")
        if not self.coding or (length.isdigit() and int(length) < self.gzip.minimum_size):
            return self.server_start(status, headers, exc_info)
        if self.environ["REQUEST_METHOD"] == "HEAD":
            self.head = True  # its body, if the app sent one, is not the encoded one
            return self.server_start(status, self.encoded(headers), exc_info)
        self.pending = (status, headers, exc_info)
        return self.write  # the server's start_response is called once the body is seen

    def not_modified(self, headers: Headers, fields: dict[str, str]) -> None:
        """RFC 9110 §15.4.5: a 304 carries the ETag and Vary the 200 would have."""
        etag = fields.get("etag", "")
        tag = parse_etag(etag)
        if tag is not None and tag[1] in self.held:
            # The client revalidated the encoded representation: name that one.
            replace_headers(headers, [("ETag", suffixed(etag, self.coding))])
            add_vary(headers, "Accept-Encoding")
        elif compressible(fields.get("content-type", "text/plain")):
            # NOTE: without a Content-Type, assume the 200 varied.
            add_vary(headers, "Accept-Encoding")

    def encoded(self, headers: Headers) -> Headers:
        """The headers of the compressed representation, without ``Content-Length``."""
        result = [(n, v) for n, v in headers if n.lower() not in ("content-length", "etag")]
        result.append(("Content-Encoding", self.coding))
        result += [("ETag", suffixed(v, self.coding)) for n, v in headers if n.lower() == "etag"]
        return result

    def begin_stream(self) -> None:
        """Send the pending headers of a stream and make its encoder (no-op otherwise)."""
        if self.pending is not None:
            status, headers, exc_info = self.pending
            self.pending = None
            self.server_write = self.server_start(status, self.encoded(headers), exc_info)
            self.encoder = ENCODERS[self.coding](self.gzip.compresslevel)

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable (PEP 3333) of a response being encoded."""
        self.begin_stream()
        if self.encoder is not None and self.server_write is not None and data:
            self.server_write(self.encoder.chunk(data))

    def body(self, body: Iterable[bytes]) -> Iterable[bytes]:
        """Step 4: the body to hand the server."""
        if self.head:
            close_quietly(body)
            return []
        if self.start_called and self.pending is None and self.encoder is None:
            return body  # PERF: decided already, not encoding: the app's own iterable
        if self.pending is not None and isinstance(body, (list, tuple)):
            return self.buffered(self.pending, body)
        return EncodedBody(body, self)

    def buffered(
        self, pending: tuple[str, Headers, Any], body: list[bytes] | tuple[bytes, ...]
    ) -> list[bytes]:
        """A body already in memory: compressed at once, with its ``Content-Length``."""
        (status, headers, exc_info), self.pending = pending, None
        try:
            data = b"".join(body)
        finally:
            close_quietly(body)
        if len(data) < self.gzip.minimum_size:
            self.server_start(status, headers, exc_info)
            return [data]
        out = ENCODERS[self.coding](self.gzip.compresslevel).finish(data)
        self.server_start(status, [*self.encoded(headers), ("Content-Length", str(len(out)))])
        return [out]


class EncodedBody:
    """A streamed body, compressed chunk by chunk; ``close()`` passes through.

    Each chunk the app yields is compressed and sync-flushed (an empty
    stored block, RFC 1951 §3.2.4), so the client can decode it as soon as
    it arrives: a slow stream is never held back waiting for more input.
    """

    __slots__ = ("_body", "_done", "_exchange", "_iterator")

    def __init__(self, body: Iterable[bytes], exchange: Exchange) -> None:
        self._body, self._exchange, self._done = body, exchange, False
        self._iterator: Iterator[bytes] = iter(body)
        exchange.begin_stream()  # headers now, unless the app calls start_response lazily

    def __iter__(self) -> EncodedBody:
        return self

    def __next__(self) -> bytes:
        exchange = self._exchange
        if self._done:
            raise StopIteration
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._done = True
            exchange.begin_stream()  # an empty stream that called start_response lazily
            if exchange.encoder is None:
                raise
            return exchange.encoder.finish()
        exchange.begin_stream()  # start_response may have come with this chunk
        return exchange.encoder.chunk(chunk) if exchange.encoder is not None and chunk else chunk

    def close(self) -> None:
        close_quietly(self._body)
