"""The command line (microweb/cli.py): `microweb run` starts real gunicorn."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from servers import REPO_ROOT, TIMEOUT, fetch

from microweb.cli import gunicorn_argv, main


def test_run_passes_defaults_then_user_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    argv = gunicorn_argv("examples.notes:app", ["--timeout", "5", "--worker-class", "gthread"])
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[-1] == "examples.notes:app"
    # gunicorn's last occurrence of an option wins: the user's come after ours.
    assert argv.index("5") > argv.index("30")
    for option in ("--graceful-timeout", "--keep-alive", "--limit-request-line",
                   "--limit-request-fields", "--limit-request-field_size", "--access-logfile",
                   "--workers"):
        assert option in argv
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8000"


def test_run_adds_no_second_bind_and_respects_web_concurrency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gunicorn's --bind appends: a default bind would listen on a second address."""
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    argv = gunicorn_argv("m:app", ["--bind", "127.0.0.1:9999"])
    assert argv.count("--bind") == 1
    assert "--workers" not in argv


def test_routes_prints_routes_and_middleware(capsys: pytest.CaptureFixture[str]) -> None:
    main(["routes", "examples.notes:app"])
    out = capsys.readouterr().out
    assert "/notes/{id:int}" in out
    assert "DELETE, GET, HEAD, PATCH, PUT" in out or "GET, HEAD" in out
    assert "examples.notes." in out
    assert "middleware, in the order a request meets them:" in out


def test_routes_rejects_a_bad_target() -> None:
    with pytest.raises(SystemExit):
        main(["routes", "no_colon_here"])


@pytest.mark.e2e
def test_microweb_run_serves_under_real_gunicorn(tmp_path: Path) -> None:
    """`microweb run` hands over to gunicorn (exec), which serves the app."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "microweb", "run", "examples.hello:app",
             "--bind", f"fd://{listener.fileno()}", "--workers", "1", "--no-control-socket",
             "--graceful-timeout", "1"],
            cwd=REPO_ROOT, pass_fds=(listener.fileno(),), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    listener.close()
    try:
        reply = fetch(f"http://127.0.0.1:{port}", "GET", "/")
        assert reply.status == 200
        assert reply.body == b"Hello, World!"
        head = fetch(f"http://127.0.0.1:{port}", "HEAD", "/")
        assert head.body == b"" and head.headers["Content-Length"] == "13"
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
    log_text = (tmp_path / "log").read_text()
    assert "Booting worker" in log_text  # it was gunicorn that served
    assert '"GET / HTTP/1.1" 200' in log_text  # the default access log is on
