"""Debian packages the tests need (chromium, redis-server, nginx), installed when missing.

`ensure_installed(path, package)` returns `path` (an absolute executable
path such as ``/usr/bin/redis-server``), running ``apt-get install`` first
when it is missing — CI runs the suite as root on a clean Debian machine,
and the project, not the machine, is responsible for what its tests need.

An install that fails *fails the test* with apt's output: a test that
silently skips because its server is missing proves nothing.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

APT_TIMEOUT = 900.0  # seconds: a cold chromium install downloads ~100 MB
# Two test processes installing at once would fight over dpkg's lock.
INSTALL_LOCK = Path("/tmp/microweb-apt-install.lock")


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=300", *args]
    try:
        return subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=APT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        # No apt-get (not Debian), or a hung mirror: the same failure, reported.
        return subprocess.CompletedProcess(command, -1, "", f"{' '.join(command)}: {exc}")


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}  (exit {result.returncode})\n{result.stdout}{result.stderr}"


def ensure_installed(path: Path, package: str) -> Path:
    """`path`, installing Debian's `package` with apt-get when it is missing (else fail)."""
    if path.exists():
        return path
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # another process installed it while we waited
            return path
        # Package lists that are missing or stale make the first install fail
        # ("Unable to locate package", a 404 from the mirror); update, retry.
        attempts = [_apt("install", "-y", package)]
        if attempts[-1].returncode != 0:
            attempts.append(_apt("update"))
            if attempts[-1].returncode == 0:
                attempts.append(_apt("install", "-y", package))
    if not path.exists():
        output = "\n".join(_report(result) for result in attempts)
        pytest.fail(f"could not install Debian's {package} with apt-get:\n{output}", pytrace=False)
    return path
