"""Synthetic summaries from the convergence model's generative story, for tests, benchmarks and calibration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .. import uniform_direction, vonmises_fisher
from ..checks import as_generator
from ..distributions.vonmises_fisher import vmf_cosines
from ..special import vmf_mean_resultant_length
from ..summaries import contrast_moments
from .calibration import MOMENT_VARIABLES
from .collapsed_random import _gram_factor

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

__all__ = ["SHAPES", "simulate_gram_summary", "simulate_summary"]


def simulate_summary(*, dim: int, capacities: ArrayLike, n_inputs: int, n_seeds: int, alpha: ArrayLike | None = None,
                     beta: ArrayLike = 0.5, sigma: ArrayLike = 0.3, kappa: ArrayLike | None = None,
                     families: Sequence[str] = ("family0",), shared_mean: bool = True,
                     rng: np.random.Generator | int | None = None, return_truth: bool = False,
                     random_state: np.random.Generator | int | None = None,
                     ) -> xr.Dataset | tuple[xr.Dataset, dict[str, np.ndarray]]:
    r"""Draw vMF directions with a power law of concentration and summarise them as :func:`sawdist.summarize` does.

    For each family and input x: mu(x) uniform on :math:`S^{d-1}` (one per capacity when ``shared_mean`` is
    False), :math:`\log\kappa_k(x) = \alpha + \sigma z_x + \beta\log k` with :math:`z_x \sim N(0, 1)`, and
    ``n_seeds`` directions from vMF(mu(x), kappa_k(x)) per capacity. Directions are drawn one family at a time and
    reduced to the summaries at once, so no dataset is ever in memory (one family's directions, K x n_seeds x inputs x
    d values, at most).

    Parameters
    ----------
    dim, capacities, n_inputs, n_seeds
        Dimension d, capacities k (> 0), number of inputs and of seeds per capacity.
    alpha, beta, sigma : float or array_like over families
        The law; ``alpha`` defaults to ``log(d) - beta * mean(log k)`` (kappa ~ d at the middle capacity).
    kappa : array_like, optional
        Concentrations (family, input, capacity) to use instead of the law.
    families : sequence of str
    shared_mean : bool
    rng : numpy.random.Generator or int, optional
    return_truth : bool
        Also return a dict with ``kappa`` (F, N, K) and ``mu`` (F, N, d) or (F, K, N, d).
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.

    Returns
    -------
    xarray.Dataset
        ``resultant``, ``count``, ``gram``, ``same_seed_gram``, ``same_seed_count``, ``n_features`` and the
        seed-level moments (as :func:`sawdist.summarize`; every direction is valid).
    """
    gen = as_generator(rng, random_state)
    capacities = np.asarray(capacities)
    F, K, N = len(families), len(capacities), int(n_inputs)
    log_k = np.log(capacities.astype(float))
    if kappa is None:
        beta = np.broadcast_to(np.asarray(beta, float), (F,))
        sigma = np.broadcast_to(np.asarray(sigma, float), (F,))
        alpha = (
            (np.log(dim) - beta * log_k.mean()) if alpha is None else np.broadcast_to(np.asarray(alpha, float), (F,))
        )
        alpha = np.broadcast_to(alpha, (F,))
        z = gen.standard_normal((F, N))
        kappa = np.exp(alpha[:, None, None] + sigma[:, None, None] * z[:, :, None] + beta[:, None, None] * log_k)
    kappa = np.broadcast_to(np.asarray(kappa, float), (F, N, K))
    mean_shape = (F, N) if shared_mean else (F, K, N)
    mu = uniform_direction(dim).rvs(size=mean_shape, rng=gen)
    resultant = np.empty((F, K, N, dim))
    same_seed_gram = np.empty((F, N, K, K))
    moments = {name: np.empty((F, K, N)) for name in MOMENT_VARIABLES}
    for f in range(F):
        u = np.empty((K, n_seeds, N, dim))
        for k in range(K):
            m = mu[f] if shared_mean else mu[f, k]
            u[k] = vonmises_fisher.rvs(m, kappa[f, :, k], size=n_seeds, rng=gen)  # (seeds, N, d)
        resultant[f] = u.sum(axis=1)
        same_seed_gram[f] = np.einsum("ksxd,jsxd->xkj", u, u)
        seed_gram = np.einsum("ksxd,kaxd->kxsa", u, u)  # (K, N, S, S)
        for name, value in zip(MOMENT_VARIABLES, contrast_moments(seed_gram, np.ones(seed_gram.shape[:-1], bool))):
            moments[name][f] = value
    gram = np.einsum("fkxd,fjxd->fxkj", resultant, resultant)
    count = np.full((F, K, N), n_seeds, dtype=np.int64)
    pair_dims = ("family", "input", "capacity", "capacity_b")
    summary = xr.Dataset(
        {
            "resultant": (("family", "capacity", "input", "feature"), resultant),
            "count": (("family", "capacity", "input"), count),
            "gram": (pair_dims, gram),
            "same_seed_gram": (pair_dims, same_seed_gram),
            "same_seed_count": (pair_dims, np.full((F, N, K, K), n_seeds, dtype=np.int64)),
            "n_features": ((), dim),
            **{name: (("family", "capacity", "input"), value) for name, value in moments.items()},
        },
        coords={"family": list(families), "capacity": capacities, "capacity_b": capacities,
                "input": np.arange(N), "feature": np.arange(dim)},
    )
    if return_truth:
        return summary, {"kappa": np.array(kappa), "mu": mu}
    return summary


#: The truths of :func:`simulate_gram_summary`: the law of one direction about mu(x), given its mean resultant
#: length m = E[mu'u] (the vMF's at the law's kappa).
SHAPES = ("vmf", "power_spherical", "wide", "projected_normal", "anisotropic_tangent")


def _cosines(shape, dim, m, kappa, size, gen, wide_factor):
    """Cosines t = mu'u with mean m: vMF(kappa); power spherical (t = 2B - 1, B Beta((d-1)/2 + k', (d-1)/2), k' so
    that E t = m); 'wide': a Beta cosine law with mean m and ``wide_factor`` times the vMF's variance."""
    if shape in ("vmf", "anisotropic_tangent"):
        return vmf_cosines(dim, np.broadcast_to(kappa, size), gen)[0]
    if shape == "power_spherical":
        k_ps = m * (dim - 1.0) / (1.0 - m)
        return 2.0 * gen.beta((dim - 1.0) / 2.0 + k_ps, np.full(size, (dim - 1.0) / 2.0)) - 1.0
    # 'wide': (1 + t)/2 ~ Beta with mean (1 + m)/2 and variance wide_factor * Var_vMF(t) / 4
    var_t = wide_factor * np.maximum(1.0 - m * m - (dim - 1.0) * m / kappa, 1e-300)
    mean_b, var_b = (1.0 + m) / 2.0, np.minimum(var_t / 4.0, 0.9 * (1.0 + m) * (1.0 - m) / 4.0)
    nu = mean_b * (1.0 - mean_b) / var_b - 1.0
    return 2.0 * gen.beta(mean_b * nu, (1.0 - mean_b) * nu, size=size) - 1.0


def _log_gamma_nodes(shape, n=128):
    r"""Nodes v and weights of :math:`E f(V)`, V ~ Gamma(``shape``, 1): Gauss–Hermite in s = log v about the mode of
    the density of s, :math:`k s - e^s - \log\Gamma(k)`, at 1.5x its scale :math:`1/\sqrt k` (log Gamma is skewed
    for small shapes), the Gaussian weight divided out in log space. In log v the branch point of
    :math:`1/\sqrt{c + v}` (c >= 0) lies at imaginary part pi whatever c, so the rule converges geometrically for
    the integrands below, fast for large shapes (1e-12 from shape 2.5 on with 128 nodes, against scipy's quad; at
    shape 1/2 only 1e-8). No large-order Laguerre weights to overflow at shapes in the thousands."""
    from scipy.special import gammaln, roots_hermite

    z, w = roots_hermite(n)
    h = np.sqrt(2.0) * 1.5 / np.sqrt(shape)
    s = np.log(shape) + h * z
    return np.exp(s), np.exp(np.log(w) + z * z + np.log(h) + shape * s - np.exp(s) - gammaln(shape))


def _projected_normal_scale(dim, rank, bulk, m):
    r"""The signal a with :math:`E[a/\sqrt{a^2 + \lVert z\rVert^2}] = m` for tangent noise z of unit trace, a spike
    of ``rank`` directions carrying 1 - ``bulk`` of the variance and the rest spread over the other d - 1 - rank:
    :math:`\lVert z\rVert^2 = 2\lambda_1 V + 2\lambda_0 W` with V ~ Gamma(rank/2), W ~ Gamma(rest/2) independent.

    The expectation on a grid of a: over W by Gauss–Hermite in log w (:func:`_log_gamma_nodes`; in the study's
    designs W/(rest/2) is within a few % of 1), over V by adaptive quadrature in s = log v, whose density
    :math:`e^{ks - e^s}/\Gamma(k)` is smooth for any shape k (a spike of one direction, k = 1/2, included). a at each
    m is the grid's inverse, by cubic Hermite interpolation with the exact slopes
    :math:`dE t/d\log a = E[a q/(a^2 + q)^{3/2}]`. Accurate to about 1e-10 in m (tests). A Monte-Carlo sample of
    ||z||^2, as before, put m off by a common 0.1-0.5 % in each dataset: a thousand inputs of 32 seeds see that, so
    the truth the fits were scored against was not the one simulated."""
    from scipy import integrate, interpolate
    from scipy.special import gammaln

    rest = dim - 1 - rank
    lam1, lam0 = (1.0 - bulk) / rank, (bulk / rest if rest > 0 else 0.0)
    w_nodes, w_weights = (_log_gamma_nodes(rest / 2.0, 48 if rest >= 100 else 128) if rest > 0
                          else (np.zeros(1), np.ones(1)))
    log_grid = np.linspace(np.log(1e-5), np.log(1e5), 3000)
    a = np.exp(log_grid)[:, None]
    k = rank / 2.0

    def integrand(s):  # density of s times (E t, dE t/dlog a) given V = e^s, at every a of the grid
        q = 2.0 * lam1 * np.exp(s) + 2.0 * lam0 * w_nodes[None, :]
        r2 = a * a + q
        t = a / np.sqrt(r2)
        return np.exp(k * s - np.exp(s) - gammaln(k)) * np.concatenate([t @ w_weights, (t * q / r2) @ w_weights])

    centre, width = np.log(k), 1.0 / np.sqrt(k)
    both = integrate.quad_vec(integrand, centre - 14 * width - 40 / k, centre + 10 * width + 4, points=[centre],
                              epsabs=1e-13, epsrel=1e-12)[0]
    value, slope = both[:log_grid.size], both[log_grid.size:]
    m = np.asarray(m, dtype=np.float64)
    if np.any((m <= value[0]) | (m >= value[-1])):
        raise ValueError(f"'m' must lie in ({value[0]:.3g}, {value[-1]:.6g}) for this noise, got "
                         f"{m.min():.3g} to {m.max():.6g}.")
    return np.exp(interpolate.CubicHermiteSpline(value, log_grid, 1.0 / slope)(m))


def simulate_gram_summary(*, dim: int, capacities: ArrayLike, n_inputs: int, n_seeds: int, beta: float = 0.5,
                          alpha_ref: float | None = None, sigma: float = 0.3, slope_sd: float = 0.0,
                          shape: str = "vmf", effective_dimension: float | None = None, bulk: float = 0.1,
                          wide_factor: float = 10.0, family: str = "family0",
                          rng: np.random.Generator | int | None = None) -> tuple[xr.Dataset, dict]:
    r"""A summary drawn without the directions, from the joint law of their cosines, under several truths.

    At each input x the K x S directions are :math:`u = t\mu + \sqrt{1 - t^2}\,v`: the cosines t from the law
    ``shape`` with mean :math:`m_k(x) = A_d(\kappa_k(x))`, the tangent parts v uniform on the sphere of
    :math:`\mu^\perp` (their inner products from a Bartlett factor, as :mod:`.collapsed_random`), except

    * ``"projected_normal"``: :math:`u = (a\mu + z)/\lVert a\mu + z\rVert` with Gaussian tangent noise z of
      covariance Sigma(x): 1 - ``bulk`` of its trace on ``effective_dimension`` random tangent directions (the same
      for every seed and capacity at x), the rest on the others; a per (x, k) so that E[mu'u] = m_k(x);
    * ``"anisotropic_tangent"``: t from the vMF cosine law, :math:`v = z/\lVert z\rVert` with z as above (only the
      tangent spread is anisotropic).

    The concentrations follow the power law :math:`\log\kappa_k(x) = a_x + (\beta + b_x)(\log k - \overline{\log k})`
    with :math:`a_x \sim N(\alpha_\mathrm{ref}, \sigma)` and random slopes :math:`b_x \sim N(0, \text{slope\_sd})`.
    Only the S x S cosines of the seeds at one input are drawn: O(inputs (K S)^2) numbers whatever d.

    Returns
    -------
    (xarray.Dataset, dict)
        The summary (``count``, ``gram``, ``same_seed_gram``, ``same_seed_count``, ``n_features`` and the seed-level
        moments; no ``resultant``), and the truth: ``alpha``, ``beta``, ``sigma``, ``alpha_ref``, ``kappa`` (N, K),
        ``m_typical`` (K) = A_d(kappa) of the typical input (a_x = alpha_ref, b_x = 0), ``participation_ratio`` of
        the tangent covariance (d - 1 when isotropic).
    """
    if shape not in SHAPES:
        raise ValueError(f"'shape' must be one of {', '.join(SHAPES)}, got {shape!r}.")
    gen = as_generator(rng)
    d = int(dim)
    capacities = np.asarray(capacities, dtype=np.float64)
    K, S, N = len(capacities), int(n_seeds), int(n_inputs)
    n = K * S
    log_k = np.log(capacities) - np.log(capacities).mean()
    alpha_ref = np.log(d) if alpha_ref is None else float(alpha_ref)
    a = alpha_ref + sigma * gen.standard_normal(N)
    b = slope_sd * gen.standard_normal(N)
    kappa = np.exp(a[:, None] + (beta + b[:, None]) * log_k[None, :])  # (N, K)
    m = np.asarray(vmf_mean_resultant_length(d, kappa), dtype=np.float64)
    slot = np.repeat(np.arange(K), S)  # direction i belongs to capacity slot[i]
    m_i, kappa_i = m[:, slot], kappa[:, slot]  # (N, n)
    anisotropic = shape in ("projected_normal", "anisotropic_tangent")
    if anisotropic:
        rank = int(round(effective_dimension))
        rest = d - 1 - rank
        lam1, lam0 = (1.0 - bulk) / rank, (bulk / rest if rest > 0 else 0.0)
        Y = gen.standard_normal((N, n, rank))
        Z = lam1 * Y @ np.swapaxes(Y, 1, 2)
        if rest > 0:
            A = _gram_factor(n, rest, N, gen)
            Z = Z + lam0 * A @ np.swapaxes(A, 1, 2)
        ratio = 1.0 / (lam1**2 * rank + lam0**2 * rest)
    else:
        A = _gram_factor(n, d - 1, N, gen)
        Z = A @ np.swapaxes(A, 1, 2)
        ratio = d - 1.0
    zn = np.sqrt(np.diagonal(Z, axis1=1, axis2=2))  # (N, n)
    if shape == "projected_normal":
        signal = _projected_normal_scale(d, rank, bulk, m_i)
        r = np.sqrt(signal**2 + zn**2)
        U = (signal[:, :, None] * signal[:, None, :] + Z) / (r[:, :, None] * r[:, None, :])
    else:
        t = _cosines(shape, d, m_i, kappa_i, m_i.shape, gen, wide_factor)
        s = np.sqrt(np.clip(1.0 - t * t, 0.0, None))
        V = Z / (zn[:, :, None] * zn[:, None, :])
        U = t[:, :, None] * t[:, None, :] + s[:, :, None] * s[:, None, :] * V
    U = U.reshape(N, K, S, K, S)
    gram = U.sum(axis=(2, 4))  # (N, K, K)
    same = np.einsum("xksjs->xkj", U)
    seed_gram = np.stack([U[:, k, :, k, :] for k in range(K)])  # (K, N, S, S)
    moments = contrast_moments(seed_gram, np.ones(seed_gram.shape[:-1], bool))
    pair_dims = ("family", "input", "capacity", "capacity_b")
    caps = capacities if not np.all(capacities == np.round(capacities)) else capacities.astype(np.int64)
    summary = xr.Dataset(
        {
            "count": (("family", "capacity", "input"), np.full((1, K, N), S, dtype=np.int64)),
            "gram": (pair_dims, gram[None]),
            "same_seed_gram": (pair_dims, same[None]),
            "same_seed_count": (pair_dims, np.full((1, N, K, K), S, dtype=np.int64)),
            "n_features": ((), d),
            **{name: (("family", "capacity", "input"), value[None]) for name, value in zip(MOMENT_VARIABLES, moments)},
        },
        coords={"family": [family], "capacity": caps, "capacity_b": caps, "input": np.arange(N)},
    )
    m_typ = np.asarray(vmf_mean_resultant_length(d, np.exp(alpha_ref + beta * log_k)), dtype=np.float64)
    truth = {"alpha": alpha_ref - beta * np.log(capacities).mean(), "beta": beta, "sigma": sigma,
             "alpha_ref": alpha_ref, "kappa": kappa, "m_typical": m_typ, "participation_ratio": float(ratio)}
    return summary, truth
