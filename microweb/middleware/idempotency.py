"""`Idempotency`: the ``Idempotency-Key`` request header, so that a retried POST runs once.

``Idempotency(app, store=None, ttl=86400, methods=("POST", "PATCH"),
required=False, user=None, fail_open=False, lock_ttl=60, max_body=1_048_576)``
wraps any PEP 3333 app. It implements the server side of
draft-ietf-httpapi-idempotency-key-header-07 (15 October 2025; "§" numbers
below are that revision's: §2.1 Syntax, §2.2 Uniqueness of Idempotency Key,
§2.3 Idempotency Key Validity and Expiry, §2.4 Idempotency Fingerprint,
§2.6 Idempotency Enforcement, §2.7 Error Handling, §5 Security
Considerations). It is a plain WSGI wrapper, not a `Middleware` hook: it must
read the whole request body (to fingerprint it) and the whole response body
(to record it).

What it owns: one store entry per (scope, key), at ``"idempotency:" +
sha256(scope, key)``, holding a running marker while the first request runs
(ttl: lock_ttl), then the recorded response (ttl: ttl). The entry's format,
and what a replay leaves out, are `microweb.middleware.idempotency_record`.

The protocol, for a request whose method is in `methods` (any other request
passes through untouched, its body streamed and nothing buffered):

1. **The key** (§2.1: an Item whose value is a String, RFC 8941 §3.3.3,
   ``"8e03978e-..."``) or, as many clients send it, the same text unquoted
   (the draft does not allow that form; accepting it is our leniency).
   1-255 printable ASCII characters: the limit is ours (Stripe's), the
   "fixed format" that §5 asks a server to publish and validate; anything
   else is a 400. No key: a 400 when ``required=True`` (§2.7), else the
   request passes through.
2. **The scope.** A key is only ever compared with the same client's keys
   (§5: a low-entropy key must not let one client fetch another's entry,
   so the lookup key combines the client's key with "client specific
   attributes known only to the resource"). `user(environ)` names the
   client; the default is ``REMOTE_USER``, else a SHA-256 of the
   ``Authorization`` header, else the anonymous scope (shared by all
   anonymous clients: only the key's randomness, §2.2, separates them).
   Hashing the credential scopes safely: two requests share a scope only if they carry
   the very same credential, i.e. come from the same principal (or from
   someone who could act as it anyway), and the store never holds the
   credential itself, only a one-way digest folded into the entry's name.
3. **The fingerprint** (§2.4): sha256 over the method, the path
   (``SCRIPT_NAME`` + ``PATH_INFO``), the query string and a hash of the
   body. The body is read here, at most `max_body` bytes (413, RFC 9110
   §15.5.14; a ``Content-Length`` above it is refused before reading,
   a chunked body is counted as it arrives), and put back as a
   length-delimited one, so any app reads it as if the client had sent a
   length (`request.buffer_body`, as `BodyLimit` does). The app's own body
   limit still applies to what it reads.
4. **The election**: one ``store.add(entry, b"running " + fingerprint,
   ttl=lock_ttl)``. ``add`` is atomic in every store (one SQL upsert in
   SQLite, ``SET NX`` in Redis), so of any number of concurrent requests
   with one key, on any gunicorn worker or any machine sharing the store,
   exactly one wins. A get-then-set would let two workers both see
   "absent" and both run the handler: the double charge this feature exists
   to prevent.
5. **The winner runs the app** and buffers its response (status, headers,
   whole body: the record must hold the whole body, so a response is never
   streamed through this middleware; do not put it in front of
   server-sent events). A completed response below 500 is written with
   ``store.set(entry, record, ttl=ttl)`` *before* ``start_response`` is
   called: once the client can have seen the answer, a retry must find
   it. (Written after, a client that got the answer and retried at once, or
   a connection cut just after the headers, could run the handler twice.)
6. **A loser reads the entry** (§2.6, status codes from §2.7): still
   running, same fingerprint → 409 Conflict with ``Retry-After: 1`` (a
   hint, RFC 9110 §10.2.3: the first request usually finishes soon);
   different fingerprint → 422 Unprocessable Content (the key was reused
   for another request, which §2.2 forbids); completed, same fingerprint →
   the recorded response, with ``Idempotent-Replayed: true`` (a convention
   from Stripe's API, not in the draft); completed, different fingerprint
   → 422. Errors are problem+json (RFC 9457) like every microweb error.

What is recorded, and what is not:

- **5xx responses are not recorded**: the running marker is deleted and
  the response is sent. A server error says nothing about the request; the
  retry the client will make is exactly what should happen. (A deliberate
  departure from a SHOULD: §2.6 says a retry gets "the result of the
  previously completed operation, success or an error", while §2.7 sends
  clients to the server's documentation for 5xx. Stripe does the same
  for its own errors.)
- **An exception** from the app, or from its body iterator mid-way: the
  marker is deleted (a retry runs again) and the exception propagates to
  the server, or to the `App` that renders it. The body's ``close()`` is
  always called (PEP 3333).
- **Not replayed**: hop-by-hop fields, ``Date`` and ``Set-Cookie`` (the
  reasons are in `microweb.middleware.idempotency_record`).
  ``Content-Length`` is recomputed.

Failure modes:

- **The store fails** (`StoreError`: SQLite locked past its timeout, Redis
  down) before the handler runs: a warning on the ``microweb`` logger,
  then 503 (fail closed, the default: the handler never runs unprotected)
  with ``Retry-After: STORE_RETRY_AFTER``, as every feature whose store
  failed, or, with ``fail_open=True``, the request runs without idempotency.
- **The store fails while recording** (after the handler ran): the
  response is sent anyway (answering 503 would invite the retry that runs
  it twice) and a warning is logged. The running marker stays until
  `lock_ttl`: retries get 409 meanwhile, then run again.
- **A worker dies** mid-request (SIGKILL, gunicorn's ``--timeout``): the
  marker expires after `lock_ttl` seconds and a retry runs. `lock_ttl` must
  therefore exceed the longest a handler can take (gunicorn kills a sync
  worker after 30 s by default; the default 60 s covers that).
- **A record expires** after `ttl` (§2.3): the key is new again.

Its place in the stack is innermost; `microweb.middleware` says why, with the
order of every layer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable

from ..errors import ErrorPage, HTTPError, send_error, store_unavailable
from ..http import unsafe_methods
from ..request import buffer_body
from ..stores import Store, StoreError, default_store
from ..stores.base import fail_open_flag
from ..types import Environ, StartResponse, WSGIApp
from ..wsgi import Captured, close_quietly
from .idempotency_record import RUNNING, dump, load, replay

logger = logging.getLogger("microweb")

KEY_PREFIX = "idempotency:"
MAX_KEY_LENGTH = 255

# RFC 8941 §3.3.3: sf-string = DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE.
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
# NOTE: the unquoted form many clients send (a bare UUID is not an sf-token:
# it may start with a digit). Visible ASCII only; no quote or backslash, which
# belong to the quoted form.
_BARE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_UNESCAPE = re.compile(r"\\([\"\\])")

UserFunc = Callable[[Environ], "str | None"]


def parse_key(value: str) -> str | None:
    """The key an ``Idempotency-Key`` value carries, or None when malformed (§2.1, §5)."""
    value = value.strip(" \t")
    quoted = _SF_STRING.fullmatch(value)
    if quoted is not None:
        key = _UNESCAPE.sub(r"\1", quoted[1])
    elif _BARE.fullmatch(value):
        key = value
    else:
        return None
    return key if 1 <= len(key) <= MAX_KEY_LENGTH else None


def default_user(environ: Environ) -> str | None:
    """``REMOTE_USER``, else a digest of ``Authorization``, else None (anonymous)."""
    remote_user = environ.get("REMOTE_USER")
    if remote_user:
        return f"remote-user:{remote_user}"
    credential = environ.get("HTTP_AUTHORIZATION")
    if credential:
        # SECURITY: a one-way digest; see "The scope" in the module docs.
        return "authorization:" + hashlib.sha256(credential.encode("latin-1")).hexdigest()
    return None


def fingerprint(environ: Environ, body: bytes) -> str:
    """§2.4: what makes two requests with one key "the same request"."""
    parts = [
        environ["REQUEST_METHOD"],
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", ""),
        hashlib.sha256(body).hexdigest(),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()  # JSON: unambiguous


# The answers with a fixed text, rendered once (problem+json and HTML).
MISSING = ErrorPage(HTTPError(400, "This request requires an Idempotency-Key header."))
MALFORMED = ErrorPage(
    HTTPError(400, "The Idempotency-Key must be a string of 1-255 printable ASCII characters.")
)
IN_FLIGHT = ErrorPage(
    HTTPError(
        409,
        "A request with this Idempotency-Key is still being processed.",
        [("Retry-After", "1")],
    )
)
REUSED = ErrorPage(
    HTTPError(422, "This Idempotency-Key was already used for a different request.")
)
UNAVAILABLE = ErrorPage(
    store_unavailable("The idempotency store is unavailable; retry later with the same key.")
)


class Idempotency:
    """Run a request carrying an ``Idempotency-Key`` once; replay its response to retries."""

    def __init__(
        self,
        app: WSGIApp,
        store: Store | None = None,
        ttl: float = 86400,
        methods: Iterable[str] = ("POST", "PATCH"),
        required: bool = False,
        user: UserFunc | None = None,
        fail_open: bool = False,
        lock_ttl: float = 60,
        max_body: int = 1_048_576,
    ) -> None:
        self.methods = unsafe_methods("Idempotency(methods=...)", methods)
        if not self.methods:
            raise ValueError("Idempotency(methods=...) must name at least one method")
        for name, seconds in (("ttl", ttl), ("lock_ttl", lock_ttl)):
            if isinstance(seconds, bool) or not seconds > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, not {seconds!r}")
        if max_body < 0:
            raise ValueError(f"max_body must be >= 0, not {max_body}")
        self.app = app
        self.store: Store = store if store is not None else default_store()
        self.ttl, self.lock_ttl, self.max_body = ttl, lock_ttl, max_body
        self.required, self.fail_open = required, fail_open_flag("Idempotency", fail_open)
        self.user: UserFunc = user if user is not None else default_user

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # 1. Only the configured methods, and only with a (well-formed) key.
        if environ["REQUEST_METHOD"] not in self.methods:
            return self.app(environ, start_response)
        header = environ.get("HTTP_IDEMPOTENCY_KEY")
        if header is None:
            if not self.required:
                return self.app(environ, start_response)
            return MISSING(environ, start_response)
        key = parse_key(header)
        if key is None:
            return MALFORMED(environ, start_response)
        # 2. The entry of this key in this client's scope.
        scope = self.user(environ)
        tag = "-" if scope is None else "+" + scope
        # NOTE: the key has no newline, so "<tag>\n<key>" names one (scope, key) pair.
        entry = KEY_PREFIX + hashlib.sha256(f"{tag}\n{key}".encode()).hexdigest()
        # 3. Read the body, put it back, fingerprint the request.
        try:
            body = buffer_body(environ, self.max_body)
        except HTTPError as refused:  # 413, or 400 for a body that cannot be read
            return send_error(refused, environ, start_response)
        mark = fingerprint(environ, body)
        # 4. Elect one winner, or answer from the entry.
        try:
            answer = self.elect(entry, mark)
        except StoreError as exc:
            then = "running without idempotency" if self.fail_open else "answering 503"
            logger.warning("idempotency store failed (%s); %s", exc, then)
            if self.fail_open:
                return self.app(environ, start_response)
            return UNAVAILABLE(environ, start_response)
        if answer is not None:
            return answer(environ, start_response)
        # 5. The winner: run the app, record, then respond.
        return self.run(environ, start_response, entry, mark)

    def elect(self, entry: str, mark: str) -> WSGIApp | None:
        """None when this request won the key; otherwise the answer for a loser (§2.6, §2.7)."""
        for _ in range(3):  # NOTE: the entry may be deleted between add and get
            if self.store.add(entry, RUNNING + mark.encode(), ttl=self.lock_ttl):
                return None
            value = self.store.get(entry)
            if value is not None:
                break
        else:
            value = RUNNING + mark.encode()  # it keeps changing hands: in progress
        if value.startswith(RUNNING):
            if value[len(RUNNING) :].decode("ascii", "replace") != mark:
                return REUSED
            return IN_FLIGHT
        record = load(value)
        if record["fingerprint"] != mark:
            return REUSED
        return replay(record)

    def run(
        self, environ: Environ, start_response: StartResponse, entry: str, mark: str
    ) -> Iterable[bytes]:
        """Step 5: the app's whole response, recorded before it is sent on."""
        captured = Captured()
        try:
            result = self.app(environ, captured)
            try:
                for chunk in result:
                    captured.written.append(chunk)
            finally:
                close_quietly(result)
            if captured.status is None:
                raise RuntimeError("the app returned without calling start_response")
        except BaseException:
            self.forget(entry)  # a retry may run it again
            raise
        status, headers, exc_info = captured.status, captured.headers, captured.exc_info
        captured.exc_info = None  # NOTE: no traceback cycle kept alive by this object
        body = b"".join(captured.written)  # write() data, then the iterable's
        if status[:1] == "5":
            self.forget(entry)  # a server error is worth retrying: see the module docs
        else:
            record = dump(mark, status, headers, body)
            try:
                self.store.set(entry, record, ttl=self.ttl)
            except StoreError as exc:
                logger.warning("idempotency store failed to record a response (%s); "
                               "retries get 409 until the marker expires", exc)  # fmt: skip
        start_response(status, headers, exc_info)
        return [body]

    def forget(self, entry: str) -> None:
        """Delete the running marker; a store failure leaves it to expire (lock_ttl)."""
        try:
            self.store.delete(entry)
        except StoreError as exc:
            logger.warning("idempotency store failed to delete a marker (%s)", exc)
