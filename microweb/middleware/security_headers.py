"""`SecurityHeaders`: response headers that switch on the browser's own defences.

None of these headers changes what the server does: each tells the
*browser* that reads the response to refuse a known attack. They cost a few
fixed strings per response, and they matter most on the responses nobody
thinks about, so error pages get them too. Each option is the header's
value, or ``None`` to leave that header out.

- ``Strict-Transport-Security`` (``hsts``; RFC 6797) stops **downgrade
  attacks and cookie hijacking**: an attacker on the network (café Wi-Fi)
  answers the first ``http://`` visit and keeps the victim on plain http
  ("SSL stripping"), reading the session cookie. Once a browser has seen
  this header it goes to https by itself for ``max-age`` seconds (default
  two years, subdomains included).
- ``Content-Security-Policy`` (``csp``; Content Security Policy Level 3)
  stops **cross-site scripting** from loading or running code from other
  origins (``default-src 'self'``), and **clickjacking**:
  ``frame-ancestors 'none'`` forbids any site to show this page in a frame.
- ``X-Frame-Options`` (``frame_options``; RFC 7034) stops **clickjacking**
  in browsers that predate ``frame-ancestors``: a page framed invisibly
  under a decoy, so the victim's click lands on "delete my account".
- ``X-Content-Type-Options: nosniff`` (``content_type_options``; the Fetch
  standard's "X-Content-Type-Options" header, and MIME Sniffing) stops
  **MIME sniffing**: an upload or a JSON answer that the browser would
  otherwise guess is HTML or script, and run in this origin.
- ``Referrer-Policy`` (``referrer_policy``; W3C Referrer Policy) stops
  **referrer leaks**: the full URL of this page (a reset token in its
  query) sent to every site it links to. With
  ``strict-origin-when-cross-origin`` other sites see the origin only, and
  an https page sends nothing to an http one.
- ``Cross-Origin-Opener-Policy`` (``coop``; HTML, "Cross-origin opener
  policies") stops **cross-origin window attacks**: a page from another
  site that this one opens, or that opened it, gets no handle on its
  window (tab-nabbing, XS-Leaks), and the page gets a browsing context
  group, so a process, of its own: out of reach of **Spectre-class** side
  channels.
- ``Permissions-Policy`` (``permissions_policy``; W3C Permissions Policy)
  stops a page that was injected into, or a frame inside it, from using
  **powerful features** (camera, microphone, location, payment, USB):
  ``feature=()`` allows them for no origin at all.

Two rules decide whether a header is added:

- **The app wins.** A handler that sets one of these headers itself (a
  widget that partners may frame, a stricter policy for one page) keeps its
  own value; names compare case-insensitively (RFC 9110 §5.1), and nothing
  is sent twice.
- **HSTS only over https.** RFC 6797 §7.2: a server "MUST NOT include the
  STS header field in HTTP responses conveyed over non-secure transport",
  and §8.1: a browser must ignore it there (an attacker could forge it), so
  it would only be noise. The scheme is ``wsgi.url_scheme``, which
  `ProxyFix` sets from the proxy's ``X-Forwarded-Proto`` when TLS ends in
  front of the app.

The values are checked once, when the middleware is built (a bad one is a
``ValueError`` at startup), and the header pairs are built then too; per
response the work is one scan of the header names and one ``extend``.
"""

from __future__ import annotations

from ..http import FieldNames, has_any
from ..layer import Middleware
from ..types import Environ, Headers, WSGIApp

#: Powerful features this page, and every frame in it, may not use.
DEFAULT_PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)


def checked_value(option: str, value: object) -> str | None:
    """`value` if it can be sent as a header value (or is None); else a ValueError."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"SecurityHeaders({option}=...) must be a str or None, not {value!r}")
    if not value.strip():
        raise ValueError(f"SecurityHeaders({option}={value!r}) is empty; None disables it")
    # SECURITY: a CR or LF in a header value ends the header line and starts a
    # new one (response splitting). RFC 9110 §5.5 allows visible ASCII, space
    # and tab (and obsolete non-ASCII bytes, which none of these specs use);
    # tab is refused too, as WSGI validators (wsgiref, WebTest) refuse it.
    for char in value:
        if not " " <= char <= "~":
            raise ValueError(
                f"SecurityHeaders({option}={value!r}) contains {char!r}: a header value "
                "is printable ASCII (no CR, LF or other control characters)"
            )
    return value


class SecurityHeaders(Middleware):
    """Add the browser-defence headers described above to every response."""

    def __init__(
        self,
        app: WSGIApp,
        hsts: str | None = "max-age=63072000; includeSubDomains",
        csp: str | None = "default-src 'self'; frame-ancestors 'none'",
        frame_options: str | None = "DENY",
        content_type_options: str | None = "nosniff",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        coop: str | None = "same-origin",
        permissions_policy: str | None = DEFAULT_PERMISSIONS_POLICY,
    ) -> None:
        super().__init__(app)
        options = [
            ("Strict-Transport-Security", "hsts", hsts),
            ("Content-Security-Policy", "csp", csp),
            ("X-Frame-Options", "frame_options", frame_options),
            ("X-Content-Type-Options", "content_type_options", content_type_options),
            ("Referrer-Policy", "referrer_policy", referrer_policy),
            ("Cross-Origin-Opener-Policy", "coop", coop),
            ("Permissions-Policy", "permissions_policy", permissions_policy),
        ]
        # The headers, computed once: for plain http, and for https (HSTS added).
        self.http_pairs: Headers = []
        self.https_pairs: Headers = []
        for name, option, raw in options:
            value = checked_value(option, raw)
            if value is None:
                continue
            if name == "Strict-Transport-Security" and not has_max_age(value):
                # RFC 6797 §6.1.1: max-age is REQUIRED; browsers ignore the header without it.
                raise ValueError(f"SecurityHeaders(hsts={value!r}) has no max-age directive")
            if name != "Strict-Transport-Security":
                self.http_pairs.append((name, value))
            self.https_pairs.append((name, value))
        self.names = FieldNames(name for name, _ in self.https_pairs)

    def after(self, environ: Environ, status: str, headers: Headers) -> None:
        # RFC 6797 §7.2: no HSTS over plain http (see the module docs).
        https = environ.get("wsgi.url_scheme") == "https"
        if not has_any(headers, self.names):
            # PERF: the usual case, the app set none of them: one extend.
            headers.extend(self.https_pairs if https else self.http_pairs)
            return
        present = {name.lower() for name, _ in headers}
        for name, value in self.https_pairs if https else self.http_pairs:
            if name.lower() not in present:  # the app's own value wins
                headers.append((name, value))


def has_max_age(hsts: str) -> bool:
    """True if the HSTS value has a ``max-age`` directive (RFC 6797 §6.1: ``;``-separated,
    names case-insensitive, optional whitespace around ``=``)."""
    return any(
        directive.partition("=")[0].strip().lower() == "max-age" for directive in hsts.split(";")
    )
