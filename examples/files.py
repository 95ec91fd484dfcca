"""A small file service: upload, list, and download with resume.

Run it from the repository root (the directory is created on first start):

    FILES_DIR=/tmp/files microweb run examples.files:app

then try it:

    curl -i -F file=@report.pdf localhost:8000/files
    curl -s localhost:8000/files
    curl -C - -o report.pdf localhost:8000/files/report.pdf   # resumes if cut off

The API
-------
    POST /files          multipart/form-data with a ``file`` field
                         -> 201 Created, Location: /files/<name>, {"name", "size", "url"}
    GET  /files          {"files": [{"name", "size", "url"}, ...]}, sorted by name
    GET  /files/<name>   the file, served by `microweb.static.StaticFiles`

Downloads are where the HTTP work is, and none of it is written here:
`StaticFiles` sends ``ETag``/``Last-Modified`` and answers ``If-None-Match``
with 304, and it honours ``Range`` (206, 416, ``If-Range``). ``curl -C -``
asks for ``Range: bytes=<what it already has>-``; a browser or download
manager resuming a download adds ``If-Range: <ETag>``, so a file that
changed in between is sent whole (200) instead of spliced (RFC 9110 §13.1.5).

What each mistake gets: no ``file`` field, or an empty file name, 400; a
name the download side would refuse (a dotfile, ``CON``...), 422; a name
already taken, 409 Conflict (uploads never overwrite); a body over
``FILES_MAX_BYTES`` (default 64 MiB), 413; a malformed multipart body, 400.

Storage
-------
Files live in ``FILES_DIR`` (default ``files``), shared by every gunicorn
worker. An upload is written to a hidden temporary name first (dotfiles are
never served or listed), then published with ``os.link``, which is atomic
and fails if the name exists: a download never sees half a file, and two
uploads of the same name cannot both win.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from microweb import App, HTTPError, Request, Response
from microweb.static import StaticFiles, is_plain_name
from microweb.types import Environ, Headers, StartResponse, WSGIApp

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def as_attachment(static: WSGIApp) -> WSGIApp:
    """Wrap a WSGI app so that browsers save what it sends instead of showing it.

    SECURITY: these files come from anyone who can upload. An ``.html`` or
    ``.svg`` shown inline would run its scripts with this site's cookies
    (stored XSS); ``Content-Disposition: attachment`` (RFC 6266) makes the
    browser download it, and ``Content-Security-Policy: sandbox`` disables
    scripts even if it is opened anyway.
    """

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: Headers, exc_info: Any = None) -> Any:
            if status.startswith(("200", "206")):
                headers = [
                    *headers,
                    ("Content-Disposition", "attachment"),
                    ("Content-Security-Policy", "sandbox"),
                ]
            return start_response(status, headers, exc_info)

        return static(environ, start)

    return app


def create_app(files_dir: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> App:
    """The file service over `files_dir` (created if missing; tests use a temporary one)."""
    os.makedirs(files_dir, exist_ok=True)
    root = os.fspath(files_dir)
    app = App(max_body_size=max_bytes)
    # Downloads: StaticFiles under /files/ (what app.static does), wrapped so
    # that browsers save the files; the routes for exactly /files win over it.
    app.mount("/files", as_attachment(StaticFiles(root)))

    def describe(name: str) -> dict[str, Any]:
        size = os.stat(os.path.join(root, name)).st_size
        return {"name": name, "size": size, "url": "/files/" + quote(name)}

    @app.get("/files")
    def list_files(req: Request) -> dict[str, Any]:
        with os.scandir(root) as entries:
            names = sorted(
                entry.name
                for entry in entries
                if entry.is_file(follow_symlinks=False) and is_plain_name(entry.name)
            )
        return {"files": [describe(name) for name in names]}

    @app.post("/files")
    def upload(req: Request) -> Response:
        upload = req.files.get("file")
        if upload is None or not upload.filename:
            raise HTTPError(400, "Send the file as multipart/form-data in a field named 'file'.")
        name = upload.filename
        if not is_plain_name(name):
            raise HTTPError(422, f"{name!r} cannot be served back; rename the file.")
        temporary = os.path.join(root, f".upload-{secrets.token_hex(8)}")
        upload.save(temporary)
        try:
            os.link(temporary, os.path.join(root, name))  # atomic; never overwrites
        except FileExistsError:
            raise HTTPError(409, f"{name!r} already exists.") from None
        finally:
            os.unlink(temporary)
        # RFC 9110 §15.3.2: 201 Created, Location naming the new resource.
        response = Response.json(describe(name), status=201)
        response.location = "/files/" + quote(name)
        return response

    return app


app = create_app(
    os.environ.get("FILES_DIR", "files"),
    int(os.environ.get("FILES_MAX_BYTES", DEFAULT_MAX_BYTES)),
)
