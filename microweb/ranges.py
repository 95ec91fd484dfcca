"""Byte ranges: which bytes of a file a ``Range`` header asks for (RFC 9110 §14).

``Range: bytes=0-99, 200-, -50`` lists *range specs*: ``first-last`` (both
inclusive), ``first-`` (to the end) and ``-n`` (a *suffix*: the last `n`
bytes). `parse_range` turns a header and a file size into inclusive
``(first, last)`` pairs, or says to ignore the header (send the whole file,
200), or that nothing is satisfiable (416). It is a pure function of its
inputs; `microweb.static.StaticFiles` decides *whether* to ask it (GET only,
``If-Range``) and sends what it answers.

Two costs are bounded, because the header comes from the client: the number
of ranges (`MAX_RANGES`) and the size of each number (`_MAX_DIGITS`).
"""

from __future__ import annotations

import re

MAX_RANGES = 16  # more ranges than this in one Range header: ignored (see `parse_range`)

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")  # [0-9], not \d: no Unicode digits
_MAX_DIGITS = 18  # longer numbers are beyond any file size


def parse_range(
    header: str, size: int, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """The byte ranges to send, as inclusive ``(first, last)`` pairs (RFC 9110 §14.1.1).

    Returns None to *ignore* the header and send the whole file with 200,
    which §14.2 allows ("a server MAY ignore the Range header field"), for:
    another unit than ``bytes``; a syntax error (``bytes=5-4``, ``bytes=--5``,
    ``bytes=x``); more than `max_ranges` ranges; several ranges that overlap
    (together longer than the file); a range on an empty file. Returns ``[]``
    when no range is satisfiable: 416. Otherwise the satisfiable ranges, in
    the order asked (unsatisfiable ones dropped). Cost: linear in the first
    `max_ranges` elements, whatever the header's length.
    """
    unit, equals, range_set = header.partition("=")
    if not equals or unit.strip(" \t").lower() != "bytes":
        return None
    # SECURITY: split at most max_ranges times; 10,000 ranges cost no more than 17.
    specs = range_set.split(",", max_ranges)
    if len(specs) > max_ranges:
        return None
    ranges, seen = [], False
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec.strip(" \t"))
        if match is None:
            if spec.strip(" \t"):
                return None
            continue  # RFC 9110 §5.6.1.2: empty list elements are ignored
        first, last = match.groups()
        if not first and not last:
            return None
        seen = True
        if size == 0:
            return None  # NOTE: an empty file has no byte to range over; send it whole.
        if first:
            start, end = _number(first), _number(last) if last else size - 1
            if last and end < start:
                return None  # §14.1.1: an int-range with last-pos < first-pos is invalid
            if start < size:  # §14.1.1: satisfiable when first-pos < length
                ranges.append((start, min(end, size - 1)))
        elif _number(last) > 0:
            # §14.1.2: a suffix longer than the file means the whole file.
            ranges.append((max(size - _number(last), 0), size - 1))
    if not seen:
        return None
    if len(ranges) > 1 and sum(end - start + 1 for start, end in ranges) > size:
        return None  # overlapping ranges: more bytes than the file has (§14.2 "MAY ignore")
    return ranges


def _number(digits: str) -> int:
    # NOTE: int() refuses strings of over 4,300 digits (and is slow long before
    # that); anything over 18 digits is larger than any file anyway.
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
