"""Follow a Markdown document as a reader would: save its files, type its commands.

The convention the documents follow (README.md and docs/tutorial.md say it
in an HTML comment at the top, invisible once rendered):

- A ```python block whose first line is ``# file: NAME`` is the whole file
  NAME: the walk saves it, as the reader would, in the current directory.
  Every ```python block must name its file: a block the reader cannot save
  as it is would be an excerpt, and an excerpt drifts from the code.
- A ```console block is a terminal session. ``$ `` starts a command (a line
  ending in ``\\`` continues it); the lines up to the next ``$ `` are what
  the command prints on stdout. ``...`` matches any text (doctest's
  ELLIPSIS). The headers ``Date``, ``Server`` and ``Connection`` are not
  compared: they change from run to run, and the text says they are left out.
- Any other block (```sh, ```text...) is only shown, never run.

How commands run: each in ``bash`` in the walk's directory, with a fresh
shell's environment: ``HOME`` is an empty directory, ``PATH`` has the
machine's python3 but not the test's virtualenv. ``cd DIR`` moves the walk;
``source FILE`` (activating a venv) is replayed before each later command,
as the reader's shell would remember it. A command must exit 0.

Three things stand for what the reader has and the walk must supply:

- ``/path/to/microweb`` is the checkout under test (a copy of its files,
  so the install's build/ and egg-info stay out of the repository);
- ``microweb run ...`` (or ``dev``) is a server the reader leaves running in another
  terminal: it is started in the background on a socket the walk already
  listens on (``--bind fd://N``, as servers.py does: no port race, no
  polling), the next command runs once its workers have loaded the app
  (worker_ready.py's hook, ``-c``), and it is stopped when the next one
  starts or the walk ends;
- ``127.0.0.1:8000`` in any command is that server's address.

pip's download cache is the machine's own (``PIP_CACHE_DIR``): a reader's
second install reuses downloads too, and nothing else is shared.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from worker_ready import ReadyListener

from microweb.cli import WORKERS, gunicorn_parser

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
FILE_MARKER = re.compile(r"#\s*file:\s*(\S+)")
IGNORED_HEADERS = re.compile(r"^(date|server|connection):", re.IGNORECASE)
SERVER_COMMAND = re.compile(r"(^|\s)microweb (run|dev)\s")
ASSIGNMENTS = re.compile(r"^((?:\w+=\S*\s+)*)")  # a command's leading VAR=value words
READER_ADDRESS = "127.0.0.1:8000"
CHECKOUT_PLACEHOLDER = "/path/to/microweb"
COMMAND_TIMEOUT = 60.0  # seconds; an install gets INSTALL_TIMEOUT
INSTALL_TIMEOUT = 300.0
STOP_TIMEOUT = 10.0


@dataclass
class FileBlock:
    name: str
    text: str


@dataclass
class Command:
    line: str
    expected: str


def steps(markdown: str) -> list[FileBlock | Command]:
    """The document's files and commands, in the order the text gives them."""
    found: list[FileBlock | Command] = []
    for match in FENCE.finditer(markdown):
        language, body = match.group(1), match.group(2)
        if language == "python":
            marker = FILE_MARKER.fullmatch(body.split("\n", 1)[0].strip())
            if marker is None:
                raise ValueError(f"a python block does not start with '# file: NAME':\n{body}")
            found.append(FileBlock(marker.group(1), body))
        elif language == "console":
            found.extend(commands(body))
    return found


def commands(session: str) -> list[Command]:
    """The commands of one ```console block, each with the output shown after it."""
    found: list[Command] = []
    lines = session.rstrip("\n").split("\n")
    while lines:
        line = lines.pop(0)
        if not line.startswith("$ "):
            if found:
                found[-1].expected += line + "\n"
                continue
            raise ValueError(f"console text before any '$ ' command: {line!r}")
        command = line[2:]
        while command.endswith("\\") and lines:
            command = command[:-1] + lines.pop(0)
        found.append(Command(command, ""))
    return found


def matches(expected: str, actual: str) -> bool:
    """Doctest's ELLIPSIS comparison; trailing whitespace and CR are not compared."""
    pattern = ".*?".join(re.escape(part) for part in tidy(expected).split("..."))
    return re.fullmatch(pattern, tidy(actual), re.DOTALL) is not None


def tidy(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines if not IGNORED_HEADERS.match(line)).strip()


def fresh_environment(home: Path) -> dict[str, str]:
    """What a new terminal on this machine has: no virtualenv, an empty HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "TOX", "COV"))}
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "GUNICORN_CMD_ARGS"):
        env.pop(name, None)
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin]
    # NOTE: the base interpreter's directory first, so that `python3` is the
    # machine's Python whatever shims (pyenv) would want from the real HOME.
    base_python = Path(getattr(sys, "_base_executable", sys.executable)).parent
    env["PATH"] = os.pathsep.join([str(base_python), *path])
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env["HOME"] = str(home)
    return env


def workers(line: str, env: dict[str, str]) -> int:
    """How many workers the reader's ``microweb run|dev ...`` line starts."""
    words = shlex.split(line, comments=True)
    at = words.index("microweb")
    command, options = words[at + 1], words[at + 2 :]
    default = "1" if command == "dev" else env.get("WEB_CONCURRENCY", WORKERS)
    return int(gunicorn_parser(command).parse_args(options).workers or default)


class Server:
    """The reader's `microweb run` in another terminal: bash in its own process group,
    exec'ing the command, so that the process is gunicorn's master. Returns once
    its `workers` have loaded the app (or it has exited)."""

    def __init__(
        self, script: str, cwd: Path, env: dict[str, str], log_path: Path, workers: int
    ) -> None:
        ready = ReadyListener()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            self.address = f"127.0.0.1:{listener.getsockname()[1]}"
            fd = listener.fileno()
            script = script.replace(f"--bind {READER_ADDRESS}", f"--bind fd://{fd}")
            if f"fd://{fd}" not in script:
                script += f" --bind fd://{fd}"
            script += " " + shlex.join(ready.args)
            self.log_path = log_path
            with log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    ["bash", "-c", script],
                    cwd=cwd,
                    env={**env, **ready.env},
                    pass_fds=(fd,),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        finally:
            listener.close()  # gunicorn holds the socket now
        try:
            ready.wait(workers, self.process)
        finally:
            ready.close()

    def stop(self) -> None:
        """SIGTERM to the master; fail when the server had already died or hangs.

        The group gets SIGKILL only if the master hangs.
        """
        crashed = self.process.poll() is not None
        if not crashed:
            # NOTE: not to the whole group: the workers would exit at once, and
            # the master, not yet at its own SIGTERM on a loaded machine, would
            # fork replacements that miss the shutdown and hold it for the whole
            # --graceful-timeout (30 s). The master stops its workers itself.
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                pytest.fail(f"the server ignored SIGTERM:\n{self.log()}", pytrace=False)
        if crashed:
            pytest.fail(f"the server exited on its own:\n{self.log()}", pytrace=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Walk:
    """One reader at one terminal, from an empty directory."""

    def __init__(self, root: Path, checkout: Path) -> None:
        self.cwd = root / "work"
        self.cwd.mkdir()
        (root / "home").mkdir()
        self.env = fresh_environment(root / "home")
        self.root = root
        self.checkout = checkout
        self.prelude: list[str] = []
        self.server: Server | None = None

    def follow(self, markdown: str) -> None:
        try:
            for step in steps(markdown):
                if isinstance(step, FileBlock):
                    (self.cwd / step.name).write_text(step.text)
                else:
                    self.run(step)
        finally:
            if self.server is not None:
                self.server.stop()

    def run(self, command: Command) -> None:
        line = command.line.replace(CHECKOUT_PLACEHOLDER, str(self.checkout))
        words = shlex.split(line, comments=True)
        if words[:1] == ["cd"]:
            self.cwd = (self.cwd / words[1]).resolve()
            return
        if words[:1] in (["source"], ["."]):
            self.prelude.append(line)
        script = " && ".join([*self.prelude, line]) if words[:1] != ["source"] else line
        if SERVER_COMMAND.search(line):
            # NOTE: bash execs the server (after any VAR=value words), so that
            # `Server.stop` can signal gunicorn's master alone.
            server_line = ASSIGNMENTS.sub(r"\1exec ", line, count=1)
            # NOTE: the walk appends --bind, which must not land inside a comment.
            script = re.sub(r"\s+#[^'\"]*$", "", " && ".join([*self.prelude, server_line]))
            if self.server is not None:
                self.server.stop()
            log_path = self.root / f"server-{os.urandom(4).hex()}.log"
            self.server = Server(script, self.cwd, self.env, log_path, workers(line, self.env))
            return
        if self.server is not None:
            script = script.replace(READER_ADDRESS, self.server.address)
        timeout = INSTALL_TIMEOUT if "pip install" in line else COMMAND_TIMEOUT
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        report = (
            f"$ {command.line}\n--- expected ---\n{command.expected}"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
        )
        if self.server is not None:
            report += f"--- server log ---\n{self.server.log()}"
        assert result.returncode == 0, f"exit status {result.returncode}\n{report}"
        assert matches(command.expected, result.stdout), report


def copy_checkout(repo: Path, target: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored), as a clean clone has them."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = repo / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
