"""Synthetic summaries from the convergence model's generative story, for tests, benchmarks and calibration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .. import uniform_direction, vonmises_fisher
from ..checks import as_generator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

__all__ = ["simulate_summary"]


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
        ``resultant``, ``count``, ``gram``, ``same_seed_gram``, ``same_seed_count``, ``n_features`` (as
        :func:`sawdist.summarize`; every direction is valid).
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
    for f in range(F):
        u = np.empty((K, n_seeds, N, dim))
        for k in range(K):
            m = mu[f] if shared_mean else mu[f, k]
            u[k] = vonmises_fisher.rvs(m, kappa[f, :, k], size=n_seeds, rng=gen)  # (seeds, N, d)
        resultant[f] = u.sum(axis=1)
        same_seed_gram[f] = np.einsum("ksxd,jsxd->xkj", u, u)
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
        },
        coords={"family": list(families), "capacity": capacities, "capacity_b": capacities,
                "input": np.arange(N), "feature": np.arange(dim)},
    )
    if return_truth:
        return summary, {"kappa": np.array(kappa), "mu": mu}
    return summary
