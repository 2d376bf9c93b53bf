"""Synthetic saliency datasets with a known answer (schema of docs/dataset.md), for tests, examples and calibration.

Directions of family f at capacity k and input x are von Mises–Fisher draws about mu_{f,k}(x) with the concentration
that gives a chosen mean resultant length m_f(k) (``kappa = A_d^{-1}(m)``). With ``shared_mean=True`` every capacity
of a family shares mu_f(x) (H2 true); with ``False`` each capacity has its own, independent uniform mean (H2 false).

Examples
--------
>>> from sawdist.analyses.synthetic import synthetic_dataset
>>> ds = synthetic_dataset(dim=16, capacities=[2, 8], m=[0.3, 0.6], n_seeds=4, n_inputs=5, rng=0)
>>> ds["direction"].dims
('family', 'capacity', 'seed', 'input', 'feature')
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike

__all__ = ["synthetic_dataset"]


def synthetic_dataset(*, dim: int, capacities: Sequence[int], m: ArrayLike, n_seeds: int, n_inputs: int,
                      families: Sequence[str] = ("family0",), shared_mean: bool = True,
                      shared_across_families: bool = False, invalid_fraction: float = 0.0,
                      rng: np.random.Generator | int | None = None,
                      random_state: np.random.Generator | int | None = None) -> xr.Dataset:
    """A saliency dataset of vMF directions with known m(k) and shared or separate mean directions.

    Parameters
    ----------
    dim : int
        Dimension d of the inputs.
    capacities : sequence of int
        Capacities k.
    m : array_like (capacity,), (family, capacity) or (family, capacity, input)
        Mean resultant length m_f(k) = E[mu'u] of every family and capacity (and input), in [0, 1).
    n_seeds, n_inputs : int
        Seeds per (family, capacity) and inputs.
    families : sequence of str
    shared_mean : bool
        One mean direction per (family, input) shared by the capacities (H2), or one per capacity.
    shared_across_families : bool
        The families share their mean directions too (one architecture).
    invalid_fraction : float
        Fraction of directions marked invalid (NaN), at random.
    rng : numpy.random.Generator or int, optional
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.
    """
    from sawdist import uniform_direction, vonmises_fisher
    from sawdist.checks import as_generator
    from sawdist.special import vmf_kappa_from_mean_resultant_length

    gen = as_generator(rng, random_state)
    caps = np.asarray(capacities)
    F, K = len(families), caps.size
    m = np.asarray(m, dtype=float)
    m = np.broadcast_to(m if m.ndim == 3 else np.broadcast_to(m, (F, K))[..., None], (F, K, n_inputs))
    kappa = np.asarray(vmf_kappa_from_mean_resultant_length(dim, m), dtype=float)
    n_mu = 1 if shared_across_families else F
    mu_shape = (n_mu, n_inputs) if shared_mean else (n_mu, K, n_inputs)
    mu = uniform_direction(dim).rvs(size=mu_shape, rng=gen)
    u = np.empty((F, K, n_seeds, n_inputs, dim))
    for f in range(F):
        fm = 0 if shared_across_families else f
        for k in range(K):
            centre = mu[fm] if shared_mean else mu[fm, k]
            u[f, k] = vonmises_fisher.rvs(centre, kappa[f, k], size=n_seeds, rng=gen)
    valid = gen.random(u.shape[:-1]) >= invalid_fraction
    u[~valid] = np.nan
    dims4 = ("family", "capacity", "seed", "input")
    ds = xr.Dataset(
        {
            "direction": (dims4 + ("feature",), u.astype(np.float32)),
            "grad_norm": (dims4, np.where(valid, 1.0, 0.0).astype(np.float32)),
            "valid": (dims4, valid),
            "correct": (dims4, np.ones(valid.shape, bool)),
            "test_accuracy": (dims4[:3], np.full((F, K, n_seeds), np.nan, np.float32)),
            "n_params": (("family", "capacity"), np.tile(caps.astype(np.int64), (F, 1))),
        },
        coords={"family": list(families), "capacity": caps, "seed": np.arange(n_seeds),
                "input": np.arange(n_inputs), "feature": np.arange(dim),
                "label": ("input", np.zeros(n_inputs, np.int64))},
        attrs={"dataset": "synthetic-vmf", "target": "none", "recipe": json.dumps({}), "versions": "{}",
               "device": "none", "created": "synthetic", "input_shape": np.array([dim]),
               "truth": json.dumps({"m": m.mean(axis=-1).tolist(), "shared_mean": shared_mean})},
    )
    return ds
