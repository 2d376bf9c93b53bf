"""Sphinx configuration of the sawdist documentation.

Build (from the repository root; warnings are errors, as in CI)::

    python3 -m sphinx -W --keep-going -b html docs docs/_build/html

The API pages under ``api/`` are generated at every build from the modules' ``__all__`` (see ``_ext/apigen.py``);
tutorials and the gallery are MyST Markdown notebooks executed by myst-nb during the build. Nothing is fetched
from the network (no intersphinx); MathJax is loaded by the reader's browser.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Document the checkout this file is in, not whatever sawdist happens to be installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "_ext"))
# The notebooks' kernels import from the same checkout.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

import apigen  # noqa: E402

import sawdist  # noqa: E402

# -- Project ----------------------------------------------------------------------------------------------------
project = "sawdist"
author = "sawdist developers"
copyright = "2026, sawdist developers"
version = release = sawdist.__version__

# -- Extensions -------------------------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "sphinx_design",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
exclude_patterns = ["_build", "_templates", "_ext", "**.ipynb_checkpoints", "conftest.py", "README.md"]
templates_path = ["_templates"]
default_role = "autolink"  # `name` links to the object when it exists and is set as code otherwise (as scipy)

# -- API reference ----------------------------------------------------------------------------------------------
_modules = apigen.public_modules()
_pages, _instances, _inherited_stop, _external_members = apigen.collect(_modules)
apigen.write_pages(HERE / "api", _pages)

autosummary_generate = True
autosummary_imported_members = True
autosummary_context = {"instances": _instances, "inherited_stop": _inherited_stop,
                       "external_members": _external_members}
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # the numpydoc Parameters section is the reference; signatures stay short
autodoc_mock_imports: list[str] = []
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

def _skip_external_overrides(app, what, name, obj, skip, options):
    """Skip class members that override a method of a base class from outside our packages."""
    if skip or what != "class" or name in apigen.EXTERNAL_OVERRIDES_SHOWN:
        return None
    qualname = getattr(obj, "__qualname__", "")
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    owner = getattr(module, qualname.split(".")[0], None) if "." in qualname else None
    if not isinstance(owner, type):
        return None
    for base in owner.__mro__[1:]:
        if not apigen._ours(base) and name in vars(base):
            return True
    return None


def _resolve_reexport(app, env, node, contnode):
    """Resolve a reference to a re-exported name (``sawdist.capacity.fit_family``) to its documented one."""
    canonical = apigen.ALIASES.get(node.get("reftarget", ""))
    if node.get("refdomain") != "py" or canonical is None:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node,
                                             contnode)


def setup(app):
    app.connect("autodoc-skip-member", _skip_external_overrides)
    app.connect("missing-reference", _resolve_reexport)


# -- MyST and notebooks -----------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "substitution"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
nb_execution_mode = "force"  # tutorials run at every build, against the checked-out code
# a bound on a cell that hangs, not a speed test (CI builds the docs while the floors' tests share its two cores)
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_kernel_rgx_aliases = {".*": "python3"}

# -- HTML -------------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sawdist {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": []}
html_show_sourcelink = True
