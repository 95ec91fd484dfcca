"""dev.py (the quick start): pip runs only when the checkout's dependencies changed.

`ensure_venv` is run for real, on a temporary venv made without pip: if it
ran pip while the stamp is current, the call would fail; so a passing test
proves that no install (and no network) is needed then.
"""

from __future__ import annotations

import importlib.util
import shutil
import venv
from pathlib import Path
from types import ModuleType

import pytest
from servers import REPO_ROOT

REQUIREMENTS = ("-e", ".")


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_py", REPO_ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = load_dev()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in dev.DEPENDENCY_FILES:
        shutil.copy(REPO_ROOT / name, root / name)
    return root


@pytest.fixture(scope="module")
def pipless_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One for the module (each test writes the stamp it needs): a venv takes seconds."""
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    return env


def test_the_stamp_changes_with_the_dependency_files_only(checkout: Path) -> None:
    before = dev.install_stamp(REQUIREMENTS, checkout)
    assert dev.install_stamp(REQUIREMENTS, checkout) == before
    (checkout / "README.md").write_text("not a dependency file")
    assert dev.install_stamp(REQUIREMENTS, checkout) == before
    with (checkout / "setup.cfg").open("a") as setup_cfg:
        setup_cfg.write("\n# a new dependency would go here\n")
    assert dev.install_stamp(REQUIREMENTS, checkout) != before
    assert dev.install_stamp(("tox>=4",), checkout) != dev.install_stamp(REQUIREMENTS, checkout)


def test_a_current_stamp_means_no_pip_at_all(checkout: Path, pipless_venv: Path) -> None:
    """What makes `dev.py serve` start at once, and offline, once .venv is complete."""
    stamp_file = dev.stamp_path(pipless_venv, REQUIREMENTS)
    stamp_file.write_text(dev.install_stamp(REQUIREMENTS, checkout))
    dev.ensure_venv(*REQUIREMENTS, env=pipless_venv, root=checkout)  # pip would fail here


def test_a_stale_stamp_reinstalls_and_a_failed_install_is_one_line(
    checkout: Path, pipless_venv: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stamp_file = dev.stamp_path(pipless_venv, REQUIREMENTS)
    stamp_file.write_text("an older setup.cfg")
    with pytest.raises(SystemExit) as exit_:
        dev.ensure_venv(*REQUIREMENTS, env=pipless_venv, root=checkout)
    assert "dev.py: installing -e . into" in str(exit_.value)
    assert stamp_file.read_text() == "an older setup.cfg"  # kept: the next run tries again
    assert "No module named pip" in capfd.readouterr().err  # pip was run, and failed
