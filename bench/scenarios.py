"""What every framework is asked to do: the route table, the payloads, the requests.

This module is the single source of truth shared by the five ``apps_*.py``
modules and the driver, so that "the same work" is true by construction:

- `route_table(n)` is the list of routes every app registers, in the same
  order, written in microweb's template syntax (``/users/{id:int}``); each
  ``apps_*`` module translates the syntax (Bottle ``<id:int>``, Flask
  ``<int:id>``) but not the shape. The fixed routes come first, then the
  fillers, and the route the ``lookup`` scenario asks for comes **last**, so
  a router that tries routes in registration order pays for all of them.
- ``PAYLOAD`` (about 1 KB of JSON) and ``ECHO_BODY`` (about 2 KB) are the
  same objects for everyone.
- `SCENARIOS` describes each request and what a correct answer is; the
  driver checks every app against it before timing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

TEXT = "text/plain; charset=utf-8"
HELLO = "Hello, World!"

PAYLOAD = {
    "id": 12345,
    "name": "microweb benchmark payload",
    "active": True,
    "score": 98.6,
    "tags": ["wsgi", "webob", "gunicorn", "json", "bench"],
    "owner": {"id": 7, "login": "ada", "email": "ada@example.org", "admin": False},
    "items": [
        {"id": i, "name": f"item {i}", "price": round(i * 1.25, 2), "in_stock": i % 2 == 0}
        for i in range(14)
    ],
    "note": None,
}

ECHO_OBJECT = {
    "items": [
        {"id": i, "sku": f"SKU-{i:05d}", "qty": i % 7, "price": round(i * 1.25, 2), "tags": ["a"]}
        for i in range(33)
    ]
}
ECHO_BODY = json.dumps(ECHO_OBJECT, separators=(",", ":")).encode()


@dataclass(frozen=True)
class RouteSpec:
    """One route: a unique name, a template in microweb syntax, its methods and its role.

    ``role`` says which handler to attach: ``hello``, ``json``, ``echo``,
    ``response`` (the hello text, sent through the framework's response
    object), ``post`` (the lookup target) or ``filler`` (answers 200 ``ok``).
    """

    name: str
    template: str
    methods: tuple[str, ...]
    role: str


FIXED = (
    RouteSpec("hello", "/hello", ("GET",), "hello"),
    RouteSpec("json", "/json", ("GET",), "json"),
    RouteSpec("echo", "/echo", ("POST",), "echo"),
    RouteSpec("response", "/response", ("GET",), "response"),
)
TARGET = RouteSpec("post", "/users/{id:int}/posts/{slug}", ("GET",), "post")

# Plausible filler shapes: typed and untyped parameters, static paths, and
# routes that share the target's first two segments (/users/{id:int}/...).
FILLER_SHAPES = (
    "/items{i}/{{id:int}}",
    "/a{i}/b/{{x}}",
    "/static{i}/page",
    "/users/{{id:int}}/things{i}",
    "/api/v1/res{i}/{{id:int}}/{{x}}",
)


def route_table(n: int) -> list[RouteSpec]:
    """`n` routes in all: the fixed ones, the fillers, then the lookup target."""
    fillers = n - len(FIXED) - 1
    if fillers < 0:
        raise ValueError(f"need at least {len(FIXED) + 1} routes, got {n}")
    table = list(FIXED)
    for i in range(fillers):
        shape = FILLER_SHAPES[i % len(FILLER_SHAPES)]
        table.append(RouteSpec(f"r{i}", shape.format(i=i), ("GET",), "filler"))
    table.append(TARGET)
    return table


def filler_probes(n: int) -> list[str]:
    """One concrete path for the last filler of each shape: each must answer 200 ``ok``."""
    last: dict[int, str] = {}
    for spec in route_table(n):
        if spec.role == "filler":
            last[int(spec.name[1:]) % len(FILLER_SHAPES)] = spec.template
    return [t.replace("{id:int}", "7").replace("{x}", "abc") for t in last.values()]


def split_template(template: str) -> list[tuple[str, str, str]]:
    """``/users/{id:int}`` -> ``[("lit", "users", ""), ("param", "id", "int")]``.

    The apps modules use this to translate a template into their syntax.
    """
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name, _, kind = segment[1:-1].partition(":")
            parts.append(("param", name, kind or "str"))
        else:
            parts.append(("lit", segment, ""))
    return parts


@dataclass(frozen=True)
class Scenario:
    """One request and its correct answer.

    ``check`` is how the answer is compared: ``text`` (exact bytes and
    ``text/plain; charset=utf-8``), ``head`` (no body, headers of the GET),
    ``json`` (the decoded body equals ``expect``, ``application/json``: each
    framework keeps its own serializer settings, so bytes may differ in
    whitespace and key order), or ``status`` (status only).
    """

    name: str
    method: str
    path: str
    status: int
    check: str
    expect: object = None
    body: bytes = b""


SCENARIOS = (
    Scenario("hello", "GET", "/hello", 200, "text", HELLO.encode()),
    Scenario("head", "HEAD", "/hello", 200, "head", HELLO.encode()),
    Scenario("response", "GET", "/response", 200, "text", HELLO.encode()),
    Scenario("response-head", "HEAD", "/response", 200, "head", HELLO.encode()),
    Scenario("lookup", "GET", "/users/42/posts/hello-world", 200, "text", b"42:hello-world"),
    Scenario("json", "GET", "/json", 200, "json", PAYLOAD),
    Scenario("echo", "POST", "/echo", 200, "json", ECHO_OBJECT, ECHO_BODY),
    Scenario("notfound", "GET", "/nope", 404, "status"),
    Scenario("notallowed", "DELETE", "/hello", 405, "status"),
)
LOOKUP = next(s for s in SCENARIOS if s.name == "lookup")
