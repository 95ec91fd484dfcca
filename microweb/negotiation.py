"""Content negotiation: pick the representation the client ranks highest.

RFC 9110 §12.5.1: ``Accept`` lists media ranges with optional weights,

    Accept: text/html, application/json;q=0.9, */*;q=0.1

and an offer gets the weight (q-value, §12.4.2) of the *most specific*
range that matches it: ``text/html`` beats ``text/*`` beats ``*/*``, and
parameters count (``text/html;level=1`` is more specific than
``text/html``). ``q=0`` means "not acceptable". `negotiate` asks WebOb's
``acceptable_offers`` for that ranking (WebOb parses the header; we do not
rewrite RFC parsing) and returns the winner; offers that tie keep the
server's order, so list your preferred format first.

- No ``Accept`` header means "anything" (§12.5.1): the first offer wins.
  WebOb treats a header it cannot parse the same way, which §12.5.1 allows
  ("disregard the header field"). An *empty* ``Accept:`` is present and
  lists nothing (``#`` allows an empty list, §5.6.1): nothing fits, 406.
- Nothing acceptable: ``HTTPError(406)`` (§15.5.7) whose detail lists what
  is available. ``Vary: Accept`` goes with it, and must go with the
  successful response too (§12.5.5): the answer depends on the header.

Usage::

    @app.get("/report")
    def report(req):
        media_type = negotiate(req, ["application/json", "text/csv"])
        body = to_csv(rows) if media_type == "text/csv" else json_bytes(rows)
        return Response(body, content_type=media_type, vary="Accept")
"""

from __future__ import annotations

from collections.abc import Sequence

import webob
from webob.acceptparse import Accept

from .errors import HTTPError

VARY_ACCEPT = ("Vary", "Accept")


def negotiate(req: webob.Request, offers: Sequence[str]) -> str:
    """The offer the client's ``Accept`` ranks highest, or `HTTPError` 406.

    `offers` are media types the handler can produce, best first
    (``"application/json"``, ``"text/html"``); a wildcard or a malformed
    media type is a programming error, refused with `ValueError`.
    """
    if isinstance(offers, str):
        raise TypeError(f"offers is a list of media types, like [{offers!r}], not a string")
    if not offers:
        raise ValueError("negotiate needs at least one offer")
    for offer in offers:
        try:
            Accept.parse_offer(offer)
        except ValueError:
            # NOTE: WebOb silently skips such offers; a typo would then be a 406 forever.
            raise ValueError(
                f"an offer is a media type like 'text/html', without wildcards: {offer!r}"
            ) from None
    ranked = req.accept.acceptable_offers(list(offers))
    if ranked:
        return str(ranked[0][0])
    raise HTTPError(
        406,
        f"This resource is available as: {', '.join(offers)}.",
        [VARY_ACCEPT],
    )
