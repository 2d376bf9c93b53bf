"""Optional dependencies: import them on first use, or say in one sentence which extra installs them.

``pip install sawdist`` is the light core (NumPy, SciPy, xarray and the netCDF/HDF5 readers). PyMC and ArviZ
(``sawdist[bayes]``), matplotlib (``sawdist[plots]``) and PyTorch (``sawdist[extraction]``) load only when the
features that need them are used; ``sawdist[all]`` brings everything ``sawdist run`` needs.

Public so that every layer (``sawdist.bayes``, ``sawdist.extraction``, the plots) names a missing extra the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["MissingDependencyError", "ensure_installed", "require"]

#: import name -> (distribution name on the package index, the sawdist extra that installs it)
_PROVIDERS: dict[str, tuple[str, str]] = {
    "pymc": ("PyMC", "bayes"),
    "pytensor": ("PyMC", "bayes"),
    "arviz": ("ArviZ", "bayes"),
    "matplotlib": ("matplotlib", "plots"),
    "torch": ("PyTorch", "extraction"),
    "sklearn": ("scikit-learn", "extraction"),
    "PIL": ("Pillow", "extraction"),
    "tqdm": ("tqdm", "extraction"),
    "distributed": ("Dask distributed", "extraction"),
}


class MissingDependencyError(ImportError):
    """An optional dependency of the feature being used is not installed."""


def _missing(top: str, feature: str) -> MissingDependencyError:
    package, extra = _PROVIDERS[top]
    return MissingDependencyError(
        f"{feature} needs {package}, which is not installed; install it with: pip install 'sawdist[{extra}]'."
    )


def ensure_installed(*modules: str, feature: str) -> None:
    """Raise :class:`MissingDependencyError` unless every top-level package in ``modules`` is installed.

    Looks the packages up without importing them, so a command can refuse at once, before hours of work, and
    without paying for imports it may not need yet.

    Parameters
    ----------
    *modules : str
        Top-level import names (``"pymc"``, ``"torch"``).
    feature : str
        What needs them, for the message (``"sawdist.bayes"``).

    Raises
    ------
    MissingDependencyError
        Naming the first missing package and the extra that installs it.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise _missing(module, feature)


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``) for ``feature``; a missing package names the extra to install.

    Only the absence of the top-level package itself is translated: an ImportError raised *inside* an installed
    package (a broken install, a missing shared library) propagates unchanged, because installing the extra would
    not fix it.

    Parameters
    ----------
    module : str
        The module to import; its top-level package must be one the extras install.
    feature : str
        What needs it, for the message.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        When the top-level package is not installed, naming the extra that installs it.
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != top:
            raise
        raise _missing(top, feature) from None
