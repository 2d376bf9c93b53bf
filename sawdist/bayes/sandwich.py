r"""The slope's sandwich: beta's interval from the scatter of the inputs' own scores.

The calibration weight w (:mod:`.calibration`) tempers the whole collapsed likelihood by one number, measured from
the Gram diagonal. The power law has two directions per input, its level a_x and the slope beta, and the need of
the two differs: under anisotropic tangent noise the slope needs 1.2-3x less tempering than the Gram diagonal
(docs/bayes.md, "What one weight cannot do"), and beta's intervals came out up to 1.4x too wide. This module
measures the slope's own need without a model of the noise, from the unit that is random: the input.

**The estimating equation.** With the intercepts a_x ~ N(alpha, sigma^2) and the likelihood tempered by w, the
posterior of beta concentrates where, to Laplace's approximation of each input's integral,

.. math:: \sum_x \psi_x(\beta) = 0, \qquad \psi_x = w\,\partial_\beta l_x(\tilde a_x, \beta),

:math:`\tilde a_x` the mode of :math:`w\,l_x(a, \beta) - (a - \alpha)^2 / 2\sigma^2`, and its precision is the
derivative :math:`H = -\sum_x d\psi_x/d\beta + 1/s_\beta^2` (the prior's scale :math:`s_\beta`),

.. math:: -\frac{d\psi_x}{d\beta} = w\,|l_{\beta\beta}| - \frac{w^2 l_{a\beta}^2}{w\,|l_{aa}| + \sigma^{-2}}

(:math:`d\tilde a_x/d\beta = -w\,l_{a\beta} / (w\,l_{aa} - \sigma^{-2})`). The inputs are independent given the
law, so the sampling variance of the root is :math:`J / H^2` with :math:`J = \operatorname{Var}\sum_x \psi_x`,
estimated by the scores' scatter :math:`\hat J = N/(N - 1) \sum_x (\psi_x - \bar\psi)^2`, whatever the law of the
directions: a sandwich whose middle is empirical. The posterior's variance is :math:`1/H`, so

.. math:: f^2 = \hat J / H

is the factor by which beta's posterior variance should change (1 for a well-specified model at w = 1; below 1
where w tempers the slope more than it needs). alpha and sigma are found by EM on the same approximation.

**The adjustment** (:func:`adjust_slope`, applied by :func:`sawdist.bayes.fit_convergence`): each draw of beta is
moved about the posterior mean m, with s its standard deviation,

.. math:: \beta' = m + s\,f\,t_{N-1}^{-1}\bigl(\Phi((\beta - m)/s)\bigr),

so that a normal posterior becomes the Student-t of scale f s and N - 1 degrees of freedom: the interval of a mean
whose variance is estimated from N independent units (at 10 inputs the scores' scatter is known to about +-45 %,
and the plain normal interval covered 85 % at 90 %; with the t, 90 %). The location is the sampled posterior's:
the default weight is where beta's estimate is unbiased at a typical truth (docs/bayes.md), and a slope tempered
more lightly would move it. The transform is monotone and common to all chains, so rank-based R-hat and ESS are
unchanged. Deterministics built on beta (``alpha``, ``kappa``, ``mean_resultant_length``, ``mu_concentration``)
follow it: :math:`\kappa' = \kappa\,e^{(\beta' - \beta)(\log k - \log k_\mathrm{ref})}`.

Precision: the derivatives are analytic. With :math:`g_k = \kappa_k[-n_k A_d(\kappa_k) + A_d(r)(G\kappa)_k / r]`,
:math:`r^2 = \kappa^\top G \kappa`, the Hessian in :math:`\eta_k = \log\kappa_k` is
:math:`\delta_{kl} g_k + \kappa_k\kappa_l[-\delta_{kl} n_k A'_d(\kappa_k) + A_d(r) G_{kl}/r
+ (G\kappa)_k(G\kappa)_l (A'_d(r)/r^2 - A_d(r)/r^3)]`, with
:math:`A'_d = 1 - A_d^2 - (d - 1)A_d/\kappa` computed from the complement :math:`q = 1 - A_d` as
:math:`q(2 - q) - (d - 1)(1 - q)/\kappa`: the two leading terms, each about (d - 1)/kappa, cancel to
:math:`A'_d \approx (d - 1)/2\kappa^2`, a relative rounding error of about :math:`2\kappa\epsilon` (2e-8 at
kappa = 1e8).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..special import bessel_ratio_complement
from ._kernels import resultant_concentration
from .calibration import _dim, _moment_kappa_arrays

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["SlopeSandwich", "adjust_slope", "sampled_posterior", "slope_sandwich"]

#: EM and Newton iterations of :func:`slope_sandwich` (each EM step is cheap: O(inputs x K^2)).
MAX_ITERATIONS = 200


@dataclasses.dataclass(frozen=True)
class SlopeSandwich:
    """The slope's sandwich per family (:func:`slope_sandwich`).

    Attributes
    ----------
    families : list of str
    variance_ratio : ndarray (F,)
        f^2: the sandwich's variance of beta over the tempered posterior's (NaN where not measured).
    dof : ndarray (F,)
        Its degrees of freedom: the inputs that entered, less 1.
    beta : ndarray (F,)
        beta at the root of the estimating equation (Laplace's approximation), for reference.
    weight : ndarray (F,)
        The likelihood weight w it was computed for.
    """

    families: list
    variance_ratio: np.ndarray
    dof: np.ndarray
    beta: np.ndarray
    weight: np.ndarray


def _mean_resultant_length_and_slope(d, kappa):
    """(A_d(kappa), A_d'(kappa)) elementwise, A_d' from the complement q = 1 - A_d (module docstring)."""
    q = np.asarray(bessel_ratio_complement(0.5 * d - 1.0, kappa), dtype=np.float64)
    return 1.0 - q, q * (2.0 - q) - (d - 1.0) * (1.0 - q) / kappa


def collapsed_derivatives(gram: np.ndarray, count: np.ndarray, d: float,
                          eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (N, K) and Hessian (N, K, K) of the collapsed log-likelihood of each input in eta = log kappa.

    ``gram`` (N, K, K), ``count`` (N, K) and ``eta`` (N, K); formulas in the module docstring.
    """
    kappa = np.exp(eta)
    gk = np.einsum("nkl,nl->nk", gram, kappa)
    r = resultant_concentration(kappa, gk)
    a_k, da_k = _mean_resultant_length_and_slope(d, kappa)
    a_r, da_r = _mean_resultant_length_and_slope(d, r)
    grad = kappa * (-count * a_k + (a_r / r)[:, None] * gk)
    outer = (da_r / r**2 - a_r / r**3)[:, None, None] * gk[:, :, None] * gk[:, None, :]
    hess = kappa[:, :, None] * kappa[:, None, :] * ((a_r / r)[:, None, None] * gram + outer)
    diag = grad - kappa**2 * count * da_k
    idx = np.arange(eta.shape[1])
    hess[:, idx, idx] += diag
    return grad, hess


def _family_sandwich(gram, count, d, x, w, beta_prior, kappa_start):
    """(f^2, dof, beta) for one family: gram (N, K, K), count (N, K), x = log k - log k_ref (K,)."""
    ok = (count > 0).sum(axis=1) >= 2  # an input with one capacity says nothing about the slope
    gram, count, kappa_start = gram[ok], count[ok], kappa_start[ok]
    N = len(gram)
    if N < 3:
        return np.nan, max(N - 1, 0), np.nan
    count = np.where(count > 0, count, 0.0)
    log_k0 = np.log(kappa_start)
    b = float(np.median((log_k0 - log_k0.mean(axis=1, keepdims=True)) @ x / (x @ x)))
    a = log_k0.mean(axis=1)  # x is centred: the intercept is the mean log-concentration
    alpha, sigma2 = float(a.mean()), max(float(a.var()), 1e-4)
    prior_loc, prior_scale = beta_prior
    ones = np.ones_like(x)

    def pieces(a, b):
        grad, hess = collapsed_derivatives(gram, count, d, a[:, None] + b * x[None, :])
        return (grad @ ones, grad @ x, np.einsum("k,nkl,l->n", ones, hess, ones),
                np.einsum("k,nkl,l->n", ones, hess, x), np.einsum("k,nkl,l->n", x, hess, x))

    ratio = np.nan
    for _ in range(MAX_ITERATIONS):
        for _ in range(MAX_ITERATIONS):  # the intercepts' modes given (b, alpha, sigma): Newton's method
            la, _, laa, _, _ = pieces(a, b)
            step = np.clip((w * la - (a - alpha) / sigma2) / (1.0 / sigma2 + w * np.maximum(-laa, 0.0)), -0.5, 0.5)
            a = a + step
            if np.max(np.abs(step)) < 1e-10:
                break
        la, lb, laa, lab, lbb = pieces(a, b)
        post_var = 1.0 / (1.0 / sigma2 + w * np.maximum(-laa, 0.0))
        alpha_new = float(a.mean())
        sigma2_new = max(float(np.mean((a - alpha_new) ** 2 + post_var)), 1e-12)
        psi = w * lb
        H = float(np.sum(w * -lbb - w**2 * lab**2 * post_var)) + 1.0 / prior_scale**2
        grad = float(psi.sum()) - (b - prior_loc) / prior_scale**2
        # uphill by a small step where the curvature is not yet positive (far from the root, (a, b) can sit
        # where the per-input likelihood is not jointly concave)
        step = float(np.clip(grad / H if H > 0 else 0.05 * np.sign(grad), -0.2, 0.2))
        previous, ratio = ratio, N / (N - 1.0) * float(np.sum((psi - psi.mean()) ** 2)) / H if H > 0 else np.nan
        alpha, sigma2, b = alpha_new, sigma2_new, b + step
        if abs(step) < 1e-8 and abs(ratio - previous) <= 1e-6 * ratio:
            break
    # Where the intercepts' spread is below their tempered noise, sigma's maximum is 0 and EM creeps towards it
    # (sigma^2 from 0.0008 to 0.0006 between iterations 100 and 200 at 100 inputs, d = 768); f^2 moves with it
    # by about 1 % per 50 iterations there. Stopping at MAX_ITERATIONS is what the calibration study measured
    # (benchmarks/slope_sandwich.py); a slope that has not found its root is not measured.
    if not (abs(step) < 1e-6 and H > 0):
        return np.nan, N - 1, b
    return ratio, N - 1, b


def _sandwich_arrays(gram, count, d, capacities, weight, beta_prior, families):
    """:func:`slope_sandwich` on arrays: gram (F, N, K, K), count (F, N, K)."""
    F = gram.shape[0]
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (F,))
    log_k = np.log(np.asarray(capacities, dtype=np.float64))
    x = log_k - log_k.mean()  # the model's k_ref: the geometric mean of the capacities
    count = np.asarray(count, dtype=np.float64)
    kappa0 = _moment_kappa_arrays(gram, count, float(d))[1]  # the start: the Gram diagonal's moment estimates
    out = [_family_sandwich(gram[f], count[f], float(d), x, float(w[f]), beta_prior, kappa0[f]) for f in range(F)]
    return SlopeSandwich([str(f) for f in families], np.array([o[0] for o in out], dtype=np.float64),
                         np.array([o[1] for o in out], dtype=np.float64), np.array([o[2] for o in out]),
                         np.array(w, dtype=np.float64))


def slope_sandwich(summary: xr.Dataset, weight: ArrayLike = 1.0, dim: int | None = None,
                   beta_prior: tuple[float, float] = (0.0, 1.0)) -> SlopeSandwich:
    r"""The sandwich's variance of beta over the tempered posterior's, per family, from the inputs' scores.

    The power law with shared mean direction (``convergence_model(law="power")``), one slope per family, each
    family its own architecture (module docstring for the estimating equation and its approximations).

    Parameters
    ----------
    summary : xarray.Dataset
        ``gram`` and ``count`` (:func:`sawdist.summaries.summarize`).
    weight : float or array_like over families
        The likelihood weight w the posterior is tempered by (default 1).
    dim : int, optional
        The dimension d (by default ``n_features`` or the size of the ``feature`` dim).
    beta_prior : (float, float)
        Location and scale of beta's normal prior (the model's default (0, 1)).

    Returns
    -------
    SlopeSandwich
        f^2 (``variance_ratio``) and its degrees of freedom per family; NaN where fewer than 3 inputs have at least 2
        capacities.
    """
    w = np.asarray(weight, dtype=np.float64)
    if not (np.all(np.isfinite(w)) and np.all(w > 0) and np.all(w <= 1)):
        raise ValueError(f"'weight' must lie in (0, 1], got {weight!r}.")
    scale = float(beta_prior[1])
    if not (np.isfinite(float(beta_prior[0])) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"'beta_prior' must be (location, scale > 0), got {beta_prior!r}.")
    d = _dim(summary, dim)
    gram = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values.astype(np.float64)
    count = summary["count"].transpose("family", "input", "capacity").values
    return _sandwich_arrays(gram, count, d, summary["capacity"].values, w, (float(beta_prior[0]), scale),
                            summary["family"].values)


def adjust_slope(posterior: xr.Dataset, sandwich: SlopeSandwich, log_k: np.ndarray, dim: float,
                 groups: tuple[np.ndarray, np.ndarray] | None = None) -> xr.Dataset:
    """The posterior with beta's draws moved to the sandwich's width (module docstring), and the deterministics built
    on beta moved with them. Families whose ``variance_ratio`` is NaN are left as sampled.

    ``log_k`` (K,) the log capacities of the posterior's ``capacity`` coordinate; ``groups``: (Gram matrices
    (A, N, K, K) per architecture, the family index of each architecture (A,)), to recompute ``mu_concentration``
    when each family is its own architecture.
    """
    from scipy import stats

    from ..special import vmf_mean_resultant_length

    beta = posterior["beta"]
    m = beta.mean(("chain", "draw"))
    s = beta.std(("chain", "draw"))
    f = xr.DataArray(np.sqrt(sandwich.variance_ratio), dims="family", coords={"family": beta["family"]})
    dof = xr.DataArray(sandwich.dof, dims="family", coords={"family": beta["family"]})
    usable = np.isfinite(f) & (s > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = ((beta - m) / s).clip(-8.0, 8.0)
        # the tail probability from the tail's side: norm.cdf(z) near 1 keeps only a few of its digits
        moved = m + s * f * xr.apply_ufunc(lambda z, v: np.sign(z) * stats.t.isf(stats.norm.sf(np.abs(z)), v), z, dof)
    new_beta = xr.where(usable, moved, beta).transpose(*beta.dims)
    shift = new_beta - beta
    out = posterior.copy()
    out["beta"] = new_beta
    out["beta_sampled"] = beta  # what leave-one-out's importance weights need: draws of the posterior itself
    if "alpha" in out:
        out["alpha"] = posterior["alpha"] - shift * float(np.mean(log_k))
        out["alpha_sampled"] = posterior["alpha"]
    if "kappa" in out:
        x = xr.DataArray(np.asarray(log_k) - np.mean(log_k), dims="capacity",
                         coords={"capacity": posterior["kappa"]["capacity"]})
        kappa = posterior["kappa"] * np.exp(shift * x)
        out["kappa"] = kappa.transpose(*posterior["kappa"].dims)
        if "mean_resultant_length" in out:
            out["mean_resultant_length"] = xr.apply_ufunc(
                lambda k: vmf_mean_resultant_length(dim, k), out["kappa"]).transpose(
                *posterior["mean_resultant_length"].dims)
        if groups is not None and "mu_concentration" in out:
            gram, order = groups
            k = out["kappa"].transpose("chain", "draw", "family", "input", "capacity").values[:, :, order]
            r = resultant_concentration(k, np.einsum("fnkl,cdfnl->cdfnk", gram, k))
            mu = posterior["mu_concentration"]
            out["mu_concentration"] = xr.DataArray(r, dims=("chain", "draw", "architecture", "input"),
                                                   coords={d_: mu[d_] for d_ in ("chain", "draw", "architecture",
                                                                                   "input")}).transpose(*mu.dims)
    out.attrs = dict(posterior.attrs)
    return out


def sampled_posterior(posterior: xr.Dataset) -> xr.Dataset:
    """The posterior's global parameters as sampled: ``beta`` and ``alpha`` from ``beta_sampled`` and
    ``alpha_sampled`` where :func:`adjust_slope` moved them (importance sampling, as in leave-one-input-out, needs
    draws of the posterior itself); the posterior unchanged otherwise."""
    if "beta_sampled" not in posterior:
        return posterior
    out = posterior.copy()
    out["beta"] = posterior["beta_sampled"]
    if "alpha_sampled" in posterior:
        out["alpha"] = posterior["alpha_sampled"]
    return out.drop_vars([v for v in ("beta_sampled", "alpha_sampled") if v in out])
