"""Flask doing the bench's work, written as a Flask user would.

View functions get path parameters as keyword arguments; text goes out as a
``flask.Response`` with an explicit ``text/plain; charset=utf-8`` (a plain
``str`` would be HTML); a returned ``dict`` goes through Flask's JSON
provider (its defaults kept: compact, keys sorted), and
``request.get_json()`` parses the ``echo`` body. Templates are translated to
Werkzeug's syntax (``<int:id>``, ``<slug>``); each route gets its own
endpoint name.

Defaults are left alone: not in debug mode, Flask answers HEAD (and
OPTIONS) for GET routes itself, and Werkzeug renders its HTML 404/405 pages
(405 carries ``Allow``).
"""

from __future__ import annotations

from typing import Any

import flask
from scenarios import HELLO, PAYLOAD, TEXT, route_table, split_template


def hello() -> flask.Response:
    return flask.Response(HELLO, content_type=TEXT)


def get_json() -> dict[str, Any]:
    return PAYLOAD


def echo() -> Any:
    return flask.request.get_json()


def post(id: int, slug: str) -> flask.Response:
    return flask.Response(f"{id}:{slug}", content_type=TEXT)


def filler(**params: Any) -> flask.Response:
    return flask.Response("ok", content_type=TEXT)


# NOTE: hello already returns a flask.Response, so it serves the ``response`` route too.
VIEWS = {
    "hello": hello,
    "response": hello,
    "json": get_json,
    "echo": echo,
    "post": post,
    "filler": filler,
}


def to_werkzeug(template: str) -> str:
    """``/users/{id:int}/posts/{slug}`` -> ``/users/<int:id>/posts/<slug>``."""
    parts = []
    for kind, value, converter in split_template(template):
        if kind == "lit":
            parts.append(value)
        else:
            parts.append(f"<int:{value}>" if converter == "int" else f"<{value}>")
    return "/" + "/".join(parts)


def build(n_routes: int) -> flask.Flask:
    """A Flask app with `n_routes` routes (see `scenarios.route_table`)."""
    app = flask.Flask(__name__)
    for spec in route_table(n_routes):
        app.add_url_rule(
            to_werkzeug(spec.template), spec.name, VIEWS[spec.role], methods=list(spec.methods)
        )
    return app
