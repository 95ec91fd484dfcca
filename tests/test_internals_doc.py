"""docs/internals.md names only code that exists, and its walk is what runs.

Two checks keep the chapter from drifting silently.

**What runs.** The names in bold backticks (``**`CORS.after`**``) are the
walk: the functions the chapter's request runs, in the order the chapter
tells them. The test serves that request (the chapter's ```http block) to
examples/secure_api.py in-process, under `wsgiref.validate`, records every
microweb and example function called (`sys.setprofile`), and fails when a
bold name is not called, or not after the one before it. It also checks
the chapter's count of frames from the server to the handler.

**What exists.** Every name in backticks that looks like code is checked
against the source (read with `ast`, so nothing is imported or run):

- ``Class.member``: a class of microweb or the examples that defines
  `member` (or inherits it from a class defined there);
- ``microweb.module.name``: a name defined at that module's top level;
- a lone ``snake_case_name`` or ``CamelCase`` name: defined somewhere (a
  function, class, method, parameter, or assigned name).

Anything else in backticks (``req.method``, ``os.execv``, ``Vary``,
``PATH_INFO``, quoted environ keys) is prose about other code, left alone.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from wsgi_call import Raw, call

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "docs" / "internals.md"
SOURCES = [*sorted((ROOT / "microweb").rglob("*.py")), ROOT / "examples" / "notes.py",
           ROOT / "examples" / "secure_api.py"]  # fmt: skip
CODE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(\))?")
CAMEL = re.compile(r"_?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")  # HookChain, RouteTable


class Index:
    """What the source defines: module top-level names, class members, every name."""

    def __init__(self) -> None:
        self.modules: dict[str, set[str]] = {}  # "microweb.http" -> top-level names
        self.classes: dict[str, list[tuple[set[str], list[str]]]] = {}  # name -> (members, bases)
        self.names: set[str] = set()
        for path in SOURCES:
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(path.read_text(), str(path))
            self.modules[module] = {name for node in tree.body for name in defined(node)}
            for node in ast.walk(tree):
                self.names.update(defined(node))
                if isinstance(node, ast.ClassDef):
                    # Methods, class attributes, and `self.x = ...` in any method.
                    members = {name for child in ast.walk(node) for name in defined(child)}
                    bases = [ast.unparse(base).rpartition(".")[2] for base in node.bases]
                    self.classes.setdefault(node.name, []).append((members, bases))

    def has_member(self, cls: str, member: str, depth: int = 0) -> bool:
        for members, bases in self.classes.get(cls, []):
            if member in members or (
                depth < 10 and any(self.has_member(base, member, depth + 1) for base in bases)
            ):
                return True
        return False

    def missing(self, text: str) -> list[str]:
        """The code-like names in `text` that the source does not define."""
        missing = []
        for span in re.findall(r"`([^`\n]+)`", text):
            if not CODE.fullmatch(span):
                continue
            name = span.removesuffix("()")
            parts = name.split(".")
            prefixes = [m for m in self.modules if name.startswith(m + ".")]
            module = max(prefixes, key=len) if prefixes else None  # the longest
            if module is not None:
                ok = name.rpartition(".")[2] in self.modules[module]
            elif parts[0] in self.classes and len(parts) == 2:
                ok = self.has_member(parts[0], parts[1])
            elif len(parts) == 1 and (snake_case(name) or CAMEL.fullmatch(name)):
                ok = name in self.names
            else:
                continue
            if not ok:
                missing.append(span)
        return missing


def snake_case(name: str) -> bool:
    return "_" in name and not name.isupper()


def defined(node: ast.AST) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)] + [
            t.attr for t in node.targets if isinstance(t, ast.Attribute)
        ]
    if isinstance(node, ast.AnnAssign):
        target = node.target
        return [target.id] if isinstance(target, ast.Name) else [getattr(target, "attr", "")]
    if isinstance(node, ast.arg):
        return [node.arg]  # a parameter: `start_response`, `environ`
    if isinstance(node, ast.ImportFrom):
        return [alias.asname or alias.name for alias in node.names]
    return []


def test_every_name_the_internals_chapter_mentions_exists() -> None:
    text = CHAPTER.read_text()
    assert Index().missing(text) == []
    assert text.count("`") > 200  # the chapter does name the code it follows


def test_a_renamed_function_would_be_caught() -> None:
    """The old chapter's drift: `json_encode` (now `json_bytes`), a method that never was."""
    stale = "`json_encode` `App.dispatch` `Reply.send` `microweb.http.evaluate` `HeaderGroup`"
    assert Index().missing(stale) == ["json_encode", "Reply.send", "HeaderGroup"]


# -- What runs: the walk ------------------------------------------------------------

WALK = re.compile(r"\*\*`([^`]+)`\*\*")  # **`name`**: a step of the walk
NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def chapter_request(text: str) -> tuple[str, str, dict[str, str]]:
    """The chapter's ```http block: method, path, and its headers as environ keys."""
    block = re.search(r"```http\n(.*?)\n```", text, re.DOTALL)
    assert block is not None, "the chapter shows its request in an ```http block"
    request_line, *fields = block.group(1).splitlines()
    method, path, _version = request_line.split()
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    return method, path, headers


class Trace:
    """The microweb and example functions one call runs, in call order, as
    ``(module, qualname)`` (``create_app.get_note``: ``<locals>`` left out)."""

    def __init__(self, handler: Any) -> None:
        self.calls: list[tuple[str, str]] = []
        self.handler_code = handler.__code__
        #: Our frames from the server to the handler, the handler's own included.
        self.handler_depth = 0

    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call" or not ours(frame):
            return
        qualname = frame.f_code.co_qualname.replace(".<locals>", "")
        self.calls.append((frame.f_globals["__name__"], qualname))
        if frame.f_code is self.handler_code:
            caller: FrameType | None = frame
            while caller is not None:
                self.handler_depth += ours(caller)
                caller = caller.f_back

    def serve(self, app: Any, method: str, path: str, headers: dict[str, str]) -> Raw:
        sys.setprofile(self.profile)
        try:
            return call(app, method, path, **headers)
        finally:
            sys.setprofile(None)


def ours(frame: FrameType) -> bool:
    return str(frame.f_globals.get("__name__", "")).startswith(("microweb", "examples"))


def runs_as(step: str, module: str, qualname: str) -> bool:
    """`step` as the chapter writes it names this call (a method, a function, a dotted path)."""
    return step in (qualname, f"{module}.{qualname}") or qualname.endswith("." + step)


def out_of_walk(steps: list[str], calls: list[tuple[str, str]]) -> list[str]:
    """The steps not called after the step before them (each looked for in order)."""
    wrong, position = [], 0
    for step in steps:
        found = next((i for i in range(position, len(calls)) if runs_as(step, *calls[i])), None)
        if found is None:
            wrong.append(step)
        else:
            position = found + 1
    return wrong


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Trace, Raw]:
    """The chapter's request, served the second time (caches warm, as the chapter tells it)."""
    method, path, headers = chapter_request(CHAPTER.read_text())
    # As in the chapter: CORS_ORIGINS names the request's Origin; the rest are defaults.
    monkeypatch.setenv("CORS_ORIGINS", headers["HTTP_ORIGIN"])
    for name in ("ALLOWED_HOSTS", "TRUSTED_PROXIES", "FORCE_HTTPS"):
        monkeypatch.delenv(name, raising=False)
    # The examples build their module-level app when first imported: not in the checkout.
    monkeypatch.setenv("NOTES_DB", str(tmp_path / "import.db"))
    from examples.notes import NoteStore, create_app
    from examples.secure_api import secure

    db = tmp_path / "notes.db"
    app = secure(create_app(db))
    store = NoteStore(db)
    while store.create("milk", "2 litres")["id"] < int(path.rpartition("/")[2]):
        pass
    handler, _params = app.router.match({"REQUEST_METHOD": method, "PATH_INFO": path, **headers})
    call(app, method, path, **headers)
    trace = Trace(handler)
    return trace, trace.serve(app, method, path, headers)


def test_the_walk_is_what_the_chapters_request_runs_in_that_order(
    served: tuple[Trace, Raw],
) -> None:
    trace, reply = served
    steps = WALK.findall(CHAPTER.read_text())
    assert reply.status == "200 OK"
    assert len(steps) > 20  # the walk does name the functions it follows
    wrong = out_of_walk(steps, trace.calls)
    calls = "\n".join(f"  {module}: {qualname}" for module, qualname in trace.calls)
    assert wrong == [], f"not called, or not in the chapter's order: {wrong}; ran:\n{calls}"


def test_the_chapters_frame_count_is_the_handlers_depth(served: tuple[Trace, Raw]) -> None:
    trace, _reply = served
    said = re.search(r"(\w+) frames from gunicorn to the handler", CHAPTER.read_text())
    assert said is not None
    assert NUMBERS[said.group(1).lower()] == trace.handler_depth


def test_a_walk_out_of_order_or_through_code_that_never_runs_would_be_caught(
    served: tuple[Trace, Raw],
) -> None:
    trace, _reply = served
    steps = WALK.findall(CHAPTER.read_text())
    swapped = [steps[1], steps[0], *steps[2:]]  # HookChain.__call__ before App.__call__
    assert out_of_walk(swapped, trace.calls) == [steps[0]]
    not_run = [*steps[:5], "ErrorHandlers.respond", *steps[5:]]  # nothing failed: no errors
    assert out_of_walk(not_run, trace.calls) == ["ErrorHandlers.respond"]
