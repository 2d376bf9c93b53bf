r"""Posterior predictions of the quantities the analyses compare with data.

The predictions follow identities 2 (the convergence law) and 4 (the ensemble law) of docs/theory/identities.md.

Given the posterior of the per-input mean resultant lengths ``mean_resultant_length`` = m_k(x) of a shared-mean fit:

* similarity matrix: :math:`\rho(k_1, k_2) = \overline{m_{k_1}(x)\, m_{k_2}(x)}` (mean over inputs; rank one per
  input because the mean direction is shared);
* m(k): the root mean square over inputs, :math:`\sqrt{\overline{m_k(x)^2}} = \sqrt{\rho(k, k)}`;
* ensemble curve: :math:`\overline{\cos(\bar u_N, \mu)} = \overline{m/\sqrt{m^2 + (1 - m^2)/N}}`.

The observed counterparts come from the summary alone: the similarity at input x, the mean cosine between two
directions of different seeds, is :math:`(G[k_1, k_2] - P[k_1, k_2]) / (n_1 n_2 - c_{12})` with P the same-seed
products and c their count (:func:`sawdist.summaries.similarity`, the definition of
:func:`sawdist.stats.similarity_matrix`); on the diagonal it is the unbiased :math:`\hat m^2` (identity 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..summaries import similarity
from .design import check_summary

if TYPE_CHECKING:
    from collections.abc import Sequence

    import arviz as az

__all__ = ["observed_mean_resultant_length", "observed_similarity", "posterior_predictive"]


def observed_similarity(summary: xr.Dataset) -> xr.DataArray:
    """The similarity rho(k1, k2) averaged over inputs: the mean cosine between models of different seeds.

    The per-input similarity is :func:`sawdist.summaries.similarity` (pairs of one seed left out, also across
    capacities), so this equals :func:`sawdist.stats.similarity_matrix` of the directions averaged over the inputs.

    Returns
    -------
    xarray.DataArray
        dims (family, capacity, capacity_b).
    """
    design = check_summary(summary)
    rho = similarity(summary).mean("input")
    return xr.DataArray(rho.transpose("family", "capacity", "capacity_b").values,
                        dims=("family", "capacity", "capacity_b"),
                        coords={"family": design.families, "capacity": design.capacities,
                                "capacity_b": design.capacities},
                        attrs={"long_name": "mean cosine between the directions of different seeds", "units": "1"})


def observed_mean_resultant_length(summary: xr.Dataset) -> xr.DataArray:
    """Root mean square over inputs of the unbiased m-hat (the square root of the diagonal of the observed
    similarity, clipped at 0); dims (family, capacity)."""
    rho = observed_similarity(summary)
    diag = np.diagonal(rho.values, axis1=-2, axis2=-1)
    return xr.DataArray(np.sqrt(np.clip(diag, 0.0, None)), dims=("family", "capacity"),
                        coords={"family": rho["family"], "capacity": rho["capacity"]},
                        attrs={"long_name": "mean resultant length (RMS over inputs)", "units": "1"})


def posterior_predictive(idata: az.InferenceData, sizes: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> xr.Dataset:
    """Posterior draws of the similarity matrix, m(k) and the ensemble curve.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`sawdist.bayes.fit_convergence` (posterior variable ``mean_resultant_length``).
    sizes : sequence of int
        Ensemble sizes N of the ensemble curve.

    Returns
    -------
    xarray.Dataset
        ``similarity`` (chain, draw, family, capacity, capacity_b), ``mean_resultant_length`` (chain, draw, family,
        capacity) and ``ensemble`` (chain, draw, family, capacity, ensemble_size).

    Examples
    --------
    >>> from sawdist.bayes import posterior_predictive  # doctest: +SKIP
    >>> pp = posterior_predictive(idata)  # doctest: +SKIP
    >>> pp["similarity"].mean(("chain", "draw"))  # doctest: +SKIP
    """
    m = idata.posterior["mean_resultant_length"].transpose("chain", "draw", "family", "input", "capacity")
    m_b = m.rename(capacity="capacity_b")
    rho = (m * m_b).mean("input").transpose("chain", "draw", "family", "capacity", "capacity_b")
    sizes_da = xr.DataArray(np.asarray(sizes, dtype=float), dims="ensemble_size", coords={"ensemble_size": list(sizes)})
    ensemble = (m / np.sqrt(m**2 + (1.0 - m**2) / sizes_da)).mean("input")
    return xr.Dataset({
        "similarity": rho.assign_attrs(long_name="predicted mean cosine between the directions of different seeds",
                                       units="1"),
        "mean_resultant_length": np.sqrt((m**2).mean("input")).assign_attrs(
            long_name="mean resultant length (RMS over inputs)", units="1"),
        "ensemble": ensemble.transpose("chain", "draw", "family", "capacity", "ensemble_size").assign_attrs(
            long_name="cosine between the ensemble mean and mu", units="1"),
    })
