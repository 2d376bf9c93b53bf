"""Check the import graph of sawdist: no cycle, no arrow back up a layer, no private name imported across layers.

The layers follow the data path (docs/architecture.md)::

    core (distributions, special, fit, stats, io, ...)  <-  bayes  <-  analyses  <-  app
    core                                               <-  extraction           <-  app

The app is the command line: ``sawdist.cli``, ``python -m sawdist`` and the ``cli`` module of each package
(``sawdist.extraction.cli`` holds ``sawdist extract``, ``sawdist.analyses.cli`` holds ``run`` and ``report``).

A module may import from its own layer and from the layers it points to, never from a layer above it or beside it
(bayes and extraction know nothing of each other). Every import counts, also one inside a function: a lazy import
still makes the module depend on the other at run time. A name with a leading underscore stays inside its layer, and so
does a private module (one whose name, or the name of a package above it, starts with an underscore, such as
``sawdist._validation``): what another layer needs is public (``sawdist.checks``, ``sawdist.dependencies``). The one
exception is the command-line module of a package, which may use its own package's private modules (it drives them).

Usage: ``python tools/check_imports.py`` (exit status 1 and one line per violation when the graph is wrong).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: source folder -> the package name it is installed as (pyproject.toml's package-dir)
SOURCES = {"sawdist": "sawdist", "extraction": "sawdist.extraction", "analyses": "sawdist.analyses"}

#: layer -> the layers it may import from (besides itself)
ALLOWED = {
    "core": set(),
    "bayes": {"core"},
    "extraction": {"core"},
    "analyses": {"core", "bayes"},
    "app": {"core", "bayes", "extraction", "analyses"},
}


def layer_of(module: str) -> str:
    # the command-line modules are the application, wherever they live: each drives the package it sits in
    if module == "sawdist.__main__" or module.rpartition(".")[2] == "cli":
        return "app"
    for prefix, layer in (("sawdist.app", "app"), ("sawdist.cli", "app"), ("sawdist.bayes", "bayes"),
                          ("sawdist.extraction", "extraction"), ("sawdist.analyses", "analyses")):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "core"


def private_package(module: str) -> str | None:
    """The package that a private module is private to (``sawdist`` for ``sawdist._validation``), or None."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for folder, package in SOURCES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: dict[str, Path]):
    """Yield (line, imported module, imported names) for every import of a sawdist module in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sawdist":
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_package, node)
            if target.split(".")[0] != "sawdist":
                continue
            for alias in node.names:  # `from pkg import submodule` is an import of the submodule
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield node.lineno, sub, []
                else:
                    yield node.lineno, target, [alias.name]


def check(root: Path = ROOT) -> list[str]:
    """One line per violation in the tree at `root` (empty when the graph is right)."""
    known = modules(root)
    problems, graph = [], {m: set() for m in known}
    seen = set()
    for name, path in known.items():
        where = path.relative_to(root)
        for line, target, names in imports(name, path, known):
            if (name, line, target, tuple(names)) in seen:
                continue
            seen.add((name, line, target, tuple(names)))
            if target not in known:
                problems.append(f"{where}:{line}: imports {target}, which is not a module of sawdist")
                continue
            graph[name].add(target)
            src, dst = layer_of(name), layer_of(target)
            if dst != src and dst not in ALLOWED[src]:
                problems.append(f"{where}:{line}: {src} imports {target} ({dst}), a layer it must not depend on")
            owner = private_package(target)
            # a package's command-line module drives its own package, private modules included (not the core's:
            # sawdist.cli sits in `sawdist` but is no part of the core)
            own_cli = src == "app" and owner not in (None, "sawdist") and name.rpartition(".")[0] == owner
            message = f"{where}:{line}: imports the private module {target} ({dst})"
            if owner is not None and dst != src and not own_cli and message not in problems:  # once per import line
                problems.append(message)
            for n in names:
                if n.startswith("_") and not n.startswith("__") and dst != src:
                    problems.append(f"{where}:{line}: imports the private name {n} from {target} ({dst})")
    # cycles between modules; a package's __init__ importing its own submodules is not one (it is their parent)
    def parent_edge(a: str, b: str) -> bool:
        return b.startswith(a + ".") and known[a].name == "__init__.py"

    state, stack = {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if parent_edge(node, nxt) or parent_edge(nxt, node):
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(p)
    print(f"check_imports: {len(modules())} modules, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
