"""The idempotency record: what `Idempotency` keeps for a key, and how it is replayed.

The store entry of one (scope, key) holds either ::

    b"running <fingerprint>"          while the first request runs (ttl: lock_ttl)
    b"done <json record>"             once it has completed (ttl: ttl)

where the record is ``{"fingerprint", "status", "headers", "body"}`` (the
body in base64: JSON, never pickle, so a store an attacker can write to
cannot run code here). `dump` writes a completed entry, `load` reads one
back (a corrupted entry is a `StoreError`, like a store that fails), and
`replay` turns it into the response a retry gets.

Not recorded, so never replayed: hop-by-hop fields (RFC 9110 §7.6.1),
``Date`` (the server stamps a replay with the time it is sent, §6.6.1) and
``Set-Cookie``. A cookie is a credential; a replay goes to whoever holds
the key in this scope, which for the anonymous scope is anyone who learns
it. Session cookies are set by the session middleware outside this one on
every response, replays included. ``Content-Length`` is recomputed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from ..stores import StoreError
from ..types import Environ, Headers, StartResponse, WSGIApp

#: How an entry starts: the first request still runs, or it completed (see the module docs).
RUNNING, DONE = b"running ", b"done "

# RFC 9110 §7.6.1 hop-by-hop fields; Date and Set-Cookie: see the module docs.
_NOT_RECORDED = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "date", "set-cookie", "content-length",
    }
)  # fmt: skip


def dump(mark: str, status: str, headers: Headers, body: bytes) -> bytes:
    """A completed entry: `DONE`, then the JSON record of the response (a replay's fields only)."""
    kept = [[name, value] for name, value in headers if name.lower() not in _NOT_RECORDED]
    record = {
        "fingerprint": mark,
        "status": status,
        "headers": kept,
        "body": base64.b64encode(body).decode("ascii"),
    }
    return DONE + json.dumps(record, separators=(",", ":")).encode()


def load(value: bytes) -> dict[str, Any]:
    """A completed record, checked; a StoreError when it is not one (corrupted entry)."""
    try:
        if not value.startswith(DONE):
            raise ValueError("unknown entry")
        record = json.loads(value[len(DONE) :])
        record["body"] = base64.b64decode(record["body"], validate=True)
        if not (
            isinstance(record["fingerprint"], str)
            and isinstance(record["status"], str)
            and all(isinstance(n, str) and isinstance(v, str) for n, v in record["headers"])
        ):
            raise ValueError("wrong types")
    except (ValueError, KeyError, TypeError) as exc:  # binascii.Error is a ValueError
        raise StoreError(f"unreadable idempotency record: {exc}") from exc
    return dict(record)


def replay(record: dict[str, Any]) -> WSGIApp:
    """The recorded response again, marked as a replay."""
    body: bytes = record["body"]
    headers: Headers = [(name, value) for name, value in record["headers"]]
    status: str = record["status"]
    if status[:3] not in ("204", "304"):  # RFC 9110 §8.6: those carry no Content-Length
        headers.append(("Content-Length", str(len(body))))
    headers.append(("Idempotent-Replayed", "true"))

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, headers)
        return [body]

    return app
