"""The two quick-start commands, for a machine that has only Python 3.11+.

    python3 dev.py serve    # examples/notes.py under gunicorn on 127.0.0.1:8000
    python3 dev.py test     # the whole suite: tox (tests, ruff, mypy --strict)

Nothing is installed outside this checkout: the first run makes `.venv/`
here with the standard library's `venv`, installs what the command needs
into it, then hands over to gunicorn (through `microweb run`) or to tox.
Extra arguments are passed on (`python3 dev.py test -e test -- -k routing`).
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_venv(*requirements: str) -> None:
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True, cwd=ROOT)


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    os.chdir(ROOT)
    if command == "serve":
        ensure_venv("-e", ".")
        args = ["microweb", "run", "examples.notes:app", "--bind", "127.0.0.1:8000", *rest]
    elif command == "test":
        ensure_venv("tox>=4")
        args = ["tox", *rest]
    else:
        sys.exit(__doc__)
    os.execv(BIN / args[0], args)


if __name__ == "__main__":
    main(sys.argv[1:])
