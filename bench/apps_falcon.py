"""Falcon (WSGI ``falcon.App``) doing the bench's work, written as a Falcon user would.

Resources with ``on_get``/``on_post`` responders; text through
``resp.text`` with an explicit ``text/plain; charset=utf-8`` (Falcon's
default media type is JSON); JSON through ``resp.media`` and
``req.get_media()``, so Falcon's own JSON handler does the work. Templates
keep microweb's syntax, which Falcon shares (``{id:int}``, ``{slug}``).

Defaults are left alone: no middleware, Falcon's own 404/405 answers (405
carries ``Allow``), its default error serializer.
"""

from __future__ import annotations

from typing import Any

import falcon
from scenarios import HELLO, PAYLOAD, TEXT, route_table


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = TEXT
        resp.text = HELLO

    # NOTE: Falcon does not answer HEAD for a GET route by itself (it answers
    # 405), so the route registers on_head explicitly, as a Falcon user must.
    # Falcon drops the body of a HEAD and keeps the Content-Length of the text,
    # so reusing on_get gives the same answer as the other frameworks.
    on_head = on_get


class Json:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = PAYLOAD


class Echo:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = req.get_media()


class Post:
    def on_get(self, req: falcon.Request, resp: falcon.Response, id: int, slug: str) -> None:
        resp.content_type = TEXT
        resp.text = f"{id}:{slug}"


class Filler:
    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        resp.content_type = TEXT
        resp.text = "ok"


# NOTE: every Falcon responder fills the framework's response object, so the
# ``response`` route is the hello resource itself.
RESOURCES = {
    "hello": Hello,
    "response": Hello,
    "json": Json,
    "echo": Echo,
    "post": Post,
    "filler": Filler,
}


def build(n_routes: int) -> falcon.App:
    """A Falcon app with `n_routes` routes (see `scenarios.route_table`)."""
    app = falcon.App()
    for spec in route_table(n_routes):
        # Falcon reads the methods from the responders a resource defines.
        app.add_route(spec.template, RESOURCES[spec.role]())
    return app
