r"""Calibration of the collapsed vMF likelihood: how much more the data vary than the model says.

The collapsed likelihood (:mod:`.model`) sees, at each input, the Gram matrix G of the per-capacity resultants. Its
curvature in the concentrations is the information the von Mises–Fisher law attributes to G; when the directions are
not vMF (anisotropic tangent noise, another radial law), G varies more than that, and a posterior built on the vMF
likelihood is too narrow. We measure the excess from seed-level moments and temper the likelihood by the ratio
(docs/bayes.md, "Calibration"):

* for one cell (family, capacity, input) with n valid seeds, E[u] = m mu and Sigma = Cov(u), the diagonal Gram entry
  :math:`G_{kk} = n + 2\sum_{a<b} u_a^\top u_b` has variance

  .. math:: \operatorname{Var} G_{kk} = 2n(n-1)\,[\,V_t + 2(n-1) V_r\,], \qquad
            V_t = \operatorname{tr}\Sigma^2, \quad V_r = E[u]^\top\Sigma E[u],

  whatever the law of u (independent seeds);
* the vMF gives :math:`V_t, V_r` in closed form from kappa (:func:`vmf_seed_moments`); the data give unbiased
  estimates from the cosines between seeds (:func:`sawdist.summaries.contrast_moments`);
* the weight is :math:`w = \sum_c \operatorname{Var}_\mathrm{vMF} G_c / \sum_c \widehat{\operatorname{Var}} G_c`
  over the cells of a family (kappa of a cell from its moment estimate of m), capped at 1.

Multiplying the log-likelihood by w makes its curvature match the actual variance of the score (the sandwich of a
misspecified likelihood, when the excess is one factor for every Gram entry); for isotropic tangent noise with a
radial law like the vMF's, w = d_eff/(d-1) with d_eff the participation ratio of the tangent scatter.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..special import vmf_kappa_from_mean_resultant_length, vmf_mean_resultant_length

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["MOMENT_VARIABLES", "Calibration", "SlopeHeterogeneity", "choose_centered", "choose_random_slope",
           "likelihood_weight", "vmf_seed_moments"]

#: The summary variables the calibration reads (:func:`sawdist.summaries.summarize` writes them).
MOMENT_VARIABLES = ("contrast_norm_product", "contrast_cross_square", "contrast_radial")


def vmf_seed_moments(dim: float, kappa: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``(tr Sigma, tr Sigma^2, E[u]' Sigma E[u])`` of one direction u ~ vMF(mu, kappa) on :math:`S^{d-1}`.

    With m = A_d(kappa) and the cosine t = mu'u: :math:`\operatorname{Var} t = A_d'(\kappa) = 1 - m^2 - (d-1)m/\kappa`,
    :math:`E[1 - t^2] = (d-1) m/\kappa` spread evenly over the d - 1 tangent directions, so
    :math:`\operatorname{tr}\Sigma = 1 - m^2`, :math:`\operatorname{tr}\Sigma^2 = (\operatorname{Var} t)^2 +
    ((d-1)m/\kappa)^2/(d-1)` and :math:`E[u]^\top\Sigma E[u] = m^2 \operatorname{Var} t`.

    Examples
    --------
    >>> from sawdist.bayes.calibration import vmf_seed_moments
    >>> tr, tr2, rad = vmf_seed_moments(3072, 3072.0)
    >>> int(tr**2 / tr2)  # participation ratio of the scatter: about d - 1
    3071
    """
    d = float(dim)
    kappa = np.asarray(kappa, dtype=np.float64)
    m = np.asarray(vmf_mean_resultant_length(d, kappa), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tangent = np.where(kappa > 0, (d - 1.0) * m / kappa, 1.0)  # E[1 - t^2]
        var_t = np.where(kappa > 1e6 * d, (d - 1.0) / (2.0 * kappa**2), 1.0 - m * m - tangent)
    var_t = np.maximum(var_t, 0.0)
    return 1.0 - m * m, var_t**2 + tangent**2 / (d - 1.0), m * m * var_t


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The likelihood weights of a summary, per family (:func:`likelihood_weight`).

    Attributes
    ----------
    families : list of str
    weight : ndarray (F,)
        w in (0, 1]: the factor on each family's log-likelihood.
    variance_ratio : ndarray (F,)
        Observed over vMF-predicted variance of the Gram diagonal (1 / w before the cap); NaN without moments.
    effective_dimension : ndarray (F,)
        Participation ratio (tr Sigma)^2 / tr Sigma^2 of the seed scatter, pooled over the family's cells (d - 1 for a
        vMF in high dimension).
    cells : ndarray (F,)
        Cells (capacity, input) with at least 4 valid seeds that entered.
    dim : int
    """

    families: list
    weight: np.ndarray
    variance_ratio: np.ndarray
    effective_dimension: np.ndarray
    cells: np.ndarray
    dim: int

    def describe(self) -> str:
        """One line per family for a report."""
        return "; ".join(f"{f}: w = {w:.3g} (seed-level variance {r:.3g}x the vMF's, d_eff = {e:.3g} of d = "
                         f"{self.dim}, {c} cells)" for f, w, r, e, c in zip(
                             self.families, self.weight, self.variance_ratio, self.effective_dimension, self.cells))


def _dim(summary, dim):
    """``dim``, or the summary's d (``n_features``, else the size of its ``feature`` dim)."""
    if dim is not None:
        return dim
    return int(summary["n_features"].values) if "n_features" in summary.variables else summary.sizes["feature"]


def _moment_kappa(summary, d):
    """(n, m_hat, kappa_hat) per (family, input, capacity): the unbiased moment estimate
    m_hat^2 = (G_kk - n)/(n(n-1)) of the Gram diagonal (clipped to [0.01, 1 - 1e-9]) and the vMF kappa with that m."""
    n = summary["count"].transpose("family", "input", "capacity").values.astype(np.float64)
    G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values
    gkk = np.diagonal(G, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = (gkk - n) / (n * (n - 1.0))
    m_hat = np.sqrt(np.clip(np.nan_to_num(m2, nan=0.0), 1e-4, (1.0 - 1e-9) ** 2))
    return n, m_hat, np.asarray(vmf_kappa_from_mean_resultant_length(d, m_hat), dtype=np.float64)


def likelihood_weight(summary: xr.Dataset, dim: int | None = None) -> Calibration:
    """The calibration weight w of each family of a summary (module docstring).

    Parameters
    ----------
    summary : xarray.Dataset
        From :func:`sawdist.summaries.summarize` or :func:`sawdist.bayes.simulate_summary`: ``gram``, ``count`` and
        the moments of :data:`MOMENT_VARIABLES`.
    dim : int, optional
        The dimension d (by default ``n_features`` or the size of the ``feature`` dim).

    Returns
    -------
    Calibration
        ``weight`` 1 for a family with no cell of 4 valid seeds (nothing to measure: the vMF likelihood as it is).

    Raises
    ------
    ValueError
        When the summary lacks a moment variable (a summary from before they existed: summarise the dataset again).
    """
    missing = [v for v in MOMENT_VARIABLES if v not in summary.variables]
    if missing:
        raise ValueError(f"'summary' must have the seed-level moments {', '.join(MOMENT_VARIABLES)} "
                         f"(sawdist.summarize writes them), got none named {missing[0]!r}.")
    dim = _dim(summary, dim)
    d = float(dim)
    cell = ("family", "capacity", "input")
    n = summary["count"].transpose(*cell).values.astype(np.float64)
    G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values
    gkk = np.diagonal(G, axis1=-2, axis2=-1).transpose(0, 2, 1)  # (F, K, N)
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = (gkk - n) / (n * (n - 1.0))
    m_hat = np.sqrt(np.clip(np.nan_to_num(m2, nan=0.0), 1e-6, (1.0 - 1e-9) ** 2))
    kappa = np.asarray(vmf_kappa_from_mean_resultant_length(d, m_hat), dtype=np.float64)
    _, vt_model, vr_model = vmf_seed_moments(d, kappa)
    norm, cross, radial = (summary[v].transpose(*cell).values for v in MOMENT_VARIABLES)
    ok = np.isfinite(norm) & np.isfinite(cross) & np.isfinite(radial) & (n >= 4)
    weight_n = np.where(ok, n * (n - 1.0), 0.0)
    predicted = np.where(ok, weight_n * (vt_model + 2.0 * (n - 1.0) * vr_model), 0.0).sum(axis=(1, 2))
    observed = np.where(ok, weight_n * (cross / 4.0 + 2.0 * (n - 1.0) * radial / 2.0), 0.0).sum(axis=(1, 2))
    cells = ok.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cells > 0, observed / predicted, np.nan)
        d_eff = np.where(cells > 0, np.where(ok, norm, 0.0).sum(axis=(1, 2)) / np.where(ok, cross, 0.0).sum(
            axis=(1, 2)), np.nan)
    weight = np.where(np.isfinite(ratio) & (ratio > 0), np.minimum(1.0, 1.0 / ratio), 1.0)
    return Calibration([str(f) for f in summary["family"].values], weight, ratio, d_eff, cells, int(dim))


#: :func:`choose_centered` centres the input effects when the likelihood's standard deviation of a_x is below this
#: fraction of the spread of the inputs. At a ratio of 0.25 (1000 inputs, 4 seeds, w = 0.0075) the centred form's
#: Laplace start fell into the funnel's neck (sigma ~ 1e-6, divergences) while the non-centred one sampled cleanly;
#: at 0.02 the centred form sampled cleanly and faster (benchmarks/calibration.py records the grid).
CENTERED_MAX_RATIO = 0.1


def choose_centered(summary: xr.Dataset, weight: ArrayLike = 1.0, dim: int | None = None) -> tuple[bool, float]:
    r"""Whether the input effects a_x should be centred: True when the data pin each a_x down more tightly than the
    inputs spread.

    For each input, the (tempered) likelihood's information on :math:`a_x = \log\kappa` is about
    :math:`I_x = w\sum_k n_k \kappa_k^2 A_d'(\kappa_k)` (n vMF directions carry :math:`n A_d'(\kappa)` on kappa), at
    the moment estimates :math:`\hat\kappa_k(x) = A_d^{-1}(\hat m_k(x))`. The spread of the inputs is the standard
    deviation over x of the mean over k of :math:`\log\hat\kappa_k(x)`, less its noise. The centred form suits
    :math:`\operatorname{median}_x I_x^{-1/2}` well below that spread (the posterior of a_x is then near its likelihood,
    and the non-centred form would funnel); otherwise the non-centred one.

    Returns
    -------
    (bool, float)
        The choice, and the ratio of the typical likelihood standard deviation of a_x to the input spread (inf when
        the inputs show no spread beyond their noise); centred when it is below :data:`CENTERED_MAX_RATIO`.
    """
    dim = _dim(summary, dim)
    d = float(dim)
    n, m_hat, kappa = _moment_kappa(summary, d)
    tr, _, rad = vmf_seed_moments(d, kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_t = np.where(m_hat > 0, rad / (m_hat * m_hat), 0.0)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (n.shape[0],))[:, None]
    info = w * np.nansum(n * kappa**2 * var_t, axis=-1)  # (F, N)
    sd_lik = 1.0 / np.sqrt(np.maximum(info, 1e-300))
    a_hat = np.log(kappa).mean(axis=-1)  # (F, N)
    noise = np.median(sd_lik**2, axis=1)  # variance of a_hat about a_x: about 1 / I_x
    spread = np.sqrt(np.maximum(np.var(a_hat, axis=1, ddof=1) - noise, 0.0)) if a_hat.shape[1] > 1 else np.zeros(
        a_hat.shape[0])
    with np.errstate(divide="ignore"):
        ratio = float(np.max(np.where(spread > 0, np.median(sd_lik, axis=1) / spread, np.inf)))
    return bool(ratio < CENTERED_MAX_RATIO), ratio


def _log_kappa_information(summary, d, weight):
    r"""(log kappa_hat, 1 / Var log kappa_hat) per (family, input, capacity), from the Gram diagonal.

    The moment estimate :math:`\hat m^2 = (G_{kk} - n)/(n(n-1))` is unbiased with variance
    :math:`\operatorname{Var} G_{kk}/(n(n-1))^2`, :math:`\operatorname{Var} G_{kk} = 2n(n-1)[V_t + 2(n-1)V_r]/w`
    (module docstring: the vMF's moments, and 1/w the excess the calibration measured). The delta method through
    :math:`\kappa = A_d^{-1}(m)`, :math:`d\log\kappa/d m^2 = 1/(2 m \kappa A_d'(\kappa))`, gives the variance of
    :math:`\log\hat\kappa`. The tangent term :math:`V_t` is the mean direction's own uncertainty: the information
    with mu known, :math:`n\kappa^2 A_d'(\kappa)`, would count only the radial term and overstate the precision by
    far when d is large and the seeds are few.
    """
    n, m_hat, kappa = _moment_kappa(summary, d)
    _, vt, vr = vmf_seed_moments(d, kappa)
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (n.shape[0],))[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        var_t = np.where(m_hat > 0, vr / (m_hat * m_hat), 0.0)  # A_d'(kappa) = Var t
        var_m2 = 2.0 * (vt + 2.0 * (n - 1.0) * vr) / (n * (n - 1.0) * w)
        info = (2.0 * m_hat * kappa * var_t) ** 2 / var_m2
    return np.log(kappa), np.where(np.isfinite(info) & (n >= 2), info, 0.0)


#: :func:`choose_random_slope` gives the inputs their own slopes when Cochran's test of equal slopes rejects at this
#: level in some family.
RANDOM_SLOPE_LEVEL = 0.01


@dataclasses.dataclass(frozen=True)
class SlopeHeterogeneity:
    """Cochran's test that every input has the same slope of log kappa against log k (:func:`choose_random_slope`).

    Attributes
    ----------
    families : list of str
    q : ndarray (F,)
        Cochran's Q: the precision-weighted sum of squares of the per-input slopes about their weighted mean.
    dof : ndarray (F,)
        Its degrees of freedom under equal slopes (inputs - 1).
    p_value : ndarray (F,)
        P(chi2(dof) >= q).
    tau : ndarray (F,)
        The DerSimonian–Laird estimate of the slopes' spread across inputs (0 when q <= dof).
    slope_sd : ndarray (F,)
        The median over inputs of the standard deviation of an input's slope estimate.
    """

    families: list
    q: np.ndarray
    dof: np.ndarray
    p_value: np.ndarray
    tau: np.ndarray
    slope_sd: np.ndarray

    @property
    def centered(self) -> bool:
        """Whether input slopes should be centred on beta (free per-input slopes) rather than non-centred: as
        :func:`choose_centered` for the intercepts, when each input's data pin its slope down well within the
        slopes' spread (``slope_sd < CENTERED_MAX_RATIO * tau`` in every family); a spread the data cannot resolve
        (tau ~ 0) gives the non-centred form, which has no funnel there."""
        with np.errstate(invalid="ignore"):
            return bool(np.all(self.slope_sd < CENTERED_MAX_RATIO * self.tau))


def choose_random_slope(summary: xr.Dataset, weight: ArrayLike = 1.0, dim: int | None = None,
                        level: float = RANDOM_SLOPE_LEVEL) -> tuple[bool, SlopeHeterogeneity]:
    r"""Whether the inputs need their own slopes: Cochran's test of equal slopes across inputs, per family.

    Each input's slope is the weighted least-squares fit of the moment estimates :math:`\log\hat\kappa_k(x)` against
    :math:`\log k`, weighted by their precisions :math:`I_{xk} = 1/\operatorname{Var}\log\hat\kappa_k(x)` (the
    calibrated variance of the Gram diagonal, through the delta method); its variance is
    :math:`v_x = 1/\sum_k I_{xk} (\log k - \overline{\log k}_x)^2`. Under equal slopes
    :math:`Q = \sum_x (\hat b_x - \bar b)^2 / v_x` (:math:`\bar b` the precision-weighted mean) is about
    :math:`\chi^2` with (inputs - 1) degrees of freedom: the random-effects meta-analysis test of heterogeneity. The
    weight w matters: under anisotropic noise the vMF variance understates the scatter by w, and the excess would look
    like slopes that differ.

    Parameters
    ----------
    summary : xarray.Dataset
        ``gram`` and ``count`` (as :func:`likelihood_weight`).
    weight : float or array_like over families
        The likelihood weight w (default 1).
    dim : int, optional
        The dimension d (by default ``n_features`` or the size of the ``feature`` dim).
    level : float
        Random slopes when the test rejects at this level in some family (default :data:`RANDOM_SLOPE_LEVEL`).

    Returns
    -------
    (bool, SlopeHeterogeneity)
        The choice, and the test per family.
    """
    from scipy import stats

    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"'level' must lie in (0, 1), got {level!r}.")
    dim = _dim(summary, dim)
    y, info = _log_kappa_information(summary, float(dim), weight)  # (F, N, K)
    x = np.log(np.asarray(summary["capacity"].values, dtype=np.float64))[None, None, :]
    sw = info.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        xbar = (info * x).sum(axis=-1, keepdims=True) / sw
        sxx = (info * (x - xbar) ** 2).sum(axis=-1)  # (F, N): precision of the input's slope
        slope = (info * (x - xbar) * y).sum(axis=-1) / sxx
    ok = np.isfinite(slope) & (sxx > 0)
    prec = np.where(ok, sxx, 0.0)
    b = np.where(ok, slope, 0.0)
    total = prec.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (prec * b).sum(axis=1) / total
        q = (prec * (b - mean[:, None]) ** 2).sum(axis=1)
        dof = ok.sum(axis=1) - 1.0
        p = np.where(dof > 0, stats.chi2.sf(q, np.maximum(dof, 1.0)), 1.0)
        c = total - (prec**2).sum(axis=1) / total
        tau = np.sqrt(np.maximum(np.where(c > 0, (q - dof) / c, 0.0), 0.0))
    with np.errstate(divide="ignore"):
        slope_sd = np.array([np.median(1.0 / np.sqrt(prec[f][ok[f]])) if ok[f].any() else np.inf
                             for f in range(prec.shape[0])])
    result = SlopeHeterogeneity([str(f) for f in summary["family"].values], q, dof, p, tau, slope_sd)
    return bool(np.any(p < level)), result
