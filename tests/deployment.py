"""The deployment recipe (examples/deploy/run.py) for the tests: started ready, stopped by PID.

`running` starts a `ReadyDeployment`: the recipe's `Deployment`, with
worker_ready.py's hook added to each gunicorn instance's command line, so
that `start_instance` (and therefore `start`) returns once every worker of
the instance has loaded the app. Without it, the first request would wait
in the instance's listen queue while the workers boot, and its client
timeout would race that boot on a loaded machine. Redis says it is ready
itself (sd_notify, examples/deploy/processes.py); nginx is handed a
listening socket and serves as soon as it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from debian import ensure_installed
from worker_ready import ReadyListener

from examples.deploy.processes import DeployError
from examples.deploy.run import INSTANCES, NGINX, REDIS_SERVER, Deployment


@pytest.fixture(scope="module")
def tools() -> None:
    ensure_installed(NGINX, "nginx")
    ensure_installed(REDIS_SERVER, "redis-server")


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
