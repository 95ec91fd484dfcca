"""The command line (microweb/cli.py): checks before it execs, then real gunicorn.

`microweb dev` under real gunicorn is in test_devserver.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gunicorn.config import Config  # type: ignore[import-untyped]
from servers import REPO_ROOT, TIMEOUT, fetch
from worker_ready import ReadyListener

import microweb.cli
from microweb.cli import DEFAULTS, DEV_DEFAULTS, app_log_level, gunicorn_argv, main, user_settings


def parsed(argv: list[str]) -> object:
    """What gunicorn itself makes of the command line we would exec."""
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    return Config().parser().parse_args(argv[3:])


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)


@pytest.mark.parametrize(
    ("options", "setting", "expected"),
    [
        pytest.param([], "timeout", 30, id="default-timeout"),
        pytest.param(["--timeout", "5"], "timeout", 5, id="user-timeout-replaces-ours"),
        pytest.param([], "bind", ["127.0.0.1:8000"], id="default-bind"),
        # gunicorn's --bind appends: a default bind would listen on a second address.
        pytest.param(["-b", "127.0.0.1:9999"], "bind", ["127.0.0.1:9999"], id="one-bind-only"),
        pytest.param([], "control_socket_disable", True, id="no-shared-control-socket"),
        pytest.param(
            ["--control-socket", "/tmp/mine.ctl"], "control_socket_disable", None,
            id="user-control-socket-kept",
        ),
        pytest.param([], "header_map", "drop", id="underscore-headers-dropped"),
        pytest.param([], "workers", int(DEFAULTS["--workers"][0] or 0), id="default-workers"),
    ],
)  # fmt: skip
def test_defaults_apply_where_the_user_set_nothing(
    options: list[str], setting: str, expected: object
) -> None:
    argv = gunicorn_argv("m:app", [*options, "m:app"])
    assert getattr(parsed(argv), setting) == expected


def test_options_go_before_or_after_the_target() -> None:
    """The issue's `microweb run --workers 2 examples.hello:app` (the target not last)."""
    argv = gunicorn_argv("m:app", ["--workers", "2", "m:app", "--timeout", "7"])
    settings = parsed(argv)
    assert (settings.workers, settings.timeout, settings.args) == (2, 7, ["m:app"])  # type: ignore[attr-defined]
    assert argv.count("--workers") == 1 and argv.count("--timeout") == 1


def test_web_concurrency_and_gunicorn_cmd_args_count_as_the_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--timeout 9")
    argv = gunicorn_argv("m:app", ["m:app"])
    assert "--workers" not in argv  # gunicorn reads WEB_CONCURRENCY itself
    assert "--timeout" not in argv  # and GUNICORN_CMD_ARGS, which our default would beat


@pytest.mark.parametrize(
    ("options", "worker_class", "threads"),
    [
        pytest.param([], "gthread", 32, id="defaults"),
        # gunicorn would turn sync with threads > 1 into gthread: our threads go too.
        pytest.param(["--worker-class", "sync"], "sync", None, id="user-picks-sync"),
        pytest.param(["-k", "gthread", "--threads", "4"], "gthread", 4, id="user-threads"),
    ],
)
def test_worker_class_and_threads(
    options: list[str], worker_class: str, threads: int | None
) -> None:
    settings = parsed(gunicorn_argv("m:app", [*options, "m:app"]))
    assert (settings.worker_class, settings.threads) == (worker_class, threads)  # type: ignore[attr-defined]


def test_dev_defaults_are_one_worker_and_reload() -> None:
    settings = parsed(gunicorn_argv("m:app", ["m:app"], DEV_DEFAULTS))
    assert (settings.workers, settings.reload) == (1, True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        pytest.param([], "", "WARNING", id="run-default"),
        pytest.param(["--log-level", "debug"], "", "DEBUG", id="log-level-given"),
        pytest.param([], "--log-level error", "ERROR", id="log-level-in-gunicorn-cmd-args"),
        pytest.param(["--log-level", "loud"], "", "INFO", id="unknown-is-info-as-in-gunicorn"),
        pytest.param(["--log-config", "x.ini"], "", None, id="log-config-left-alone"),
        pytest.param(["--log-config-json", "x.json", "--log-level", "debug"], "", None,
                     id="log-config-json-left-alone"),
    ],
)  # fmt: skip
def test_app_log_level_follows_gunicorns_logging_options(
    options: list[str], env: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUNICORN_CMD_ARGS", env)
    assert app_log_level(user_settings(options), "WARNING") == expected


def test_help_shows_the_defaults_and_where_gunicorn_options_go(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["run", "--help"])
    out = capsys.readouterr().out
    assert "microweb run [gunicorn options] module:app [gunicorn options]" in out
    for option, (value, why) in DEFAULTS.items():
        assert option in out and why in out and (value or "") in out
    assert "--worker-class sync" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith(f"microweb {microweb.__version__} (gunicorn ")


# -- refusals: one line, exit status 2, nothing started ---------------------------

MODULES = {
    "raises_on_import": "x = 1\nraise ZeroDivisionError('division by zero')\n",
    "bad_syntax": "def broken(:\n",
    "needs_missing": "import microweb_missing_dependency\n",
    "not_an_app": "app = 'a string'\n",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory of small modules, the working directory (as the user's would be)."""
    suffix = tmp_path.name.replace("-", "_")  # unique module names: sys.modules keeps them
    for name, source in MODULES.items():
        (tmp_path / f"{name}_{suffix}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def exec_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv: list[str]) -> None:
        raise AssertionError(f"gunicorn was started: {argv}")

    monkeypatch.setattr(microweb.cli, "exec_gunicorn", refuse)


@pytest.mark.parametrize("command", ["run", "dev"])
@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("nosuch:app", "no module named 'nosuch'", id="no-module"),
        pytest.param("hello", "expected module:app", id="no-colon"),
        pytest.param(
            "raises_on_import_{s}:app", "importing raises_on_import_{s} failed: "
            "ZeroDivisionError: division by zero ({p}/raises_on_import_{s}.py:2)", id="raises",
        ),
        pytest.param(
            "bad_syntax_{s}:app", "SyntaxError: invalid syntax ({p}/bad_syntax_{s}.py:1)",
            id="syntax-error",
        ),
        pytest.param(
            "needs_missing_{s}:app", "ModuleNotFoundError: No module named "
            "'microweb_missing_dependency' ({p}/needs_missing_{s}.py:1)", id="missing-dependency",
        ),
        pytest.param(
            "not_an_app_{s}:app", "not_an_app_{s}:app: Application object must be callable",
            id="not-callable",
        ),
        pytest.param("examples.hello:nope", "Failed to find attribute 'nope'", id="no-attribute"),
    ],
)  # fmt: skip
def test_a_target_that_cannot_be_served_is_one_line_and_exit_2(
    command: str,
    target: str,
    message: str,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # examples.hello
    exec_refused(monkeypatch)
    suffix = project.name.replace("-", "_")
    with pytest.raises(SystemExit) as exit_:
        main([command, target.format(s=suffix)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message.format(s=suffix, p=project) in err


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_one_line_naming_it_and_bind(
    busy_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    exec_refused(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "examples.hello:app", "--bind", f"127.0.0.1:{busy_port}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"microweb run: port {busy_port} on 127.0.0.1 is in use; "
        "choose another with --bind 127.0.0.1:PORT\n"
    )


def test_run_warns_when_the_app_has_debug_on(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"debug_app_{project.name.replace('-', '_')}"
    (project / f"{name}.py").write_text("from microweb import App\napp = App(debug=True)\n")
    started: list[list[str]] = []
    monkeypatch.setattr(microweb.cli, "exec_gunicorn", started.append)
    main(["run", f"{name}:app", "--bind", "127.0.0.1:0"])
    assert "the app has debug=True" in capsys.readouterr().err
    # run serves the target through the loader that sets up its logs, and no debug page
    assert started and started[0][-1] == f"microweb.worker:load('{name}:app', 'WARNING')"


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


def test_routes_of_a_plain_wsgi_app_is_one_line_not_a_traceback(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any PEP 3333 app serves with `microweb run`; only a microweb App has a route table."""
    name = f"plain_app_{project.name.replace('-', '_')}"
    (project / f"{name}.py").write_text("def app(environ, start_response):\n    return []\n")
    with pytest.raises(SystemExit) as exit_:
        main(["routes", f"{name}:app"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"microweb routes: {name}:app is not a microweb App: it has no route table\n"
    )


# -- real processes ------------------------------------------------------------------


def test_run_nosuch_prints_at_most_3_lines_and_starts_nothing(tmp_path: Path) -> None:
    """The issue's measurement: 212 lines and 7 tracebacks before; now one line."""
    done = subprocess.run(
        [sys.executable, "-m", "microweb", "run", "nosuch:app"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2
    assert len(output.splitlines()) <= 3, output
    assert "nosuch" in output and "gunicorn" not in output.lower()


@pytest.mark.e2e
def test_microweb_run_serves_under_real_gunicorn(tmp_path: Path) -> None:
    """`microweb run`, options before the target, hands over to gunicorn (exec),
    which serves the app and opens no control socket under $HOME."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    home = tmp_path / "home"
    ready = ReadyListener()
    env = {**os.environ, "HOME": str(home), **ready.env}
    env.pop("XDG_RUNTIME_DIR", None)
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "microweb", "run", "--workers", "1",
             "--bind", f"fd://{listener.fileno()}", "examples.hello:app",
             "--graceful-timeout", "1", *ready.args],
            cwd=REPO_ROOT, env=env, pass_fds=(listener.fileno(),), stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    listener.close()
    try:
        assert ready.wait(1, process), "gunicorn exited before its worker was ready"
        reply = fetch(f"http://127.0.0.1:{port}", "GET", "/")
        assert reply.status == 200
        assert reply.body == b"Hello, World!"
        head = fetch(f"http://127.0.0.1:{port}", "HEAD", "/")
        assert head.body == b"" and head.headers["Content-Length"] == "13"
    finally:
        ready.close()
        process.terminate()
        process.wait(timeout=TIMEOUT)
    log_text = (tmp_path / "log").read_text()
    assert "Booting worker" in log_text  # it was gunicorn that served
    assert '"GET / HTTP/1.1" 200' in log_text  # the default access log is on
    assert not (home / ".gunicorn").exists()  # no per-user socket for instances to share
