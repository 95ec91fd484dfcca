"""GZip with ETag, in either order (RFC 9110 §8.8.3, §13.1.1-2, §15.4.5).

The invariants, for each stack in `STACKS`:

- the gzip and identity representations never carry the same strong ETag
  (§8.8.3: a strong validator changes with the representation's bytes);
- a client revalidating with the ETag it received gets 304, with that ETag
  and ``Vary: Accept-Encoding`` (§13.1.2, §15.4.5), and a 200 once the
  resource changed;
- HEAD carries the ETag GET would (§9.3.2);
- ``If-Match`` with the ETag a client received lets its PUT through, a
  stale one is refused with 412 (§13.1.1).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from wsgi_call import Raw, call

from microweb import App, Request, Response
from microweb.middleware import gzip as gzip_module
from microweb.middleware.etag import ETag
from microweb.middleware.gzip import GZip, GzipEncoder
from microweb.types import Environ, StartResponse, WSGIApp


class Resource:
    """A JSON document (large enough to compress) that PUT replaces."""

    def __init__(self) -> None:
        self.version = 1

    def body(self) -> bytes:
        return json.dumps({"version": self.version, "items": list(range(300))}).encode()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            self.version += 1
            start_response("204 No Content", [])
            return []
        body = self.body()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def microweb_resource(resource: Resource) -> App:
    app = App()

    @app.route("/", methods=["GET", "PUT"])
    def root(req: Request) -> Any:
        if req.method == "PUT":
            resource.version += 1
            return None  # 204
        return Response(body=resource.body(), content_type="application/json")

    app.use(ETag)
    app.use(GZip)
    return app


STACKS: list[Any] = [
    pytest.param(lambda r: GZip(ETag(r)), id="gzip-outside-etag"),
    pytest.param(lambda r: ETag(GZip(r)), id="etag-outside-gzip"),
    pytest.param(microweb_resource, id="app-use-both"),
]
CLIENTS = [pytest.param("gzip", id="gzip-client"), pytest.param("identity", id="identity-client")]


@pytest.fixture(autouse=True)
def gzip_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gzip_module, "ENCODERS", {"gzip": GzipEncoder})


def send(app: WSGIApp, method: str, accept: str, **headers: str) -> Raw:
    return call(app, method, "/", HTTP_ACCEPT_ENCODING=accept, **headers)


@pytest.mark.parametrize("build", STACKS)
def test_representations_never_share_a_strong_etag_8_8_3(
    build: Callable[[Resource], WSGIApp],
) -> None:
    app = build(Resource())
    gzip, identity = send(app, "GET", "gzip"), send(app, "GET", "identity")
    assert gzip.header("Content-Encoding") == "gzip"
    assert identity.header("Content-Encoding") is None
    assert identity.header("ETag") is not None
    assert gzip.header("ETag") != identity.header("ETag")


@pytest.mark.parametrize("accept", CLIENTS)
@pytest.mark.parametrize("build", STACKS)
def test_revalidating_with_what_was_received_gets_304_13_1_2(
    build: Callable[[Resource], WSGIApp], accept: str
) -> None:
    resource = Resource()
    app = build(resource)
    etag = send(app, "GET", accept).header("ETag")
    # In either order every buffered representation has its own tag.
    assert etag is not None
    again = send(app, "GET", accept, HTTP_IF_NONE_MATCH=etag)
    assert (again.status_code, again.header("ETag"), again.body) == (304, etag, b"")
    assert again.header("Vary") == "Accept-Encoding"
    resource.version += 1
    changed = send(app, "GET", accept, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed.header("ETag") != etag


@pytest.mark.parametrize("accept", CLIENTS)
@pytest.mark.parametrize("build", STACKS)
def test_head_has_the_etag_get_has_9_3_2(build: Callable[[Resource], WSGIApp], accept: str) -> None:
    app = build(Resource())
    get, head = send(app, "GET", accept), send(app, "HEAD", accept)
    assert (head.status_code, head.header("ETag")) == (200, get.header("ETag"))
    assert head.header("Content-Encoding") == get.header("Content-Encoding")


@pytest.mark.parametrize("accept", CLIENTS)
@pytest.mark.parametrize("build", STACKS)
def test_if_match_with_received_etag_13_1_1(
    build: Callable[[Resource], WSGIApp], accept: str
) -> None:
    resource = Resource()
    app = build(resource)
    etag = send(app, "GET", accept).header("ETag")
    assert etag is not None
    assert send(app, "PUT", accept, HTTP_IF_MATCH=etag).status_code == 204
    assert resource.version == 2
    stale = send(app, "PUT", accept, HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and resource.version == 2
