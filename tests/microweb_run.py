"""`microweb run` itself, for tests of what its defaults do (servers.py runs plain gunicorn).

The port handling and readiness are servers.py's: a socket listening on a
free port is handed down (``--bind fd://N``), and the URL is given once
every worker has loaded the app (worker_ready.py), so nothing is polled.
Every other option is `microweb run`'s default unless the test gives it;
``GUNICORN_CMD_ARGS`` and ``WEB_CONCURRENCY`` are removed from the
environment, so a developer's settings cannot change the server under test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers import REPO_ROOT, TIMEOUT
from worker_ready import ReadyListener

from microweb.cli import WORKERS, gunicorn_parser


@contextmanager
def microweb_run(
    app: str, log_path: Path, *, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve `app` with ``microweb run``; once its workers are ready, yield (its base URL,
    the process); stop it after.

    A failing test gets the server's log printed; the server must exit 0 on SIGTERM.
    """
    ready = ReadyListener()
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, log_path.open("wb") as log:
        command = [sys.executable, "-m", "microweb", "run", app, *ready.args, *args]
        command += ["--bind", f"fd://{listener.fileno()}", "--access-logfile", "/dev/null"]
        clean = {
            k: v for k, v in os.environ.items() if k not in ("GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")
        }
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**clean, **ready.env, **(env or {})},
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    workers = int(gunicorn_parser("run").parse_args(args).workers or WORKERS)
    try:
        ready.wait(workers, process)
        yield url, process
    except BaseException:
        print(log_path.read_text(errors="replace"))
        raise
    finally:
        ready.close()
        process.terminate()
        try:
            status = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert status == 0, log_path.read_text(errors="replace")
