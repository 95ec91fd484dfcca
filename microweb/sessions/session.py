"""`SessionMiddleware`: what the two session middleware share (cookie, store failures).

The session itself (``req.session``, a `Session`) and its stored form live
in `microweb.sessions.session_data`.

`SessionMiddleware` holds the part of the two middleware that is about the
cookie rather than about where the data lives: the cookie attributes
(validated once, in ``__init__``), the two lifetimes, and the decision, in
`after`, whether to send ``Set-Cookie`` at all:

1. session never touched: the response is left exactly as it was;
2. touched: ``Vary: Cookie`` (RFC 9110 §12.5.5);
3. changed and not empty: saved and re-sent (`save`); changed to empty:
   the data is dropped and the cookie deleted (``Max-Age=0``);
4. unchanged, but more than `REFRESH_FRACTION` of ``idle_timeout`` since it
   was last saved: re-sent, so an active user is not logged out;
5. the request carried a cookie that was not valid (tampered, expired,
   revoked): it is deleted, so the browser stops sending it.

A response that sets the cookie also gets ``Cache-Control: private`` unless
the app chose a ``Cache-Control`` itself: a shared cache that stored it
would hand one user's session cookie to the next (RFC 9111 §5.2.2.7).

When the store fails (`StoreError`, `ServerSessions` only):

- **while loading**, in `before`: with ``fail_open=False`` (the default)
  the request is answered **503** with ``Retry-After`` (problem+json or
  HTML, like every microweb error) and never reaches the app; with
  ``fail_open=True`` it goes on with an empty, *detached* session: the
  visitor is anonymous for this request, nothing is saved for it, and the
  cookie is left alone (the browser keeps its real session for later).
  Either way a warning goes to the ``microweb`` logger.
- **while saving or deleting**, in `after`: too late to change the status,
  which the app has chosen (``after`` runs inside ``start_response``). The
  error is logged and the response carries **no** ``Set-Cookie``: the
  browser must not get a cookie naming a session that was not stored; it
  keeps the cookie it had, which names whatever the store still holds.
  The handler's changes to the session are lost. NOTE: a 200 whose session
  change was lost is the limitation; changes that must not be lost silently
  (``invalidate()``, ``rotate()``) write to the store in the handler, where
  a failure is a 503 (see `microweb.errors`).

NOTE: ``after`` runs when the app calls ``start_response``. A change made
while a streamed body is being iterated comes too late to be sent.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Literal

from webob.cookies import RequestCookies, make_cookie

from ..errors import ErrorPage, store_unavailable
from ..http import TOKEN, add_vary, has_header
from ..layer import Middleware
from ..stores.base import StoreError, fail_open_flag
from ..types import Environ, Headers, WSGIApp
from .session_data import Record, Session

logger = logging.getLogger("microweb")
# The fail-closed answer when the store cannot be read, rendered once.
UNAVAILABLE = ErrorPage(store_unavailable())

#: Where the session is kept in the WSGI environ (`Request.session` reads it).
ENVIRON_KEY = "microweb.session"

#: Browsers keep a cookie whose ``name=value`` is at most 4096 bytes (RFC 6265bis
#: §5.6 ignores a larger one *silently*: the user is just logged out). 4093 leaves
#: the margin Werkzeug and Flask use for the characters around the pair.
MAX_COOKIE_SIZE = 4093

#: An unchanged session is re-sent once this fraction of ``idle_timeout`` has passed
#: since it was last saved: the idle timer is then exact to within 10%, for one
#: ``Set-Cookie`` (and, with `ServerSessions`, one store write) per tenth.
REFRESH_FRACTION = 0.1

SameSite = Literal["Strict", "Lax", "None"]
SAMESITE: dict[str, SameSite] = {"strict": "Strict", "lax": "Lax", "none": "None"}


class SessionTooLarge(ValueError):
    """The session no longer fits in a cookie: store less, or use `ServerSessions`."""


class SessionMiddleware(Middleware):
    """The cookie side of `CookieSessions` and `ServerSessions` (see the module docs).

    A subclass says where the data lives: `load` fills a session from the
    cookie's value, `save` stores it and returns the new cookie value, and
    `discard` forgets what `load` found.
    """

    session_class: type[Session] = Session

    def __init__(
        self,
        app: WSGIApp,
        *,
        cookie_name: str,
        max_age: float | None,
        idle_timeout: float | None,
        secure: bool,
        samesite: str,
        host_prefix: bool,
        clock: Callable[[], float],
        fail_open: bool = False,
    ) -> None:
        super().__init__(app)
        self.fail_open = fail_open_flag(type(self).__name__, fail_open)
        if not TOKEN.fullmatch(cookie_name):  # RFC 6265bis §4.1.1: a cookie name is a token
            raise ValueError(f"cookie_name must be an RFC 9110 token, not {cookie_name!r}")
        for option, value in (("max_age", max_age), ("idle_timeout", idle_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{option} must be a number of seconds > 0, or None")
        if samesite.lower() not in SAMESITE:
            raise ValueError(f"samesite must be 'Strict', 'Lax' or 'None', not {samesite!r}")
        same_site = SAMESITE[samesite.lower()]
        name = f"__Host-{cookie_name}" if host_prefix else cookie_name
        # RFC 6265bis §4.1.3: browsers refuse a prefixed cookie without Secure
        # (and §5.6 a SameSite=None one): the app would never get its session back.
        if not secure and name.lower().startswith(("__host-", "__secure-")):
            raise ValueError(f"the cookie name {name!r} needs secure=True (RFC 6265bis §4.1.3)")
        if not secure and same_site == "None":
            raise ValueError("samesite='None' needs secure=True (RFC 6265bis §4.1.2.7)")
        self.cookie_name = name
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self.secure = secure
        self.samesite = same_site
        self.clock = clock
        # Path=/ and no Domain, always: what __Host- requires (RFC 6265bis
        # §4.1.3.2), and the right scope for a session anyway.
        self._cookie_re = re.compile(rf"(?:^|;)\s*{re.escape(name)}=")

    # -- What a subclass provides --------------------------------------------

    def load(self, session: Session, value: str, now: float) -> None:
        """Fill `session` (``dict.update``, `issued_at`, `last_seen`) from a cookie value."""
        raise NotImplementedError

    def save(self, session: Session, now: float, ttl: int | None) -> str:
        """Store `session` (its times are set) and return the value of the cookie to send."""
        raise NotImplementedError

    def discard(self, session: Session) -> None:
        """Forget the stored session `load` found (nothing to do for a cookie)."""

    # -- The hooks -------------------------------------------------------------

    def before(self, environ: Environ) -> WSGIApp | None:
        # PERF: a regex on the raw header first: most requests of an
        # anonymous visitor carry no session cookie and need no parsing.
        cookies = environ.get("HTTP_COOKIE", "")
        has_cookie = bool(cookies) and self._cookie_re.search(cookies) is not None
        session = self.session_class(self.discard, has_cookie)
        if has_cookie:
            value = _cookie_value(environ, self.cookie_name)
            if value is not None:
                try:
                    self.load(session, value, self.clock())
                except StoreError as exc:
                    name = type(self).__name__
                    if not self.fail_open:
                        logger.warning("%s: the store failed (%s); answering 503", name, exc)
                        return UNAVAILABLE
                    logger.warning("%s: the store failed (%s); an anonymous session", name, exc)
                    session = self.session_class(self.discard, has_cookie)  # nothing half-loaded
                    session.detached = True
        environ[ENVIRON_KEY] = session
        return None

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        session = environ.get(ENVIRON_KEY)
        # NOTE: a session another (inner) session middleware put there is not ours.
        if not isinstance(session, Session) or session._discard != self.discard:
            return
        if not session.accessed:
            return  # 1. never touched: nothing depends on the cookie
        add_vary(headers, "Cookie")  # 2.
        if session.detached:
            return  # the store could not be read: never save over the real session
        now = self.clock()
        if session.modified or session.renew:  # 3. changed
            if session.renew or not session.valid:
                session.issued_at = now  # a new session, or a new lifetime (rotate)
            if not session:
                try:
                    self.discard(session)
                except StoreError as exc:
                    self._log_lost(environ, status, exc)
                    return  # no Set-Cookie: the browser keeps the cookie it had
                if session.has_cookie:
                    self.set_cookie(headers, None)
                return
        elif session.valid and self.refresh_due(session, now):  # 4. refresh
            pass
        else:
            if session.has_cookie and not session.valid:  # 5. a rejected cookie
                self.set_cookie(headers, None)
            return
        session.last_seen = now
        ttl = self.lifetime(session.issued_at or now, now)
        try:
            value = self.save(session, now, ttl)
        except StoreError as exc:
            self._log_lost(environ, status, exc)
            return  # no Set-Cookie: the browser keeps the cookie it had
        self.set_cookie(headers, value, ttl)

    def _log_lost(self, environ: Environ, status: str, exc: StoreError) -> None:
        # NOTE: the status is the app's already; only the log can tell.
        logger.error(
            "%s: the store failed saving the session of %s %s (%s); the response (%s) "
            "goes out without Set-Cookie and the session change is lost",
            type(self).__name__, environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
            exc, status,
        )  # fmt: skip

    def refresh_due(self, session: Session, now: float) -> bool:
        """Whether an unchanged session must be saved again to keep its idle timer running."""
        return (
            self.idle_timeout is not None
            and session.last_seen is not None
            and now - session.last_seen >= self.idle_timeout * REFRESH_FRACTION
        )

    # -- Helpers -----------------------------------------------------------------

    def adopt(self, session: Session, record: Record | None, now: float) -> bool:
        """Fill `session` from a `decode_record` result, unless None or over (checked here:
        a browser's ``Max-Age`` is not trusted, and a store's TTL clock may lag ours)."""
        if record is None:
            return False
        data, issued_at, last_seen = record
        if (self.max_age is not None and now - issued_at >= self.max_age) or (
            self.idle_timeout is not None and now - last_seen >= self.idle_timeout
        ):
            return False  # idle or absolute lifetime over: an empty session
        dict.update(session, data)
        session.issued_at, session.last_seen = issued_at, last_seen
        return True

    def lifetime(self, issued_at: float, now: float) -> int | None:
        """Seconds a session saved `now` has left (its cookie's Max-Age), None for no limit."""
        limits = [] if self.idle_timeout is None else [self.idle_timeout]
        if self.max_age is not None:
            limits.append(issued_at + self.max_age - now)
        return max(1, math.ceil(min(limits))) if limits else None

    def set_cookie(self, headers: Headers, value: str | None, max_age: int | None = None) -> None:
        """Add ``Set-Cookie``; `value` None deletes the cookie (``Max-Age=0``)."""
        if value is not None and len(self.cookie_name) + 1 + len(value) > MAX_COOKIE_SIZE:
            size = len(self.cookie_name) + 1 + len(value)
            raise SessionTooLarge(
                f"the session cookie {self.cookie_name!r} would be {size} bytes, over the "
                f"{MAX_COOKIE_SIZE}-byte limit: browsers silently drop larger cookies "
                "(RFC 6265bis §5.6). Store less in the session, or use ServerSessions."
            )
        cookie = make_cookie(
            self.cookie_name,
            value,
            max_age=0 if value is None else max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=self.samesite,
        )
        headers.append(("Set-Cookie", cookie))
        if not has_header(headers, "cache-control"):
            headers.append(("Cache-Control", "private"))


def _cookie_value(environ: Environ, name: str) -> str | None:
    """The value of cookie `name` (WebOb's parser, RFC 6265bis §5.7 syntax)."""
    try:
        return RequestCookies(environ).get(name)
    except Exception:  # NOTE: a header WebOb cannot parse means "no cookie", never a 500
        return None


__all__ = ["MAX_COOKIE_SIZE", "Session", "SessionMiddleware", "SessionTooLarge"]
