"""README.md and docs/tutorial.md, followed by a newcomer from an empty directory.

Each walk installs this checkout into a new virtualenv exactly as the text
says (a real ``pip install``, not this test's environment), saves the
files the text shows, serves them under real gunicorn with the commands
the text gives, runs its curl calls and the tests the reader writes, and
compares every output with the text. A document that drifts from the code
fails here. The conventions are in doc_walk.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from debian import ensure_installed
from doc_walk import Command, FileBlock, Walk, copy_checkout, matches, steps
from servers import REPO_ROOT


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the reader has as /path/to/microweb: this repository's files."""
    ensure_installed(Path("/usr/bin/curl"), "curl")
    return copy_checkout(REPO_ROOT, tmp_path_factory.mktemp("microweb"))


@pytest.mark.e2e
@pytest.mark.parametrize("document", ["README.md", "docs/tutorial.md"])
def test_a_newcomer_follows_the_document(document: str, checkout: Path, tmp_path: Path) -> None:
    Walk(tmp_path, checkout).follow((REPO_ROOT / document).read_text())


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        pytest.param("a\nb", "a\r\nb\r\n", True, id="crlf-and-trailing-newline"),
        pytest.param("HTTP/1.1 200 OK", "HTTP/1.1 200 OK\nDate: x\nServer: y", True, id="date"),
        pytest.param("4 passed in ...", "4 passed in 0.12s", True, id="ellipsis"),
        pytest.param("...\ndone", "pip said\nmany things\ndone", True, id="ellipsis-lines"),
        pytest.param("Content-Length: 13", "Content-Length: 14", False, id="a-changed-value"),
        pytest.param("a", "a\nb", False, id="an-extra-line"),
    ],
)
def test_outputs_are_compared_as_the_text_says(expected: str, actual: str, same: bool) -> None:
    assert matches(expected, actual) is same


def test_a_document_is_read_as_files_and_commands_in_text_order() -> None:
    markdown = (
        "```python\n# file: a.py\nx = 1\n```\n"
        "```console\n$ python3 a.py \\\n  --flag\nout\n$ true\n```\n"
        "```sh\nnot run\n```\n"
    )
    assert steps(markdown) == [
        FileBlock("a.py", "# file: a.py\nx = 1\n"),
        Command("python3 a.py   --flag", "out\n"),
        Command("true", ""),
    ]


def test_a_python_block_that_names_no_file_is_refused() -> None:
    """An excerpt the reader cannot save as it is would drift from the code unseen."""
    with pytest.raises(ValueError, match="# file: NAME"):
        steps("```python\nx = 1\n```\n")
