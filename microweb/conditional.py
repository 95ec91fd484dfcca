"""Conditional requests: validators, and whether a request's preconditions hold.

A *validator* (RFC 9110 §8.8) lets a client ask "has this changed since I
saw it?". There are two:

- an **entity-tag** (``ETag``, §8.8.3): an opaque quoted string, ``"abc"``
  (strong: the bytes are the same) or ``W/"abc"`` (weak: the content is
  equivalent). `make_etag` builds a strong one from the bytes;
- a **modification date** (``Last-Modified``, §8.8.2), to the second.

A request carries *preconditions* (§13.1) that compare them with the
current state of the resource; `microweb.http.evaluate` applies them in
the order of §13.2.2 (the table is there), for handlers, the `ETag`
middleware (any app) and static files alike.
A handler that knows the current validators itself (it has just loaded the
row it is about to change) declares them in one line instead::

    check_preconditions(req, etag=make_etag(note_bytes))   # raises HTTPError(412)
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

import webob

from .errors import HTTPError
from .http import SAFE_METHODS, Failure, evaluate, parse_etag


def make_etag(data: bytes) -> str:
    """A strong entity-tag for `data` (RFC 9110 §8.8.3): a quoted, 22-character hash.

    BLAKE2b cut to 128 bits, in base64url: equal bytes give equal tags, and
    different bytes (all a strong validator promises, §8.8.1) practically
    never share one. It is not a secret; anyone can compute it.
    """
    return etag_of_chunks((data,))


def etag_of_chunks(chunks: Iterable[bytes]) -> str:
    """`make_etag` of the chunks joined, without joining them (a buffered WSGI body)."""
    digest = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        digest.update(chunk)
    return '"' + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() + '"'


def to_seconds(moment: datetime | float | None) -> int | None:
    """A modification time as whole seconds: HTTP dates have no finer resolution (§5.6.7)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return int(aware.timestamp())
    return int(moment)


def check_preconditions(
    req: webob.Request,
    etag: str | None = None,
    last_modified: datetime | float | None = None,
    *,
    exists: bool | None = None,
    required: bool = False,
) -> None:
    """Raise ``HTTPError(412)`` when an unsafe request's preconditions fail (optimistic locking).

    Call it in a PUT/PATCH/DELETE handler *before* changing anything, with
    the validators of the resource as it is now::

        check_preconditions(req, etag=note.etag, last_modified=note.updated_at)

    `exists` defaults to "a validator was given" (pass ``exists=False`` for a
    resource that is not there yet, so ``If-Match: *`` fails and
    ``If-None-Match: *`` passes). `required=True` answers 428 (RFC 6585 §3)
    when the request carries no If-Match. A bare value (``abc``) is taken as
    the strong tag ``"abc"``.

    Safe methods (GET, HEAD...) are left alone: their failed condition is a
    304, which is a normal response, not an error; the `ETag` middleware or
    WebOb's ``Response(conditional_response=True)`` answers those.
    """
    method = req.environ.get("REQUEST_METHOD", "GET")
    if method in SAFE_METHODS:
        return
    if required and "HTTP_IF_MATCH" not in req.environ:
        raise HTTPError(428, PRECONDITION_REQUIRED)
    if etag is not None and parse_etag(etag) is None:
        if '"' in etag:
            raise ValueError(f"not an entity-tag: {etag!r} (RFC 9110 §8.8.3)")
        etag = f'"{etag}"'
    if exists is None:
        exists = etag is not None or last_modified is not None
    failure = evaluate(req.environ, etag, to_seconds(last_modified), exists)
    if failure is not None:
        raise HTTPError(412, failed_detail(failure))


PRECONDITION_REQUIRED = (
    "This request must be conditional: send If-Match with the ETag of the "
    "representation you fetched, so a concurrent change cannot be overwritten."
)


def failed_detail(failure: Failure) -> str:
    """The 412 detail for a failed precondition."""
    return (
        f"{failure.header} failed: the resource is not in the state the request "
        "expected (changed since it was fetched, or missing). Fetch it again."
    )


__all__ = ["check_preconditions", "etag_of_chunks", "make_etag"]
