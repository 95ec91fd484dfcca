"""Routing (microweb/routing.py): matching, precedence, 404/405/501/308/OPTIONS/HEAD."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from wsgi_call import call

from microweb import App, Converter, Router
from microweb.routing import RouteConflict
from microweb.testing import Client


def echo(name: str) -> Any:
    def handler(req: Any, **params: Any) -> dict[str, Any]:
        return {"route": name, "params": {k: str(v) for k, v in params.items()}}

    handler.__name__ = name
    return handler


class Slug(Converter):
    regex = "[a-z0-9]+(?:-[a-z0-9]+)*"


class Even(Converter):
    """Rejects odd numbers in to_python: a ValueError means "no match"."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if number % 2:
            raise ValueError("odd")
        return number


@pytest.fixture
def app() -> App:
    app = App()
    app.add_converter("slug", Slug)
    app.add_converter("even", Even)
    app.add_route("/", echo("root"), ["GET"])
    app.add_route("/users/me", echo("me"), ["GET"])
    app.add_route("/users/{id:int}", echo("user"), ["GET", "PUT"])
    app.add_route("/users/{name}", echo("user_by_name"), ["GET"])
    app.add_route("/users/{id:int}/posts/{slug:slug}", echo("post"), ["GET"])
    app.add_route("/tokens/{token:uuid}", echo("token"), ["GET"])
    app.add_route("/files/{rest:path}", echo("file"), ["GET"])
    app.add_route("/numbers/{n:even}", echo("even"), ["GET"])
    app.add_route("/dir/", echo("dir"), ["GET"])
    app.add_route("/items/new", echo("new_item"), ["GET"])
    app.add_route("/items/{id}", echo("item_delete"), ["DELETE"])
    return app


TOKEN = "3f1b1c9e-8a4b-4c1d-9e2f-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    ("path", "route", "params"),
    [
        pytest.param("/", "root", {}, id="root"),
        pytest.param("/users/me", "me", {}, id="literal-beats-parameter"),
        pytest.param("/users/42", "user", {"id": "42"}, id="int"),
        pytest.param("/users/bob", "user_by_name", {"name": "bob"}, id="str-after-int-rejects"),
        pytest.param("/users/0", "user", {"id": "0"}, id="int-zero"),
        pytest.param("/users/0042", "user_by_name", {"name": "0042"}, id="int-no-leading-zeros"),
        pytest.param("/users/7/posts/hello-world", "post", {"id": "7", "slug": "hello-world"},
                     id="two-params"),
        pytest.param(f"/tokens/{TOKEN}", "token", {"token": TOKEN}, id="uuid"),
        pytest.param(f"/tokens/{TOKEN.upper()}", "token", {"token": TOKEN}, id="uuid-upper"),
        pytest.param("/files/a/b/c.txt", "file", {"rest": "a/b/c.txt"}, id="path-spans-segments"),
        pytest.param("/numbers/4", "even", {"n": "4"}, id="custom-converter"),
        pytest.param("/dir/", "dir", {}, id="trailing-slash-route"),
        pytest.param("/users/%C3%A9", "user_by_name", {"name": "é"}, id="server-decodes-utf8"),
    ],
)
def test_match(app: App, path: str, route: str, params: dict[str, str]) -> None:
    response = Client(app).get(path)
    assert response.json == {"route": route, "params": params}


def test_unicode_path_is_decoded_as_utf8(app: App) -> None:
    """PEP 3333: PATH_INFO carries bytes as latin-1; routes see UTF-8 text."""
    result = call(app, "GET", "/users/" + "é".encode().decode("latin-1"))
    assert result.status_code == 200
    assert b'"name":"\xc3\xa9"' in result.body


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/users/%zz", id="invalid-percent-encoding-is-just-text"),
        pytest.param("/users/1/posts/Not_A_Slug", id="regex-rejects"),
        pytest.param("/numbers/3", id="to_python-valueerror"),
        pytest.param("/tokens/not-a-uuid", id="uuid-junk"),
        pytest.param("/tokens/{" + TOKEN + "}", id="uuid-braces-not-canonical"),
        pytest.param("/users/1/posts/", id="empty-segment-fills-no-param"),
        pytest.param("/files/", id="path-needs-one-char"),
        pytest.param("/nowhere", id="unknown"),
    ],
)
def test_converters_fed_junk_answer_404_not_500(app: App, path: str) -> None:
    result = call(app, "GET", path)
    if path == "/users/%zz":
        assert result.status_code == 200  # {name} takes any text, even "%zz"
        return
    assert result.status_code == 404


@pytest.mark.parametrize("digits", ["²", "١٢", "1" * 5000])
def test_int_converter_rejects_non_ascii_digits_and_absurd_lengths(app: App, digits: str) -> None:
    """`int()` accepts "²"-like digits and raises on 5000-digit strings; neither is a 500."""
    result = call(app, "GET", "/users/" + digits.encode().decode("latin-1") + "/posts/x")
    assert result.status_code == 404


def test_non_utf8_path_is_400(app: App) -> None:
    result = call(app, "GET", "/users/\xff\xfe")  # the raw bytes FF FE
    assert result.status_code == 400


def test_rfc9110_15_5_6_405_lists_allow_sorted_with_head_and_options(app: App) -> None:
    response = Client(app).post("/users/42", status=405)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, PUT"
    assert response.content_type == "application/problem+json"


def test_rfc9110_15_5_6_allow_is_the_union_of_every_route_the_path_reaches(app: App) -> None:
    """/items/new is a literal GET route; /items/{id} serves DELETE. Both apply to /items/new."""
    response = Client(app).post("/items/new", status=405)
    assert response.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert Client(app).delete("/items/new").json["route"] == "item_delete"


def test_rfc9110_9_1_unrecognized_method_is_501(app: App) -> None:
    assert call(app, "FROB", "/users/42").status_code == 501
    assert call(app, "FROB", "/nowhere").status_code == 501


def test_registered_extension_method_is_routed() -> None:
    app = App()
    app.add_route("/dav", echo("propfind"), ["PROPFIND"])
    assert call(app, "PROPFIND", "/dav").status_code == 200
    other = call(app, "PROPFIND", "/users")
    assert other.status_code == 404  # known method now, unknown path


def test_rfc9110_9_3_2_head_answers_every_get_route(app: App) -> None:
    client = Client(app)
    get = client.get("/users/42")
    head = client.head("/users/42")
    assert head.status_int == 200
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"] != "0"
    assert head.headers["Content-Type"] == get.headers["Content-Type"]


def test_rfc9110_9_3_2_explicit_head_handler_wins() -> None:
    app = App()
    app.add_route("/r", echo("get"), ["GET"])
    app.add_route("/r", lambda req: "", ["HEAD"], name="head")
    assert Client(app).head("/r").headers["Content-Length"] == "0"
    assert Client(app).get("/r").json["route"] == "get"


def test_rfc9110_9_3_7_automatic_options_is_204_with_allow(app: App) -> None:
    response = Client(app).options("/users/42", status=204)
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, PUT"
    assert "Content-Length" not in response.headers
    assert response.body == b""


def test_rfc9110_9_3_7_explicit_options_handler_wins() -> None:
    app = App()
    app.add_route("/r", echo("get"), ["GET"])
    app.add_route("/r", lambda req: "custom", ["OPTIONS"], name="opts")
    assert Client(app).options("/r").text == "custom"


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        pytest.param("/users/me/", "", "/users/me", id="drop-slash"),
        pytest.param("/dir", "", "/dir/", id="add-slash"),
        pytest.param("/users/me/", "a=1&b=%20", "/users/me?a=1&b=%20", id="query-kept"),
        pytest.param("/users/42/", "", "/users/42", id="dynamic"),
    ],
)
def test_rfc9110_15_4_9_trailing_slash_redirects_308(
    app: App, path: str, query: str, location: str
) -> None:
    result = call(app, "GET", path, QUERY_STRING=query)
    assert result.status_code == 308
    assert result.header("Location") == location


def test_trailing_slash_redirect_keeps_script_name(app: App) -> None:
    result = call(app, "GET", "/dir", SCRIPT_NAME="/mounted")
    assert result.header("Location") == "/mounted/dir/"


@pytest.mark.parametrize(
    ("route", "path"),
    [
        pytest.param("//evil.example", "//evil.example/", id="double-slash"),
        pytest.param("//evil.example/", "//evil.example", id="double-slash-add"),
        pytest.param("/\\evil.example", "/\\evil.example/", id="backslash"),
    ],
)
def test_trailing_slash_never_redirects_off_site(route: str, path: str) -> None:
    """Location "//evil.example" is a network-path reference to another host:
    an open redirect (WebOb CVE-2024-42353). Such a 308 becomes a 404."""
    app = App()
    app.add_route(route, echo("odd"), ["GET"])
    result = call(app, "GET", path)
    location = result.header("Location") or ""
    assert not location.startswith(("//", "/\\")), location
    assert result.status_code in (404, 308)


def test_empty_path_info_is_root(app: App) -> None:
    assert call(app, "GET", "").status_code == 200


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("/a/{x}", "/a/{y}", id="same-shape-other-names"),
        pytest.param("/a", "/a", id="same-static"),
        pytest.param("/a/{x:int}/b", "/a/{y:int}/b", id="int"),
    ],
)
def test_conflicting_routes_raise_naming_both(first: str, second: str) -> None:
    app = App()
    app.add_route(first, echo("one"), ["GET"])
    with pytest.raises(RouteConflict) as info:
        app.add_route(second, echo("two"), ["GET", "POST"])
    message = str(info.value)
    assert first in message and second in message and "test_routing.py" in message


def test_a_conflict_names_the_file_line_of_both_handlers() -> None:
    def first(req: Any, id: int) -> Any:
        return id

    def second(req: Any, id: int) -> Any:
        return id

    app = App()
    app.get("/notes/{id:int}")(first)
    with pytest.raises(RouteConflict) as info:
        app.route("/notes/{id:int}", methods=["GET", "PUT"])(second)
    for handler in (first, second):
        assert f"{__file__}:{handler.__code__.co_firstlineno}" in str(info.value)


def test_same_path_other_methods_is_not_a_conflict() -> None:
    app = App()
    app.add_route("/a/{x}", echo("get"), ["GET"])
    app.add_route("/a/{y}", echo("put"), ["PUT"])
    assert Client(app).put("/a/1").json == {"route": "put", "params": {"y": "1"}}


@pytest.mark.parametrize(
    "template",
    ["no-slash", "/a/b{x}", "/a/{x}/{x}", "/a/{x:nope}", "/a/{p:path}/b", "/a/{1x}"],
)
def test_bad_templates_raise_at_registration(template: str) -> None:
    with pytest.raises(ValueError):
        App().add_route(template, echo("x"), ["GET"])


def test_methods_must_be_a_list() -> None:
    with pytest.raises(TypeError):
        App().route("/a", methods="GET")  # type: ignore[arg-type]


def test_url_for_builds_and_quotes(app: App) -> None:
    assert app.url_for("post", id=7, slug="a-b") == "/users/7/posts/a-b"
    assert app.url_for("user_by_name", name="a b/c") == "/users/a%20b%2Fc"
    assert app.url_for("file", rest="x y/z") == "/files/x%20y/z"
    assert app.url_for("token", token=uuid.UUID(TOKEN)) == f"/tokens/{TOKEN}"
    with pytest.raises(KeyError):
        app.url_for("post", id=7)
    with pytest.raises(KeyError):
        app.url_for("no_such_route")
    with pytest.raises(ValueError):
        app.url_for("user", id="7; DROP")


def test_duplicate_route_name_with_another_template_raises() -> None:
    app = App()
    app.add_route("/a", echo("same"), ["GET"])
    app.add_route("/a", echo("same"), ["POST"])  # same template: fine
    with pytest.raises(RouteConflict):
        app.add_route("/b", echo("same"), ["GET"])


def test_router_prefix_and_names_compose() -> None:
    api = Router(prefix="/api", name="api")
    users = Router(prefix="/users", name="users")

    @users.get("/{id:int}", name="user")
    def user(req: Any, id: int) -> dict[str, int]:
        return {"id": id}

    @api.get("/health")
    def health(req: Any) -> str:
        return "ok"

    api.include(users)
    app = App()
    app.include(api)
    client = Client(app)
    assert client.get("/api/users/5").json == {"id": 5}
    assert client.get("/api/health").text == "ok"
    assert app.url_for("api.users.user", id=5) == "/api/users/5"
    assert app.url_for("api.health") == "/api/health"


def test_router_converters_reach_the_app() -> None:
    router = Router(prefix="/r")
    router.add_converter("slug", Slug)
    router.add_route("/{s:slug}", echo("slugged"), ["GET"])
    app = App()
    app.include(router)
    assert Client(app).get("/r/ok-go").json["params"] == {"s": "ok-go"}
    Client(app).get("/r/NO", status=404)


def test_converter_registries_are_per_app() -> None:
    first, second = App(), App()
    first.add_converter("slug", Slug)
    with pytest.raises(ValueError):
        second.add_route("/{s:slug}", echo("x"), ["GET"])


class Counting(Converter):
    calls = 0

    def to_python(self, value: str) -> str:
        Counting.calls += 1
        return value


def test_matching_does_not_scan_the_routes() -> None:
    """1000 dynamic routes under distinct literals: one lookup runs one converter."""
    app = App()
    app.add_converter("count", Counting)
    for i in range(1000):
        app.add_route(f"/r{i}/{{x:count}}", echo(f"r{i}"), ["GET"])
    Counting.calls = 0
    assert Client(app).get("/r999/abc").json["route"] == "r999"
    assert Counting.calls == 1


def test_mount_shifts_script_name_and_path_info() -> None:
    """PEP 3333 URL reconstruction: SCRIPT_NAME + PATH_INFO is still the request path."""
    seen: dict[str, str] = {}

    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen["script"], seen["path"] = environ["SCRIPT_NAME"], environ["PATH_INFO"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"legacy"]

    app = App()
    app.add_route("/legacyx", echo("sibling"), ["GET"])
    app.mount("/legacy", legacy)
    client = Client(app)
    assert client.get("/legacy/a/b").text == "legacy"
    assert seen == {"script": "/legacy", "path": "/a/b"}
    client.get("/legacy")
    assert seen == {"script": "/legacy", "path": ""}
    assert client.get("/legacyx").json["route"] == "sibling"
    with pytest.raises(ValueError):
        app.mount("/bad/", legacy)


def test_a_route_for_exactly_the_mount_prefix_wins() -> None:
    def files(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"mounted"]

    app = App()
    app.mount("/files", files)
    app.add_route("/files", echo("listing"), ["GET", "POST"])
    client = Client(app)
    assert client.get("/files").json["route"] == "listing"
    assert client.post("/files").json["route"] == "listing"
    assert client.get("/files/a.txt").text == "mounted"
