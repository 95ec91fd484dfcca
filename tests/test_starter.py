"""microweb/starter.py: `microweb new` writes the README's first app and its test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from doc_walk import FileBlock, steps
from servers import REPO_ROOT

from microweb.cli import main
from microweb.starter import FILES, create


def test_the_starter_files_are_the_readmes() -> None:
    """The README shows what `microweb new` writes, and the README walk serves and tests it."""
    shown = {
        step.name: step.text.split("\n", 1)[1]  # without the "# file: NAME" line
        for step in steps((REPO_ROOT / "README.md").read_text())
        if isinstance(step, FileBlock)
    }
    assert {name: shown.get(name) for name in FILES} == FILES


@pytest.mark.parametrize(
    ("directory", "said"),
    [
        pytest.param(".", "wrote app.py and test_app.py\nthen: ", id="here"),
        pytest.param("a/b", "wrote a/b/app.py and a/b/test_app.py\nthen, in a/b: ", id="new-dir"),
    ],
)
def test_create_writes_the_files_and_says_what_next(
    directory: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert create(Path(directory)).startswith(said)
    assert {name: (tmp_path / directory / name).read_text() for name in FILES} == FILES


@pytest.mark.parametrize("existing", sorted(FILES))
def test_create_overwrites_nothing(existing: str, tmp_path: Path) -> None:
    (tmp_path / existing).write_text("mine")
    with pytest.raises(FileExistsError, match=f"{existing} exists already"):
        create(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [existing]
    assert (tmp_path / existing).read_text() == "mine"


def test_the_starter_test_passes(tmp_path: Path) -> None:
    create(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_microweb_new_writes_the_starter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["new", str(tmp_path / "hello")])
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'hello' / 'app.py'} and ")
    assert sorted(p.name for p in (tmp_path / "hello").iterdir()) == sorted(FILES)


def test_microweb_new_refuses_in_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app.py").write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        main(["new", str(tmp_path)])
    assert exit_.value.code == 2
    assert (
        capsys.readouterr().err
        == f"microweb new: {tmp_path / 'app.py'} exists already; nothing was written\n"
    )
