"""A notes JSON API kept in SQLite: a complete small microweb app.

Run it from the repository root (the database file is created at startup):

    NOTES_DB=/tmp/notes.db microweb run examples.notes:app

then try it:

    curl -i -X POST localhost:8000/notes -H 'Content-Type: application/json' \\
         -d '{"title": "milk", "body": "2 litres"}'
    curl -i localhost:8000/notes?limit=10

The API
-------
    GET    /notes?limit=20&offset=0   list: {"notes": [...], "limit", "offset", "total"}
    POST   /notes                     create from {"title": str, "body": str}
                                      -> 201 Created, Location: /notes/<id>
    GET    /notes/<id>                one note: {"id", "title", "body"}
    PUT    /notes/<id>                full replace: both fields required
    PATCH  /notes/<id>                partial update: any of the two fields
    DELETE /notes/<id>                204 No Content

What each mistake gets (errors are RFC 9457 problem details, which microweb
renders from `HTTPError`):

- an unknown id: 404 Not Found;
- a body that is not declared JSON: 415, and JSON that does not parse: 400
  (both raised by `req.json` inside microweb);
- JSON that parses but is not a valid note (not an object, a field missing
  or not a string, an unknown field): 422 Unprocessable Content
  (RFC 9110 §15.5.21: the content is understood but cannot be processed);
- a bad `limit` or `offset` (not a non-negative integer, `limit` over 100,
  given twice): 400 Bad Request. The query is part of the request target, not
  of the content, so 422 does not fit; RFC 9110 §15.5.1's "malformed request
  syntax" does.

What microweb does without any code here: HEAD on every GET route, OPTIONS
with `Allow`, 405 with `Allow` for a method a path does not serve (POST
/notes/1), 404 for /notes/abc (the `{id:int}` converter does not match).

Storage
-------
Notes live in one SQLite file, `NOTES_DB` (default `notes.db` in the working
directory), so every gunicorn worker process sees the same notes. The table
is created, and the file switched to WAL mode (where readers never block the
writer and the writer never blocks readers), when the app is built: at
startup, never on a first request, where two workers' first requests would
race to do it. `setup_database` makes the workers, which all build the app
at the same moment, take turns. Each request then opens its own connection:
a SQLite connection must not cross a `fork()`, and opening one is cheap (a
file open). The data layer (`NoteStore`) knows nothing about HTTP and the
handlers know no SQL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from microweb import App, HTTPError, Request, Response
from microweb.stores.sqlite import setup_database

FIELDS = ("title", "body")
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# NOTE: SQLite integers are signed 64-bit. A larger id cannot name a note and
# would make the sqlite3 module raise OverflowError (a 500), so it is a 404.
MAX_SQLITE_INT = 2**63 - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reuses the id of a deleted note
    title TEXT NOT NULL,
    body  TEXT NOT NULL
)
"""


class NoteStore:
    """The notes table: plain Python values in, plain dicts out."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # Startup work happens at startup: WAL mode and the table, before any request.
        setup_database(self.path, SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one unit of work: commit on success, roll back on error."""
        # timeout: how long to wait for another process's write lock (seconds).
        conn = sqlite3.connect(self.path, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            with conn:  # a transaction
                yield conn
        finally:
            conn.close()

    def page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        with self.connect() as conn:
            # One read transaction, so the page and the total see the same notes.
            conn.execute("BEGIN")
            rows = conn.execute(
                "SELECT id, title, body FROM notes ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            (total,) = conn.execute("SELECT count(*) FROM notes").fetchone()
        return [dict(row) for row in rows], total

    def get(self, note_id: int) -> dict[str, Any] | None:
        if note_id > MAX_SQLITE_INT:
            return None
        with self.connect() as conn:
            return self._select(conn, note_id)

    def _select(self, conn: sqlite3.Connection, note_id: int) -> dict[str, Any] | None:
        row = conn.execute("SELECT id, title, body FROM notes WHERE id = ?", (note_id,)).fetchone()
        return dict(row) if row else None

    def create(self, title: str, body: str) -> dict[str, Any]:
        with self.connect() as conn:
            cursor = conn.execute("INSERT INTO notes (title, body) VALUES (?, ?)", (title, body))
        return {"id": cursor.lastrowid, "title": title, "body": body}

    def update(self, note_id: int, fields: dict[str, str]) -> dict[str, Any] | None:
        """Set the given fields (a subset of FIELDS); None if there is no such note."""
        if note_id > MAX_SQLITE_INT:
            return None
        with self.connect() as conn:
            if fields:
                # SECURITY: column names come from FIELDS (checked by the caller
                # against that allow-list), never from the request; values are bound.
                assignments = ", ".join(f"{name} = ?" for name in fields)
                conn.execute(
                    f"UPDATE notes SET {assignments} WHERE id = ?", (*fields.values(), note_id)
                )
            return self._select(conn, note_id)

    def delete(self, note_id: int) -> bool:
        if note_id > MAX_SQLITE_INT:
            return False
        with self.connect() as conn:
            cursor = conn.execute("DELETE FROM notes WHERE id = ?", (note_id,))
        return cursor.rowcount > 0


# --- validation: from untrusted input to plain values, or a 4xx ---------------


def note_fields(data: Any, *, required: tuple[str, ...]) -> dict[str, str]:
    """The note fields in a JSON body, checked; 422 for anything else.

    `required` names the fields that must be present: both for POST and PUT
    (a full representation), none for PATCH (a partial one).
    """
    if not isinstance(data, dict):
        raise HTTPError(422, "The body must be a JSON object with 'title' and 'body'.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise HTTPError(422, f"Unknown field(s): {', '.join(unknown)}; a note has title and body.")
    missing = [name for name in required if name not in data]
    if missing:
        raise HTTPError(422, f"Missing field(s): {', '.join(missing)}.")
    for name, value in data.items():
        if not isinstance(value, str):
            raise HTTPError(422, f"'{name}' must be a string.")
        try:
            # NOTE: JSON can carry a lone surrogate ("\ud800"): a Python str,
            # but not text that UTF-8 (and so SQLite) can store.
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPError(422, f"'{name}' is not valid Unicode text.") from None
    return dict(data)


def query_int(req: Request, name: str, default: int, maximum: int) -> int:
    """A non-negative integer query parameter; 400 when it is anything else."""
    values = req.GET.getall(name)
    if not values:
        return default
    if len(values) > 1:
        raise HTTPError(400, f"'{name}' is given more than once.")
    text = values[0]
    # NOTE: int() would also accept " 7", "+7", "7_0" and non-ASCII digits;
    # a query parameter here is ASCII digits only.
    if not (text.isascii() and text.isdigit()):
        raise HTTPError(400, f"'{name}' must be a non-negative integer, not {text!r}.")
    value = int(text)
    if value > maximum:
        raise HTTPError(400, f"'{name}' must be at most {maximum}.")
    return value


# --- the HTTP API ---------------------------------------------------------------


def create_app(db_path: str | os.PathLike[str]) -> App:
    """The notes app storing into the SQLite file `db_path` (tests use a temporary one)."""
    app = App()
    notes = NoteStore(db_path)

    def found(note: dict[str, Any] | None) -> dict[str, Any]:
        if note is None:
            raise HTTPError(404, "No such note.")
        return note

    @app.get("/notes")
    def list_notes(req: Request) -> dict[str, Any]:
        limit = query_int(req, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = query_int(req, "offset", 0, MAX_SQLITE_INT)
        page, total = notes.page(limit, offset)
        return {"notes": page, "limit": limit, "offset": offset, "total": total}

    @app.post("/notes")
    def create_note(req: Request) -> Response:
        fields = note_fields(req.json, required=FIELDS)
        note = notes.create(fields["title"], fields["body"])
        # RFC 9110 §15.3.2: 201 Created, with Location naming the new resource.
        response = Response.json(note, status=201)
        response.location = req.url_for("get_note", id=note["id"])
        return response

    @app.get("/notes/{id:int}")
    def get_note(req: Request, id: int) -> dict[str, Any]:
        return found(notes.get(id))

    @app.put("/notes/{id:int}")
    def replace_note(req: Request, id: int) -> dict[str, Any]:
        # PUT replaces the whole note, so both fields are required.
        return found(notes.update(id, note_fields(req.json, required=FIELDS)))

    @app.patch("/notes/{id:int}")
    def update_note(req: Request, id: int) -> dict[str, Any]:
        # PATCH changes only the fields it names.
        return found(notes.update(id, note_fields(req.json, required=())))

    @app.delete("/notes/{id:int}")
    def delete_note(req: Request, id: int) -> None:
        if not notes.delete(id):
            raise HTTPError(404, "No such note.")
        # None: 204 No Content

    return app


app = create_app(os.environ.get("NOTES_DB", "notes.db"))
