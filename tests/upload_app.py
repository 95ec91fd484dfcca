"""A tiny app that echoes what `req.form` and `req.files` parsed (test_uploads.py).

In-process tests build it with `make_app(...)`; the e2e test serves
``tests.upload_app:app`` with gunicorn.
"""

from __future__ import annotations

import hashlib
from typing import Any

from microweb import App, Request
from microweb.uploads import FormLimits


def describe(req: Request) -> dict[str, Any]:
    """Fields as lists of values, files as lists of their metadata and a digest."""
    # NOTE: WebOb's MultiDict.getall() scans every item; dict_of_lists() is one pass.
    files = {
        name: [
            {
                "filename": up.filename,
                "raw_filename": up.raw_filename,
                "content_type": up.content_type,
                "size": up.size,
                "sha256": hashlib.sha256(up.read()).hexdigest(),
            }
            for up in uploads
        ]
        for name, uploads in req.files.dict_of_lists().items()
    }
    fields = req.form.dict_of_lists()
    return {"fields": fields, "files": files}


def make_app(max_body_size: int = 1_048_576, limits: FormLimits | None = None) -> App:
    app = App(max_body_size=max_body_size, form_limits=limits)

    @app.post("/upload")
    def upload(req: Request) -> dict[str, Any]:
        return describe(req)

    @app.post("/files-first")
    def files_first(req: Request) -> dict[str, Any]:
        names = list(req.files)  # parsing happens once, whichever is used first
        return {"files": names, "fields": dict(req.form)}

    @app.post("/body-first")
    def body_first(req: Request) -> dict[str, Any]:
        return {"length": len(req.body), **describe(req)}

    return app


app = make_app(max_body_size=8 * 1_048_576)
