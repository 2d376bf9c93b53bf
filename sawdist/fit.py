"""``sawdist.fit``: the front door for fitting a rotationally symmetric distribution to directions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

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

__all__ = ["FitResult", "fit", "FAMILIES"]


def _fit_parametric(gen, mle: Callable, family: str) -> Callable[[np.ndarray], FitResult]:
    def fitter(x: np.ndarray) -> FitResult:
        mu, kappa, loglik = mle(x, "directions")
        dist = gen(mu, kappa)
        return FitResult(family=family, mu=mu, kappa=kappa,
                         mean_resultant_length=float(dist.mean_resultant_length()),
                         loglik=loglik, n=x.shape[0], dim=x.shape[1], n_skipped=0, distribution=dist)

    return fitter


#: family name -> function of validated float64 unit rows (n, d) -> FitResult. Later families register here.
FAMILIES: dict[str, Callable[[np.ndarray], FitResult]] = {
    "semiparametric": fit_semiparametric_rows,
    "vmf": _fit_parametric(vonmises_fisher, vmf_mle, "vmf"),
    "power_spherical": _fit_parametric(power_spherical, power_spherical_mle, "power_spherical"),
}


def fit(directions: ArrayLike | xr.DataArray, family: str = "semiparametric", *,
        normalize: bool = False) -> FitResult:
    """Fit a rotationally symmetric distribution to unit vectors.

    Parameters
    ----------
    directions : array_like of shape (n, d), or xarray.DataArray
        One direction per row. A DataArray may have any other dims (e.g. ``seed``, ``sample``); its feature dim is
        ``"feature"`` (else its last dim) and all other dims are flattened into rows. Rows containing NaN (invalid
        saliency directions) are skipped and counted in ``n_skipped``; an infinite entry elsewhere is an error.
    family : {"semiparametric", "vmf", "power_spherical"}
        The family to fit: ``"semiparametric"`` (default), a Saw distribution with a penalised-spline shape and
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
    >>> result = sawdist.fit(x, family="vmf")
    >>> abs(result.kappa / 500.0 - 1) < 0.03
    True
    """
    if family not in FAMILIES:
        choices = ", ".join(repr(f) for f in FAMILIES)
        raise ValueError(f"'family' must be one of {choices}, got {family!r}.")
    x, n_skipped = as_rows(directions, normalize=normalize,
                           hint="; pass normalize=True to scale rows to unit length")
    result = FAMILIES[family](x)
    result.n_skipped = n_skipped
    return result
