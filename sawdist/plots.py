"""Figures for capacity families: cosine laws, shapes, similarity matrices (matplotlib, imported on first use).

Every function takes an ``ax`` (or axes) to draw into, creates a figure when none is given, and returns the axes; it
never calls ``plt.show()``. Importing this module does not import matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as sps

from .dependencies import require

if TYPE_CHECKING:
    from collections.abc import Sequence

    import xarray as xr
    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike

    from .results import FamilyFit, FitResult

__all__ = ["plot_cosine_laws", "plot_log_shapes", "plot_similarity"]


def _pyplot():
    return require("matplotlib.pyplot", "sawdist.plots")


def capacity_colors(n: int) -> list[tuple[float, float, float, float]]:
    """`n` colours from the viridis map, dark to light as capacity grows (one per curve of a family)."""
    cmap = require("matplotlib", "sawdist.plots").colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.1, 0.9, max(n, 1))]


def _as_family(fit):
    """(capacities, cosine laws, fitted cosines, log shapes, dim) of a FamilyFit or a single FitResult."""
    if hasattr(fit, "distributions") and hasattr(fit, "capacities"):
        laws = [dist.cosine for dist in fit.distributions]
        return list(fit.capacities), laws, list(fit.cosines), list(fit.log_shapes), fit.dim
    if hasattr(fit, "distribution") and hasattr(fit, "dim"):
        cos = getattr(fit, "cosines", None)
        shape = getattr(fit, "log_shape", None)
        if shape is None and getattr(fit, "distribution", None) is not None:
            shape = getattr(fit.distribution, "log_shape", None)
        return [None], [fit.cosine], [cos], [shape], fit.dim
    raise ValueError(
        f"'fit' must be a FamilyFit (sawdist.fit_family) or a FitResult (sawdist.fit), got {type(fit).__name__}."
    )


def uniform_cosine_pdf(t: ArrayLike, dim: int) -> np.ndarray | float:
    """Density of t = mu'u for u uniform on S^{d-1}: (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2), so f(t) = Beta pdf / 2."""
    a = (dim - 1) / 2.0
    return sps.beta(a, a).pdf((1.0 + np.asarray(t)) / 2.0) / 2.0


def plot_cosine_laws(fit: FamilyFit | FitResult, ax: Axes | None = None, *, bins: int | None = None,
                     show_uniform: bool = True) -> Axes:
    """Cosine laws t = mu'u per capacity (histogram of the fitted cosines and the fitted density) with the uniform.

    Parameters
    ----------
    fit : FamilyFit or FitResult
        From :func:`sawdist.fit_family` (one curve per capacity) or :func:`sawdist.fit`.
    ax : matplotlib.axes.Axes, optional
    bins : int, optional
        Histogram bins per capacity (of the bias-corrected cosines, where the fit has them); default sqrt(n),
        between 5 and 30.
    show_uniform : bool
        Draw the law of t under the uniform distribution on S^{d-1}, (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2): the
        reference a family converges away from as its capacity grows (docs/theory/saw_family.md, "Uniform").

    Returns
    -------
    matplotlib.axes.Axes
    """
    caps, laws, cosines, _, dim = _as_family(fit)
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = capacity_colors(len(laws))
    lo, hi = np.inf, -np.inf
    for k, law, tc, color in zip(caps, laws, cosines, colors):
        mean, sd = float(law.mean()), float(np.sqrt(law.var()))
        a, b = max(mean - 5 * sd, -1.0), min(mean + 5 * sd, 1.0)
        lo, hi = min(lo, a), max(hi, b)
        label = "fit" if k is None else f"k = {k:g}"
        if tc is not None:
            nb = int(np.clip(np.sqrt(len(tc)), 5, 30)) if bins is None else bins
            ax.hist(tc, bins=nb, density=True, color=color, alpha=0.3)
        grid = np.linspace(a, b, 400)
        ax.plot(grid, law.pdf(grid), color=color, lw=1.8, label=label)
    if show_uniform:
        sd0 = 1.0 / np.sqrt(dim)
        a, b = max(-5 * sd0, -1.0), min(5 * sd0, 1.0)
        lo, hi = min(lo, a), max(hi, b)
        grid = np.linspace(a, b, 400)
        ax.plot(grid, uniform_cosine_pdf(grid, dim), color="0.4", ls="--", lw=1.2, label="uniform on the sphere")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(r"cosine $t = \mu^\top u$")
    ax.set_ylabel("density")
    ax.set_title(f"Cosine laws (d = {dim})")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_log_shapes(fit: FamilyFit | FitResult, ax: Axes | None = None) -> Axes:
    """log psi(t) per capacity: solid over the capacity's data band, dotted where it is linear extrapolation.

    Shapes are defined up to an additive constant; each is shifted to 0 at the median of its cosines.

    Parameters
    ----------
    fit : FamilyFit or FitResult
        A semi-parametric fit (its ``log_shape``) or a family fit (``log_shapes``).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    caps, laws, cosines, shapes, _ = _as_family(fit)
    if any(s is None for s in shapes):
        raise ValueError("'fit' must carry a fitted log shape (a semi-parametric fit), got one without.")
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(6.4, 4.0), layout="constrained")
    colors = capacity_colors(len(shapes))
    for k, law, tc, f, color in zip(caps, laws, cosines, shapes, colors):
        knots = getattr(f, "knots", None)
        if tc is not None:
            a, b = float(np.min(tc)), float(np.max(tc))
        elif knots is not None:
            a, b = float(knots[0]), float(knots[-1])
        else:
            m, sd = float(law.mean()), float(np.sqrt(law.var()))
            a, b = m - 3 * sd, m + 3 * sd
        pad = 0.5 * (b - a)
        mid = float(np.median(tc)) if tc is not None else 0.5 * (a + b)
        shift = float(f(np.array([mid]))[0])
        inside = np.linspace(a, b, 200)
        label = "fit" if k is None else f"k = {k:g}"
        ax.plot(inside, f(inside) - shift, color=color, lw=1.8, label=label)
        for seg in (np.linspace(max(a - pad, -1), a, 50), np.linspace(b, min(b + pad, 1), 50)):
            ax.plot(seg, f(seg) - shift, color=color, lw=1.2, ls=":")
        if knots is not None:
            ax.plot(knots, f(knots) - shift, "o", color=color, ms=3)
    ax.set_xlabel(r"cosine $t = \mu^\top u$")
    ax.set_ylabel(r"$\log\psi(t)$ (0 at the median cosine)")
    ax.set_title("Fitted shapes (dotted: linear extrapolation)")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_similarity(rho: ArrayLike | xr.DataArray | FamilyFit, predicted: ArrayLike | None = None,
                    capacities: ArrayLike | None = None, axes: Sequence[Axes] | None = None, *,
                    cmap: str = "viridis") -> np.ndarray:
    """Similarity heatmap rho(k1, k2) next to its rank-one prediction m(k1) m(k2) (the convergence law).

    The prediction is identity 2 of docs/theory/identities.md.

    Parameters
    ----------
    rho : array_like (K, K), xarray.DataArray, or FamilyFit
        Observed similarity (e.g. :func:`sawdist.stats.similarity_matrix`, averaged over inputs). A FamilyFit
        supplies both ``rho_observed`` and ``rho_predicted``.
    predicted : array_like (K, K), optional
        Predicted matrix; default the rank-one m m' with m(k) = sqrt(max(rho(k, k), 0)) (the diagonal is the unbiased
        m_hat^2 of each capacity), i.e. the prediction of a shared mean direction (H2).
    capacities : array_like, optional
        Tick labels; default the DataArray coordinate or 1..K.
    axes : sequence of two matplotlib Axes, optional

    Returns
    -------
    ndarray of matplotlib.axes.Axes
        Observed and predicted panels (one shared colour scale).
    """
    if hasattr(rho, "rho_observed"):
        fit = rho
        rho, predicted = fit.rho_observed, fit.rho_predicted if predicted is None else predicted
        capacities = fit.capacities if capacities is None else capacities
    if capacities is None and hasattr(rho, "dims"):
        dim0 = rho.dims[0]
        capacities = rho[dim0].values if dim0 in rho.coords else None
    R = np.asarray(rho, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"'rho' must be a square (K, K) matrix, got shape {R.shape}.")
    if predicted is None:
        m = np.sqrt(np.maximum(np.diag(R), 0.0))
        P = np.outer(m, m)
    else:
        P = np.asarray(predicted, dtype=float)
        if P.shape != R.shape:
            raise ValueError(f"'predicted' must have the shape of 'rho' {R.shape}, got {P.shape}.")
    K = R.shape[0]
    labels = (
        [f"{c:g}" for c in np.asarray(capacities, dtype=float)]
        if capacities is not None
        else [str(i + 1) for i in range(K)]
    )
    if axes is None:
        _, axes = _pyplot().subplots(1, 2, figsize=(9.0, 4.4), layout="constrained")
    axes = np.asarray(axes)
    vmin = float(np.nanmin([np.nanmin(R), np.nanmin(P)]))
    vmax = float(np.nanmax([np.nanmax(R), np.nanmax(P)]))
    for ax, M, title in zip(axes, (R, P), ("observed (different seeds)", "rank-one prediction m(k1) m(k2)")):
        im = ax.imshow(M, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(K), labels)
        ax.set_yticks(range(K), labels)
        ax.set_xlabel(r"capacity $k_2$")
        ax.set_ylabel(r"capacity $k_1$")
        ax.set_title(title, fontsize="medium")
        for i in range(K):
            for j in range(K):
                if np.isfinite(M[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{M[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize="x-small",
                        color="w" if M[i, j] < 0.5 * (vmin + vmax) else "k",
                    )
    axes[0].figure.colorbar(im, ax=list(axes), shrink=0.85, label=r"mean cosine $\rho(k_1, k_2)$")
    return axes
