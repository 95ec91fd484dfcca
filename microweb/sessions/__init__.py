"""Sessions: recognising a browser again, by a cookie it sends back.

HTTP forgets every request. A session cookie makes the browser send
something back that says "the same user as before". Two kinds, one API
(``req.session`` is a dict with ``rotate()`` and ``invalidate()``):

==========================  ===================================  ================================
                            `CookieSessions` (``cookie.py``)     `ServerSessions` (``server.py``)
==========================  ===================================  ================================
the cookie holds            the data, JSON, HMAC-signed          a random id (256 bits)
server state                none                                 a row per session in a store
size                        < 4 KB (`SessionTooLarge` beyond)    whatever the store holds
logout revokes copies       no (they work until they expire)    yes, at once, on every worker
cost per request            one HMAC                             one store read
==========================  ===================================  ================================

Usage::

    app.use(CookieSessions, secret_keys=[os.environ["SESSION_KEY"]], idle_timeout=1800)

    @app.post("/login")
    def login(req):
        user = check_password(req.form)         # yours
        req.session.rotate()                    # new session on login (fixation)
        req.session["user"] = user.id
        return redirect("/")

    @app.post("/logout")
    def logout(req):
        req.session.invalidate()
        return redirect("/")

The cookie attributes, and the attack each one answers (both kinds):

- ``HttpOnly`` (RFC 6265bis §4.1.2.6): page scripts cannot read the cookie,
  so an XSS bug cannot send it to an attacker.
- ``Secure`` (§4.1.2.5), on by default: the browser sends the cookie over
  https only, never in clear text to anyone on the network path.
  ``secure=False`` is for plain-http development only.
- ``SameSite=Lax`` (§4.1.2.7; §8.8): a cross-site POST (a form on another
  site submitting to this one) arrives without the cookie, which blocks
  most cross-site request forgery. Not all: "same-site" includes sibling
  subdomains, so keep `microweb.middleware.csrf` on for forms too.
  ``"Strict"`` also drops it on cross-site links; ``"None"`` (needs Secure)
  sends it everywhere.
- ``Path=/`` and no ``Domain`` (§4.1.2.3-4): the cookie goes back to this
  host only, never to sibling subdomains.
- ``host_prefix=True`` names the cookie ``__Host-<name>`` (§4.1.3.2).
  **Cookie tossing**: a sibling subdomain (``evil.example.com``, or one
  serving user content) may set a cookie for ``example.com``, which the
  browser then sends here under the same name, planting a session of the
  attacker's choosing (§8.6, weak integrity). A browser accepts a
  ``__Host-`` cookie only if it was set by this very host with ``Secure``,
  ``Path=/`` and no ``Domain``, so a tossed cookie cannot take that name.
  It therefore needs ``secure=True`` (checked at startup).
- ``Max-Age`` (§4.1.2.2): the remaining lifetime (``max_age`` from
  login, ``idle_timeout`` from the last activity); without either, the
  cookie lasts until the browser closes. The server checks both lifetimes
  itself too: a browser's word is not trusted for expiry.

The cookie is sent only when the session changed, or to keep an active
session's idle timer running; responses whose handler read the session
carry ``Vary: Cookie``. Session data is JSON: tuples come back as lists,
and non-string keys as strings.
"""

from .cookie import CookieSessions
from .server import ServerSessions
from .session import MAX_COOKIE_SIZE, Session, SessionTooLarge

__all__ = ["MAX_COOKIE_SIZE", "CookieSessions", "ServerSessions", "Session", "SessionTooLarge"]
