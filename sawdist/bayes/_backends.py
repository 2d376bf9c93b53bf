"""Lazy registration of the Numba and JAX implementations of the custom Ops with PyTensor's linkers.

:mod:`._numba_ops` and :mod:`._jax_ops` register with ``numba_funcify`` and ``jax_funcify``, and importing them
imports Numba or JAX. Neither belongs in ``import sawdist.bayes`` (JAX alone takes seconds, and is optional), so
:func:`install` (called by ``sawdist/bayes/__init__.py``) registers each as soon as PyTensor's own dispatch module
for that backend is imported, which PyTensor does when a function is first compiled with ``mode="NUMBA"`` or
``mode="JAX"`` (or nutpie, numpyro or blackjax compile one): at once if it is already imported, else through a
post-import hook on ``sys.meta_path`` that runs the registration right after the dispatch module has loaded.
A backend whose library is missing is never imported, so nothing is registered for it and nothing fails.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import warnings

__all__ = ["install", "registered"]

#: PyTensor's dispatch module of each backend -> the sawdist module that registers the Ops with it.
TARGETS = {
    "pytensor.link.numba.dispatch": "sawdist.bayes._numba_ops",
    "pytensor.link.jax.dispatch": "sawdist.bayes._jax_ops",
}

_done: set[str] = set()


def _register(dispatch: str) -> None:
    if dispatch in _done:
        return
    _done.add(dispatch)
    try:
        importlib.import_module(TARGETS[dispatch])
    except Exception as err:  # noqa: BLE001 - a registration must never break the user's own import of PyTensor
        warnings.warn(f"sawdist.bayes could not register its Ops with {dispatch} ({type(err).__name__}: {err}); "
                      "graphs with them fall back to Python (object mode) there.", RuntimeWarning, stacklevel=2)


def registered() -> set[str]:
    """The backends' dispatch modules the Ops are registered with so far."""
    return {name for name in _done if TARGETS[name] in sys.modules}


class _Loader(importlib.abc.Loader):
    """Wraps a module's loader: loads the module, then registers the Ops with it."""

    def __init__(self, loader, dispatch: str):
        self._loader = loader
        self._dispatch = dispatch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _register(self._dispatch)

    def __getattr__(self, name):  # get_resource_reader, is_package, ... of the wrapped loader
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds PyTensor's dispatch modules with the other finders and wraps their loaders."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in TARGETS or fullname in _done:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_finder = _Finder()


def install() -> None:
    """Register with the backends already imported, and hook the others' import (idempotent)."""
    for dispatch in TARGETS:
        if dispatch in sys.modules:
            _register(dispatch)
    if not any(isinstance(f, _Finder) for f in sys.meta_path) and len(_done) < len(TARGETS):
        sys.meta_path.insert(0, _finder)
