"""`ProxyFix`: believe the forwarded headers your own proxies added, and no others.

Behind a reverse proxy the server's peer is the proxy, so ``REMOTE_ADDR``,
the scheme and ``Host`` describe the proxy's connection. Proxies report the
client's in headers, which a client can send too. What to believe is a
**hop count per header**: how many proxies in front of the app add to it.

Each header is a list, one value appended per proxy (RFC 7239 §4;
X-Forwarded-* by convention), read **right to left**: the value *n* from
the right is the one the *n*-th proxy (counting from the app) added; those
to its left came from the client. Too few values (a proxy was bypassed),
or a value that is not what the table accepts, leave that part as it was.

========================  ===================================  ==============
header (hop count)        sets                                 accepts
========================  ===================================  ==============
X-Forwarded-For (x_for)   REMOTE_ADDR                          an IP address
X-Forwarded-Proto         wsgi.url_scheme                      http, https
X-Forwarded-Host          HTTP_HOST, SERVER_NAME, SERVER_PORT  host[:port]
X-Forwarded-Port          SERVER_PORT, the port in HTTP_HOST   1-65535
X-Forwarded-Prefix        SCRIPT_NAME (replaced)               a /path
Forwarded (forwarded)     for, proto, host: as above           RFC 7239 §4-6
========================  ===================================  ==============

A usable ``Forwarded`` value wins over the X-Forwarded-* one. When it reads
a trusted peer's headers, ProxyFix keeps the server's values in
``environ["microweb.proxy_fix.orig"]``. ``req.client_addr`` is ``REMOTE_ADDR``.

What the checks stop: a client inventing its address (``X-Forwarded-For:
6.6.6.6`` to dodge a rate limit or an IP allow-list): only the rightmost
*n* values count. A client reaching the app's port past the proxy: with
``trusted`` (the proxies' addresses/CIDRs) any other peer's forwarded
headers are all ignored. A forged scheme, host or prefix (redirect loops,
poisoned absolute URLs, ``//evil`` in relative redirects): only http/https,
well-formed hosts (`trusted_host.parse_host`) and plain ``/paths`` are
taken. A malformed ``Forwarded`` is ignored whole, never half-read.

NOTE: ``X_Forwarded_For`` (an underscore) cannot be told from
``X-Forwarded-For`` here: CGI maps both to ``HTTP_X_FORWARDED_FOR``, and a
server joining them would let a client add a value on the right, where the
trusted ones are. gunicorn 27 does not: its ``header_map`` setting defaults
to ``drop`` (headers with ``_`` are discarded); ``refuse`` answers 400;
``dangerous`` joins them: never run ProxyFix behind it. gunicorn also sets
``wsgi.url_scheme`` from X-Forwarded-Proto itself for peers in
``--forwarded-allow-ips`` (default 127.0.0.1, ::1). Both are checked
through a real gunicorn in tests/test_middleware_proxy_fix.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache, partial

from ..http import DEFAULT_PORTS, TOKEN_PATTERN
from ..layer import Middleware
from ..types import Environ, WSGIApp
from .trusted_host import parse_host, port_number

ORIG = "microweb.proxy_fix.orig"
KEYS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_FORWARDED",
)
SAVED = ("REMOTE_ADDR", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyFix(Middleware):
    """Set the client address, scheme, host, port and prefix from trusted proxy headers."""

    def __init__(
        self,
        app: WSGIApp,
        x_for: int = 1,
        x_proto: int = 1,
        x_host: int = 0,
        x_port: int = 0,
        x_prefix: int = 0,
        forwarded: int = 0,
        trusted: Iterable[str] | None = None,
    ) -> None:
        super().__init__(app)
        self.x_for = hops("x_for", x_for)
        self.x_proto = hops("x_proto", x_proto)
        self.x_host = hops("x_host", x_host)
        self.x_port = hops("x_port", x_port)
        self.x_prefix = hops("x_prefix", x_prefix)
        self.forwarded = hops("forwarded", forwarded)
        self.trusted = None if trusted is None else networks(trusted)
        # PERF: parsing an address costs ~2.5 µs (ipaddress); a server sees a
        # few peers (its proxies) over and over, so each answer is cached.
        self.is_trusted = lru_cache(maxsize=256)(partial(is_trusted, trusted=self.trusted or ()))
        # PERF: a request with none of the headers in use (one that did not
        # come through a proxy) then costs a single check.
        counts = (x_for, x_proto, x_host, x_port, x_prefix, forwarded)
        self.keys = tuple(key for key, count in zip(KEYS, counts, strict=True) if count)

    def before(self, environ: Environ) -> WSGIApp | None:
        # PERF: a loop of `in` tests, not environ.keys().isdisjoint(self.keys),
        # which builds a view and calls two methods (bench/ stack: 0.09 µs less).
        for key in self.keys:
            if key in environ:
                break
        else:
            return None  # nothing forwarded: the environ is the server's own
        # 1. Is the peer one of our proxies? If not, nothing it says counts.
        if self.trusted is not None and not self.is_trusted(environ.get("REMOTE_ADDR")):
            return None
        environ[ORIG] = {key: environ.get(key) for key in SAVED}
        # 2. Read what the trusted hops say, each value checked.
        client = address(pick(environ.get("HTTP_X_FORWARDED_FOR"), self.x_for))
        proto = scheme(pick(environ.get("HTTP_X_FORWARDED_PROTO"), self.x_proto))
        host = parse_host(pick(environ.get("HTTP_X_FORWARDED_HOST"), self.x_host) or "")
        port = port_number(pick(environ.get("HTTP_X_FORWARDED_PORT"), self.x_port))
        prefix = path_prefix(pick(environ.get("HTTP_X_FORWARDED_PREFIX"), self.x_prefix))
        if self.forwarded and "HTTP_FORWARDED" in environ:
            elements = parse_forwarded(environ["HTTP_FORWARDED"]) or []
            element = elements[-self.forwarded] if len(elements) >= self.forwarded else {}
            client = address(element.get("for")) or client
            proto = scheme(element.get("proto")) or proto
            host = parse_host(element.get("host", "")) or host
        # 3. Apply them, keeping the host, port and scheme consistent.
        if client:
            environ["REMOTE_ADDR"] = client
        if proto:
            environ["wsgi.url_scheme"] = proto
        default_port = DEFAULT_PORTS.get(environ["wsgi.url_scheme"], "")
        if host:
            name, host_port = host
            environ["HTTP_HOST"] = name if host_port is None else f"{name}:{host_port}"
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = host_port or default_port
        if port:
            environ["SERVER_PORT"] = port
            current = parse_host(environ.get("HTTP_HOST", ""))
            if current:  # RFC 3986 §6.2.3: the default port is left out
                name = current[0]
                environ["HTTP_HOST"] = name if port == default_port else f"{name}:{port}"
        if prefix is not None:
            environ["SCRIPT_NAME"] = prefix
        return None


def hops(name: str, value: object) -> int:
    """A hop count option: an int >= 0 (0 ignores that header)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"ProxyFix({name}=...) must be a hop count, an int >= 0, not {value!r}")
    return value


def networks(trusted: Iterable[str]) -> tuple[Network, ...]:
    """Parse ``trusted`` once: addresses ("10.0.0.1") and CIDRs ("10.0.0.0/8")."""
    if isinstance(trusted, str | bytes):
        raise ValueError(f"ProxyFix(trusted=...) must be a list of addresses, not {trusted!r}")
    parsed = []
    for entry in trusted:
        try:
            # NOTE: strict: "10.0.0.1/8" (host bits set) is a typo, not a network.
            parsed.append(ipaddress.ip_network(entry))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ProxyFix(trusted=...): {entry!r}: {exc}") from None
    if not parsed:
        raise ValueError("ProxyFix(trusted=[]) trusts no proxy; use None to trust any peer")
    return tuple(parsed)


def is_trusted(peer: str | None, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(peer or "")  # a unix socket peer has no address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return any(ip in network for network in trusted)


def pick(value: str | None, hop: int) -> str | None:
    """The value the `hop`-th proxy from the right added, or None if there are too few."""
    if not value or not hop:
        return None
    if "," not in value:  # PERF: the usual case (one proxy): 0.1 µs, not 0.6
        return (value.strip() or None) if hop == 1 else None
    # RFC 9110 §5.6.1: empty list elements do not count. Servers join
    # repeated header lines with commas, so those are one list too.
    values = [v for v in map(str.strip, value.split(",")) if v]
    return values[-hop] if len(values) >= hop else None


# RFC 7239 §6: node = nodename [ ":" node-port ], where the name is an IPv4
# address, an IPv6 address in brackets, "unknown" or an obfuscated "_name",
# and the port a number or "_obfuscated". X-Forwarded-For adds bare IPv6.
_PORT = r"(?::(?:[0-9]{1,5}|_[A-Za-z0-9._-]+))?"
_NODE = re.compile(rf"\[(?P<v6>[^\]]+)\]{_PORT}|(?P<v4>[^:]+){_PORT}|(?P<bare>[^\[\]]+)")


@lru_cache(maxsize=4096)  # PERF: as for trusted peers (clients come back)
def address(node: str | None) -> str | None:
    """The IP address in a node: ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:80``, ``::1``.

    RFC 7239 §6.2/§6.3: ``unknown`` and ``_obfuscated`` identify no address: None.
    """
    match = _NODE.fullmatch(node) if node else None
    if match is None:
        return None
    try:
        return str(ipaddress.ip_address(match["v6"] or match["v4"] or match["bare"]))
    except ValueError:
        return None


def scheme(value: str | None) -> str | None:
    value = (value or "").lower()
    return value if value in ("http", "https") else None


def path_prefix(value: str | None) -> str | None:
    """A ``/prefix`` for ``SCRIPT_NAME`` (trailing slash removed), or None."""
    # SECURITY: "//evil.example" or "/\\evil.example" as a prefix would make
    # every relative redirect the app sends ("Location: //evil.example/...")
    # point at another site; browsers read a backslash as a slash.
    if value is None or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(c in "?#" or c <= " " or c == "\x7f" for c in value):
        return None
    return value.rstrip("/")


# RFC 7239 §4: Forwarded = 1#forwarded-element;
# forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] );
# forwarded-pair = token "=" value; value = token / quoted-string (RFC 9110 §5.6).
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_PAIR = re.compile(rf"[ \t]*({TOKEN_PATTERN})=({TOKEN_PATTERN}|{_QUOTED})[ \t]*")
_ESCAPE = re.compile(r"\\(.)")


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header, left to right, or None if it is malformed.

    ``'for="[2001:db8::1]:4711";proto=https, for=unknown'`` ->
    ``[{"for": "[2001:db8::1]:4711", "proto": "https"}, {"for": "unknown"}]``.
    Parameter names are lowercased (RFC 7239 §4: case-insensitive).
    """
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        match = _PAIR.match(value, pos)
        if match:
            name, raw = match[1].lower(), match[2]
            if name in pairs:  # RFC 7239 §4: a parameter MUST NOT occur twice in an element
                return None
            pairs[name] = _ESCAPE.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
            pos = match.end()
        else:
            while pos < end and value[pos] in " \t":  # OWS around an empty element
                pos += 1
        if pos == end:
            break
        if value[pos] == ",":
            elements.append(pairs)
            pairs = {}
        elif value[pos] != ";":
            return None  # SECURITY: a syntax error: trust none of it
        pos += 1
    elements.append(pairs)
    return [element for element in elements if element]  # RFC 9110 §5.6.1


__all__ = ["ORIG", "ProxyFix", "parse_forwarded"]
