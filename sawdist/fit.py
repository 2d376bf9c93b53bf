"""``sawdist.fit``: the front door for fitting a rotationally symmetric distribution to directions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ._validation import as_float_array, check_finite, unit_tolerance
from .distributions import power_spherical, vonmises_fisher

__all__ = ["FitResult", "fit", "FAMILIES"]


@dataclass(repr=False)
class FitResult:
    """A fitted distribution with its data summary.

    Attributes
    ----------
    family : str
        The fitted family (``"vmf"``, ``"power_spherical"``, ...).
    mu : ndarray, shape (d,)
        Estimated mean direction.
    kappa : float or None
        Estimated concentration (parametric families).
    mean_resultant_length : float
        E[mu'u] under the fitted distribution.
    loglik : float
        Log-likelihood of the used rows at the estimate.
    n, dim : int
        Rows used and dimension.
    n_skipped : int
        Rows skipped because they contained NaN (invalid directions).
    distribution : frozen distribution
        The fitted frozen distribution; ``logpdf``, ``pdf``, ``rvs``, ``cosine``, ``mean`` and ``entropy`` of this
        result delegate to it.
    """

    family: str
    mu: np.ndarray
    kappa: float | None
    mean_resultant_length: float
    loglik: float
    n: int
    dim: int
    n_skipped: int
    distribution: Any
    details: dict = field(default_factory=dict)

    def logpdf(self, x):
        """Log density of the fitted distribution."""
        return self.distribution.logpdf(x)

    def pdf(self, x):
        """Density of the fitted distribution."""
        return self.distribution.pdf(x)

    def rvs(self, size=None, rng=None):
        """Draws from the fitted distribution."""
        return self.distribution.rvs(size=size, rng=rng)

    @property
    def cosine(self):
        """Law of t = mu'u under the fitted distribution."""
        return self.distribution.cosine

    def mean(self):
        """E[u] under the fitted distribution."""
        return self.distribution.mean()

    def entropy(self):
        """Differential entropy of the fitted distribution."""
        return self.distribution.entropy()

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [
            f"sawdist fit: family={self.family}",
            f"  rows used      n = {self.n}  (skipped as NaN: {self.n_skipped})",
            f"  dimension      d = {self.dim}",
        ]
        if self.kappa is not None:
            lines.append(f"  concentration  kappa = {self.kappa:.6g}")
        lines += [
            f"  mean resultant length E[mu'u] = {self.mean_resultant_length:.6g}",
            f"  log-likelihood = {self.loglik:.6f}",
        ]
        for key, value in self.details.items():
            lines.append(f"  {key} = {value}")
        return "\n".join(lines)

    def __repr__(self):
        kappa = "" if self.kappa is None else f", kappa={self.kappa:.6g}"
        return (f"FitResult(family={self.family!r}, dim={self.dim}, n={self.n}{kappa}, "
                f"mean_resultant_length={self.mean_resultant_length:.6g}, loglik={self.loglik:.6g})")


def _fit_parametric(gen, family):
    def fitter(x):
        mu, kappa, loglik = gen._mle(x, "directions")
        dist = gen(mu, kappa)
        return FitResult(family=family, mu=mu, kappa=kappa,
                         mean_resultant_length=float(dist.mean_resultant_length()),
                         loglik=loglik, n=x.shape[0], dim=x.shape[1], n_skipped=0, distribution=dist)

    return fitter


def _fit_semiparametric(x):
    # sawdist.semiparametric imports FitResult from this module, so it is imported at call time
    from .semiparametric import _fit_valid_rows

    return _fit_valid_rows(x)


#: family name -> function of validated float64 unit rows (n, d) -> FitResult. Later families register here.
FAMILIES: dict[str, Callable[[np.ndarray], FitResult]] = {
    "semiparametric": _fit_semiparametric,
    "vmf": _fit_parametric(vonmises_fisher, "vmf"),
    "power_spherical": _fit_parametric(power_spherical, "power_spherical"),
}


def _as_rows(directions) -> np.ndarray:
    """(n, d) array from an array or an xarray DataArray whose last dim is the feature dim."""
    values = getattr(directions, "values", directions) if hasattr(directions, "dims") else directions
    arr = as_float_array(values, "directions")
    if arr.ndim < 2:
        raise ValueError(f"'directions' must have shape (n, d) (rows are directions), got shape {arr.shape}.")
    return arr.reshape(-1, arr.shape[-1])


def fit(directions, family: str = "semiparametric", *, normalize: bool = False) -> FitResult:
    """Fit a rotationally symmetric distribution to unit vectors.

    Parameters
    ----------
    directions : array_like of shape (n, d), or xarray.DataArray
        One direction per row. A DataArray may have any leading dims (e.g. ``seed``, ``sample``); its last dim is
        the feature dim and all other dims are flattened into rows. Rows containing NaN (invalid saliency
        directions) are skipped and counted in ``n_skipped``.
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
    x = _as_rows(directions)
    # One cheap pass (row sums) finds the rows that hold NaN or inf; only those are inspected further.
    suspect = np.nonzero(~np.isfinite(np.einsum("ij->i", x)))[0]
    nan_rows = suspect[np.isnan(x[suspect]).any(axis=1)]
    check_finite(np.delete(x[suspect], np.searchsorted(suspect, nan_rows), axis=0), "directions")
    n_skipped = len(nan_rows)
    if n_skipped:
        x = np.delete(x, nan_rows, axis=0)
    if x.shape[0] < 2:
        raise ValueError(f"'directions' must have at least 2 valid (non-NaN) rows, got {x.shape[0]}.")
    in_dtype = x.dtype if x.dtype.kind == "f" else np.float64
    x = np.asarray(x, dtype=np.float64)  # no copy for float64 input
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    if normalize:
        zero = norms == 0
        if np.any(zero):
            raise ValueError(f"'directions' has a zero row at index {int(np.argmax(zero))}, which has no direction.")
    else:
        # the unit check uses the tolerance of the input dtype (float32 saliency files pass)
        tol = unit_tolerance(x.shape[1], in_dtype)
        off = np.abs(norms - 1.0) > tol
        if np.any(off):
            i = int(np.argmax(off))
            raise ValueError(
                f"'directions' must contain unit vectors (|norm - 1| <= {tol:.2g}), got norm {float(norms[i])!r} "
                f"in row {i}; pass normalize=True to scale rows to unit length."
            )
    if normalize or in_dtype != np.float64:
        x = x / norms[:, None]
    result = FAMILIES[family](x)
    result.n_skipped = n_skipped
    return result
