"""PEP 3333 plumbing shared by the app and the middleware.

- `EncodedStream`: the body iterable of a streamed response. It encodes
  ``str`` chunks as UTF-8 as they come, never buffers, and passes ``close()``
  through to the handler's iterator, which the server calls even when the
  client went away (PEP 3333: "the server must call close() ... upon
  completion of the current request", Werkzeug's ``ClosingIterator``).
- `close_quietly`: call an iterable's ``close()`` when it has one.
- `Mount`: hand a request to another WSGI app under a path prefix, moving
  the prefix from ``PATH_INFO`` to ``SCRIPT_NAME`` (PEP 3333, "URL
  Reconstruction"), so the mounted app builds its own URLs correctly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from .types import Environ, StartResponse, WSGIApp

logger = logging.getLogger("microweb")


def close_quietly(iterable: Any) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class EncodedStream:
    """Iterate a handler's chunks as bytes; pass ``close()`` through."""

    __slots__ = ("_chunks", "_iterator")

    def __init__(self, chunks: Iterable[bytes | str]) -> None:
        self._chunks = chunks
        self._iterator: Iterator[bytes | str] = iter(chunks)

    def __iter__(self) -> EncodedStream:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._iterator)
        except StopIteration:
            raise
        except Exception:
            # NOTE: the status line is already on the wire; all that is left
            # is to log and cut the stream, so the client sees it truncated
            # (a chunked body without its last chunk) rather than complete.
            logger.exception("streamed response body raised; the stream is cut short")
            raise
        return chunk.encode() if isinstance(chunk, str) else chunk

    def close(self) -> None:
        close_quietly(self._chunks)


class Mount:
    """A WSGI app mounted under `prefix` (see `App.mount`)."""

    __slots__ = ("app", "prefix", "wsgi_prefix")

    def __init__(self, prefix: str, app: WSGIApp) -> None:
        self.prefix = prefix
        self.app = app
        # PATH_INFO holds the URL's bytes decoded as latin-1 (PEP 3333), so
        # the prefix is compared in that form too.
        self.wsgi_prefix = prefix.encode().decode("latin-1")

    def matches(self, path_info: str) -> bool:
        return path_info == self.wsgi_prefix or path_info.startswith(self.wsgi_prefix + "/")

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + self.wsgi_prefix
        environ["PATH_INFO"] = environ.get("PATH_INFO", "")[len(self.wsgi_prefix) :]
        return self.app(environ, start_response)
