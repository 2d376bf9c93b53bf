"""``sawdist.fit``: the front door for fitting a rotationally symmetric distribution to directions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ._validation import as_rows
from .distributions import power_spherical, vonmises_fisher
from .distributions.power_spherical import power_spherical_mle
from .distributions.vonmises_fisher import vmf_mle
from .results import FitResult
from .semiparametric import fit_semiparametric_rows

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

__all__ = ["DISTRIBUTIONS", "FitResult", "fit"]


def _fit_parametric(gen, mle: Callable, name: str) -> Callable[[np.ndarray], FitResult]:
    def fitter(x: np.ndarray) -> FitResult:
        mu, kappa, loglik = mle(x, "directions")
        dist = gen(mu, kappa)
        return FitResult(distribution_name=name, mu=mu, kappa=kappa,
                         mean_resultant_length=float(dist.mean_resultant_length()),
                         loglik=loglik, n=x.shape[0], dim=x.shape[1], n_skipped=0, distribution=dist)

    return fitter


#: distribution name -> function of validated float64 unit rows (n, d) -> FitResult. Later distributions register
#: here.
DISTRIBUTIONS: dict[str, Callable[[np.ndarray], FitResult]] = {
    "semiparametric": fit_semiparametric_rows,
    "vonmises_fisher": _fit_parametric(vonmises_fisher, vmf_mle, "vonmises_fisher"),
    "power_spherical": _fit_parametric(power_spherical, power_spherical_mle, "power_spherical"),
}


def fit(directions: ArrayLike | xr.DataArray, distribution: str = "semiparametric", *,
        normalize: bool = False) -> FitResult:
    """Fit a rotationally symmetric distribution to unit vectors.

    Parameters
    ----------
    directions : array_like of shape (n, d), or xarray.DataArray
        One direction per row. A DataArray may have any other dims (e.g. ``seed``, ``input``); its feature dim is
        ``"feature"`` (else its last dim) and all other dims are flattened into rows. Rows containing NaN (invalid
        saliency directions) are skipped and counted in ``n_skipped``; an infinite entry elsewhere is an error.
    distribution : {"semiparametric", "vonmises_fisher", "power_spherical"}
        The distribution to fit: ``"semiparametric"`` (default), a Saw distribution with a penalised-spline shape and
        bias-corrected cosines (:func:`sawdist.semiparametric.fit_semiparametric`); the others by maximum likelihood.
    normalize : bool
        If True, rows are scaled to unit norm first (a zero row is then an error). If False, rows must already
        be unit vectors within 10 eps sqrt(d) of the input's floating dtype (float32 saliency files pass).

    Returns
    -------
    FitResult

    Examples
    --------
    >>> import numpy as np
    >>> import sawdist
    >>> mu = np.zeros(3072); mu[0] = 1.0
    >>> x = sawdist.vonmises_fisher(mu, 500.0).rvs(size=5000, rng=0)
    >>> result = sawdist.fit(x, distribution="vonmises_fisher")
    >>> abs(result.kappa / 500.0 - 1) < 0.03
    True
    """
    if distribution not in DISTRIBUTIONS:
        choices = ", ".join(repr(name) for name in DISTRIBUTIONS)
        raise ValueError(f"'distribution' must be one of {choices}, got {distribution!r}.")
    x, n_skipped = as_rows(directions, normalize=normalize,
                           hint="; pass normalize=True to scale rows to unit length")
    result = DISTRIBUTIONS[distribution](x)
    result.n_skipped = n_skipped
    return result
