"""microweb/middleware/etag.py: ETag, 304, 412 and 428 (RFC 9110 §8.8, §13, §15.4.5; RFC 6585 §3).

Each rule is tested alone (hand-written WSGI apps, through WebTest's lint
via `Client` or `wsgiref.validate` via `wsgi_call.call`), around every app
in `middleware_apps.APPS` (plain WSGI, Flask, microweb), and inside a
microweb `App` with ProxyFix, RequestID, SecurityHeaders and CORS.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flask
import pytest
from middleware_apps import APPS
from scaling import assert_linear
from wsgi_call import call

from microweb import App, Request, Response
from microweb.conditional import make_etag
from microweb.middleware import CORS, ProxyFix, RequestID, SecurityHeaders
from microweb.middleware.etag import ETag
from microweb.testing import Client
from microweb.types import Environ, Headers, StartResponse, WSGIApp

BODY = b'{"hello": "world"}'
TAG = make_etag(BODY)
DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
EARLIER = "Sat, 05 Nov 1994 08:49:37 GMT"


def buffered(
    status: str = "200 OK", headers: Headers | None = None, chunks: Iterable[bytes] = (BODY,)
) -> WSGIApp:
    """A plain WSGI app answering with a list body (buffered)."""
    parts = list(chunks)
    fixed = [("Content-Type", "application/json"), *(headers or [])]

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, [*fixed, ("Content-Length", str(sum(map(len, parts))))])
        return list(parts)

    return app


class Closing:
    """A streamed body that records whether it was iterated and closed."""

    def __init__(self) -> None:
        self.iterated = self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        self.iterated = True
        yield BODY

    def close(self) -> None:
        self.closed = True


def streaming(body: Closing, headers: Headers | None = None) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/json"), *(headers or [])])
        return body

    return app


# -- GET/HEAD: the ETag is added (RFC 9110 §8.8.3) -----------------------------------


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        pytest.param(buffered(), TAG, id="8.8.3-list-body-gets-a-strong-tag"),
        pytest.param(buffered(chunks=[b'{"hello": ', b'"world"}']), TAG, id="chunks-in-order"),
        pytest.param(buffered(headers=[("ETag", '"mine"')]), '"mine"', id="app-etag-kept"),
        pytest.param(buffered("201 Created"), None, id="non-200-left-alone"),
        pytest.param(buffered("206 Partial Content"), None, id="15.3.7-206-left-alone"),
        pytest.param(buffered("404 Not Found"), None, id="error-left-alone"),
        pytest.param(
            buffered(headers=[("Content-Encoding", "gzip")]), TAG, id="8.4-encoded-hashed-as-sent"
        ),
        pytest.param(streaming(Closing()), None, id="stream-not-buffered"),
    ],
)  # fmt: skip
def test_which_responses_get_an_etag(app: WSGIApp, expected: str | None) -> None:
    response = call(ETag(app))  # wsgiref.validate: WebTest would try to gunzip the body
    assert response.header("ETag") == expected
    assert response.body == BODY


def test_the_stream_is_passed_on_untouched_and_closed() -> None:
    body = Closing()
    response = Client(ETag(streaming(body))).get("/")
    assert response.body == BODY and body.closed and "ETag" not in response.headers


def test_head_has_the_get_etag_and_length_but_no_body() -> None:
    """RFC 9110 §9.3.2: HEAD carries GET's header fields; the app sees a GET."""
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append(environ["REQUEST_METHOD"])
        return buffered()(environ, start_response)

    response = Client(ETag(app)).head("/")
    assert (response.headers["ETag"], response.headers["Content-Length"]) == (TAG, str(len(BODY)))
    assert response.body == b"" and seen == ["GET"]


def test_head_never_iterates_a_stream() -> None:
    body = Closing()
    response = Client(ETag(streaming(body, [("ETag", '"s"')]))).head("/")
    assert response.headers["ETag"] == '"s"' and body.closed and not body.iterated


def test_head_of_a_non_200_is_answered_by_the_app_itself() -> None:
    """An app with a HEAD route but no GET: its own HEAD answer is passed on."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            return buffered("405 Method Not Allowed", [("Allow", "HEAD")])(environ, start_response)
        start_response("200 OK", [("X-Head", "1"), ("Content-Length", "0")])
        return []

    assert Client(ETag(app)).head("/").headers["X-Head"] == "1"


def test_a_lazily_started_generator_is_passed_through() -> None:
    """PEP 3333: an app may call start_response on the first step of its iterable."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["REQUEST_METHOD"] != "HEAD":
            yield b"late"

    assert Client(ETag(app)).get("/").body == b"late"
    assert call(ETag(app), "HEAD").body == b""


def test_write_callable_output_is_kept() -> None:
    """PEP 3333's legacy write(): what the app wrote comes first, and is not hashed."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])(b"written-")
        return [b"returned"]

    response = Client(ETag(app)).get("/")
    assert response.body == b"written-returned" and "ETag" not in response.headers


# -- GET/HEAD: 304 Not Modified (RFC 9110 §13.1.2, §13.1.3, §15.4.5) -----------------

CACHE_HEADERS = [
    ("Cache-Control", "max-age=60"),
    ("Vary", "Accept"),
    ("Content-Location", "/doc.json"),
    ("Date", DATE),
    ("Expires", DATE),
    ("Last-Modified", DATE),
    ("Content-Language", "en"),
    ("Set-Cookie", "seen=1"),
]


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        pytest.param("GET", {"If-None-Match": TAG}, 304, id="13.1.2-same-tag"),
        pytest.param("HEAD", {"If-None-Match": TAG}, 304, id="13.1.2-head"),
        pytest.param("GET", {"If-None-Match": f"W/{TAG}"}, 304, id="13.1.2-weak-comparison"),
        pytest.param("GET", {"If-None-Match": f'"a", "b", {TAG}'}, 304, id="13.1.2-list"),
        pytest.param("GET", {"If-None-Match": "*"}, 304, id="13.1.2-star"),
        pytest.param("GET", {"If-None-Match": '"other"'}, 200, id="13.1.2-changed"),
        pytest.param("GET", {"If-None-Match": TAG[1:-1]}, 200, id="malformed-unquoted-no-match"),
        pytest.param("GET", {"If-None-Match": f"{TAG}, *"}, 200, id="malformed-star-in-list"),
        pytest.param("GET", {"If-Modified-Since": DATE}, 304, id="13.1.3-not-modified"),
        pytest.param("GET", {"If-Modified-Since": EARLIER}, 200, id="13.1.3-modified"),
        pytest.param("GET", {"If-Modified-Since": "soon"}, 200, id="13.1.3-invalid-date-ignored"),
        pytest.param(
            "GET", {"If-None-Match": '"other"', "If-Modified-Since": DATE}, 200,
            id="13.1.3-ignored-with-if-none-match",
        ),
        pytest.param("GET", {"If-Match": '"other"'}, 412, id="13.1.1-if-match-on-get"),
        pytest.param("GET", {"If-Match": TAG}, 200, id="13.1.1-if-match-holds"),
        pytest.param("GET", {"If-Unmodified-Since": EARLIER}, 412, id="13.1.4-on-get"),
    ],
)  # fmt: skip
def test_conditional_get(method: str, headers: dict[str, str], status: int) -> None:
    response = Client(ETag(buffered(headers=CACHE_HEADERS))).request(
        "/", method=method, headers=headers, status=status
    )
    if status == 304:
        assert response.body == b""
        kept = {name for name, _ in response.headerlist}
        assert {"ETag", "Cache-Control", "Vary", "Content-Location", "Date", "Expires"} <= kept
        assert {"Content-Type", "Content-Length", "Content-Language"}.isdisjoint(kept)
        assert "Last-Modified" not in kept  # §15.4.5: only useful without an ETag
        assert "Set-Cookie" in kept  # not representation metadata: kept
        assert response.headers["ETag"] == TAG


def test_304_keeps_last_modified_when_there_is_no_etag() -> None:
    """RFC 9110 §15.4.5: Last-Modified guides the cache update when there is no ETag."""
    body = Closing()
    app = ETag(streaming(body, [("Last-Modified", DATE)]))
    response = Client(app).get("/", headers={"If-Modified-Since": DATE}, status=304)
    assert response.headers["Last-Modified"] == DATE and "ETag" not in response.headers
    assert body.closed and not body.iterated


def test_a_stream_with_the_apps_etag_gets_its_304_without_being_iterated() -> None:
    body = Closing()
    Client(ETag(streaming(body, [("ETag", '"v7"')]))).get(
        "/", headers={"If-None-Match": '"v7"'}, status=304
    )
    assert body.closed and not body.iterated


@pytest.mark.parametrize(
    "status",
    [pytest.param("206 Partial Content", id="206"), pytest.param("404 Not Found", id="404")],
)
def test_conditions_are_ignored_on_non_200(status: str) -> None:
    """RFC 9110 §13.2.1: conditions apply to what would otherwise be a 2xx."""
    app = ETag(buffered(status, [("ETag", TAG)]))
    assert call(app, HTTP_IF_NONE_MATCH=TAG).status == status


def test_a_10000_entry_if_none_match_is_linear() -> None:
    """Hostile: 10,000 entity-tags, matching last, and a malformed one: linear work, 10,000
    costing about 10 times 1,000 (scaling.py: CPU time, so a loaded machine cannot fail it)."""
    client = Client(ETag(buffered()))

    def requests(count: int) -> Callable[[], None]:
        tags = ", ".join(f'"t{n}"' for n in range(count))

        def work() -> None:
            client.get("/", headers={"If-None-Match": f"{tags}, {TAG}"}, status=304)
            client.get("/", headers={"If-None-Match": f"{tags}, {TAG}, junk"}, status=200)
            client.put("/", headers={"If-Match": f"{tags}"}, status=412)

        return work

    assert_linear(requests, 1_000)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("HTTP_IF_NONE_MATCH", id="if-none-match"),
        pytest.param("HTTP_IF_MATCH", id="if-match"),
        pytest.param("HTTP_IF_MODIFIED_SINCE", id="if-modified-since"),
        pytest.param("HTTP_IF_UNMODIFIED_SINCE", id="if-unmodified-since"),
    ],
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param('"\xff\x00', id="binary"),
        pytest.param("W/", id="bare-w"),
        pytest.param(",,,,", id="commas"),
        pytest.param('"' * 5000, id="quotes"),
        pytest.param("Sun, 99 Nov 1994 99:99:99 GMT", id="bad-date"),
        pytest.param("9" * 5000, id="digits"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_malformed_validators_never_500(header: str, value: str, method: str) -> None:
    response = call(ETag(buffered(headers=[("Last-Modified", DATE)])), method, **{header: value})
    assert response.status_code in (200, 412)


# -- Unsafe methods: 412 before the handler runs (RFC 9110 §13.1.1, §13.1.4) ---------


TAG_V1 = make_etag(b"v1")


class Notes:
    """A plain WSGI app with one document: GET reads it, PUT replaces it, DELETE removes it."""

    def __init__(self, text: bytes | None = b"v1", last_modified: str | None = None) -> None:
        self.text, self.last_modified, self.writes = text, last_modified, 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "GET":
            if self.text is None:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"missing"]
            extra = [("Last-Modified", self.last_modified)] if self.last_modified else []
            start_response("200 OK", [("Content-Type", "text/plain"), *extra])
            return [self.text]
        self.writes += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.text = None if method == "DELETE" else environ["wsgi.input"].read(length)
        start_response("204 No Content", [])
        return []


def test_optimistic_locking_lost_update_is_refused() -> None:
    """GET -> ETag; PUT If-Match -> 204; the same stale ETag again -> 412, handler not run."""
    notes = Notes()
    client = Client(ETag(notes))
    tag = client.get("/").headers["ETag"]
    client.put("/", b"v2", headers={"If-Match": tag}, status=204)
    refused = client.put("/", b"v3", headers={"If-Match": tag}, status=412)
    assert refused.content_type == "application/problem+json"
    assert (notes.text, notes.writes) == (b"v2", 1)
    client.put("/", b"v3", headers={"If-Match": client.get("/").headers["ETag"]}, status=204)


@pytest.mark.parametrize(
    ("notes", "method", "headers", "status"),
    [
        pytest.param(Notes(), "PUT", {"If-Match": make_etag(b"v1")}, 204, id="13.1.1-current"),
        pytest.param(Notes(), "PUT", {"If-Match": f'"x", {make_etag(b"v1")}'}, 204, id="list"),
        pytest.param(Notes(), "PUT", {"If-Match": f"W/{TAG_V1}"}, 412, id="13.1.1-strong-only"),
        pytest.param(Notes(), "DELETE", {"If-Match": '"old"'}, 412, id="13.1.1-stale-delete"),
        pytest.param(Notes(), "PATCH", {"If-Match": "*"}, 204, id="13.1.1-star-exists"),
        pytest.param(Notes(None), "PUT", {"If-Match": "*"}, 412, id="13.1.1-star-missing"),
        pytest.param(Notes(None), "PUT", {"If-None-Match": "*"}, 204, id="13.1.2-create-only"),
        pytest.param(Notes(), "PUT", {"If-None-Match": "*"}, 412, id="13.1.2-create-exists"),
        pytest.param(Notes(), "PUT", {"If-Match": "junk"}, 412, id="malformed-if-match-refused"),
        pytest.param(Notes(), "POST", {}, 204, id="unconditional"),
        pytest.param(
            Notes(last_modified=DATE), "PUT", {"If-Unmodified-Since": EARLIER}, 412,
            id="13.1.4-modified-since",
        ),
        pytest.param(
            Notes(last_modified=DATE), "PUT", {"If-Unmodified-Since": DATE}, 204,
            id="13.1.4-unmodified",
        ),
        pytest.param(
            Notes(), "PUT", {"If-Unmodified-Since": EARLIER}, 204, id="13.1.4-no-date-ignored"
        ),
        pytest.param(
            Notes(last_modified=DATE), "PUT", {"If-Modified-Since": EARLIER}, 204,
            id="13.1.3-ignored-on-put",
        ),
    ],
)  # fmt: skip
def test_unsafe_preconditions(
    notes: Notes, method: str, headers: dict[str, str], status: int
) -> None:
    Client(ETag(notes)).request("/", method=method, headers=headers, body=b"new", status=status)
    assert notes.writes == (1 if status == 204 else 0)


def test_the_probe_is_a_bodiless_unconditional_get() -> None:
    probes: list[dict[str, Any]] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            probes.append(dict(environ))
        return Notes()(environ, start_response)

    call(ETag(app), "PUT", body=b"payload", HTTP_IF_MATCH="*", HTTP_RANGE="bytes=0-1")
    (probe,) = probes
    assert probe["wsgi.input"].read() == b""
    assert not {"CONTENT_LENGTH", "HTTP_IF_MATCH", "HTTP_RANGE"} & probe.keys()


@pytest.mark.parametrize(
    ("require", "method", "headers", "status"),
    [
        pytest.param(True, "PUT", {}, 428, id="rfc6585-3-put"),
        pytest.param(True, "DELETE", {}, 428, id="rfc6585-3-delete"),
        pytest.param(True, "PATCH", {"If-Match": make_etag(b"v1")}, 204, id="with-if-match"),
        pytest.param(True, "POST", {}, 204, id="post-not-required-by-default"),
        pytest.param(["POST"], "POST", {}, 428, id="methods-listed"),
        pytest.param(True, "GET", {}, 200, id="safe-methods-never"),
        pytest.param(False, "PUT", {}, 204, id="off"),
    ],
)
def test_require_if_match(
    require: bool | list[str], method: str, headers: dict[str, str], status: int
) -> None:
    notes = Notes()
    response = Client(ETag(notes, require_if_match=require)).request(
        "/", method=method, headers=headers, status=status
    )
    if status == 428:
        assert "If-Match" in response.json["detail"] and notes.writes == 0


@pytest.mark.parametrize(
    "option", [pytest.param("PUT", id="a-string"), pytest.param(["GET"], id="a-safe-method")]
)
def test_bad_require_if_match_fails_at_startup(option: Any) -> None:
    with pytest.raises(ValueError, match="require_if_match"):
        ETag(Notes(), require_if_match=option)


# -- Around every app (plain WSGI, Flask, microweb) ---------------------------------


@pytest.mark.parametrize(("name", "factory"), APPS)
def test_around_each_app(name: str, factory: Callable[[], WSGIApp]) -> None:
    client = Client(ETag(factory()))
    first = client.get("/doc")
    if name == "flask":  # a ClosingIterator, not a list: never consumed to hash it
        assert "ETag" not in first.headers
        return
    tag = first.headers["ETag"]
    assert tag == make_etag(first.body)
    client.get("/doc", headers={"If-None-Match": tag}, status=304)
    assert client.head("/doc").headers["ETag"] == tag
    client.get("/error", status=500, expect_errors=True)
    client.put("/doc", headers={"If-Match": '"stale"'}, status=412)
    client.put("/doc", headers={"If-Match": "*"}, status=200)


def flask_notes() -> tuple[WSGIApp, dict[str, Any]]:
    """A Flask app that sets its own ETag (Werkzeug's add_etag)."""
    app = flask.Flask("etag_test")
    state: dict[str, Any] = {"text": "v1", "writes": 0}

    @app.route("/note", methods=["GET", "PUT"])
    def note() -> Any:
        if flask.request.method == "PUT":
            state["writes"] += 1
            state["text"] = flask.request.get_data(as_text=True)
            return "saved"
        response = flask.make_response(state["text"])
        response.add_etag()
        return response

    return app.wsgi_app, state


def test_around_flask_the_apps_own_etag_is_used() -> None:
    """Flask's body is not buffered for us, but its ETag still gives 304 and 412."""
    app, state = flask_notes()
    client = Client(ETag(app))
    tag = client.get("/note").headers["ETag"]
    client.get("/note", headers={"If-None-Match": tag}, status=304)
    client.put("/note", "v2", headers={"If-Match": tag}, status=200)
    client.put("/note", "v3", headers={"If-Match": tag}, status=412)
    assert state == {"text": "v2", "writes": 1}


# -- Inside a microweb App, with the other middleware --------------------------------


def stacked_app(**etag_options: Any) -> tuple[App, dict[str, int]]:
    app = App()
    calls = {"put": 0}
    notes = {"text": "v1"}

    @app.route("/note", methods=["GET", "PUT"])
    def note(req: Request) -> Any:
        if req.method == "PUT":
            calls["put"] += 1
            notes["text"] = req.text
            return None
        return {"text": notes["text"]}

    @app.get("/stream")
    def stream(req: Request) -> Any:
        return iter([b"a", b"b"])

    @app.get("/cached")
    def cached(req: Request) -> Any:
        return Response(b"x", content_type="text/plain", cache_control="max-age=60")

    app.use(ETag, **etag_options)
    app.use(SecurityHeaders)
    app.use(CORS, allow_origins=["https://app.example"])
    app.use(RequestID)
    app.use(ProxyFix)
    return app, calls


def test_etag_in_the_stack_is_innermost() -> None:
    app, _ = stacked_app()
    assert [layer for layer, _ in app.middleware][-1] is ETag


def test_in_the_stack_the_304_carries_the_outer_headers() -> None:
    app, _ = stacked_app()
    client = Client(app)
    tag = client.get("/note").headers["ETag"]
    response = client.get(
        "/note", headers={"If-None-Match": tag, "Origin": "https://app.example"}, status=304
    )
    assert response.headers["ETag"] == tag
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert {"X-Request-ID", "X-Content-Type-Options"} <= set(response.headers)
    cached = client.get("/cached")
    again = client.get("/cached", headers={"If-None-Match": cached.headers["ETag"]}, status=304)
    assert again.headers["Cache-Control"] == "max-age=60"
    assert "ETag" not in client.get("/stream").headers


def test_in_the_stack_optimistic_locking() -> None:
    """RFC 9110 §13.1.1 and RFC 6585 §3 through the whole microweb stack."""
    app, calls = stacked_app(require_if_match=True)
    client = Client(app)
    tag = client.get("/note").headers["ETag"]
    client.put("/note", "v2", headers={"If-Match": tag}, status=204)
    refused = client.put("/note", "v3", headers={"If-Match": tag}, status=412)
    assert "X-Request-ID" in refused.headers
    client.put("/note", "v3", status=428)
    assert calls["put"] == 1
    assert client.get("/note").json == {"text": "v2"}


# -- With GZip, in either order (RFC 9110 §8.8.3: one strong ETag per representation) --


@pytest.mark.parametrize(
    "order",
    [
        pytest.param("gzip-outside", id="declared-order-GZip(ETag(app))"),
        pytest.param("etag-outside", id="ETag(GZip(app))"),
    ],
)
def test_with_gzip_in_either_order(order: str) -> None:
    gzip = pytest.importorskip("microweb.middleware.gzip")
    inner = buffered(chunks=[BODY * 100])
    app = gzip.GZip(ETag(inner)) if order == "gzip-outside" else ETag(gzip.GZip(inner))
    # wsgiref.validate, not WebTest: WebTest gunzips the body and drops Content-Encoding.
    plain = call(app, HTTP_ACCEPT_ENCODING="identity")
    zipped = call(app, HTTP_ACCEPT_ENCODING="gzip")
    assert zipped.header("Content-Encoding") == "gzip"
    assert zlib.decompress(zipped.body, 16 + zlib.MAX_WBITS) == plain.body == BODY * 100
    assert plain.header("ETag") != zipped.header("ETag")
    for response, accept in ((plain, "identity"), (zipped, "gzip")):
        tag = response.header("ETag")
        again = call(app, HTTP_ACCEPT_ENCODING=accept, HTTP_IF_NONE_MATCH=tag)
        assert (again.status_code, again.header("ETag"), again.body) == (304, tag, b"")
