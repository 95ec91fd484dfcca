"""The two quick-start commands, for a machine that has only Python 3.11+.

    python3 dev.py serve    # examples/notes.py under gunicorn on 127.0.0.1:8000
    python3 dev.py test     # the whole suite: tox (tests, ruff, mypy --strict)

Nothing is installed outside this checkout: the first run makes `.venv/`
here with the standard library's `venv`, installs what the command needs
into it, then hands over to gunicorn (through `microweb run`) or to tox.
Extra arguments are passed on (`python3 dev.py test -e test -- -k routing`).

Installing happens only when something it depends on changed: after a
successful install, `.venv/` keeps a stamp (`install_stamp`: the
requirements, the Python version, and a hash of setup.cfg and
pyproject.toml). While the stamp matches, pip is not run at all, so a
complete `.venv/` starts in well under a second and works offline.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
#: The files that declare what `pip install -e .` installs.
DEPENDENCY_FILES = ("setup.cfg", "pyproject.toml")


def bin_dir(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def install_stamp(requirements: tuple[str, ...], root: Path = ROOT) -> str:
    """A digest of everything an install of `requirements` from `root` depends on."""
    digest = hashlib.sha256(repr((requirements, sys.version_info[:2])).encode())
    for name in DEPENDENCY_FILES:
        path = root / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def stamp_path(env: Path, requirements: tuple[str, ...]) -> Path:
    """One stamp per set of requirements: `serve` and `test` install different things."""
    key = hashlib.sha256(repr(requirements).encode()).hexdigest()[:12]
    return env / f".dev-py-{key}.stamp"


def ensure_venv(*requirements: str, env: Path = VENV, root: Path = ROOT) -> None:
    """`env` with `requirements` installed; pip runs only when the stamp is stale."""
    stamp = install_stamp(requirements, root)
    stamp_file = stamp_path(env, requirements)
    python = bin_dir(env) / "python"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(env)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, *requirements], cwd=root).returncode != 0:
        sys.exit(f"dev.py: installing {' '.join(requirements)} into {env} failed (see above)")
    stamp_file.write_text(stamp)


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    os.chdir(ROOT)
    if command == "serve":
        ensure_venv("-e", ".")
        # NOTE: no --bind here: microweb run's default is 127.0.0.1:8000, and a
        # --bind in `rest` would otherwise be a second address (gunicorn appends).
        args = ["microweb", "run", "examples.notes:app", *rest]
    elif command == "test":
        ensure_venv("tox>=4")
        args = ["tox", *rest]
    else:
        sys.exit(__doc__)
    os.execv(bin_dir(VENV) / args[0], args)


if __name__ == "__main__":
    main(sys.argv[1:])
