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
* the Gram diagonal's weight is
  :math:`w_G = \sum_c \operatorname{Var}_\mathrm{vMF} G_c / \sum_c \widehat{\operatorname{Var}} G_c` over the
  cells of a family (kappa of a cell from its moment estimate of m), capped at 1.

Multiplying the log-likelihood by w makes its curvature match the actual variance of the score when the excess is
one factor for every Gram entry (the sandwich of a misspecified likelihood). A check of that assumption
(``Calibration.score_ratio``): to first order the score is linear in G, and the covariance of the Gram entries
(diagonal and across capacities) follows from two moments per cell, the cosines' variance (radial) and the tangent
covariance (:func:`_score_covariance`); their observed-to-vMF ratios per capacity give the score's covariance B
beside the vMF's A (the Fisher information), and :math:`\lambda_\max(A^{-1}B)` is the variance ratio of the
worst-calibrated direction of the log-concentrations. Where it exceeds :math:`1/w_G`, some direction's interval
would be too narrow by up to :math:`\sqrt{w_G\lambda_\max}`, so the weight is the smaller of the two,
:math:`w = \min(w_G, 1/\lambda_\max)`: the posterior is then at least as wide as the sandwich in every direction
(docs/bayes.md, "The weight").
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..special import vmf_kappa_from_mean_resultant_length, vmf_mean_resultant_length

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["MOMENT_VARIABLES", "Calibration", "SlopeHeterogeneity", "choose_centered", "choose_random_slope",
           "input_spread",
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
        w in (0, 1]: the factor on each family's log-likelihood, the smaller of :attr:`diagonal_weight` and
        1 / ``score_ratio`` (the diagonal's where the score's check is NaN).
    variance_ratio : ndarray (F,)
        Observed over vMF-predicted variance of the Gram diagonal; NaN without moments.
    score_ratio : ndarray (F,)
        A check of w: the largest ratio, over the directions of the log-concentrations, of the score's variance to
        the vMF's (its Fisher information), from the radial and tangent ratios; NaN without moments. Above
        1 / ``diagonal_weight``, the diagonal's weight alone would leave some direction's interval narrower than the
        sandwich's, to first order, by up to sqrt(score_ratio * diagonal_weight) (docs/bayes.md, "The weight"): which
        is why ``weight`` is at most its inverse.
    radial_ratio, tangent_ratio : ndarray (F, K)
        Per capacity, the observed over vMF variance of the cosines with mu and of the tangent scatter (tr Sigma^2
        less its radial part), pooled over inputs and shrunk towards the family's ratio by their noise.
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
    score_ratio: np.ndarray
    radial_ratio: np.ndarray
    tangent_ratio: np.ndarray
    effective_dimension: np.ndarray
    cells: np.ndarray
    dim: int

    @property
    def diagonal_weight(self) -> np.ndarray:
        """(F,) The Gram diagonal's weight alone: 1 / ``variance_ratio`` capped at 1 (1 where it is NaN)."""
        return _diagonal_weight(self.variance_ratio)

    @property
    def set_by_score(self) -> np.ndarray:
        """(F,) bool: where the score's worst direction, not the Gram diagonal, set ``weight``."""
        return np.asarray(self.weight) < self.diagonal_weight

    def describe(self) -> str:
        """One line per family for a report."""
        return "; ".join(
            f"{f}: w = {w:.3g}{' (set by the score)' if by else ''} (Gram diagonal {v:.3g}x the vMF's variance, "
            f"score up to {r:.3g}x; d_eff = {e:.3g} of d = {self.dim}, {c} cells)" for f, w, by, v, r, e, c in zip(
                self.families, self.weight, self.set_by_score, self.variance_ratio, self.score_ratio,
                self.effective_dimension, self.cells))


def _diagonal_weight(ratio):
    """1 / ratio capped at 1, and 1 where the ratio is not a positive number (nothing measured)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(ratio) & (ratio > 0), np.minimum(1.0, 1.0 / ratio), 1.0)


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
    return (n, *_moment_kappa_arrays(G, n, d))


def _moment_kappa_arrays(G, n, d):
    """(m_hat, kappa_hat) of :func:`_moment_kappa` from the Gram matrices (..., K, K) and counts (..., K)."""
    gkk = np.diagonal(G, axis1=-2, axis2=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m2 = (gkk - n) / (n * (n - 1.0))
    m_hat = np.sqrt(np.clip(np.nan_to_num(m2, nan=0.0), 1e-4, (1.0 - 1e-9) ** 2))
    return m_hat, np.asarray(vmf_kappa_from_mean_resultant_length(d, m_hat), dtype=np.float64)


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
    from scipy import linalg

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
    _, var_t, tau = _seed_covariance_parts(d, kappa)
    norm, cross, radial = (summary[v].transpose(*cell).values for v in MOMENT_VARIABLES)
    ok = np.isfinite(norm) & np.isfinite(cross) & np.isfinite(radial) & (n >= 4)

    def total(a, axis):
        return np.where(ok, a, 0.0).sum(axis=axis)

    # The Gram diagonal: Var G_kk = 2 n (n - 1) [V_t + 2 (n - 1) V_r], observed (unbiased moments) against the vMF's.
    weight_n = n * (n - 1.0)
    predicted = total(weight_n * (vt_model + 2.0 * (n - 1.0) * vr_model), (1, 2))
    observed = total(weight_n * (cross / 4.0 + 2.0 * (n - 1.0) * radial / 2.0), (1, 2))
    cells = ok.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cells > 0, observed / predicted, np.nan)
        d_eff = np.where(cells > 0, total(norm, (1, 2)) / total(cross, (1, 2)), np.nan)
    # Per capacity: the cosine variance (V_r = m^2 Var t) and the tangent part of tr Sigma^2 (its radial part is
    # Var t^2), each against the vMF's, pooled over inputs and shrunk towards the family's ratio by their noise.
    radial_ratio = _shrunk_ratio(radial / 2.0, vr_model, ok)
    tangent_ratio = _shrunk_ratio(cross / 4.0 - (radial_ratio[:, :, None] * var_t) ** 2, tau**2 / (d - 1.0), ok)
    # The score's covariance summed over inputs, vMF against measured; the largest generalised eigenvalue is the
    # variance ratio of the worst-calibrated direction of the log-concentrations (docs/bayes.md, "The weight").
    score_ratio = np.full(n.shape[0], np.nan)
    for f in range(n.shape[0]):
        if cells[f] == 0 or not np.all(np.isfinite(radial_ratio[f])) or not np.all(np.isfinite(tangent_ratio[f])):
            continue
        vmf = np.zeros((n.shape[1],) * 2)
        measured = np.zeros_like(vmf)
        for block in range(0, n.shape[2], _SCORE_BLOCK):  # (inputs, K, K, K) at a time
            part = slice(block, block + _SCORE_BLOCK)
            nb, kb = n[f, :, part].T, kappa[f, :, part].T
            vmf += _score_covariance(nb, kb, d).sum(axis=0)
            measured += _score_covariance(nb, kb, d, radial_ratio[f], tangent_ratio[f]).sum(axis=0)
        scale = np.sqrt(np.maximum(np.diagonal(vmf), 1e-300))
        vmf, measured = vmf / np.outer(scale, scale), measured / np.outer(scale, scale)
        # a direction the likelihood does not inform (no valid seeds at a capacity) is left out
        inform = np.diagonal(vmf) > 1e-12
        vmf, measured = vmf[np.ix_(inform, inform)], measured[np.ix_(inform, inform)]
        if vmf.size:
            score_ratio[f] = linalg.eigh(measured, vmf + 1e-12 * np.eye(len(vmf)), eigvals_only=True)[-1]
    diagonal = _diagonal_weight(ratio)
    # the smaller of the two (fmin: a NaN check leaves the diagonal's): a posterior as wide as the sandwich in every
    # direction; the wide cosine law's beta covered 42/83/88 % at 50/90/95 % with the diagonal's alone
    with np.errstate(divide="ignore"):
        weight = np.fmin(diagonal, np.where(score_ratio > 0, 1.0 / score_ratio, np.nan))
    return Calibration([str(f) for f in summary["family"].values], weight, ratio, score_ratio, radial_ratio,
                       tangent_ratio, d_eff, cells, int(dim))


def _shrunk_ratio(observed, predicted, ok):
    r"""Per (family, capacity), the ratio :math:`\hat r_k = \sum_x o_{kx} / \sum_x p_{kx}` of observed to predicted
    cell moments over the valid cells, shrunk towards the family's pooled ratio :math:`\bar r`:
    :math:`\bar r + \frac{\tau^2}{\tau^2 + s_k^2}(\hat r_k - \bar r)`, with :math:`s_k^2` the ratio estimate's
    variance from the scatter of its inputs (independent units), :math:`\sum_x (o_{kx} - \hat r_k p_{kx})^2 /
    (\sum_x p_{kx})^2`, and :math:`\tau^2` the spread of the capacities' ratios beyond that noise (the mean squared
    deviation less the mean :math:`s_k^2`, at least 0). A capacity's ratio from tens of cells of a few seeds can be
    off by a factor of 2 (measured on vMF data at small mean resultant length, where the cosines' variance is small
    against the tangent products that its estimate averages); the largest eigenvalue of the score's ratio would pick
    that up. Clipped at 0; a capacity without a valid cell takes the pooled ratio."""
    o, p = np.where(ok, observed, 0.0), np.where(ok, predicted, 0.0)
    cells = ok.sum(axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = p.sum(axis=2)
        ratio = o.sum(axis=2) / total
        pooled = o.sum(axis=(1, 2)) / p.sum(axis=(1, 2))
        noise = (np.where(ok, o - ratio[:, :, None] * p, 0.0) ** 2).sum(axis=2) / total**2
        noise = noise * cells / np.maximum(cells - 1.0, 1.0)
        has = (cells > 1) & np.isfinite(ratio) & np.isfinite(noise)
        spread = np.array([np.mean((ratio[f, h] - pooled[f]) ** 2) - np.mean(noise[f, h]) if h.any() else 0.0
                           for f, h in enumerate(has)])
        spread = np.maximum(spread, 0.0)[:, None]
        shrink = np.where(spread + noise > 0, spread / (spread + noise), 0.0)
        ratio = np.where(has, pooled[:, None] + shrink * (ratio - pooled[:, None]), pooled[:, None])
    return np.maximum(ratio, 0.0)


#: Inputs per block of :func:`likelihood_weight`'s score covariances (arrays of blocks x K^3).
_SCORE_BLOCK = 2048


def _seed_covariance_parts(dim, kappa):
    """(m, Var t, tangent trace) of a vMF direction: E[mu'u], the variance of its cosine t = mu'u, and the trace
    (d - 1) m / kappa of the tangent part of Cov(u), spread evenly over the d - 1 tangent directions."""
    tr, _, radial = vmf_seed_moments(dim, kappa)
    m = np.asarray(vmf_mean_resultant_length(dim, kappa), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_t = np.where(m > 0, radial / (m * m), 1.0 / dim)
    return m, var_t, np.maximum(tr - var_t, 0.0)


def _score_covariance(n, kappa, dim, radial_factor=1.0, tangent_factor=1.0):
    r"""Covariance (..., K, K) of the collapsed log-likelihood's score in log kappa at one input, to first order in
    the Gram matrix, when each direction of capacity k has the vMF's moments with its cosine variance scaled by
    ``radial_factor[k]`` and its tangent covariance by ``tangent_factor[k]``.

    The log-likelihood :math:`\ell = \sum_k n_k \log C_d(\kappa_k) - \log C_d(r)`, :math:`r^2 = \kappa^\top G\kappa`,
    moves with G by :math:`d\ell = c(r) \sum_{jl}\kappa_j\kappa_l\, dG_{jl}`, :math:`c = A_d(r)/(2r)`, so the score
    :math:`s_p = \partial\ell/\partial\log\kappa_p` moves by :math:`\sum_{jl} M^p_{jl}\, dG_{jl}` with
    :math:`M^p_{jl} = c'(r)\,(\partial r/\partial\log\kappa_p)\,\kappa_j\kappa_l + c\,\kappa_j\kappa_l(\delta_{jp} +
    \delta_{lp})`, taken at E[G]. Write each direction :math:`u_a = m_k\mu + e_a` (capacity k) and
    :math:`t_a = \mu^\top e_a`. For :math:`a \ne b`,
    :math:`u_a^\top u_b - m_j m_l = m_j t_b + m_l t_a + e_a^\top e_b`: a part linear in the cosines and a product of
    independent noises, uncorrelated with each other. So

    * the linear part of :math:`dG_{jl}` is :math:`n_j m_j T_l + n_l m_l T_j` (:math:`j \ne l`) or
      :math:`2 m_j (n_j - 1) T_j`, :math:`T_k = \sum_{a \in k} t_a`, :math:`\operatorname{Var} T_k = n_k V_k`;
    * the product part adds :math:`(2 M_{jl})^2 \operatorname{tr}(\Sigma_j\Sigma_l)` for each unordered pair of
      directions, :math:`\operatorname{tr}(\Sigma_j\Sigma_l) = V_j V_l + \tau_j\tau_l/(d - 1)` for vMF laws
      (:math:`\tau` the tangent trace), the tangent term scaled by :math:`\sqrt{f_j f_l}` with factors f (exact
      when the tangent covariances of the capacities are proportional).

    With both factors 1 this is the vMF's Fisher information (Bartlett's identity; checked against Monte Carlo in the
    tests). Cells with fewer than 2 seeds are left out.
    """
    d = float(dim)
    n = np.where(n >= 2, n, 0.0)
    K = n.shape[-1]
    m, var_t, tau = _seed_covariance_parts(d, kappa)
    eye = np.eye(K, dtype=bool)
    EG = np.where(eye, (n + n * (n - 1.0) * m * m)[..., :, None], (n * m)[..., :, None] * (n * m)[..., None, :])
    g_kappa = np.einsum("...jl,...l->...j", EG, kappa)
    r = np.sqrt(np.maximum(np.einsum("...j,...j->...", kappa, g_kappa), 1e-300))
    m_r, var_r, _ = _seed_covariance_parts(d, r)
    c = m_r / (2.0 * r)
    dc = (var_r * r - m_r) / (2.0 * r * r)  # A_d'(r) = Var t at r
    kk = kappa[..., :, None] * kappa[..., None, :]
    dr = kappa * g_kappa / r[..., None]  # dr / dlog kappa_p
    M = dc[..., None, None, None] * dr[..., :, None, None] * kk[..., None, :, :]
    M = M + c[..., None, None, None] * kk[..., None, :, :] * (np.eye(K)[:, :, None] + np.eye(K)[:, None, :])
    # linear part: the coefficient of T_k in sum_jl M^p_jl dG_jl
    off = np.where(eye, 0.0, M)
    lin = 2.0 * np.einsum("...pjk,...j->...pk", off, n * m)
    lin = lin + 2.0 * np.diagonal(M, axis1=-2, axis2=-1) * (m * (n - 1.0))[..., None, :]
    rad = var_t * radial_factor
    cov = np.einsum("...pk,...qk->...pq", lin * (n * rad)[..., None, :], lin)
    f = np.sqrt(tangent_factor)
    tr_jl = rad[..., :, None] * rad[..., None, :] + (f * tau)[..., :, None] * (f * tau)[..., None, :] / (d - 1.0)
    pairs = np.where(eye, (n * (n - 1.0) / 2.0)[..., :, None], n[..., :, None] * n[..., None, :] / 2.0)
    return cov + 4.0 * np.einsum("...pjl,...qjl,...jl->...pq", M, M, pairs * tr_jl)


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


def input_spread(summary: xr.Dataset, dim: int | None = None, law: str = "power") -> np.ndarray:
    r"""Per family, the standard deviation over inputs of the moment estimates of the input effects a_x: the start
    of the scale sigma of centred input effects (:func:`sawdist.bayes.fit_convergence`).

    The estimate of :math:`a_x` is the mean over the capacities with at least 2 directions of
    :math:`\log\hat\kappa_k(x)` (``law="logit_mean_resultant_length"``: of :math:`\operatorname{logit}\hat m_k(x)`),
    :math:`\hat m` the Gram diagonal's moment estimate. Its spread over inputs includes the estimates' noise, so it
    errs above sigma, on the side away from the funnel's neck (for the monotone law, whose a_x is the first
    capacity's level, the steps are common to all inputs and leave the spread unchanged).

    Returns
    -------
    ndarray (F,)
        NaN for a family with fewer than 2 inputs that have an estimate.
    """
    n, m_hat, kappa = _moment_kappa(summary, float(_dim(summary, dim)))
    level = np.log(m_hat / (1.0 - m_hat)) if law == "logit_mean_resultant_length" else np.log(kappa)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an input without any estimate: its mean is NaN
        a_hat = np.nanmean(np.where(n >= 2, level, np.nan), axis=-1)  # (F, N)
        return np.nanstd(a_hat, axis=-1, ddof=1)


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
