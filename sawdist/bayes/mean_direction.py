r"""The posterior of the mean direction mu(x) of a shared-mean convergence fit.

Given the concentrations, mu(x) has the conditional posterior :math:`\mathrm{vMF}(S/\lVert S\rVert, \lVert S\rVert)`
with :math:`S = \sum_k \kappa_k R_k` (:mod:`.model`), so its posterior mean and draws need only the posterior of
kappa and the resultants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..checks import as_generator
from .design import check_summary

if TYPE_CHECKING:
    import arviz as az

    from .design import ArchitectureLike

__all__ = ["mean_direction_posterior"]


def mean_direction_posterior(idata: az.InferenceData, summary: xr.Dataset, *, architecture: ArchitectureLike = None,
                             n_draws: int = 0, rng: np.random.Generator | int | None = None,
                             random_state: np.random.Generator | int | None = None) -> xr.Dataset:
    r"""The posterior of the mean direction mu(x), from the conditional vMF(S/||S||, ||S||) given kappa.

    The posterior mean of mu is :math:`E[\mu] = E_\kappa[A_d(\lVert S\rVert)\, S / \lVert S\rVert]
    = \sum_k c_k R_k` with :math:`c_k = E_\kappa[\kappa_k A_d(\lVert S\rVert)/\lVert S\rVert]`, so it needs one
    pass over the resultants whatever the number of draws.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`~sawdist.bayes.fit_convergence` with ``shared_mean=True``.
    summary : xarray.Dataset
        The summary it was fitted to, with ``resultant``.
    architecture
        As given to the fit.
    n_draws : int
        Also return this many draws of mu per input (one per posterior draw, taken evenly over the chains).
    rng : numpy.random.Generator or int, optional
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.

    Returns
    -------
    xarray.Dataset
        ``mean_direction`` (architecture, input, feature), a unit vector; ``mean_resultant_length``
        (architecture, input), the norm of E[mu] (1 = no posterior uncertainty about the direction);
        ``concentration`` (architecture, input), the posterior mean of ||S||; with ``n_draws``, ``draws``
        (mu_draw, architecture, input, feature).
    """
    from .. import special, vonmises_fisher

    design = check_summary(summary, architecture)
    if "resultant" not in summary.variables:
        raise ValueError("'summary' must have the variable 'resultant' for the mean direction, got none.")
    if "mu_concentration" not in idata.posterior:
        raise ValueError("'idata' must come from a shared-mean fit (posterior variable 'mu_concentration'), got none.")
    R = np.asarray(summary["resultant"].transpose("family", "capacity", "input", "feature").values, np.float64)
    kappa = idata.posterior["kappa"].transpose("chain", "draw", "family", "input", "capacity").values
    kappa = kappa.reshape(-1, *kappa.shape[2:])  # (S, F, N, K)
    s = idata.posterior["mu_concentration"].transpose("chain", "draw", "architecture", "input").values
    s = s.reshape(-1, *s.shape[2:])  # (S, A, N)
    nu = 0.5 * design.dim - 1.0
    weight = special.bessel_ratio(nu, s) / s  # A_d(||S||)/||S||
    A, J = design.slot_family.shape
    N, d = R.shape[2], R.shape[3]
    mean = np.zeros((A, N, d))
    for a in range(A):
        for j in range(J):
            f, k = design.slot_family[a, j], design.slot_capacity[a, j]
            if f < 0:
                continue
            c = np.mean(kappa[:, f, :, k] * weight[:, a, :], axis=0)  # (N,)
            mean[a] += c[:, None] * R[f, k]
    length = np.linalg.norm(mean, axis=-1)
    coords = {"architecture": design.architectures, "input": design.inputs, "feature": summary["feature"].values
              if "feature" in summary.coords else np.arange(d)}
    out = xr.Dataset({
        "mean_direction": (("architecture", "input", "feature"), mean / length[..., None],
                           {"long_name": "posterior mean direction of mu"}),
        "mean_resultant_length": (("architecture", "input"), length,
                                  {"long_name": "norm of the posterior mean of mu"}),
        "concentration": (("architecture", "input"), s.mean(axis=0),
                          {"long_name": "posterior mean of ||S||, the concentration of mu given kappa"}),
    }, coords=coords)
    if n_draws:
        gen = as_generator(rng, random_state)
        pick = np.linspace(0, s.shape[0] - 1, n_draws).round().astype(int)
        draws = np.empty((n_draws, A, N, d))
        for i, p in enumerate(pick):
            S = np.zeros((A, N, d))
            for a in range(A):
                for j in range(J):
                    f, k = design.slot_family[a, j], design.slot_capacity[a, j]
                    if f >= 0:
                        S[a] += kappa[p, f, :, k][:, None] * R[f, k]
            norm = np.linalg.norm(S, axis=-1)
            draws[i] = vonmises_fisher.rvs(S / norm[..., None], norm, rng=gen)
        out["draws"] = (("mu_draw", "architecture", "input", "feature"), draws,
                        {"long_name": "draws of mu from its conditional posterior"})
        out = out.assign_coords(mu_draw=np.arange(n_draws))
    return out
