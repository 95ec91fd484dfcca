"""The installer behind every test that needs a Debian package (chromium, redis-server, nginx)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import debian
import pytest


def test_a_failed_install_fails_with_apts_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Never a silent skip: a missing server means a failing test that says why.
    calls = []

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        failed = 0 if args[0] == "update" else 100
        return subprocess.CompletedProcess(["apt-get", *args], failed, "", "E: no such package")

    monkeypatch.setattr(debian, "INSTALL_LOCK", tmp_path / "lock")
    monkeypatch.setattr(debian, "_apt", apt)
    with pytest.raises(pytest.fail.Exception, match=r"(?s)install -y nothing.*no such package"):
        debian.ensure_installed(tmp_path / "missing", "nothing")
    # A first failure is retried once, after refreshing the package lists.
    assert [call[0] for call in calls] == ["install", "update", "install"]


def test_a_present_program_is_not_installed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        raise AssertionError("apt-get must not run when the program is there")

    monkeypatch.setattr(debian, "_apt", apt)
    present = tmp_path / "present"
    present.touch()
    assert debian.ensure_installed(present, "present") == present
