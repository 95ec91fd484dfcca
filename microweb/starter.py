"""``microweb new DIRECTORY``: a small starter app with its test, for a pip user.

The examples in the repository's ``examples/`` are not installed by pip
(they are read and run from a checkout), so an installed microweb brings
its own starting point: `FILES`, the README's first app (``app.py``) and its
test (``test_app.py``, through `microweb.testing.Client`). The README shows
the same two files and tests/test_starter.py keeps them equal. Nothing is
ever overwritten: a file that exists already stops the command first.
"""

from __future__ import annotations

from pathlib import Path

APP = """\
from microweb import App, HTTPError, Response

app = App()


@app.get("/notes/{id:int}", name="note")
def get_note(req, id):
    if id != 1:
        raise HTTPError(404, "no such note")
    return {"id": 1, "title": "milk"}  # dict -> application/json


@app.post("/notes")
def create_note(req):
    note = req.json  # 415 / 400 handled for you
    response = Response.json(note, status=201)
    response.location = app.url_for("note", id=1)
    return response
"""

TEST_APP = """\
from app import app
from microweb.testing import Client


def test_a_new_note_answers_201_with_its_location():
    response = Client(app).post_json("/notes", {"title": "milk"}, status=201)
    assert response.location.endswith("/notes/1")
"""

FILES = {"app.py": APP, "test_app.py": TEST_APP}

NEXT_STEPS = "then{where}: `microweb run app:app` serves it, `pytest -q` runs its test"


def create(directory: Path) -> str:
    """Write `FILES` into `directory` (created if missing); what to do next, as text.

    Raises `FileExistsError` naming the first file that exists already, before
    writing anything.
    """
    targets = {directory / name: text for name, text in FILES.items()}
    for path in targets:
        if path.exists():
            raise FileExistsError(f"{path} exists already; nothing was written")
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        path.write_text(text, encoding="utf-8")
    where = "" if directory == Path(".") else f", in {directory}"
    return "\n".join([f"wrote {' and '.join(map(str, targets))}", NEXT_STEPS.format(where=where)])
