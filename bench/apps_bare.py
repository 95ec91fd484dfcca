"""The baseline: a bare PEP 3333 callable doing the same work by hand.

Every ratio in the report is "framework time / this app's time", so this
app must do *the same work* as the frameworks, only without a framework:

- it routes with a real structure, not ``if path == ...``: static paths in a
  dict, parameter paths in a small segment tree (a dict of literal children
  and a list of ``(name, kind, child)`` parameter edges per node), the
  cheapest honest router we could write, so a framework is not charged for
  routing as such, only for its overhead;
- it converts ``{id:int}``, answers HEAD for GET routes (same headers,
  ``Content-Length`` kept, no body: RFC 9110 §9.3.2), 404 for an unknown
  path and 405 **with** ``Allow`` for a known path and another method;
- it encodes its text and serializes its JSON (compact) on every call, and
  parses the ``echo`` body with `json.loads`, as the frameworks do.

It skips what a server or a framework would add and no scenario needs:
percent-decoding and re-encoding ``PATH_INFO`` to UTF-8 (all paths here are
ASCII), error pages, request objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from scenarios import HELLO, PAYLOAD, TEXT, route_table, split_template

JSON = "application/json"
COMPACT = (",", ":")  # the smallest output, so the baseline is the floor
Reply = tuple[str, str, bytes]  # status line, content type, body


def hello(environ: dict[str, Any]) -> Reply:
    return "200 OK", TEXT, HELLO.encode()


def get_json(environ: dict[str, Any]) -> Reply:
    return "200 OK", JSON, json.dumps(PAYLOAD, separators=COMPACT).encode()


def echo(environ: dict[str, Any]) -> Reply:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = json.loads(environ["wsgi.input"].read(length))
    return "200 OK", JSON, json.dumps(data, separators=COMPACT).encode()


def post(environ: dict[str, Any], id: int, slug: str) -> Reply:
    return "200 OK", TEXT, f"{id}:{slug}".encode()


def filler(environ: dict[str, Any], **params: Any) -> Reply:
    return "200 OK", TEXT, b"ok"


HANDLERS: dict[str, Callable[..., Reply]] = {
    "hello": hello,
    "response": hello,  # NOTE: no framework, no response object: the same work as hello
    "json": get_json,
    "echo": echo,
    "post": post,
    "filler": filler,
}


class Node:
    """A segment-tree node: literal children, parameter edges, and maybe a method map."""

    __slots__ = ("literal", "methods", "params")

    def __init__(self) -> None:
        self.literal: dict[str, Node] = {}
        self.params: list[tuple[str, str, Node]] = []
        self.methods: dict[str, Callable[..., Reply]] | None = None


class BareApp:
    """A WSGI callable with a static dict and a segment tree."""

    def __init__(self) -> None:
        self.static: dict[str, dict[str, Callable[..., Reply]]] = {}
        self.root = Node()

    def add(self, template: str, methods: Iterable[str], handler: Callable[..., Reply]) -> None:
        parts = split_template(template)
        if all(kind == "lit" for kind, _, _ in parts):
            leaf = self.static.setdefault(template, {})
        else:
            node = self.root
            for kind, value, converter in parts:
                if kind == "lit":
                    node = node.literal.setdefault(value, Node())
                    continue
                for name, edge_kind, child in node.params:
                    if (name, edge_kind) == (value, converter):
                        node = child
                        break
                else:
                    child = Node()
                    node.params.append((value, converter, child))
                    node = child
            if node.methods is None:
                node.methods = {}
            leaf = node.methods
        for method in methods:
            leaf[method] = handler

    def match(self, node: Node, segments: list[str], i: int, params: dict[str, Any]) -> Any:
        """The method map for ``segments[i:]`` below `node`; literals tried before parameters."""
        if i == len(segments):
            return node.methods
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None:
            found = self.match(child, segments, i + 1, params)
            if found is not None:
                return found
        for name, kind, child in node.params:
            if not segment or (kind == "int" and not (segment.isascii() and segment.isdigit())):
                continue
            found = self.match(child, segments, i + 1, params)
            if found is not None:
                params[name] = int(segment) if kind == "int" else segment
                return found
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        params: dict[str, Any] = {}
        methods = self.static.get(path)
        if methods is None:
            methods = self.match(self.root, path[1:].split("/"), 0, params)
        if methods is None:
            body = b"Not Found"
            start_response("404 Not Found", [("Content-Type", TEXT), ("Content-Length", "9")])
            return [body]
        handler = methods.get(method)
        if handler is None and method == "HEAD":
            handler = methods.get("GET")
        if handler is None:
            allow = set(methods) | ({"HEAD"} if "GET" in methods else set())
            headers = [("Content-Type", TEXT), ("Content-Length", "18")]
            headers.append(("Allow", ", ".join(sorted(allow))))
            start_response("405 Method Not Allowed", headers)
            return [b"Method Not Allowed"]
        status, content_type, body = handler(environ, **params)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [] if method == "HEAD" else [body]


def build(n_routes: int) -> BareApp:
    """The bare app with `n_routes` routes (see `scenarios.route_table`)."""
    app = BareApp()
    for spec in route_table(n_routes):
        app.add(spec.template, spec.methods, HANDLERS[spec.role])
    return app
