"""sawdist: hyperspherical (Saw) distributions that work in high dimension.

The core (distributions, special functions, fitting, sample statistics, I/O) imports NumPy, SciPy and xarray only.
PyMC, ArviZ, matplotlib and PyTorch load when the features that need them are first used
(``sawdist.bayes``, ``sawdist.plots``, ``extraction``).
"""

import importlib

from . import special
from .capacity import fit_family
from .distributions import power_spherical, saw, uniform_direction, vonmises_fisher
from .fit import fit
from .results import FamilyFit, FitResult, SemiparametricFit
from .semiparametric import fit_semiparametric
from .summaries import summarize

__version__ = "0.1.0.dev0"

# Submodules with heavy dependencies are imported on first attribute access (PEP 562).
_LAZY_SUBMODULES = {"bayes", "plots", "stats", "io", "cli"}

__all__ = [
    "FamilyFit",
    "FitResult",
    "SemiparametricFit",
    "fit",
    "fit_family",
    "fit_semiparametric",
    "summarize",
    "power_spherical",
    "saw",
    "special",
    "uniform_direction",
    "vonmises_fisher",
    *sorted(_LAZY_SUBMODULES),
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY_SUBMODULES)
