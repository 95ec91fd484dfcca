"""Routing: from a method and a path to a handler, or to the right miss.

The data structure
------------------
A route arrives with its template already split into literal and `Param`
segments (`route_templates.py`). Routes are compiled into two structures
when they are registered, so that matching cost does not grow with the
number of routes:

- ``static``: a dict from a literal path (``/notes``) to its *leaf*;
- ``tree``: a segment tree for paths with parameters. Each node has a dict
  of literal children, a short list of parameter edges (one per converter
  kind: ``{id:int}``, ``{name}``, ``{rest:path}``) and maybe a leaf::

      /users/{id:int}/posts/{slug}      root
      /users/me/posts/{slug}             └─ "users"
                                            ├─ "me" ─ "posts" ─ {str} ─ leaf
                                            └─ {int} ─ "posts" ─ {str} ─ leaf

A *leaf* is a method map: ``{"GET": route, "HEAD": route, "PUT": route}``.
HEAD is filled from GET at registration (RFC 9110 §9.3.2), unless a route
registers HEAD itself; the ``Allow`` value is computed once per leaf.

Precedence is by construction: at each segment a literal child is tried
first, then typed parameters (``int``, ``uuid``, custom converters), then
``{name}``, then ``{name:path}``; the first complete match whose leaf serves
the request method wins. A converter that rejects a segment (its regex does
not match, or ``to_python`` raises ``ValueError``) is simply not a match.

One lookup answers everything (STYLE: "one lookup answers 200, 405 and
OPTIONS"): `RouteTable.match` returns an *endpoint* and its keyword
arguments. A hit is the handler; a miss is one of the small endpoints at the
bottom of this module, which *return* an `HTTPError` (no exception is raised
on the miss path) or a ready response:

- 405 with ``Allow`` when the path exists for other methods (RFC 9110 §15.5.6);
- 204 with ``Allow`` for an OPTIONS nobody registered (RFC 9110 §9.3.7);
- 501 for a method nobody registered and HTTP does not define (RFC 9110 §9.1);
- 308 to ``/a`` from ``/a/`` (or back) when only the other one exists;
- 404 otherwise; 400 for a path that is not UTF-8 or a request without the
  ``Host`` its version requires (`http.lacks_host`, RFC 9112 §3.2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .converters import Converter
from .errors import HTTPError
from .http import PATH_SAFE, lacks_host, url_query
from .response import TEXT, Reply
from .route_templates import Param, Route
from .types import Environ
from .wsgi import Mount

if TYPE_CHECKING:
    from .request import Request

Endpoint = Callable[..., Any]

# RFC 9110 §9 and RFC 5789 (PATCH). A method outside this set that no route
# registers is "unrecognized": 501, not 405 (RFC 9110 §9.1).
STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class RouteConflict(ValueError):
    """Two routes answer the same method on the same path shape."""


class _Leaf:
    """The routes of one path shape, by method, and its precomputed ``Allow``."""

    __slots__ = ("allow", "dispatch")

    def __init__(self) -> None:
        self.dispatch: dict[str, Route] = {}
        self.allow = ""

    def add(self, route: Route) -> None:
        for method in route.methods:
            other = self.dispatch.get(method)
            # A GET route fills HEAD in for itself; an explicit HEAD replaces it.
            if other is not None and not (method == "HEAD" and "HEAD" not in other.methods):
                raise RouteConflict(
                    f"{method} {route.template} ({route.where}) conflicts with "
                    f"{method} {other.template} ({other.where})"
                )
        for method in route.methods:
            self.dispatch[method] = route
        if "GET" in route.methods and "HEAD" not in self.dispatch:
            self.dispatch["HEAD"] = route
        self.allow = ", ".join(sorted({*self.dispatch, "OPTIONS"}))


NO_MATCH = object()


class _Edge:
    """A parameter edge out of a node: the converter that must accept the segment."""

    __slots__ = ("child", "converter", "fullmatch", "identity", "kind", "spans")

    def __init__(self, param: Param) -> None:
        self.kind = param.kind
        self.converter = param.converter
        self.spans = param.spans
        # PERF: the plain `{name}` converter needs neither its regex (a split
        # segment never holds '/') nor its to_python (identity).
        self.identity = type(param.converter) is Converter
        # PERF: `int` checks its digits in to_python already; skip the regex.
        skip_regex = self.identity or getattr(param.converter, "checks_text", False)
        self.fullmatch = None if skip_regex else re.compile(param.converter.regex).fullmatch
        self.child = _Node()

    @property
    def rank(self) -> int:
        """Try typed converters, then `{name}`, then `{name:path}`."""
        return 2 if self.spans else 1 if self.identity else 0

    def convert(self, text: str) -> Any:
        """The converted value, or `NO_MATCH`."""
        if self.fullmatch is not None and self.fullmatch(text) is None:
            return NO_MATCH
        try:
            return self.converter.to_python(text)
        except ValueError:
            return NO_MATCH


class _Node:
    __slots__ = ("edges", "leaf", "literals")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.edges: list[_Edge] = []
        self.leaf: _Leaf | None = None

    def insert(self, segments: Iterable[str | Param]) -> _Leaf:
        node = self
        for segment in segments:
            if isinstance(segment, Param):
                edge = next((e for e in node.edges if e.kind == segment.kind), None)
                if edge is None:
                    edge = _Edge(segment)
                    node.edges.append(edge)
                    node.edges.sort(key=lambda e: e.rank)
                node = edge.child
            else:
                node = node.literals.setdefault(segment, _Node())
        if node.leaf is None:
            node.leaf = _Leaf()
        return node.leaf

    def find(
        self, segs: list[str], i: int, values: list[Any], method: str | None, found: list[_Leaf]
    ) -> Route | None:
        """Depth-first search, literals first; backtracks on a converter miss.

        With a `method`, stop at the first leaf that serves it. Every leaf the
        path reaches is appended to `found`, which the miss path turns into
        the ``Allow`` list.
        """
        if i == len(segs):
            if self.leaf is None:
                return None
            found.append(self.leaf)
            return self.leaf.dispatch.get(method) if method else None
        child = self.literals.get(segs[i])
        if child is not None:
            route = child.find(segs, i + 1, values, method, found)
            if route is not None:
                return route
        for edge in self.edges:
            if edge.spans:
                text, end = "/".join(segs[i:]), len(segs)
            else:
                text, end = segs[i], i + 1
                if not text:
                    continue  # an empty segment never fills a parameter
            value = text if edge.identity else edge.convert(text)
            if value is NO_MATCH:
                continue
            values.append(value)
            route = edge.child.find(segs, end, values, method, found)
            if route is not None:
                return route
            values.pop()
        return None


class RouteTable:
    """Every route of an app, compiled for matching and for `url_for`."""

    def __init__(self) -> None:
        self.static: dict[str, _Leaf] = {}
        self.tree = _Node()
        self.names: dict[str, Route] = {}
        self.routes: list[Route] = []
        self.known_methods: set[str] = set(STANDARD_METHODS)
        self.mounts: dict[str, Mount] = {}

    def mount(self, mount: Mount) -> None:
        if mount.wsgi_prefix in self.mounts:
            raise RouteConflict(f"{mount.prefix} is already mounted")
        self.mounts[mount.wsgi_prefix] = mount

    def add(self, route: Route) -> None:
        named = self.names.get(route.name)
        if named is not None and named.template != route.template:
            raise RouteConflict(
                f"route name {route.name!r} of {route.template} ({route.where}) is already "
                f"used by {named.template} ({named.where}); pass name=... to tell them apart"
            )
        if all(isinstance(s, str) for s in route.segments):
            leaf = self.static.setdefault(route.template, _Leaf())
        else:
            leaf = self.tree.insert(route.segments)
        leaf.add(route)
        self.names.setdefault(route.name, route)
        self.routes.append(route)
        self.known_methods.update(route.methods)

    def url_for(self, name: str, params: dict[str, Any]) -> str:
        route = self.names.get(name)
        if route is None:
            raise KeyError(f"no route named {name!r}")
        return route.build(params)

    def match(self, environ: Environ) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint for this request and its keyword arguments."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        # PERF: asked only of a missing or empty Host: 37 ns a request, not 72 (timeit).
        if not environ.get("HTTP_HOST") and lacks_host(environ):  # gunicorn lets it through
            return missing_host, {}
        if self.mounts:
            mount = self._mount_for(path)
            # A route for exactly the mount's prefix wins over the mount, so
            # GET/POST /files can sit beside static files under /files/.
            if mount is not None and (path != mount.wsgi_prefix or path not in self.static):
                return mounted, {"mount": mount}
        # WSGI gives PATH_INFO as bytes decoded with latin-1 (PEP 3333); routes are text.
        if not path.isascii():
            try:
                path = path.encode("latin-1").decode("utf-8")
            except UnicodeError:
                return bad_path, {}
        path = path or "/"
        leaf = self.static.get(path)
        if leaf is not None:
            route = leaf.dispatch.get(method)
            if route is not None:
                return route.handler, {}
        if path[0] != "/":
            # RFC 9110 §9.3.7: "OPTIONS *" asks about the server, not a resource
            # (gunicorn lets it through; it refuses other methods with "*").
            return (automatic_options, {"allow": ""}) if path == "*" else (not_found, {})
        values: list[Any] = []
        found: list[_Leaf] = []
        segs = path[1:].split("/")
        route = self.tree.find(segs, 0, values, method, found)
        if route is not None:
            return route.handler, dict(zip(route.param_names, values, strict=True))
        # The search above visited every leaf this path reaches: the Allow list.
        if leaf is not None:
            found.append(leaf)
        return self._miss(method, path, found)

    def _miss(self, method: str, path: str, found: list[_Leaf]) -> tuple[Endpoint, dict[str, Any]]:
        if method not in self.known_methods:
            return not_implemented, {}
        allow = _allow(found)
        if allow:
            if method == "OPTIONS":
                return automatic_options, {"allow": allow}
            return method_not_allowed, {"allow": allow}
        other = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        if self._reaches_a_leaf(other):
            return redirect_to_other_slash, {"path": other}
        return not_found, {}

    def _mount_for(self, path: str) -> Mount | None:
        """The mount whose prefix is the longest whole-segment prefix of `path`."""
        while path:
            mount = self.mounts.get(path)
            if mount is not None:
                return mount
            path = path[: path.rfind("/")]
        return None

    def _reaches_a_leaf(self, path: str) -> bool:
        if path in self.static:
            return True
        found: list[_Leaf] = []
        self.tree.find(path[1:].split("/"), 0, [], None, found)
        return bool(found)


def _allow(found: list[_Leaf]) -> str:
    """The ``Allow`` value for a path: every method of every leaf it reaches."""
    if len(found) <= 1:
        return found[0].allow if found else ""
    return ", ".join(sorted({"OPTIONS"}.union(*(leaf.dispatch for leaf in found))))


# -- The miss endpoints. Each takes the request like a handler does. --------


def mounted(req: Request, mount: Mount) -> Mount:
    return mount  # a WSGI app: `to_response` passes it through.


def not_found(req: Request) -> HTTPError:
    return HTTPError(404)


def missing_host(req: Request) -> HTTPError:
    return HTTPError(400, "This request must carry a Host header.")


def bad_path(req: Request) -> HTTPError:
    return HTTPError(400, "The request path is not valid UTF-8.")


def not_implemented(req: Request) -> HTTPError:
    # RFC 9110 §15.6.2: the method is not recognised for any resource.
    return HTTPError(501, "This method is not supported by the server.")


def method_not_allowed(req: Request, allow: str) -> HTTPError:
    # RFC 9110 §15.5.6: a 405 MUST carry Allow with the target's methods.
    return HTTPError(405, headers=[("Allow", allow)])


def automatic_options(req: Request, allow: str) -> Reply:
    # RFC 9110 §9.3.7: OPTIONS describes the resource; 204 has no body (§15.3.5).
    return Reply(204, [("Allow", allow)] if allow else [], b"")


def redirect_to_other_slash(req: Request, path: str) -> Reply | HTTPError:
    location = quote(req.script_name + path, safe=PATH_SAFE)
    # SECURITY: "//evil.example" or "/\\evil.example" in a Location is a
    # network-path reference to another host (an open redirect; WebOb
    # CVE-2024-42353). quote() escapes "\\"; a leading "//" is refused here.
    if location.startswith(("//", "/\\")):
        return HTTPError(404)
    location += url_query(req.environ.get("QUERY_STRING", ""))
    # RFC 9110 §15.4.9: 308 keeps the method and body, unlike 301.
    return Reply(308, [("Location", location)], b"Permanent Redirect", TEXT)
