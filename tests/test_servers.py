"""The e2e harness itself (servers.py), checked with a bare PEP 3333 app."""

import textwrap

import pytest
from servers import fetch

pytestmark = pytest.mark.e2e

BARE_APP = textwrap.dedent("""
    def app(environ, start_response):
        body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
""")


def test_first_request_waits_in_the_backlog_until_a_worker_is_ready(gunicorn_server, tmp_path):
    """No polling and no sleep: the socket listens before gunicorn starts."""
    (tmp_path / "bareapp.py").write_text(BARE_APP)
    url = gunicorn_server("bareapp:app", args=("--pythonpath", str(tmp_path)))
    reply = fetch(url, "GET", "/x")
    assert (reply.status, reply.body) == (200, b"GET /x")
