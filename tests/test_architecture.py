"""The import graph follows the layers of docs/architecture.md: no cycle, no arrow up or sideways, no private name
imported across layers (tools/check_imports.py, run here so that the README's test command checks it); and every
public function and method of the public modules is annotated."""

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_graph_follows_the_layers():
    assert _checker().check() == []


def test_the_checker_finds_a_cycle_an_arrow_up_and_a_private_import(tmp_path):
    files = {
        "sawdist/__init__.py": "",
        "sawdist/a.py": "from .b import helper\n",
        "sawdist/b.py": "def helper():\n    from . import a\n",  # a cycle, even through a lazy import
        "sawdist/stats.py": "from sawdist.bayes import model\n",  # core -> bayes: up
        "sawdist/bayes/__init__.py": "",
        "sawdist/bayes/model.py": "from ..stats import _secret\n",  # a private name across layers
        "extraction/__init__.py": "from sawdist.bayes import model\n",  # extraction -> bayes: sideways
        "analyses/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    problems = _checker().check(tmp_path)
    assert "import cycle: sawdist.a -> sawdist.b -> sawdist.a" in problems
    assert "sawdist/stats.py:1: core imports sawdist.bayes.model (bayes), a layer it must not depend on" in problems
    assert "sawdist/bayes/model.py:1: imports the private name _secret from sawdist.stats (core)" in problems
    assert ("extraction/__init__.py:1: extraction imports sawdist.bayes.model (bayes), a layer it must not depend "
            "on") in problems
    assert "import cycle: sawdist.bayes.model -> sawdist.stats -> sawdist.bayes.model" in problems
    assert len(problems) == 5, problems


def test_the_checker_finds_a_private_module_imported_across_layers(tmp_path):
    files = {
        "sawdist/__init__.py": "",
        "sawdist/_helper.py": "def f():\n    pass\n",
        "sawdist/fit.py": "from ._helper import f\n",  # core -> a private core module: its own layer
        "sawdist/bayes/__init__.py": "from .._helper import f\n",  # bayes -> a private core module
        "sawdist/bayes/_kernels.py": "",
        "sawdist/bayes/model.py": "from . import _kernels\n",  # its own layer
        "extraction/__init__.py": "import sawdist._helper\n",
        "analyses/__init__.py": "",
        "analyses/_common.py": "x = 1\n",
        "analyses/cli.py": "from ._common import x\nfrom sawdist import _helper\n",  # its own package's; the core's
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert sorted(_checker().check(tmp_path)) == [
        "analyses/cli.py:2: imports the private module sawdist._helper (core)",
        "extraction/__init__.py:1: imports the private module sawdist._helper (core)",
        "sawdist/bayes/__init__.py:1: imports the private module sawdist._helper (core)",
    ]


# --- type hints on the public API -------------------------------------------------------------------------------

#: The folders whose public modules are checked: sawdist (the core and sawdist.bayes), the analyses and the extraction
#: (installed as sawdist.analyses and sawdist.extraction).
ANNOTATED_FOLDERS = ("sawdist", "analyses", "extraction")

#: "path:qualified name" -> why it cannot be annotated sensibly. Keep it small: a hint that says Any says nothing.
NOT_ANNOTATABLE: dict[str, str] = {}

#: Dunder methods that are part of a class's public signature (how it is built and called).
PUBLIC_DUNDERS = ("__init__", "__call__")


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name in PUBLIC_DUNDERS


def annotated_modules(root: Path = ROOT) -> list[Path]:
    """The public modules (no path component starting with ``_``, ``__init__.py`` aside) of the checked folders."""
    found = []
    for folder in ANNOTATED_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root)
            if any(part.startswith("_") and part != "__init__.py" for part in rel.parts):
                continue
            found.append(path)
    return found


def _missing(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    """The parameters of ``fn`` without an annotation (self and cls of a method aside), and "return"."""
    args = fn.args
    positional = args.posonlyargs + args.args
    skip_first = method and positional and positional[0].arg in ("self", "cls")
    params = [(a.arg, a) for a in positional[1 if skip_first else 0:]] + [(a.arg, a) for a in args.kwonlyargs]
    if args.vararg:
        params.append(("*" + args.vararg.arg, args.vararg))
    if args.kwarg:
        params.append(("**" + args.kwarg.arg, args.kwarg))
    missing = [name for name, a in params if a.annotation is None]
    return missing + (["return"] if fn.returns is None else [])


def unannotated(root: Path = ROOT) -> list[str]:
    """``path:line: name lacks annotations of a, b, return`` for every public function and method (of a public
    class) of the public modules under ``root`` that misses one, not counting :data:`NOT_ANNOTATABLE`."""
    problems = []
    for path in annotated_modules(root):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), rel)
        # module level, including the branches of an `if` (e.g. a definition that depends on an import)
        todo = [(node, "") for node in tree.body]
        while todo:
            node, owner = todo.pop(0)
            if isinstance(node, ast.If):
                todo += [(child, owner) for child in node.body + node.orelse]
            elif isinstance(node, ast.ClassDef) and not owner and not node.name.startswith("_"):
                todo += [(child, node.name + ".") for child in node.body]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _is_public(node.name):
                name = owner + node.name
                missing = _missing(node, method=bool(owner))
                if missing and f"{rel}:{name}" not in NOT_ANNOTATABLE:
                    problems.append(f"{rel}:{node.lineno}: {name} lacks annotations of {', '.join(missing)}")
    return problems


def test_the_public_api_is_annotated():
    problems = unannotated()
    assert problems == [], "\n".join(problems)


def test_the_exemptions_name_what_exists():
    names = set()
    for path in annotated_modules():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names.update(f"{rel}:{node.name}.{child.name}" for child in node.body
                             if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(f"{rel}:{node.name}")
    assert set(NOT_ANNOTATABLE) <= names, sorted(set(NOT_ANNOTATABLE) - names)
    assert all(reason.strip() for reason in NOT_ANNOTATABLE.values())


def test_the_annotation_check_finds_what_is_missing(tmp_path):
    files = {
        "sawdist/__init__.py": "def __getattr__(name):\n    pass\n",  # module dunders are not API
        "sawdist/good.py": (
            "def f(x: int, *args: int, y: str = '', **kw: float) -> None: ...\n"
            "class A:\n"
            "    def __init__(self, a: int) -> None: ...\n"
            "    @classmethod\n"
            "    def make(cls) -> 'A': ...\n"
            "    def _private(self, z): ...\n"
            "    def __repr__(self): ...\n"
            "class _Hidden:\n"
            "    def method(self, q): ...\n"
            "def _helper(x): ...\n"
        ),
        "sawdist/bad.py": (
            "def f(x, y: int): ...\n"
            "class B:\n"
            "    def __call__(self, *values, **options) -> int: ...\n"
            "    @property\n"
            "    def size(self): ...\n"
            "if True:\n"
            "    def g(*, key) -> None: ...\n"
        ),
        "sawdist/_private.py": "def anything(x): ...\n",
        "sawdist/bayes/_kernel.py": "def kernel(x): ...\n",
        "analyses/report.py": "def markdown(findings) -> str: ...\n",
        "extraction/train.py": "async def train(model) -> None: ...\n",
        "docs/conf.py": "def setup(app): ...\n",  # not a checked folder
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert unannotated(tmp_path) == [
        "sawdist/bad.py:1: f lacks annotations of x, return",
        "sawdist/bad.py:3: B.__call__ lacks annotations of *values, **options",
        "sawdist/bad.py:5: B.size lacks annotations of return",
        "sawdist/bad.py:7: g lacks annotations of key",
        "analyses/report.py:1: markdown lacks annotations of findings",
        "extraction/train.py:1: train lacks annotations of model",
    ]
