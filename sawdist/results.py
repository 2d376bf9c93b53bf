"""Result types of the fits and tests: :class:`FitResult` (:func:`sawdist.fit`), :class:`SemiparametricFit`
(:func:`sawdist.fit_semiparametric`), :class:`FamilyFit` (:func:`sawdist.fit_family`), :class:`RayleighResult`
(:func:`sawdist.stats.rayleigh_test`), :class:`SymmetryTestResult` (:func:`sawdist.stats.rotational_symmetry_test`)
and :class:`ShapeTestResult` (:func:`sawdist.stats.saw_shape_test`).

They live apart from the estimators so that every fitting module can build them without importing another; each
is also importable from the module that returns it and from :mod:`sawdist`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import is_dataarray

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

    from .distributions._cosine import BetaCosine, NumericCosine

    RandomLike = np.random.Generator | int | None

__all__ = ["FamilyFit", "FitResult", "RayleighResult", "SemiparametricFit", "ShapeTestResult", "SymmetryTestResult"]


@dataclass(repr=False)
class FitResult:
    """A fitted distribution with its data summary.

    Attributes
    ----------
    distribution_name : str
        The name of the fitted distribution, the ``distribution`` of :func:`sawdist.fit` (``"semiparametric"``,
        ``"vonmises_fisher"``, ``"power_spherical"``); ``distribution`` is the fitted distribution itself.
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

    distribution_name: str
    mu: np.ndarray
    kappa: float | None
    mean_resultant_length: float
    loglik: float
    n: int
    dim: int
    n_skipped: int
    distribution: Any
    details: dict = field(default_factory=dict)

    def logpdf(self, x: ArrayLike) -> np.ndarray | float:
        """Log density of the fitted distribution."""
        return self.distribution.logpdf(x)

    def pdf(self, x: ArrayLike) -> np.ndarray | float:
        """Density of the fitted distribution."""
        return self.distribution.pdf(x)

    def rvs(self, size: int | tuple[int, ...] | None = None, rng: RandomLike = None,
            random_state: RandomLike = None) -> np.ndarray:
        """Draws from the fitted distribution."""
        return self.distribution.rvs(size=size, rng=rng, random_state=random_state)

    @property
    def cosine(self) -> BetaCosine | NumericCosine:
        """Law of t = mu'u under the fitted distribution."""
        return self.distribution.cosine

    def mean(self) -> np.ndarray:
        """E[u] under the fitted distribution."""
        return self.distribution.mean()

    def entropy(self) -> np.ndarray | float:
        """Differential entropy of the fitted distribution."""
        return self.distribution.entropy()

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [
            f"sawdist fit: distribution={self.distribution_name}",
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
        return (f"FitResult(distribution_name={self.distribution_name!r}, dim={self.dim}, n={self.n}{kappa}, "
                f"mean_resultant_length={self.mean_resultant_length:.6g}, loglik={self.loglik:.6g})")


@dataclass(repr=False)
class SemiparametricFit(FitResult):
    """Result of the semi-parametric Saw fit: a :class:`~sawdist.FitResult` with the shape and its diagnostics.

    It has the attributes of :class:`~sawdist.FitResult` (with ``kappa`` None) and the following.

    Attributes
    ----------
    log_shape : SplineLogShape
        The fitted t -> log psi(t) (natural cubic spline, linear outside the knots), up to an additive constant.
    cosines : ndarray
        The bias-corrected cosines t^c the shape was fitted to (one per valid row).
    bias_correction : dict
        ``method``, ``m_unbiased`` (m_hat), ``m_plugin`` (||R||/n), ``attenuation`` (mean rho_i), ``scale`` (s),
        ``fallback`` (True if the vMF variance was used), see the module docstring.
    smoothing : dict
        ``criterion`` ("AIC"), ``lam``, ``edf``, ``aic``, ``knots`` and the grid ``path`` {lam: (edf, AIC)}.
    """

    log_shape: Any = None
    cosines: np.ndarray | None = None
    bias_correction: dict = field(default_factory=dict)
    smoothing: dict = field(default_factory=dict)


@dataclass(repr=False)
class FamilyFit:
    """Result of :func:`fit_family`. Per-capacity arrays follow ``capacities``; DataArrays for xarray input.

    Attributes
    ----------
    capacities : ndarray
        Capacity values k (sorted increasingly).
    mu : ndarray or xarray.DataArray
        Shared mean direction.
    mean_resultant_length : ndarray or xarray.DataArray
        m(k) = E_k[t] under the fitted shapes.
    m_se, m_lower, m_upper : ndarray or xarray.DataArray
        Bootstrap-over-seeds standard error and 95 % percentile interval of m(k) (NaN when ``n_boot=0``).
    m_unbiased, m_plugin : ndarray or xarray.DataArray
        Per-capacity sqrt(max(m2_hat, 0)) (identity 3) and ||R_k|| / n_k, before any smoothing.
    rho_predicted, rho_observed : ndarray or xarray.DataArray
        m(k1) m(k2) (identity 2 with the shared mean) and the observed mean cosine over pairs of different seeds.
    log_shapes : list of SplineLogShape
        t -> log psi_k(t) per capacity (up to a constant).
    distributions : list
        Frozen :func:`sawdist.saw` per capacity, about ``mu``.
    n, n_skipped : ndarray
        Valid and skipped (NaN) directions per capacity.
    dim : int
    smoothing : dict
        ``lam_z``, ``lam_k``, ``edf``, ``aic``, ``knots_z``, ``criterion``.
    """

    capacities: np.ndarray
    mu: Any
    mean_resultant_length: Any
    m_se: Any
    m_lower: Any
    m_upper: Any
    m_unbiased: Any
    m_plugin: Any
    rho_predicted: Any
    rho_observed: Any
    log_shapes: list
    distributions: list
    n: np.ndarray
    n_skipped: np.ndarray
    dim: int
    smoothing: dict = field(default_factory=dict)
    cosines: list = field(default_factory=list)

    def to_dataset(self) -> xr.Dataset:
        """All per-capacity results as an :class:`xarray.Dataset` (dims ``capacity``, ``capacity_1/2``, ``feature``)."""
        import xarray as xr

        k = self.capacities
        vec = {
            "mean_resultant_length": ("m(k) = E_k[t] of the fitted shape", self.mean_resultant_length),
            "m_se": ("bootstrap standard error of m(k)", self.m_se),
            "m_lower": ("bootstrap 2.5 % quantile of m(k)", self.m_lower),
            "m_upper": ("bootstrap 97.5 % quantile of m(k)", self.m_upper),
            "m_unbiased": ("unbiased per-capacity mean resultant length", self.m_unbiased),
            "m_plugin": ("plug-in mean resultant length ||R||/n", self.m_plugin),
            "n": ("valid directions", self.n),
            "n_skipped": ("skipped (NaN) directions", self.n_skipped),
        }
        data = {name: ("capacity", np.asarray(v), {"long_name": ln}) for name, (ln, v) in vec.items()}
        for name, ln, v in (
            ("rho_predicted", "predicted similarity m(k1) m(k2)", self.rho_predicted),
            ("rho_observed", "mean cosine over pairs of different seeds", self.rho_observed),
        ):
            data[name] = (("capacity_1", "capacity_2"), np.asarray(v), {"long_name": ln})
        data["mu"] = ("feature", np.asarray(self.mu), {"long_name": "shared mean direction"})
        coords = {"capacity": k, "capacity_1": k, "capacity_2": k}
        if is_dataarray(self.mu):
            coords.update({c: self.mu.coords[c] for c in self.mu.coords})
        return xr.Dataset(data, coords=coords, attrs={"smoothing": "AIC", "dim": self.dim})

    def summary(self) -> str:
        """A short human-readable report."""
        m = np.asarray(self.mean_resultant_length)
        se = np.asarray(self.m_se)
        mu_ = np.asarray(self.m_unbiased)
        mp = np.asarray(self.m_plugin)
        lines = [
            f"sawdist family fit: {len(self.capacities)} capacities, d = {self.dim}, shared mean direction",
            "  capacity      n  skipped    m(k)   (se)      m_hat  plug-in",
        ]
        for i, k in enumerate(self.capacities):
            lines.append(
                f"  {k!s:>8} {int(self.n[i]):6d} {int(self.n_skipped[i]):8d}  {m[i]:.4f} ({se[i]:.4f})"
                f"  {mu_[i]:.4f}  {mp[i]:.4f}"
            )
        s = self.smoothing
        lines.append(f"  smoothing (AIC): lam_z = {s['lam_z']:.3g}, lam_k = {s['lam_k']:.3g}, edf = {s['edf']:.2f}")
        return "\n".join(lines)

    def __repr__(self):
        return f"FamilyFit(capacities={list(self.capacities)}, dim={self.dim})"


@dataclass(frozen=True)
class RayleighResult:
    """Result of :func:`rayleigh_test`.

    Attributes
    ----------
    statistic : ndarray or xarray.DataArray
        ||R||^2.
    zscore : ndarray or xarray.DataArray
        (||R||^2 - n) / sqrt(2 n (n - 1) / d), standardised by the exact null moments.
    pvalue : ndarray or xarray.DataArray
        Upper-tail p-value (concentration makes ||R||^2 large).
    n, n_skipped : ndarray or xarray.DataArray
        Valid and skipped rows.
    dim : int
        Dimension d of the ambient space.
    method : str
        The null approximation used.
    """

    statistic: object
    zscore: object
    pvalue: object
    n: object
    n_skipped: object
    dim: int
    method: str


@dataclass(frozen=True)
class SymmetryTestResult:
    """Result of :func:`sawdist.stats.rotational_symmetry_test`.

    Attributes
    ----------
    statistic : float
        T, the sum over all kernels (pairs of tangent directions, or of tangent contrasts) of their squared cosine.
    expected : float
        E[T] under rotational symmetry, sum of 1/D over the kernels.
    variance : float
        Var[T] under rotational symmetry, sum of 2 (D - 1) / (D^2 (D + 2)) over the kernels (tests on disjoint sets of
        groups combine by adding statistic, expected and variance).
    zscore : float
        (T - E[T]) / sqrt(Var[T]).
    pvalue : float
        Upper-tail p-value (anisotropic tangent scatter makes T large).
    group_zscore : ndarray or xarray.DataArray
        The same standardisation per group (per input), NaN where a group has no kernel.
    effective_dimension : float
        1 / (mean squared cosine of the kernels): the participation ratio of the tangent scatter, D under the null,
        about the number of tangent directions that carry the variance under an anisotropic alternative.
    effective_dimension_interval : tuple of float
        Its 95 % interval, with the groups as the random units (NaN with fewer than 2 groups).
    reference_dimension : float
        D, the dimension of the space the kernels live in (d - 1, the tangent space; d for contrasts without an axis),
        the harmonic mean over the kernels.
    n_kernels, n_groups : int
        Kernels and groups that entered T.
    n, n_skipped : ndarray or xarray.DataArray
        Valid and skipped rows per group.
    dim : int
        Dimension d of the ambient space.
    mu_estimated : bool
        True when the axes were estimated from the directions (tangent contrasts), False when they were given.
    method : str
        The null approximation of the p-value (``'moments'`` or ``'normal'``).
    """

    statistic: float
    expected: float
    variance: float
    zscore: float
    pvalue: float
    group_zscore: object
    effective_dimension: float
    effective_dimension_interval: tuple
    reference_dimension: float
    n_kernels: int
    n_groups: int
    n: object
    n_skipped: object
    dim: int
    mu_estimated: bool
    method: str


@dataclass(frozen=True)
class ShapeTestResult:
    """Result of :func:`sawdist.stats.saw_shape_test`.

    Attributes
    ----------
    mean_difference : float
        Mean over the held-out directions of log p_semiparametric(t~) - log p_vMF(t~), the difference of the two
        laws' predictive log densities of the held-out cosine with the training mean direction, in nats per direction.
    se : float
        Its standard error, with ``units`` as the random units.
    interval : tuple of float
        The 95 % interval mean_difference -+ 1.96 se.
    verdict : str
        ``"semi-parametric better"`` (interval above ``margin``), ``"vMF adequate"`` (interval at or below
        ``margin``), or ``"inconclusive"``.
    margin : float
        The margin of the verdict rule (nats per direction).
    units : str
        ``"groups"`` (the intervals treat groups, e.g. inputs, as independent units) or ``"directions"`` (one group:
        the held-out directions are treated as independent, which ignores their weak dependence through the group's
        mean direction).
    group_difference : ndarray or xarray.DataArray
        Sum of the held-out differences per group, NaN where a group was skipped.
    n_heldout : ndarray or xarray.DataArray
        Held-out directions per group (0 where skipped).
    n_groups : int
        Groups that entered the test.
    n_folds : int
        Folds of the cross-validation over directions (seeds).
    dim : int
        Dimension d.
    """

    mean_difference: float
    se: float
    interval: tuple
    verdict: str
    margin: float
    units: str
    group_difference: object
    n_heldout: object
    n_groups: int
    n_folds: int
    dim: int
