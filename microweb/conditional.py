"""Conditional requests: validators, and whether a request's preconditions hold.

A *validator* (RFC 9110 §8.8) lets a client ask "has this changed since I
saw it?". There are two:

- an **entity-tag** (``ETag``, §8.8.3): an opaque quoted string, ``"abc"``
  (strong: the bytes are the same) or ``W/"abc"`` (weak: the content is
  equivalent). `make_etag` builds a strong one from the bytes;
- a **modification date** (``Last-Modified``, §8.8.2), to the second.

A request carries *preconditions* (§13.1) that compare them with the
current state of the resource, and `evaluate` applies them in the order of
§13.2.2:

======  ========================  =================  =============================
step    header                    comparison         when false
======  ========================  =================  =============================
1       ``If-Match``              strong (§8.8.3.2)  412
2       ``If-Unmodified-Since``   date; only when    412
                                  no If-Match
3       ``If-None-Match``         weak               304 on GET/HEAD, 412 otherwise
4       ``If-Modified-Since``     date; GET/HEAD     304
                                  only, only when
                                  no If-None-Match
======  ========================  =================  =============================

The `microweb.middleware.etag.ETag` middleware runs `evaluate` for any app.
A handler that knows the current validators itself (it has just loaded the
row it is about to change) declares them in one line instead::

    check_preconditions(req, etag=make_etag(note_bytes))   # raises HTTPError(412)

Malformed validators never raise: an entity-tag list that does not parse
matches nothing, and a date that does not parse is ignored (§13.1.3, §13.1.4).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import webob

from .errors import HTTPError
from .types import Environ

#: RFC 9110 §9.2.1: the methods that change nothing; every other one is unsafe.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, where etagc is
# any visible character but DQUOTE, or obs-text (header values reach WSGI
# decoded as latin-1, PEP 3333). Neither pattern can backtrack: a tag ends
# at the first quote, and separators are never tag characters.
_TAG = r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"'
_ONE_TAG = re.compile(_TAG)
# RFC 9110 §5.6.1: a list may hold empty elements ("a, , b"), which are ignored.
_TAG_LIST = re.compile(r'[ \t,]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*(?:,[ \t,]*|\Z))*')


class Failure(NamedTuple):
    """A precondition that did not hold: the status to answer, and which header failed."""

    status: int  # 304 or 412
    header: str  # "If-Match", "If-Unmodified-Since", "If-None-Match" or "If-Modified-Since"


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


def parse_etag(value: str) -> tuple[bool, str] | None:
    """``W/"x"`` -> ``(True, "x")``, ``"x"`` -> ``(False, "x")``; None if malformed."""
    match = _ONE_TAG.fullmatch(value.strip())
    return None if match is None else (bool(match.group(1)), match.group(2))


def parse_etag_list(value: str) -> list[tuple[bool, str]]:
    """The entity-tags of an If-Match / If-None-Match list; [] when it does not parse."""
    if _TAG_LIST.fullmatch(value) is None:
        return []
    return [(bool(weak), opaque) for weak, opaque in _ONE_TAG.findall(value)]


def etag_matches(header: str, etag: str | None, exists: bool = True, strong: bool = False) -> bool:
    """Whether an If-Match (`strong`) or If-None-Match header matches `etag` (RFC 9110 §13.1.1-2).

    ``*`` matches any current representation (`exists`); otherwise the
    current entity-tag must be in the list: §8.8.3.2 strong comparison
    needs both tags strong and equal, weak comparison only equal.
    """
    if header.strip() == "*":
        return exists
    current = parse_etag(etag) if etag else None
    if current is None or not exists or (strong and current[0]):
        return False
    if current[1] not in header:  # PERF: one substring scan rejects most lists
        return False
    return any(
        opaque == current[1] and not (strong and weak) for weak, opaque in parse_etag_list(header)
    )


def parse_http_date(value: str | None) -> int | None:
    """An HTTP-date (RFC 9110 §5.6.7) as whole seconds since the epoch; None if invalid."""
    if not value or "," in value.partition(",")[2]:  # §13.1.3: a list is not a date
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": the zone is unknown; HTTP dates are UTC
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return int(parsed.timestamp())
    except (OverflowError, ValueError):
        return None


def to_seconds(moment: datetime | float | None) -> int | None:
    """A modification time as whole seconds: HTTP dates have no finer resolution (§5.6.7)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return int(aware.timestamp())
    return int(moment)


def evaluate(
    environ: Environ, etag: str | None, last_modified: int | None, exists: bool = True
) -> Failure | None:
    """Apply the request's preconditions to the current validators (RFC 9110 §13.2.2).

    `etag` is the current entity-tag (``'"abc"'``), `last_modified` the
    current modification time in seconds, `exists` whether the resource has
    a current representation at all. Returns the first precondition that
    fails, or None when the request may proceed.
    """
    method = environ.get("REQUEST_METHOD", "GET")
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:  # step 1
        if not etag_matches(if_match, etag, exists, strong=True):
            return Failure(412, "If-Match")
    elif last_modified is not None:  # step 2; §13.1.4: ignored without a date
        since = parse_http_date(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and last_modified > since:
            return Failure(412, "If-Unmodified-Since")
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    safe = method == "GET" or method == "HEAD"
    if if_none_match is not None:  # step 3
        if etag_matches(if_none_match, etag, exists, strong=False):
            return Failure(304 if safe else 412, "If-None-Match")
    elif safe and last_modified is not None:  # step 4
        since = parse_http_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
        if since is not None and last_modified <= since:
            return Failure(304, "If-Modified-Since")
    return None


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


__all__ = [
    "SAFE_METHODS",
    "Failure",
    "check_preconditions",
    "etag_matches",
    "etag_of_chunks",
    "evaluate",
    "make_etag",
    "parse_etag",
    "parse_etag_list",
    "parse_http_date",
]
