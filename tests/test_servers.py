"""The e2e harness itself (servers.py), checked with bare PEP 3333 apps."""

import textwrap

import pytest
from servers import GunicornServer, fetch

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


def test_an_app_that_cannot_start_is_a_reset_not_a_hang(tmp_path):
    """gunicorn exits, the socket closes with it, and the waiting client is told at once."""
    (tmp_path / "brokenapp.py").write_text("raise ImportError('broken on purpose')\n")
    server = GunicornServer(
        "brokenapp:app", tmp_path / "gunicorn.log", args=("--pythonpath", str(tmp_path))
    )
    url = server.start()
    try:
        with pytest.raises(ConnectionError):
            fetch(url, "GET", "/")
    finally:
        status = server.stop()
    assert status != 0
    assert "broken on purpose" in server.log()
