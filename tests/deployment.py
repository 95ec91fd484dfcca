"""The deployment recipe (examples/deploy/run.py) for the tests: started ready, stopped by PID.

`running` starts a `ReadyDeployment`: the recipe's `Deployment`, with
worker_ready.py's hook added to each gunicorn instance's command line, so
that `start_instance` (and therefore `start`) returns once every worker of
the instance has loaded the app. Without it, the first request would wait
in the instance's listen queue while the workers boot, and its client
timeout would race that boot on a loaded machine. Redis says it is ready
itself (sd_notify, examples/deploy/processes.py); nginx is handed a
listening socket and serves as soon as it runs.

The tests of the recipe (test_deploy*.py) share the `deployment` fixture
(the recipe with `INSTANCE_ENV`, started once per test module) and the
client side of its app (examples/deploy/app.py): `get_token`, `bearer`,
`post_note`, and `instance` (which instance answered).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_installed
from servers import Reply, fetch
from worker_ready import ReadyListener

from examples.deploy.processes import DeployError
from examples.deploy.run import INSTANCES, NGINX, REDIS_SERVER, Deployment

ALICE = {"username": "alice", "password": "wonderland-alice"}
# The instances' RedisStore timeout (REDIS_TIMEOUT), in seconds. The outage
# tests bound a 503's time by it: a store that waits for Redis once too often
# takes a whole timeout more, so the rest of the path (nginx, gunicorn, the
# app, on a busy 2-core machine) gets a whole timeout of headroom.
REDIS_TIMEOUT = 3.0
INSTANCE_ENV = {"REDIS_TIMEOUT": str(REDIS_TIMEOUT), "RATE_LIMIT": "100000/day"}
# NOTE: a worker forked just as SIGTERM arrives misses it and the master
# waits out the graceful timeout (tests/servers.py): keep stops short.
GUNICORN_ARGS = ("--graceful-timeout", "2")


@pytest.fixture(scope="module")
def tools() -> None:
    ensure_installed(NGINX, "nginx")
    ensure_installed(REDIS_SERVER, "redis-server")


@pytest.fixture(scope="module")
def deployment(tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The recipe, shared by a module's tests (each leaves it running as it found it)."""
    with running(tmp_path_factory.mktemp("deploy"), env=INSTANCE_ENV,
                 gunicorn_args=GUNICORN_ARGS) as started:  # fmt: skip
        yield started


class ReadyDeployment(Deployment):
    """`Deployment` whose instances are started ready: their workers have loaded the app."""

    def __init__(self, run_dir: Path, **options: Any) -> None:
        self.ready = ReadyListener()
        options["env"] = {**options.get("env", {}), **self.ready.env}
        options["gunicorn_args"] = (*self.ready.args, *options.get("gunicorn_args", ()))
        super().__init__(run_dir, **options)

    def start_instance(self, i: int) -> None:
        super().start_instance(i)
        name = INSTANCES[i]
        if len(self.ready.wait(self.workers, self.processes[name])) < self.workers:
            raise DeployError(f"instance {name} exited before its workers were ready")

    def stop(self) -> list[str]:
        try:
            return super().stop()
        finally:
            self.ready.close()


@contextmanager
def running(run_dir: Path, **options: Any) -> Iterator[Deployment]:
    """A started deployment; every process is stopped by PID afterwards, whatever happened."""
    deployment = ReadyDeployment(run_dir, **options)
    problems: list[str] = []
    try:
        deployment.start()
        yield deployment
    finally:
        problems = deployment.stop()
    # A process that crashed, or ignored its stop signal, fails the test.
    assert not problems, f"{problems}\n{logs(deployment)}"


def logs(deployment: Deployment) -> str:
    """The tail of every log of the deployment, for failure messages."""
    parts = []
    for path in sorted((deployment.dir / "logs").glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"--- {path.name}\n" + "\n".join(lines))
    return "\n".join(parts)


# --- the client side of the recipe's app ---------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get_token(url: str) -> str:
    reply = fetch(url, "POST", "/api/token", json_body=ALICE)
    assert reply.status == 200, reply.body
    token: str = reply.json()["access_token"]
    return token


def post_note(url: str, token: str, key: str, text: str) -> Reply:
    headers = bearer(token) | {"Idempotency-Key": key}
    return fetch(url, "POST", "/api/notes", json_body={"text": text}, headers=headers)


def instance(reply: Reply) -> str:
    return reply.headers["X-Instance"]
