"""microweb doing the bench's work, written as the README teaches.

Handlers take ``req`` and the path parameters as keyword arguments and
return plain values: a ``str`` becomes ``text/plain; charset=utf-8``, a
``dict`` JSON, and ``req.json`` parses the ``echo`` body. The ``response``
route builds a `microweb.Response`, as a handler that sets a status, a
header or a cookie does. Templates are
microweb's own syntax, used as they are. Each route is named (``r0``,
``r1``...) because route names must be unique and the fillers share one
handler.

Defaults are left alone: ``App()`` with no middleware; HEAD, 404 and 405
(with ``Allow``) come from the route table.
"""

from __future__ import annotations

from typing import Any

from scenarios import HELLO, PAYLOAD, route_table

from microweb import App, Request, Response


def hello(req: Request) -> str:
    return HELLO


def response(req: Request) -> Response:
    return Response(text=HELLO, content_type="text/plain")


def get_json(req: Request) -> dict[str, Any]:
    return PAYLOAD


def echo(req: Request) -> Any:
    return req.json


def post(req: Request, id: int, slug: str) -> str:
    return f"{id}:{slug}"


def filler(req: Request, **params: Any) -> str:
    return "ok"


HANDLERS = {
    "hello": hello,
    "response": response,
    "json": get_json,
    "echo": echo,
    "post": post,
    "filler": filler,
}


def build(n_routes: int) -> App:
    """A microweb app with `n_routes` routes (see `scenarios.route_table`)."""
    app = App()
    for spec in route_table(n_routes):
        app.route(spec.template, methods=list(spec.methods), name=spec.name)(HANDLERS[spec.role])
    return app
