"""Bottle (``bottle.Bottle()``) doing the bench's work, written as a Bottle user would.

Callbacks read the thread-local ``bottle.request`` and set the content type
on the thread-local ``bottle.response`` (Bottle's default is HTML); the
``response`` route returns a ``bottle.HTTPResponse``, Bottle's response
object; a
returned ``dict`` goes through Bottle's built-in JSON plugin, and
``request.json`` parses the ``echo`` body. Templates are translated to
Bottle's syntax (``<id:int>``, ``<slug>``).

Defaults are left alone: Bottle answers HEAD from GET routes itself, and
renders its own HTML 404/405 pages (405 carries ``Allow``).
"""

from __future__ import annotations

from typing import Any

import bottle
from scenarios import HELLO, PAYLOAD, TEXT, route_table, split_template


def hello() -> str:
    bottle.response.content_type = TEXT
    return HELLO


def response() -> bottle.HTTPResponse:
    return bottle.HTTPResponse(HELLO, content_type=TEXT)


def get_json() -> dict[str, Any]:
    return PAYLOAD


def echo() -> Any:
    return bottle.request.json


def post(id: int, slug: str) -> str:
    bottle.response.content_type = TEXT
    return f"{id}:{slug}"


def filler(**params: Any) -> str:
    bottle.response.content_type = TEXT
    return "ok"


CALLBACKS = {
    "hello": hello,
    "response": response,
    "json": get_json,
    "echo": echo,
    "post": post,
    "filler": filler,
}


def to_bottle(template: str) -> str:
    """``/users/{id:int}/posts/{slug}`` -> ``/users/<id:int>/posts/<slug>``."""
    parts = []
    for kind, value, converter in split_template(template):
        if kind == "lit":
            parts.append(value)
        else:
            parts.append(f"<{value}:int>" if converter == "int" else f"<{value}>")
    return "/" + "/".join(parts)


def build(n_routes: int) -> bottle.Bottle:
    """A Bottle app with `n_routes` routes (see `scenarios.route_table`)."""
    app = bottle.Bottle()
    for spec in route_table(n_routes):
        app.route(to_bottle(spec.template), list(spec.methods), CALLBACKS[spec.role], spec.name)
    return app
