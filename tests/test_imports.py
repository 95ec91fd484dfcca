"""The package's layers point one way: no import cycle, and every module imports first.

The import graph is read from the source: every ``import`` statement in a
module, wherever it is: at module level, under ``if TYPE_CHECKING:`` (a
cycle there is one a type checker, or a later refactoring, trips on), and
inside functions. An import in a function runs late, so a cycle through one
does not fail at import time; it is still two modules that need each other,
which a reader cannot put in order (errors -> debug_page -> errors was one).

Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b`` first,
so an import gives an edge to each package on the way, except the
importer's own packages: Python initialises a package before any of its
submodules, so they are initialised already. That is why a package's
``__init__`` may load its own submodules lazily (``microweb.__getattr__``,
``microweb.stores.__getattr__``) without making a cycle. A submodule that
imports a *name* its package's ``__init__`` defines (``from . import
__version__``) does depend on that ``__init__``: that is an edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "microweb"


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


MODULES = module_names()


def imported(name: str, path: Path) -> set[str]:
    """The microweb modules `name` imports (absolute names), in any function too."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            for alias in node.names:
                if f"{module}.{alias.name}" in MODULES:
                    found.add(f"{module}.{alias.name}")
                elif module in MODULES and MODULES[module].name == "__init__.py":
                    found.add(f"{module}.__init__")  # a name the package's __init__ defines
    return {module for module in found if module.removesuffix(".__init__") in MODULES}


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for module in imported(name, path):
            if module.endswith(".__init__"):  # a name from a package's __init__
                targets.add(module.removesuffix(".__init__"))
                continue
            parts = module.split(".")
            for end in range(1, len(parts) + 1):
                step = ".".join(parts[:end])
                # The importer's own packages are being initialised already.
                if not (name == step or name.startswith(step + ".")):
                    targets.add(step)
        edges[name] = targets - {name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    """The check above can fail: a package importing a module that imports it back."""
    edges = graph()
    edges["microweb.layer"] = {*edges["microweb.layer"], "microweb.middleware.cors"}
    assert find_cycle(edges) is not None


def test_leaf_modules_import_nothing_from_microweb() -> None:
    assert imported("microweb.http", MODULES["microweb.http"]) == set()
    assert imported("microweb.layer", MODULES["microweb.layer"]) == {"microweb.types"}


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Whatever a program imports first (``import microweb.sessions`` before anything)."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", f"import {name}"],
            cwd=PACKAGE.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in MODULES
        if name != "microweb.__main__"  # it runs the command line
    }
    failures = {}
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=60)
        if process.returncode:
            failures[name] = stderr.strip().splitlines()[-1]
    assert failures == {}


@pytest.mark.parametrize("name", ["microweb.http", "microweb.layer"])
def test_the_leaves_exist(name: str) -> None:
    assert name in MODULES
