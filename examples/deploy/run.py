"""Start and stop the deployment recipe: redis-server, two gunicorn instances, nginx.

    python examples/deploy/run.py start [--dir DIR] [--port N] [--workers N]
    python examples/deploy/run.py stop  [--dir DIR]

``start`` brings up, all on 127.0.0.1, in this order::

    client ──> nginx :PORT ──┬──> gunicorn "a" :port_a ──┐
                             └──> gunicorn "b" :port_b ──┴──> redis-server :port_r

and returns, leaving them running; ``stop`` stops them all by the PIDs
``start`` recorded in ``DIR/state.json``. Logs are in ``DIR/logs``. From
Python (the tests do this), `Deployment` does the same and more: stop and
start one instance or Redis while the rest keeps running.

This file owns *what* runs: the `Deployment` (which processes, their
order, ports, configuration and ``state.json``) and the command line.
*How* one process is started ready to serve and stopped by PID, without
sleeping or polling, is processes.py's job.

Every gunicorn instance gets its own ``--control-socket`` and ``--pid``
file: gunicorn 27's control socket defaults to one path per user
(``~/.gunicorn/gunicorn.ctl``), which two instances would fight over.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

# NOTE: run as a script (python examples/deploy/run.py), Python puts this
# directory on sys.path, not the repository root that `examples` lives in.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from examples.deploy.processes import (
    HOST,
    START_TIMEOUT,
    DeployError,
    alive,
    free_port,
    listening_socket,
    spawn,
    spawn_nginx,
    spawn_notified,
    stop_process,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
TEMPLATE = HERE / "nginx.conf.template"
NGINX = Path("/usr/sbin/nginx")
REDIS_SERVER = Path("/usr/bin/redis-server")
INSTANCES = ("a", "b")
CHECK_TIMEOUT = 30.0  # seconds: for gunicorn's workers to load the app and answer


# --- the deployment ------------------------------------------------------------------------


class Deployment:
    """redis-server, two gunicorn instances and nginx, with their state in `run_dir`.

    ``port`` is nginx's (0: a free one). ``env`` is added to the instances'
    environment (``RATE_LIMIT``, ``REDIS_TIMEOUT``, ...); ``gunicorn_args``
    are added to their command line after ``microweb run``'s defaults.
    """

    def __init__(
        self,
        run_dir: Path,
        port: int = 0,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        gunicorn_args: tuple[str, ...] = (),
    ) -> None:
        self.dir = Path(run_dir).resolve()
        self.port = port
        self.workers = workers
        self.env = dict(env or {})
        self.gunicorn_args = gunicorn_args
        self.redis_port = 0
        self.instance_ports = [0] * len(INSTANCES)
        # PIDs, and for the processes this object started, their Popen.
        self.pids: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- addresses --

    @property
    def url(self) -> str:
        """nginx: where clients go."""
        return f"http://{HOST}:{self.port}"

    def instance_url(self, i: int) -> str:
        """One gunicorn instance, past nginx."""
        return f"http://{HOST}:{self.instance_ports[i]}"

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/0"

    def log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    # -- the whole set --

    def start(self) -> str:
        """Start Redis, both instances and nginx; return nginx's URL. Stops all on failure."""
        for sub in ("logs", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        try:
            self.start_redis()
            for i in range(len(INSTANCES)):
                self.start_instance(i)
            self.start_nginx()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> list[str]:
        """Stop nginx, the instances and Redis, each by PID; return the problems seen."""
        problems = [self.stop_nginx()]
        problems += [self.stop_instance(i) for i in range(len(INSTANCES))]
        problems.append(self.stop_redis())
        return [problem for problem in problems if problem]

    def __enter__(self) -> Deployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stop(self, name: str, executable: str, sig: signal.Signals) -> str | None:
        pid = self.pids.pop(name, None)
        if pid is None:
            return None
        problem = stop_process(pid, executable, sig, self.processes.pop(name, None))
        self.save()
        return problem

    # -- redis-server --

    def start_redis(self) -> None:
        """Start redis-server (on its previous port after a stop); return once it is ready."""
        if "redis" in self.pids:
            raise DeployError("redis-server is already running")
        # A free port the first time (another process may take it before
        # redis-server binds it: then try another); the same port after that.
        ports = [self.redis_port] if self.redis_port else [free_port() for _ in range(3)]
        for port in ports:
            if self._launch_redis(port):
                self.redis_port = port
                self.save()
                return
        raise DeployError(f"redis-server did not start; see {self.log('redis')}")

    def _launch_redis(self, port: int) -> bool:
        command = [
            str(REDIS_SERVER),
            "--bind", HOST,
            "--port", str(port),
            "--save", "",  # the recipe's state is disposable: no persistence
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--daemonize", "no",
            "--supervised", "systemd",  # READY=1 on NOTIFY_SOCKET once it serves
        ]  # fmt: skip
        # None: it exited before it was ready (say, its port was taken).
        process = spawn_notified(command, self.log("redis"), self.dir / "redis-notify.sock")
        if process is None:
            return False
        self.pids["redis"], self.processes["redis"] = process.pid, process
        return True

    def stop_redis(self) -> str | None:
        return self._stop("redis", "redis-server", signal.SIGTERM)

    def pause_redis(self) -> None:
        """SIGSTOP: a Redis that accepts connections (the kernel does) but never answers."""
        os.kill(self.pids["redis"], signal.SIGSTOP)

    def resume_redis(self) -> None:
        os.kill(self.pids["redis"], signal.SIGCONT)

    # -- the gunicorn instances --

    def start_instance(self, i: int) -> None:
        """Start gunicorn instance `i` on its port (a free one the first time)."""
        name = INSTANCES[i]
        if name in self.pids:
            raise DeployError(f"instance {name} is already running")
        # Bound and listening before gunicorn starts: clients queue from now on.
        with listening_socket(self.instance_ports[i]) as listener:
            fd = listener.fileno()
            command = [
                sys.executable, "-m", "microweb", "run", "examples.deploy.app:app",
                "--bind", f"fd://{fd}",
                "--workers", str(self.workers),
                "--pid", str(self.dir / f"gunicorn-{name}.pid"),
                # gunicorn 27: one control socket per instance, not ~/.gunicorn/gunicorn.ctl.
                "--control-socket", str(self.dir / f"gunicorn-{name}.ctl"),
                *self.gunicorn_args,
            ]  # fmt: skip
            env = {
                **os.environ,
                "REDIS_URL": self.redis_url,
                "INSTANCE": name,
                "JWT_KEY": self.jwt_key(),
                # The recipe serves plain http on 127.0.0.1; behind TLS, drop this.
                "INSECURE_COOKIES": "1",
                **self.env,
            }
            # NOTE: a developer's GUNICORN_CMD_ARGS would silently change the servers.
            env.pop("GUNICORN_CMD_ARGS", None)
            process = spawn(
                command, self.log(f"gunicorn-{name}"), env=env, pass_fds=(fd,), cwd=REPO_ROOT
            )
            self.instance_ports[i] = listener.getsockname()[1]
        # Leaving the `with` closed our copy of the socket: gunicorn holds it
        # now, and ours would keep the port open after gunicorn exits.
        self.pids[name], self.processes[name] = process.pid, process
        self.save()

    def stop_instance(self, i: int) -> str | None:
        """SIGTERM: gunicorn stops accepting, finishes the requests in flight, exits."""
        return self._stop(INSTANCES[i], "gunicorn", signal.SIGTERM)

    def jwt_key(self) -> str:
        """The key every instance signs and verifies tokens with: one per run directory."""
        if "JWT_KEY" in os.environ:
            return os.environ["JWT_KEY"]
        path = self.dir / "jwt.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48))
        return path.read_text().strip()

    # -- nginx --

    def render_nginx_conf(self) -> Path:
        values = {
            "run_dir": str(self.dir),
            "port": str(self.port),
            "port_a": str(self.instance_ports[0]),
            "port_b": str(self.instance_ports[1]),
            # nginx warns about `user` unless it runs as root; see the template.
            "user_directive": "user root;" if os.geteuid() == 0 else "",
        }
        text = TEMPLATE.read_text()
        for name, value in values.items():
            text = text.replace("{{ " + name + " }}", value)
        if "{{" in text:
            raise DeployError(
                f"unfilled placeholder in {TEMPLATE}: {text[text.index('{{') :][:40]}"
            )
        path = self.dir / "nginx.conf"
        path.write_text(text)
        return path

    def start_nginx(self) -> None:
        if "nginx" in self.pids:
            raise DeployError("nginx is already running")
        with listening_socket(self.port) as listener:  # closed once nginx has it
            self.port = listener.getsockname()[1]
            conf = self.render_nginx_conf()
            log = self.log("nginx-error")
            base = [str(NGINX), "-p", str(self.dir), "-e", str(log), "-c", str(conf)]
            # A broken configuration is reported here, not as a refused connection later.
            check = subprocess.run(
                [*base, "-t", "-q"],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT,
                check=False,
            )
            if check.returncode != 0:
                raise DeployError(f"nginx -t refused {conf}:\n{check.stderr}")
            process = spawn_nginx(base, self.log("nginx"), listener)
        self.pids["nginx"], self.processes["nginx"] = process.pid, process
        self.save()

    def stop_nginx(self) -> str | None:
        """SIGQUIT: nginx's graceful shutdown (SIGTERM would drop requests in flight)."""
        return self._stop("nginx", "nginx", signal.SIGQUIT)

    # -- is it serving? --

    def check(self) -> list[str]:
        """GET /healthz from each instance and through nginx; the problems seen.

        One request each, no polling: it waits in the listen queue until a
        worker has loaded the app and accepts it. An instance that could not
        start (the app does not import) has exited and closed its socket, so
        its request fails at once.
        """
        problems = []
        targets = [(f"instance {name}", self.instance_url(i)) for i, name in enumerate(INSTANCES)]
        for what, url in [*targets, ("nginx", self.url)]:
            port = int(url.rsplit(":", 1)[1])
            connection = http.client.HTTPConnection(HOST, port, timeout=CHECK_TIMEOUT)
            try:
                connection.request("GET", "/healthz")
                status = connection.getresponse().status
                if status != 200:
                    problems.append(f"{what}: GET /healthz answered {status}")
            except OSError as exc:
                problems.append(f"{what}: GET /healthz failed: {exc}")
            finally:
                connection.close()
        return problems

    # -- state.json: what `run.py stop` needs --

    def save(self) -> None:
        state = {
            "url": self.url,
            "port": self.port,
            "redis_port": self.redis_port,
            "instance_ports": self.instance_ports,
            "pids": self.pids,
        }
        (self.dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> Deployment:
        """The deployment an earlier `start` left in `run_dir` (to stop it)."""
        state = json.loads((Path(run_dir) / "state.json").read_text())
        deployment = cls(run_dir, state["port"])
        deployment.redis_port = state["redis_port"]
        deployment.instance_ports = state["instance_ports"]
        deployment.pids = {name: int(pid) for name, pid in state["pids"].items()}
        return deployment


# --- the command line ---------------------------------------------------------------------------


def check_tools() -> None:
    missing = [str(path) for path in (NGINX, REDIS_SERVER) if not path.exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install nginx redis-server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, default=Path("deploy-run"), help="run directory")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    args = parser.parse_args(argv)
    if args.command == "stop":
        if not (args.dir / "state.json").exists():
            raise SystemExit(f"nothing to stop: no {args.dir / 'state.json'}")
        problems = Deployment.load(args.dir).stop()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    check_tools()
    if (args.dir / "state.json").exists():
        running = Deployment.load(args.dir).pids
        if any(alive(pid, "") for pid in running.values()):
            raise SystemExit(f"already running (see {args.dir / 'state.json'}); stop it first")
    deployment = Deployment(args.dir, args.port, workers=args.workers)
    deployment.start()
    problems = deployment.check()
    if problems:
        deployment.stop()
        print("\n".join(problems), file=sys.stderr)
        print(
            f"stopped everything again; the logs are in {deployment.dir / 'logs'}", file=sys.stderr
        )
        return 1
    print(f"nginx      {deployment.url}  (pid {deployment.pids['nginx']})")
    for i, name in enumerate(INSTANCES):
        print(f"gunicorn {name} {deployment.instance_url(i)}  (pid {deployment.pids[name]})")
    print(f"redis      {deployment.redis_url}  (pid {deployment.pids['redis']})")
    print(f"logs in {deployment.dir / 'logs'}; stop with: {sys.argv[0]} stop --dir {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
