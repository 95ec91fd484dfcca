"""The example apps end to end: real gunicorn (2 sync workers) on 127.0.0.1, stdlib clients.

Each request is a fresh connection (gunicorn's sync worker closes after each
response), so successive requests may be answered by either worker; the
notes live in one SQLite file that both share. test_examples_inprocess.py
covers the same apps row by row, in-process and faster.
"""

import json
from urllib.parse import urlsplit

import pytest
from servers import fetch, open_raw, read_to_eof, serving

pytestmark = pytest.mark.e2e

JSON = "application/json"
PROBLEM = "application/problem+json"
LIST_ALLOW = "GET, HEAD, OPTIONS, POST"
NOTE_ALLOW = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
MILK = {"title": "milk", "body": "2 litres"}


def start_notes(start, db_path):
    return start("examples.notes:app", env={"NOTES_DB": str(db_path)})


@pytest.fixture(scope="module")
def notes_url(request, tmp_path_factory):
    """One notes server for the table tests below, with note 1 stored."""
    db_path = tmp_path_factory.mktemp("notes") / "notes.db"
    with serving(request.node, tmp_path_factory.mktemp("gunicorn")) as start:
        url = start_notes(start, db_path)
        assert fetch(url, "POST", "/notes", json_body=MILK).status == 201
        yield url


def test_hello(gunicorn_server):
    url = gunicorn_server("examples.hello:app")
    reply = fetch(url, "GET", "/")
    assert (reply.status, reply.body) == (200, b"Hello, World!")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.headers["Content-Length"] == "13"


def test_notes_lifecycle(gunicorn_server, tmp_path):
    url = start_notes(gunicorn_server, tmp_path / "notes.db")

    # RFC 9110 §15.3.2: 201 Created, Location naming the new note.
    created = fetch(url, "POST", "/notes", json_body=MILK)
    assert created.status == 201
    assert created.json() == {"id": 1, **MILK}
    location = urlsplit(created.headers["Location"]).path
    assert location == "/notes/1"
    for n in range(2, 6):
        assert fetch(url, "POST", "/notes", json_body={"title": f"t{n}", "body": ""}).status == 201

    got = fetch(url, "GET", location)
    assert (got.status, got.json()) == (200, created.json())
    assert got.headers["Content-Type"] == JSON

    page = fetch(url, "GET", "/notes?limit=2&offset=3").json()
    assert [n["id"] for n in page["notes"]] == [4, 5]
    assert (page["limit"], page["offset"], page["total"]) == (2, 3, 5)

    replaced = fetch(url, "PUT", location, json_body={"title": "bread", "body": "rye"})
    assert (replaced.status, replaced.json()) == (200, {"id": 1, "title": "bread", "body": "rye"})
    patched = fetch(url, "PATCH", location, json_body={"body": "spelt"})
    assert (patched.status, patched.json()) == (200, {"id": 1, "title": "bread", "body": "spelt"})
    assert fetch(url, "GET", location).json() == patched.json()

    deleted = fetch(url, "DELETE", location)
    assert (deleted.status, deleted.body) == (204, b"")
    assert fetch(url, "GET", location).status == 404
    assert fetch(url, "GET", "/notes").json()["total"] == 4


def test_a_new_note_is_seen_by_both_workers(gunicorn_server, tmp_path):
    """Workers are separate processes: the note must come from the shared SQLite file.

    To be sure that both workers answer, one is kept busy: a sync worker
    serves one connection at a time, and a request whose head is not finished
    keeps it reading. The kernel hands out queued connections in order, so
    the held one goes to one worker and the next one, necessarily, to the
    other. The access log (`%(p)s` is the worker's pid) confirms it.
    """
    access_log = tmp_path / "access.log"
    url = gunicorn_server(
        "examples.notes:app",
        env={"NOTES_DB": str(tmp_path / "notes.db")},
        args=("--access-logfile", str(access_log), "--access-logformat", "%(p)s %(r)s"),
    )
    created = fetch(url, "POST", "/notes", json_body=MILK)
    assert created.status == 201

    request = b"GET /notes/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with open_raw(url) as held, open_raw(url) as other:
        held.sendall(request[:-2])  # all but the blank line that ends the head
        other.sendall(request)
        answers = [read_to_eof(other)]
        held.sendall(request[-2:])
        answers.append(read_to_eof(held))

    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert json.loads(body) == created.json()
    # NOTE: a worker writes its access-log line before it closes the connection,
    # so both lines are there once both answers have been read to the end.
    pids = {line.split()[0] for line in access_log.read_text().splitlines() if "/notes/1 " in line}
    assert len(pids) == 2, access_log.read_text()

    # And whichever worker answers from now on.
    for _ in range(4):
        assert fetch(url, "GET", "/notes").json()["total"] == 1


# --- one rule per row, against the shared server -----------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("POST", "/notes/1", NOTE_ALLOW, id="post-a-note"),
        pytest.param("DELETE", "/notes", LIST_ALLOW, id="delete-the-list"),
    ],
)
def test_wrong_method_is_405_with_allow(notes_url, method, path, allow):
    """RFC 9110 §15.5.6: 405 carries Allow; the error is RFC 9457 problem+json."""
    reply = fetch(notes_url, method, path)
    assert reply.status == 405
    assert reply.headers["Allow"] == allow
    assert reply.headers["Content-Type"] == PROBLEM
    assert reply.json()["status"] == 405


@pytest.mark.parametrize(("path", "allow"), [("/notes", LIST_ALLOW), ("/notes/1", NOTE_ALLOW)])
def test_options_is_204_with_allow(notes_url, path, allow):
    """RFC 9110 §9.3.7: OPTIONS lists the target's methods in Allow."""
    reply = fetch(notes_url, "OPTIONS", path)
    assert (reply.status, reply.body) == (204, b"")
    assert reply.headers["Allow"] == allow


@pytest.mark.parametrize("path", ["/notes", "/notes/1"])
def test_head_has_get_headers_and_no_body_on_the_wire(notes_url, path):
    """RFC 9110 §9.3.2: same status and headers as GET, Content-Length included, no body.

    Read from a raw socket to the end of the connection: http.client would
    not read a HEAD body even if the server sent one.
    """
    get = fetch(notes_url, "GET", path)
    with open_raw(notes_url) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        raw = read_to_eof(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    head_headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in header_lines)}
    get_headers = {k.lower(): v for k, v in get.headers.items()}

    assert status_line.startswith("HTTP/1.1 200 ")
    assert body == b""
    assert head_headers["content-length"] == str(len(get.body))
    head_headers.pop("date"), get_headers.pop("date")
    assert head_headers == get_headers


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    [
        pytest.param("POST", "/notes", "text/plain", b"milk", 415, id="415-not-json"),
        pytest.param("POST", "/notes", JSON, b'{"title": ', 400, id="400-malformed"),
        pytest.param("POST", "/notes", JSON, b'{"title": "t"}', 422, id="422-missing-field"),
        pytest.param("PUT", "/notes/1", JSON, b'{"body": "b"}', 422, id="422-put-partial"),
        pytest.param("PATCH", "/notes/1", JSON, b'{"x": "y"}', 422, id="422-unknown-field"),
        pytest.param("GET", "/notes?limit=101", None, None, 400, id="400-limit"),
        pytest.param("GET", "/notes/404", None, None, 404, id="404-unknown-id"),
        pytest.param("GET", "/notes/abc", None, None, 404, id="404-not-an-int"),
    ],
)
def test_mistakes_get_a_problem_details_4xx(notes_url, method, path, content_type, body, status):
    """RFC 9457: each error is application/problem+json with the response's status.

    415 is RFC 9110 §15.5.16, 422 §15.5.21; nothing stored changes.
    """
    headers = {"Content-Type": content_type} if content_type else {}
    reply = fetch(notes_url, method, path, body=body, headers=headers)
    assert reply.status == status
    assert reply.headers["Content-Type"] == PROBLEM
    assert reply.json()["status"] == status
    assert fetch(notes_url, "GET", "/notes/1").json() == {"id": 1, **MILK}
