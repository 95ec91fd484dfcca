"""The HTTP grammar every layer shares (RFC 9110): tokens, ports, dates, entity-tags, header
lists, ``Vary``, bearer credentials, a redirect's query, whether a request has a body or lacks
its Host (RFC 9112 §6.3, §3.2), and the one evaluation of its preconditions, with its 304's.

A leaf module: it imports nothing from microweb, so every layer can use it.

Preconditions (RFC 9110 §13.2.2)
--------------------------------
A *validator* says which version of a resource a client saw: an
**entity-tag** (``ETag``, §8.8.3: ``"abc"`` strong, ``W/"abc"`` weak) or a
**modification date** (``Last-Modified``, §8.8.2, to the second). `evaluate`
applies the request's conditions to the current validators, in this order:

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

Handlers (`microweb.conditional`), the `ETag` middleware and static files
call it. Malformed validators never raise: an entity-tag list that does not
parse matches nothing, and a date that does not parse is ignored (§13.1.3-4).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import quote

# RFC 9110 §5.6.2: token = 1*tchar; methods, field names, cookie names are tokens.
TOKEN_PATTERN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
TOKEN = re.compile(TOKEN_PATTERN)

#: RFC 3986 §6.2.3: the port a URL means when it names none (strings, as in the environ).
DEFAULT_PORTS = {"http": "80", "https": "443"}

#: RFC 3986 §3.3: what a path keeps literal in a URL ("%" not: WSGI paths arrive decoded).
PATH_SAFE = "/:@!$&'()*+,;=~"


def url_query(query: str) -> str:
    """``"?" + QUERY_STRING`` for a redirect's ``Location`` (RFC 3986 §3.4), or ``""``: the query
    as sent (PEP 3333) with its escapes kept (quoting again makes ``%2F`` ``%252F``), but raw
    bytes (a space, non-ASCII), ``#``, controls and a ``%`` starting no escape (§2.1) escaped."""
    query = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", query)
    return "?" + quote(query.encode("latin-1"), safe=PATH_SAFE + "?%") if query else ""


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


def list_tokens(value: str | None) -> list[str]:
    """RFC 9110 §5.6.1: the elements of a list header, lower-cased; empty ones dropped."""
    return [item.strip().lower() for item in (value or "").split(",") if item.strip()]


def declares_body(environ: dict[str, Any]) -> bool:
    """Whether the request declares a body: a ``Content-Length`` other than 0, or chunked.

    RFC 9112 §6.3: a request's body length comes from ``Transfer-Encoding``
    (chunked) or ``Content-Length``; with neither (rule 7) it is zero. So a
    request without one has nothing to read, refuse for size or drain, and
    ``wsgi.input`` must not be read: the body reader, `BodyLimit` and the
    drain after an answer all ask this one question.
    """
    length = environ.get("CONTENT_LENGTH")
    if length and length != "0":
        return True
    coding = environ.get("HTTP_TRANSFER_ENCODING")
    return coding is not None and "chunked" in coding.lower()


def lacks_host(environ: dict[str, Any]) -> bool:
    """Whether the request lacks the Host its version requires (a 400): RFC 9112 §3.2 for
    HTTP/1.1, RFC 9113 §8.3.1 for HTTP/2 (``:authority``, which gunicorn gives as Host); none
    in HTTP/1.0. An empty Host is none: an http URI's host is never empty (RFC 9110 §4.2.1)."""
    return not environ.get("HTTP_HOST") and environ.get("SERVER_PROTOCOL") != "HTTP/1.0"


def bearer_credentials(authorization: str | None) -> str | None:
    """What follows ``Bearer`` in an ``Authorization`` value (``""``: no token); None if not Bearer.

    RFC 9110 §11.4: a case-insensitive scheme, then 1*SP; §5.5: the value is read trimmed."""
    scheme, _, credentials = (authorization or "").strip(" \t").partition(" ")
    return credentials.strip(" ") if scheme.lower() == "bearer" else None


def unsafe_methods(option: str, methods: Iterable[str]) -> frozenset[str]:
    """A list-of-methods option, upper-cased; ValueError for a bare string or a safe method."""
    if isinstance(methods, str):
        raise ValueError(f"{option} takes a list of methods, like [{methods!r}]")
    checked = frozenset(method.upper() for method in methods)
    safe = checked & SAFE_METHODS
    if safe:
        raise ValueError(f"{option}: {sorted(safe)} are safe methods (RFC 9110 §9.2.1)")
    return checked


def http_date(seconds: float) -> str:
    """Epoch seconds as an HTTP-date (RFC 9110 §5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> int | None:
    """An HTTP-date as whole seconds since the epoch; None if absent or invalid."""
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


def parse_etag(value: str) -> tuple[bool, str] | None:
    """Entity-tag (§8.8.3): ``W/"x"`` -> ``(True, "x")``, ``"x"`` -> ``(False, "x")``; or None."""
    match = _ONE_TAG.fullmatch(value.strip())
    return None if match is None else (bool(match.group(1)), match.group(2))


def parse_etag_list(value: str) -> list[tuple[bool, str]]:
    """The entity-tags of an If-Match / If-None-Match list; [] when it does not parse."""
    if _TAG_LIST.fullmatch(value) is None:
        return []
    return [(bool(weak), opaque) for weak, opaque in _ONE_TAG.findall(value)]


def etag_matches(header: str, etag: str | None, exists: bool = True, strong: bool = False) -> bool:
    """Whether an If-Match (`strong`) or If-None-Match header matches `etag` (§13.1.1-2).

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


class Failure(NamedTuple):
    """A precondition that did not hold: the status to answer, and which header failed."""

    status: int  # 304 or 412
    header: str  # "If-Match", "If-Unmodified-Since", "If-None-Match" or "If-Modified-Since"


def evaluate(
    environ: dict[str, Any], etag: str | None, last_modified: int | None, exists: bool = True
) -> Failure | None:
    """Apply the request's preconditions to the current validators (the table above).

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


Headers = list[tuple[str, str]]  # RFC 9110 §5: field names are case-insensitive

_NOT_ON_304 = frozenset(
    {"content-type", "content-length", "content-encoding", "content-language", "content-range"}
)
_NOT_ON_304_WITH_ETAG = _NOT_ON_304 | {"last-modified"}


def not_modified_headers(headers: Headers) -> Headers:
    """RFC 9110 §15.4.5: a 304 carries the fields of the 200, but no representation metadata
    (§8) other than ETag and Content-Location; Last-Modified only when there is no ETag."""
    dropped = _NOT_ON_304_WITH_ETAG if has_header(headers, "etag") else _NOT_ON_304
    return [(name, value) for name, value in headers if name.lower() not in dropped]


# PERF (both scans): a plain loop (`any()` over a generator measured twice as
# slow), and a name's length is compared before it is lower-cased: 0.33 µs
# instead of 0.74 to look for X-Request-ID among the nine headers of the bench
# stack's hello. (Lower-casing a token never changes its length.)


def has_header(headers: Headers, lower_name: str) -> bool:
    """Whether `headers` has a field called `lower_name` (given in lower case)."""
    size = len(lower_name)
    for name, _ in headers:  # noqa: SIM110
        if len(name) == size and name.lower() == lower_name:
            return True
    return False


class FieldNames(frozenset[str]):
    """Lower-cased field names, and their lengths (for `has_any`)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.lengths = frozenset(map(len, self))

    def __new__(cls, names: Iterable[str]) -> FieldNames:
        return super().__new__(cls, (name.lower() for name in names))


def has_any(headers: Headers, names: FieldNames) -> bool:
    """Whether `headers` has a field named in `names`."""
    lengths = names.lengths
    for name, _ in headers:  # noqa: SIM110
        if len(name) in lengths and name.lower() in names:
            return True
    return False


def replace_headers(headers: Headers, new: Headers) -> None:
    """Set the fields of `new` in place, each with only its new value (earlier ones dropped)."""
    names = {name.lower() for name, _ in new}
    headers[:] = [(name, value) for name, value in headers if name.lower() not in names]
    headers.extend(new)


def add_vary(headers: Headers, field: str) -> None:
    """RFC 9110 §12.5.5: add `field` to ``Vary`` in place, merged into an existing one.

    Nothing changes when any ``Vary`` already lists `field` or ``*``.
    """
    if not has_header(headers, "vary"):
        headers.append(("Vary", field))  # PERF: the usual case, no token scan
        return
    wanted, first = field.lower(), -1
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {token.strip().lower() for token in value.split(",")}
            if wanted in tokens or "*" in tokens:
                return
            first = index if first < 0 else first
    name, value = headers[first]
    headers[first] = (name, f"{value}, {field}" if value.strip() else field)
