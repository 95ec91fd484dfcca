"""`ServerSessions`: the data in a store, only a random id in the cookie.

The cookie holds ``secrets.token_urlsafe(32)``: 256 random bits, base64url
(43 characters). The data lives in a `microweb.stores` store under
``session:<id>``, as the JSON of `encode_record`, with a TTL equal to the
session's remaining lifetime, so the store forgets abandoned sessions by
itself. With `SQLiteStore` every gunicorn worker on the machine sees the
same sessions; with `RedisStore`, every machine.

Unlike a signed cookie, a server session can be *revoked*. The attacks:

- **Guessing an id.** 256 bits from the OS's CSPRNG (RFC 6265bis §8.4:
  session identifiers must not be guessable). Anything that is not exactly
  43 base64url characters is rejected before the store is asked.
- **Session fixation.** An attacker plants a session id of their own in the
  victim's browser (a sibling subdomain can set cookies for the parent
  domain; see "cookie tossing" in `microweb.sessions`), the victim logs in,
  and the attacker, holding the same id, is logged in too. Two defences:
  an id the store does not know is never adopted (a new one is drawn when
  the session is first saved), and ``req.session.rotate()``, **to call on
  login** and on any change of privilege, moves the data to a new id and
  deletes the old one, so whatever id was known before login is dead.
- **Replay after logout.** ``req.session.invalidate()`` deletes the stored
  session at once: a copy of the cookie (a shared computer, a stolen
  laptop, a log that recorded it) names nothing from then on, whichever
  worker or machine it is sent to.
- **Anonymous visitors filling the store.** Nothing is written until a
  session holds data: a crawler, or a flood of requests with random ids,
  creates no rows.

**When the store is down** (`StoreError`), never a hang and never a bare
500 (the details, and the one limitation, are in `microweb.sessions.session`):

- reading the session, before the app runs: ``fail_open=False`` (the
  default) answers **503** with ``Retry-After``: a session that could not
  be read is not silently an anonymous one. ``fail_open=True`` serves the
  request as anonymous instead, saving nothing for it. Logged either way.
- ``invalidate()`` and ``rotate()`` delete from the store in the handler:
  a failure there is a 503 from the app (`microweb.errors`), so a logout
  that could not be stored is never a silent success.
- saving, as the response starts: the status is the app's already; the
  failure is logged and no ``Set-Cookie`` is sent (the change is lost).

NOTE: two concurrent requests of one session each write the whole session;
the last one to finish wins.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from ..types import WSGIApp
from .session import SessionMiddleware
from .session_data import Session, decode_record, encode_record

#: The store key of session `id` is ``KEY_PREFIX + id``.
KEY_PREFIX = "session:"
#: What `secrets.token_urlsafe(32)` produces, and so the only ids ever looked up.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


class SessionStore(Protocol):
    """The part of the `microweb.stores` interface sessions use."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: int | None = None) -> None: ...
    def delete(self, key: str) -> None: ...


class ServerSession(Session):
    """A `Session` that knows its id (None until it is first saved)."""

    id: str | None = None


class ServerSessions(SessionMiddleware):
    """Sessions kept in a store, named by a random id in the cookie (see the module docs).

    ``fail_open``: when the store cannot be read, serve the request with an
    empty session instead of answering 503.
    """

    session_class = ServerSession

    def __init__(
        self,
        app: WSGIApp,
        store: SessionStore,
        cookie_name: str = "sid",
        max_age: float | None = None,
        idle_timeout: float | None = None,
        secure: bool = True,
        samesite: str = "Lax",
        host_prefix: bool = False,
        clock: Callable[[], float] = time.time,
        fail_open: bool = False,
    ) -> None:
        super().__init__(
            app,
            cookie_name=cookie_name,
            max_age=max_age,
            idle_timeout=idle_timeout,
            secure=secure,
            samesite=samesite,
            host_prefix=host_prefix,
            clock=clock,
            fail_open=fail_open,
        )
        for method in ("get", "set", "delete"):
            if not callable(getattr(store, method, None)):
                raise TypeError(
                    f"store must be a microweb.stores store; {store!r} has no {method}()"
                )
        self.store = store

    def load(self, session: Session, value: str, now: float) -> None:
        if not SESSION_ID.fullmatch(value):
            return  # not an id we could have issued: don't even ask the store
        raw = self.store.get(KEY_PREFIX + value)  # None: unknown, expired or revoked
        if raw is not None and self.adopt(session, decode_record(raw), now):
            _server(session).id = value

    def save(self, session: Session, now: float, ttl: int | None) -> str:
        server_session = _server(session)
        if server_session.id is None:
            # SECURITY: a fresh id, never one the client sent (fixation).
            server_session.id = secrets.token_urlsafe(32)
        self.store.set(KEY_PREFIX + server_session.id, encode_record(session), ttl=ttl)
        return server_session.id

    def discard(self, session: Session) -> None:
        # SECURITY: at once, not when the response is sent: a logout (or a
        # login's rotate) whose response fails still leaves the old id dead.
        server_session = _server(session)
        if server_session.id is not None:
            self.store.delete(KEY_PREFIX + server_session.id)
            server_session.id = None


def _server(session: Session) -> ServerSession:
    if not isinstance(session, ServerSession):
        raise TypeError(f"ServerSessions got a {type(session).__name__}, not a ServerSession")
    return session


__all__ = ["KEY_PREFIX", "ServerSession", "ServerSessions", "SessionStore"]
