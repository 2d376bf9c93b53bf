"""The import graph follows the layers of docs/architecture.md: no cycle, no arrow up or sideways, no private name
imported across layers (tools/check_imports.py, run here so that the README's test command checks it)."""

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
