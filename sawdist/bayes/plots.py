"""ArviZ/matplotlib figures of a convergence fit: the law against capacity with posterior bands, traces, and the
similarity matrix observed against predicted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..dependencies import require
from .predictive import observed_mean_resultant_length, observed_similarity, posterior_predictive

if TYPE_CHECKING:
    from collections.abc import Sequence

    import arviz as az
    import xarray as xr
    from matplotlib.axes import Axes

__all__ = ["plot_capacity_law", "plot_similarity", "plot_trace"]


def plot_capacity_law(idata: az.InferenceData, summary: xr.Dataset | None = None, *,
                      var: str = "mean_resultant_length", family: str | None = None, hdi_prob: float = 0.94,
                      ax: Axes | None = None) -> Axes:
    """Posterior of m(k) (``var="mean_resultant_length"``, RMS over inputs) or of the median-input kappa(k)
    (``var="kappa"``) against capacity, with an HDI band; the observed RMS m-hat as points when ``summary`` is given.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import arviz as az

    plt = require("matplotlib.pyplot", "sawdist.bayes.plots")
    if var not in ("mean_resultant_length", "kappa"):
        raise ValueError(f"'var' must be 'mean_resultant_length' or 'kappa', got {var!r}.")
    post = idata.posterior
    family = post["family"].values[0] if family is None else family
    if ax is None:
        _, ax = plt.subplots()
    if var == "mean_resultant_length":
        y = posterior_predictive(idata)["mean_resultant_length"].sel(family=family)
        label = "m(k), RMS over inputs"
    else:
        y = post["kappa"].sel(family=family).median("input")
        label = "kappa(k), median input"
    k = post["capacity"].values.astype(float)
    band = az.hdi(y.transpose("chain", "draw", "capacity").values, hdi_prob=hdi_prob)  # (capacity, 2)
    ax.fill_between(k, band[:, 0], band[:, 1], alpha=0.3, label=f"{int(hdi_prob * 100)}% HDI")
    ax.plot(k, y.mean(("chain", "draw")).values, "-", label="posterior mean")
    if summary is not None and var == "mean_resultant_length":
        ax.plot(k, observed_mean_resultant_length(summary).sel(family=family).values, "o", label="observed")
    ax.set_xscale("log")
    if var == "kappa":
        ax.set_yscale("log")
    ax.set_xlabel("capacity k")
    ax.set_ylabel(label)
    ax.set_title(str(family))
    ax.legend()
    return ax


def plot_trace(idata: az.InferenceData, var_names: Sequence[str] = ("alpha", "beta", "sigma"),
               **kwargs: Any) -> np.ndarray:
    """:func:`arviz.plot_trace` of the population parameters."""
    import arviz as az

    return az.plot_trace(idata, var_names=list(var_names), **kwargs)


def plot_similarity(idata: az.InferenceData, summary: xr.Dataset, *, family: str | None = None,
                    axes: Sequence[Axes] | None = None) -> np.ndarray:
    """Heatmaps of the similarity matrix rho(k1, k2): observed (left) and posterior mean prediction (right), on
    one colour scale.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
    """
    plt = require("matplotlib.pyplot", "sawdist.bayes.plots")
    obs = observed_similarity(summary)
    family = obs["family"].values[0] if family is None else family
    obs = obs.sel(family=family).values
    pred = posterior_predictive(idata)["similarity"].sel(family=family).mean(("chain", "draw")).values
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    vmin, vmax = float(min(obs.min(), pred.min())), float(max(obs.max(), pred.max()))
    k = idata.posterior["capacity"].values
    for ax, mat, title in zip(axes, (obs, pred), ("observed", "predicted")):
        im = ax.imshow(mat, vmin=vmin, vmax=vmax, origin="lower", cmap="viridis")
        ax.set_xticks(np.arange(len(k)), [str(c) for c in k])
        ax.set_yticks(np.arange(len(k)), [str(c) for c in k])
        ax.set_xlabel("capacity k2")
        ax.set_ylabel("capacity k1")
        ax.set_title(f"{title}: {family}")
    axes[0].figure.colorbar(im, ax=list(axes), label="mean cosine")
    return np.asarray(axes)
