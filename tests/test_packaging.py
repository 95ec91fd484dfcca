"""The wheel the README builds: what a user installs on a machine without the checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from doc_walk import copy_checkout
from servers import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """`pip wheel --no-deps` of a copy of the checkout, as the README's Install says."""
    checkout = copy_checkout(REPO_ROOT, tmp_path_factory.mktemp("microweb"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            dist,
            checkout,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = dist.glob("microweb-*-py3-none-any.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_the_package_its_types_and_the_starter(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for needed in ("microweb/__init__.py", "microweb/py.typed", "microweb/starter.py"):
        assert needed in names
    # The examples and the tests are read from a checkout, never installed
    # (a top-level `examples` or `tests` package would clash with the user's own).
    assert not [name for name in names if name.startswith(("examples/", "tests/", "bench/"))]


def test_the_wheel_gives_the_microweb_command(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "microweb = microweb.cli:main" in wheel.read(entry_points).decode()
