"""The example apps in-process (WebTest, WSGI lint on): fast, one rule per row.

test_examples.py runs the same apps under real gunicorn.
"""

import pytest

from examples import hello, notes
from microweb.testing import Client

PROBLEM = "application/problem+json"
# The methods each path serves, as a sorted Allow value (GET brings HEAD; OPTIONS is automatic).
LIST_ALLOW = "GET, HEAD, OPTIONS, POST"
NOTE_ALLOW = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"


@pytest.fixture
def client(tmp_path):
    return Client(notes.create_app(tmp_path / "notes.db"))


@pytest.fixture
def note(client):
    """One stored note, as the API returned it."""
    return client.post_json("/notes", {"title": "milk", "body": "2 litres"}, status=201).json


def assert_problem(response, status):
    """RFC 9457 §3: a problem details object, with `status` matching the response."""
    assert response.content_type == PROBLEM
    assert response.json["status"] == status
    assert response.json["title"]


def test_hello():
    response = Client(hello.app).get("/", status=200)
    assert response.content_type == "text/plain"
    assert response.text == "Hello, World!"


# --- create, read, update, delete ----------------------------------------------------


def test_post_answers_201_with_location_of_the_new_note(client):
    """RFC 9110 §15.3.2: 201 Created; Location names the created resource."""
    response = client.post_json("/notes", {"title": "milk", "body": "2 litres"}, status=201)
    assert response.json == {"id": 1, "title": "milk", "body": "2 litres"}
    assert response.location.endswith("/notes/1")
    assert client.get(response.location, status=200).json == response.json


def test_get_one(client, note):
    assert client.get(f"/notes/{note['id']}", status=200).json == note


def test_put_replaces_the_note(client, note):
    url = f"/notes/{note['id']}"
    response = client.put_json(url, {"title": "bread", "body": "rye"}, status=200)
    assert response.json == {"id": note["id"], "title": "bread", "body": "rye"}
    assert client.get(url).json == response.json


def test_patch_changes_only_the_given_fields(client, note):
    url = f"/notes/{note['id']}"
    response = client.patch_json(url, {"body": "1 litre"}, status=200)
    assert response.json == {**note, "body": "1 litre"}
    assert client.patch_json(url, {}, status=200).json == response.json
    assert client.get(url).json == response.json


def test_delete_answers_204_then_the_note_is_gone(client, note):
    url = f"/notes/{note['id']}"
    response = client.delete(url, status=204)
    assert response.body == b""
    assert_problem(client.get(url, status=404), 404)
    assert_problem(client.delete(url, status=404), 404)


def test_a_deleted_id_is_never_reused(client, note):
    client.delete(f"/notes/{note['id']}", status=204)
    again = client.post_json("/notes", {"title": "t", "body": "b"}, status=201).json
    assert again["id"] != note["id"]


# --- listing and pagination ----------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "ids", "limit", "offset"),
    [
        pytest.param("", [1, 2, 3, 4, 5], 20, 0, id="defaults"),
        pytest.param("?limit=2", [1, 2], 2, 0, id="first-page"),
        pytest.param("?limit=2&offset=2", [3, 4], 2, 2, id="second-page"),
        pytest.param("?limit=2&offset=4", [5], 2, 4, id="last-page-short"),
        pytest.param("?offset=5", [], 20, 5, id="past-the-end"),
        pytest.param("?limit=0", [], 0, 0, id="limit-0-counts-only"),
        pytest.param("?limit=100", [1, 2, 3, 4, 5], 100, 0, id="limit-at-maximum"),
    ],
)
def test_list_pagination(client, query, ids, limit, offset):
    for n in range(5):
        client.post_json("/notes", {"title": f"t{n}", "body": f"b{n}"}, status=201)
    page = client.get(f"/notes{query}", status=200).json
    assert [n["id"] for n in page["notes"]] == ids
    assert (page["limit"], page["offset"], page["total"]) == (limit, offset, 5)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=-1", id="negative-limit"),
        pytest.param("offset=-1", id="negative-offset"),
        pytest.param("limit=abc", id="not-a-number"),
        pytest.param("limit=1.5", id="not-an-integer"),
        pytest.param("limit=", id="empty"),
        pytest.param("limit=+5", id="plus-sign"),
        pytest.param("limit=%EF%BC%95", id="non-ascii-digit"),
        pytest.param("limit=101", id="limit-over-100"),
        pytest.param("limit=1&limit=2", id="given-twice"),
        pytest.param("offset=99999999999999999999", id="offset-beyond-sqlite-integers"),
    ],
)
def test_list_rejects_bad_pagination_with_400(client, query):
    """As examples/notes.py documents: a bad query parameter is 400 (RFC 9110 §15.5.1)."""
    assert_problem(client.get(f"/notes?{query}", status=400), 400)


# --- what each mistake gets ----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([], id="not-an-object"),
        pytest.param("milk", id="a-string"),
        pytest.param({}, id="both-missing"),
        pytest.param({"title": "milk"}, id="body-missing"),
        pytest.param({"title": 1, "body": "b"}, id="title-not-a-string"),
        pytest.param({"title": "t", "body": None}, id="body-null"),
        pytest.param({"title": "t", "body": "b", "done": True}, id="unknown-field"),
    ],
)
def test_post_rejects_an_invalid_note_with_422(client, payload):
    """RFC 9110 §15.5.21 422: valid JSON, but not a note; nothing is stored."""
    assert_problem(client.post_json("/notes", payload, status=422), 422)
    assert client.get("/notes").json["total"] == 0


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        pytest.param("put", {"title": "only the title"}, id="put-needs-both-fields"),
        pytest.param("put", {"title": "t", "body": "b", "id": 7}, id="put-unknown-field"),
        pytest.param("patch", {"colour": "red"}, id="patch-unknown-field"),
        pytest.param("patch", {"title": ["a"]}, id="patch-wrong-type"),
        pytest.param("patch", [{"op": "replace"}], id="patch-not-an-object"),
    ],
)
def test_update_rejects_an_invalid_note_with_422(client, note, method, payload):
    url = f"/notes/{note['id']}"
    response = getattr(client, f"{method}_json")(url, payload, status=422)
    assert_problem(response, 422)
    assert client.get(url).json == note  # unchanged


def test_lone_surrogate_is_422_not_500(client):
    """JSON may escape a lone surrogate; it is a str, but not storable text."""
    body = b'{"title": "\\ud800", "body": "b"}'
    response = client.post("/notes", body, content_type="application/json", status=422)
    assert_problem(response, 422)


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        pytest.param("text/plain", b"milk", 415, id="415-text-plain"),
        pytest.param("application/x-www-form-urlencoded", b"title=a", 415, id="415-form"),
        pytest.param("application/json", b'{"title": "milk",', 400, id="400-malformed-json"),
        pytest.param("application/json", b"", 400, id="400-empty-body"),
    ],
)
def test_body_that_is_not_json(client, content_type, body, status):
    """RFC 9110 §15.5.16 415 Unsupported Media Type; malformed JSON is 400 (§15.5.1)."""
    response = client.post("/notes", body, content_type=content_type, status=status)
    assert_problem(response, status)


@pytest.mark.parametrize("method", ["get", "put_json", "patch_json", "delete"])
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/notes/42", id="unknown-id"),
        pytest.param("/notes/99999999999999999999", id="beyond-sqlite-integers"),
    ],
)
def test_unknown_id_is_404(client, note, method, path):
    args = ({"title": "t", "body": "b"},) if method.endswith("_json") else ()
    assert_problem(getattr(client, method)(path, *args, status=404), 404)


def test_non_integer_id_is_404(client):
    """`{id:int}` does not match "abc": no route, so 404, not 400 or 500."""
    assert_problem(client.get("/notes/abc", status=404), 404)


# --- HTTP rules the framework derives from the route table ------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("post", "/notes/1", NOTE_ALLOW, id="post-a-note"),
        pytest.param("delete", "/notes", LIST_ALLOW, id="delete-the-list"),
        pytest.param("put", "/notes", LIST_ALLOW, id="put-the-list"),
    ],
)
def test_wrong_method_is_405_with_allow(client, note, method, path, allow):
    """RFC 9110 §15.5.6: 405 carries Allow, listing the methods the target supports."""
    response = getattr(client, method)(path, status=405)
    assert response.headers["Allow"] == allow
    assert_problem(response, 405)


@pytest.mark.parametrize("path", ["/notes", "/notes/1"])
def test_head_is_get_without_the_body(client, note, path):
    """RFC 9110 §9.3.2: HEAD answers GET's status and headers, Content-Length included."""
    get = client.get(path, status=200)
    head = client.head(path, status=200)
    assert head.body == b""
    assert head.headers == get.headers
    assert head.headers["Content-Length"] == str(len(get.body))


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/notes", LIST_ALLOW),
        ("/notes/1", NOTE_ALLOW),
    ],
)
def test_options_is_204_with_allow(client, note, path, allow):
    """RFC 9110 §9.3.7: OPTIONS describes the target's methods (Allow); no content."""
    response = client.options(path, status=204)
    assert response.headers["Allow"] == allow
    assert response.body == b""
