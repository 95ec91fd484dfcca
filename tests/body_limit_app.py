"""A Flask app behind BodyLimit, served by gunicorn in tests/test_middleware_body_limit.py."""

from __future__ import annotations

import flask

from microweb.middleware.body_limit import BodyLimit

flask_app = flask.Flask(__name__)


@flask_app.post("/upload")
def upload() -> dict[str, int]:
    return {"received": len(flask.request.get_data())}


app = BodyLimit(flask_app.wsgi_app, max_bytes=1000)
