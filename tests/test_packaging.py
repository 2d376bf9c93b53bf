"""What a distribution would package: the sdist and the wheel built from this checkout, as `python -m build` does.

The sdist must be complete enough to build the wheel from (build makes the wheel from the unpacked sdist), and
carry the licence, the tests with their reference scripts, and the docs; the wheel carries the licence and the
metadata pyproject.toml declares.
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    # Built from a copy of the checkout: pytest-xdist may run this fixture in two workers at once, and two builds in
    # one source tree race on its build/ and sawdist.egg-info/ (one of them failed so). What a docs build generates
    # (docs/_build, docs/jupyter_execute, docs/api) is left out: a docs build may be writing it.
    out, src = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("src") / "sawdist"
    skip = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".ruff_cache",
                                  ".hypothesis", "_build", "jupyter_execute", "*.nc")

    def ignore(folder, names):
        return skip(folder, names) | ({"api"} if Path(folder) == ROOT / "docs" else set())

    shutil.copytree(ROOT, src, ignore=ignore)
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)], check=True,
                   capture_output=True, text=True, timeout=600)
    (sdist,) = out.glob("sawdist-*.tar.gz")
    (wheel,) = out.glob("sawdist-*.whl")
    return sdist, wheel


#: Import names whose distribution on the package index is named otherwise.
DISTRIBUTION_OF = {"PIL": "pillow", "sklearn": "scikit-learn", "netCDF4": "netcdf4"}


@pytest.mark.parametrize("folder", ["sawdist", "extraction", "analyses"])
def test_every_import_is_declared(folder):
    """Each third-party package the code imports (at the top or lazily) is a dependency or in an extra of
    pyproject.toml: a package that only comes with another one may stop coming with it (Numba comes with PyTensor
    2.38, not with 2.28, which the PyMC floor installs). Fast: reads the sources, builds nothing."""
    import ast
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower().replace("_", "-") for r in requirements}
    missing = set()
    for path in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in sys.stdlib_module_names or top == "sawdist":
                    continue
                if DISTRIBUTION_OF.get(top, top).lower().replace("_", "-") not in declared:
                    missing.add(f"{path.relative_to(ROOT)}: {top}")
    assert not missing, sorted(missing)


def test_sdist_carries_licence_tests_and_docs(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for required in ("LICENSE", "README.md", "pyproject.toml", "install.sh", "tools/uv_options.py",
                     "tests/test_packaging.py",
                     "tests/reference/bessel_reference.py", "tests/reference/bessel_reference.csv",
                     "docs/conf.py", "docs/index.md"):
        assert required in names, required
    assert not any("__pycache__" in name or name.startswith("docs/_build/") for name in names)


def test_wheel_carries_licence_and_true_metadata(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(metadata).decode())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Requires-Python"] == ">=3.11"
    classifiers = meta.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression replaces them
    extras = set(meta.get_all("Provides-Extra"))
    assert {"bayes", "plots", "extraction", "all"} <= extras
    # the light core: no PyMC, matplotlib or torch without an extra
    core = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert not any(r.split(">")[0].split("=")[0].strip().lower() in {"pymc", "arviz", "matplotlib", "torch"}
                   for r in core), core
    top_level = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top_level == {"sawdist"}  # extraction/ and analyses/ install inside it
    modules = {n for n in names if n.endswith(".py")}
    expected = {f"sawdist/{p.relative_to(ROOT / 'sawdist').as_posix()}" for p in (ROOT / "sawdist").rglob("*.py")}
    for folder in ("extraction", "analyses"):
        expected |= {
            f"sawdist/{folder}/{p.relative_to(ROOT / folder).as_posix()}" for p in (ROOT / folder).rglob("*.py")
        }
    assert modules == expected
    assert "sawdist/py.typed" in names


LIGHT_CHECK = r"""
import sys
import numpy as np
import sawdist
from sawdist.dependencies import MissingDependencyError

x = sawdist.vonmises_fisher(np.eye(64)[0], 50.0).rvs(40, rng=0)
assert sawdist.fit(x).mean_resultant_length > 0
sawdist.stats.similarity_matrix  # the statistics and the reader load without the extras
sawdist.io.open_saliency
for heavy in ("pymc", "arviz", "matplotlib", "torch"):
    assert heavy not in sys.modules, heavy
try:
    import sawdist.bayes
except MissingDependencyError as err:
    print(err)
try:
    sawdist.plots.plot_cosine_laws(sawdist.fit(x))
except MissingDependencyError as err:
    print(err)
"""


def test_the_light_core_installs_and_works_without_the_extras(dist, tmp_path):
    _, wheel = dist
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # --no-compile: what is installed and what imports is tested, not Python's bytecode of every installed module
    # (compiling it took a third of this test, 11 s of 34 s)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-compile", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    done = subprocess.run([python, "-c", LIGHT_CHECK], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)  # not the checkout: the installed wheel is what runs
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sawdist.bayes needs PyMC, which is not installed; install it with: pip install 'sawdist[bayes]'.",
        "sawdist.plots needs matplotlib, which is not installed; install it with: pip install 'sawdist[plots]'.",
    ]


def test_uv_gets_pips_index_configuration(tmp_path):
    """install.sh and the floors' script hand uv what pip would use (tools/uv_options.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("uv_options", ROOT / "tools" / "uv_options.py")
    uv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(uv)
    listing = """global.extra-index-url='file:///a/simple file:///b/simple'
global.find-links='/opt/wheels'
global.cert='/etc/ca.crt'
global.timeout='60'
install.constraint='/etc/pip/constraints.txt'
:env:.find-links='/env/wheels'
:env:.index-url='https://mirror.example/simple'
global.no-index='false'
something unrelated
"""
    options = uv.pip_options(listing)
    assert options["find-links"] == "/env/wheels"  # :env: above the files, as pip ranks them
    args, env = uv.uv_options(options)
    assert args == ["--index-url", "https://mirror.example/simple", "--extra-index-url", "file:///a/simple",
                    "--extra-index-url", "file:///b/simple", "--find-links", "/env/wheels",
                    "--constraint", "/etc/pip/constraints.txt"]
    assert env == ["SSL_CERT_FILE=/etc/ca.crt", "UV_HTTP_TIMEOUT=60"]
    assert uv.uv_options(uv.pip_options("global.no-index='yes'\n")) == (["--no-index"], [])
    assert uv.uv_options(uv.pip_options("")) == ([], [])
    # the files the scripts read: this Python's own pip configuration
    uv.main(str(tmp_path))
    assert (tmp_path / "uv-args").is_file() and (tmp_path / "uv-env").is_file()
