r"""Semi-parametric Saw fit: a parametric mean direction, a nonparametric shape.

The estimator and its derivation are in docs/theory/semiparametric.md; "identity N" refers to
docs/theory/identities.md.

The fit has three steps.

1. **Mean direction.** mu_hat = R / ||R||, the direction of the resultant (for capacity families, of a weighted
   resultant; :mod:`sawdist.capacity`). By symmetry it is unbiased *as a direction*, but in high dimension it is noisy:
   its cosine with the true mu is about rho = m / sqrt(m^2 + (1 - m^2)/n) (identity 4, the ensemble law).
2. **Bias-corrected cosines.** The naive cosines t_i = mu_hat' u_i are biased upward, because u_i is part of mu_hat:
   mu_hat' u_i = (1 + u_i' R_{-i}) / ||R||, and their mean is the plug-in ||R||/n, whose square exceeds the unbiased
   m^2 by about (1 - m^2)/n (identity 3) — at n = 20, d = 3072, m = 0.30 it reads 0.37. We use **leave-one-out
   cosines followed by a moment deconvolution through the unbiased m_hat**:

   * t~_i = u_i' R_{-i} / ||R_{-i}|| with R_{-i} = R - u_i: the direction is independent of u_i, so no self-match.
     Writing mu_{-i} = R_{-i}/||R_{-i}|| = rho_i mu + sqrt(1 - rho_i^2) w_i (w_i orthogonal to mu, independent of u_i),
     t~_i = rho_i t_i + sqrt(1 - rho_i^2) sqrt(1 - t_i^2) eps_i with eps_i = v_i' w_i, E eps = 0, Var eps = 1/(d-1).
     So the LOO cosines are *attenuated* (E t~ = rho m < m) and *blurred* by noise of the same order as the spread of
     t (both ~1/sqrt(d)) — leave-one-out alone trades an upward bias for a downward one.
   * rho_i is estimated as (n - 1) m_hat / ||R_{-i}|| (E mu'R_{-i} = (n - 1) m), with m_hat^2 = (||R||^2 - n)/(n(n-1))
     the unbiased estimate of identity 3, and the first two moments are deconvolved:
     Var t~ = rho^2 Var t + (1 - rho^2)(1 - m^2 - Var t)/(d - 1) is solved for Var t, and
     t_i^c = m_hat + s (t~_i - mean t~), s = sqrt(Var t / Var t~).
     The corrected cosines have mean exactly m_hat and the deconvolved variance; their shape is that of t~ (the
     blur is removed in its second moment only — a full deconvolution of the shape is not identified at small n).
     If the noise explains all the spread (Var t <= 0: tiny n or m ~ 0), the variance of a von Mises–Fisher
     cosine with mean m_hat is used instead, and ``bias_correction["fallback"]`` says so.

   Why this and not the alternatives: leave-one-out alone is biased down (above); the in-sample cosines are biased
   up; deconvolving through m_hat keeps the fitted mean resultant length equal to m_hat, whose square is unbiased,
   while the data still decide the shape. As n grows, rho -> 1, s -> 1 and t^c -> t~ -> t.
3. **Shape.** log psi is a penalised natural cubic spline fitted by maximum likelihood to the t^c under the base
   measure (1 - t^2)^((d-3)/2) (:mod:`sawdist._logspline`): knots at quantiles of the t^c, linear outside them,
   Newton steps on the concave exponential-family likelihood, smoothing chosen by AIC with effective degrees of
   freedom. The roughness penalty ignores linear functions, so the fitted E[t] equals mean t^c = m_hat.

The result is a frozen :func:`sawdist.saw` distribution about mu_hat with log psi the fitted spline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._logspline import SplineLogShape, fit_log_spline
from ._validation import as_rows, check_int, check_nonnegative
from .distributions._cosine import log1m_t2
from .results import SemiparametricFit

if TYPE_CHECKING:
    from collections.abc import Callable

    import xarray as xr
    from numpy.typing import ArrayLike

# fit_log_spline is public here: the analyses fit the cosine law of each capacity with it (sawdist.analyses.cosine_laws)
__all__ = ["SemiparametricFit", "SplineLogShape", "fit_log_spline", "fit_semiparametric"]


def vmf_cosine_variance(dim: int, m: float) -> float:
    """Var[t] of the von Mises–Fisher law with mean resultant length m: A'(kappa) = 1 - A^2 - (d-1) A / kappa."""
    from .special import vmf_kappa_from_mean_resultant_length

    m = float(np.clip(m, 0.0, 1.0 - 1e-12))
    if m < 1e-8:
        return 1.0 / dim  # kappa -> 0: the uniform cosine, Beta((d-1)/2, (d-1)/2) on (1+t)/2, variance 1/d
    kappa = float(vmf_kappa_from_mean_resultant_length(dim, m))
    return max(1.0 - m * m - (dim - 1) * m / kappa, 0.0)


def corrected_cosines(X: np.ndarray, dim: int, *, groups: np.ndarray | None = None, weights: np.ndarray | None = None,
                      mult: np.ndarray | None = None, m2: np.ndarray | None = None) -> dict:
    """Leave-one-out cosines and their moment deconvolution (module docstring, step 2).

    Parameters
    ----------
    X : ndarray (N, d)
        Valid unit rows.
    groups : ndarray (N,) of int, optional
        Group (capacity) label of each row, 0..G-1; default one group.
    weights : ndarray (G,), optional
        Weight of each group in the shared resultant S = sum_g w_g R_g; default 1.
    mult : ndarray (N,), optional
        Multiplicity of each row (bootstrap counts; 0 = absent); default 1. Leave-one-out leaves out every copy.
    m2 : ndarray (G,), optional
        Unbiased m^2 per group; computed here by default (pairs of distinct rows).

    Returns
    -------
    dict with ``mu`` (d,), ``t_in`` (N,) in-sample cosines, ``t_loo`` (N,), ``t_c`` (N,) corrected cosines, and per
    group ``m2``, ``m_plugin``, ``attenuation``, ``scale``, ``fallback``.
    """
    N = X.shape[0]
    groups = np.zeros(N, dtype=np.intp) if groups is None else groups
    G = int(groups.max()) + 1
    mult = np.ones(N) if mult is None else np.asarray(mult, dtype=np.float64)
    weights = np.ones(G) if weights is None else np.asarray(weights, dtype=np.float64)
    # Per-group resultants with multiplicity. Matrix-vector products go through einsum: OpenBLAS gemv/gemm with a
    # short dimension (N ~ 100 rows, or G ~ 8 groups) was measured 10-20x slower than the plain loop on 2 busy cores.
    if G == 1:
        Rg = (X.sum(axis=0) if np.all(mult == 1) else np.einsum("n,nd->d", mult, X))[None]
    else:
        Rg = np.stack([np.einsum("n,nd->d", mult[groups == g], X[groups == g]) for g in range(G)])
    n_g = np.bincount(groups, weights=mult, minlength=G)
    sq_g = np.bincount(groups, weights=mult**2, minlength=G)
    if m2 is None:
        # Pairs of distinct rows: sum_{i != j} c_i c_j u_i'u_j = ||R||^2 - sum c_i^2 (u_i'u_i = 1).
        with np.errstate(invalid="ignore", divide="ignore"):
            m2 = (np.einsum("gi,gi->g", Rg, Rg) - sq_g) / (n_g**2 - sq_g)
    m_hat = np.sqrt(np.maximum(m2, 0.0))
    S = weights @ Rg
    S2 = float(S @ S)
    a = np.einsum("nd,d->n", X, S)  # u_i'S
    wi = weights[groups] * mult  # the weight of row i (all its copies) in S
    # Leave row i (all copies) out: S_{-i} = S - w_i u_i, ||S_{-i}||^2 = ||S||^2 - 2 w_i a_i + w_i^2.
    norm_loo = np.sqrt(np.maximum(S2 - 2.0 * wi * a + wi**2, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t_loo = np.where(norm_loo > 0, (a - wi) / norm_loo, 0.0)
        t_in = a / np.sqrt(S2) if S2 > 0 else np.zeros(N)
        # rho_i = cos(mu, S_{-i}) with E[mu'S_{-i}] = sum_g w_g n_g m_g - w_i m_{g(i)}.
        mu_S = float(weights @ (n_g * m_hat))
        rho = np.clip(np.where(norm_loo > 0, (mu_S - wi * m_hat[groups]) / norm_loo, 0.0), 0.0, 1.0)
    mu = S / np.sqrt(S2) if S2 > 0 else np.full(X.shape[1], np.nan)
    t_c = np.empty(N)
    scale = np.empty(G)
    atten = np.empty(G)
    fallback = np.zeros(G, dtype=bool)
    for g in range(G):
        sel = (groups == g) & (mult > 0)
        c = mult[sel]
        tl = t_loo[sel]
        mean_l = np.average(tl, weights=c)
        var_l = np.average((tl - mean_l) ** 2, weights=c) * c.sum() / max(c.sum() - 1.0, 1.0)
        r2 = np.average(rho[sel] ** 2, weights=c)
        k = 1.0 - r2  # mean of 1 - rho_i^2
        denom = r2 - k / (dim - 1.0)
        var_t = (var_l - k * (1.0 - m2[g]) / (dim - 1.0)) / denom if denom > 0 else -1.0
        if not (var_t > 0 and np.isfinite(var_t)):
            var_t = vmf_cosine_variance(dim, m_hat[g])
            fallback[g] = True
        scale[g] = np.sqrt(var_t / var_l) if var_l > 0 else 1.0
        atten[g] = np.sqrt(r2)
        t_c[sel] = m_hat[g] + scale[g] * (tl - mean_l)
    t_c[mult <= 0] = np.nan
    t_c = np.clip(t_c, -1.0 + 1e-15, 1.0 - 1e-15)
    with np.errstate(invalid="ignore", divide="ignore"):
        m_plugin = np.linalg.norm(Rg, axis=1) / n_g
    return {
        "mu": mu,
        "t_in": t_in,
        "t_loo": t_loo,
        "t_c": t_c,
        "m2": m2,
        "m_plugin": m_plugin,
        "attenuation": atten,
        "scale": scale,
        "fallback": fallback,
    }


def fit_semiparametric(directions: ArrayLike | xr.DataArray, *, n_knots: int | None = None, lam: float | None = None,
                       bias_correction: bool = True) -> SemiparametricFit:
    """Fit a Saw distribution with a nonparametric shape: mu by the resultant, log psi by a penalised spline.

    This is ``sawdist.fit(directions, distribution="semiparametric")``. The method, the bias correction of the cosines
    and the smoothing criterion are described in the :mod:`sawdist.semiparametric` module docstring.

    Parameters
    ----------
    directions : array_like (n, d) or xarray.DataArray
        Unit vectors, one per row (a DataArray's non-feature dims are flattened into rows). NaN rows are skipped and
        counted in ``n_skipped``.
    n_knots : int, optional
        Number of spline knots (quantiles of the cosines), at least 2 (2 give a straight line, the vMF shape);
        default round(n^(1/3)) + 2, between 3 and 12.
    lam : float, optional
        Roughness penalty (in units of the standardised cosine), finite and >= 0; default chosen by AIC on a grid
        1e-4 .. 1e6.
    bias_correction : bool
        Fit the shape to the bias-corrected cosines (default). False fits the in-sample cosines mu_hat'u_i: the
        profile maximum-likelihood fit, which nests the vMF MLE but inherits the plug-in bias in high dimension.

    Returns
    -------
    SemiparametricFit
        ``distribution_name="semiparametric"``, ``mu``, ``mean_resultant_length`` (E[t] of the fit, equal to the
        unbiased m_hat when ``bias_correction``), ``loglik`` (sum of the fitted log density at the rows; with the
        correction the rows' in-sample cosines sit above the fitted band in high d, so this is below the profile
        maximum),
        ``distribution`` (a frozen :func:`sawdist.saw`), ``log_shape``, ``cosines``, ``bias_correction``,
        ``smoothing``.

    Examples
    --------
    >>> import numpy as np
    >>> import sawdist
    >>> from sawdist.semiparametric import fit_semiparametric
    >>> mu = np.zeros(64); mu[0] = 1.0
    >>> x = sawdist.vonmises_fisher(mu, 40.0).rvs(size=2000, rng=1)
    >>> res = fit_semiparametric(x)
    >>> m = sawdist.vonmises_fisher(mu, 40.0).mean_resultant_length()
    >>> res.distribution_name, res.n, bool(abs(res.mean_resultant_length - m) < 0.01)
    ('semiparametric', 2000, True)
    """
    if n_knots is not None:
        n_knots = check_int(n_knots, "n_knots", 2)
    if lam is not None:
        lam = check_nonnegative(lam, "lam")
    X, n_skipped = as_rows(directions)
    return fit_semiparametric_rows(X, n_skipped=n_skipped, n_knots=n_knots, lam=lam, bias_correction=bias_correction)


def fit_semiparametric_rows(X: np.ndarray, *, n_skipped: int = 0, n_knots: int | None = None, lam: float | None = None,
                            bias_correction: bool = True) -> SemiparametricFit:
    """The fit on validated float64 unit rows (n, d), n >= 2: the kernel of :func:`fit_semiparametric` and of
    ``sawdist.fit(..., distribution="semiparametric")``, both of which validate with
    :func:`sawdist._validation.as_rows`."""
    from .distributions import saw

    n, d = X.shape
    if n == 2 and not bias_correction:
        # u_1'R = 1 + u_1'u_2 = u_2'R: the two in-sample cosines are equal, and only rounding tells them apart.
        raise ValueError("'directions' must have at least 3 valid rows with bias_correction=False, got 2 (the "
                         "in-sample cosines of 2 rows are equal, so the shape is not identified).")
    cos = corrected_cosines(X, d)
    t_fit = cos["t_c"] if bias_correction else np.clip(cos["t_in"], -1.0 + 1e-15, 1.0 - 1e-15)
    if not np.all(np.isfinite(cos["mu"])):
        raise ValueError("'directions' must have a nonzero resultant, got R = 0 (no mean direction).")
    if np.unique(t_fit).size < 2:
        raise ValueError(f"'directions' must give at least 2 distinct cosines, got {np.unique(t_fit).size}.")
    # Cosines that differ by less than the rounding of a length-d dot product are equal in fact (rows placed
    # symmetrically about their mean): a spline through them is fitted to rounding noise.
    spread = float(np.ptp(t_fit))
    if spread <= 8.0 * d * np.finfo(float).eps:
        raise ValueError(f"'directions' must give at least 2 distinct cosines, got {t_fit.size} that differ by "
                         f"{spread:.3g} only, within rounding.")
    spline = fit_log_spline(t_fit, d, n_knots=n_knots, lam=lam)
    dist = saw(cos["mu"], spline.log_shape)
    log_c = float(dist.log_normalizer)
    t_in = np.clip(cos["t_in"], -1.0, 1.0)
    loglik = float(np.sum(spline.log_shape(t_in)) + n * log_c)
    correction = {
        "method": "leave-one-out cosines, mean and variance deconvolved through the unbiased m_hat"
        if bias_correction
        else "none (in-sample cosines)",
        "m_unbiased": float(np.sqrt(max(cos["m2"][0], 0.0))),
        "m_plugin": float(cos["m_plugin"][0]),
        "attenuation": float(cos["attenuation"][0]),
        "scale": float(cos["scale"][0]),
        "fallback": bool(cos["fallback"][0]),
    }
    smoothing = {
        "criterion": "AIC",
        "lam": spline.lam,
        "edf": spline.edf,
        "aic": spline.aic,
        "knots": spline.knots,
        "path": spline.path,
        "converged": spline.converged,
    }
    return SemiparametricFit(
        distribution_name="semiparametric",
        mu=cos["mu"],
        kappa=None,
        mean_resultant_length=float(dist.mean_resultant_length()),
        loglik=loglik,
        n=int(n),
        dim=int(d),
        n_skipped=int(n_skipped),
        distribution=dist,
        details={
            "bias correction": correction["method"],
            "m_hat (unbiased) / plug-in": f"{correction['m_unbiased']:.6g} / {correction['m_plugin']:.6g}",
            "smoothing": f"AIC: lam = {spline.lam:.3g}, edf = {spline.edf:.2f}, knots = {spline.knots.size}",
        },
        log_shape=spline.log_shape,
        cosines=t_fit,
        bias_correction=correction,
        smoothing=smoothing,
    )


def cosine_loglik(log_shape: Callable[[np.ndarray], ArrayLike], t: ArrayLike, dim: int, log_z: float) -> float:
    """sum_i log f_T(t_i) for a shape with cosine-law normalizer log_z (helper for tests and the family fit)."""
    t = np.asarray(t, dtype=np.float64)
    return float(np.sum(log_shape(t) + (dim - 3) / 2.0 * log1m_t2(t)) - t.size * log_z)
