"""docs/internals.md names only code that exists, so the chapter cannot drift silently.

Every name in backticks that looks like code is checked against the source
(read with `ast`, so nothing is imported or run):

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
from pathlib import Path

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
