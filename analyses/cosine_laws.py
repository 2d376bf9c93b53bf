r"""Finding 2 — cosine laws and shapes: the law of t = mu'u per capacity, and its Saw shape log psi_k(t).

Measured, per family and capacity k: the cosines t = mu(x)'u of every model's direction with the mean direction of
its input, pooled over inputs. mu(x) is estimated from the other directions at x (leave-one-out over all capacities,
weighted as in :func:`sawdist.capacity.fit_family`) and the cosines are deconvolved through the unbiased m_hat
(:func:`sawdist.semiparametric.corrected_cosines`), so their mean at input x is the unbiased m_hat_k(x) of identity 3.
Pooled over inputs, the cosines are draws of one rotationally symmetric law (a mixture of Saw laws about a common
axis is a Saw law), whose log shape log psi_k is fitted by the penalised log-spline of
docs/theory/semiparametric.md. Shown against the uniform reference (1 + t)/2 ~ Beta((d-1)/2, (d-1)/2).

The shapes are compared with each other: log psi_k(t) is regressed on log psi_k'(t) (k' the next capacity) over the
band where both are identified (their cosine bands overlap); R^2 near 1 means one shape family tilted by capacity
(psi_k ~ psi_k'^b), as the paper observes.

Verdict: the cosine law concentrates away from the uniform law as capacity grows: m(k_max) - m(k_min) > 0 for every
family, with m(k) = sqrt(mean_x m_hat_k(x)^2) (root mean square over inputs, unbiased inside the root) and a 95 %
delete-one-seed jackknife interval.

Run alone: ``sawdist report DATASET.nc --only cosine_laws``.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING

import numpy as np

from . import _pairs
from ._common import (
    Finding,
    family_layout,
    fmt_ci,
    input_chunks,
    interval,
    new_figure,
    save_figure,
    save_table,
    verdict,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

    import xarray as xr

    from .context import Context

KEY = "cosine_laws"
TITLE = "Cosine laws concentrate with capacity; Saw shapes"
CLAIM = ("At every capacity the directions follow a rotationally symmetric (Saw) law about the input's mean "
         "direction, whose cosine law moves away from the uniform law as capacity grows.")


def pooled_cosines(U: np.ndarray, V: np.ndarray, dim: int) -> list[np.ndarray]:
    """Bias-corrected cosines of one family: a list over capacities of 1-D arrays pooled over inputs.

    ``U`` (capacity, seed, input, feature) zero where invalid, ``V`` the validity. Inputs where a capacity has
    fewer than 2 valid directions are skipped.
    """
    from sawdist.semiparametric import corrected_cosines

    K, S, N, _ = U.shape
    out = [[] for _ in range(K)]
    groups_all = np.repeat(np.arange(K), S)
    for x in range(N):
        v = V[:, :, x].reshape(-1)
        g = groups_all[v]
        if np.any(np.bincount(g, minlength=K) < 2):
            continue
        X = U[:, :, x].reshape(K * S, -1)[v]
        c0 = corrected_cosines(X, dim, groups=g)
        m_hat = np.sqrt(np.maximum(c0["m2"], 0.0))
        w = m_hat / (1.0 - np.minimum(m_hat, 1.0 - 1e-12) ** 2)
        if not np.any(w > 0):
            continue  # no direction at all: this input has no mean
        c = corrected_cosines(X, dim, groups=g, weights=w, m2=c0["m2"])
        for k in range(K):
            out[k].append(c["t_c"][g == k])
    return [np.concatenate(t) if t else np.empty(0) for t in out]


def shape_relation(shapes: Sequence[Callable[[np.ndarray], np.ndarray]],
                   cosines: Sequence[np.ndarray]) -> np.ndarray:
    """Slope and R^2 of log psi_k on log psi_(k+1), adjacent capacities, over the overlap of their data bands.

    The bands are the 5 % - 95 % quantiles of each capacity's cosines; NaN where they do not overlap (in high d the
    bands are narrow, ~1/sqrt(d), and far apart capacities share no t where both shapes are identified).
    """
    res = np.full((len(shapes) - 1, 2), np.nan)
    for i in range(len(shapes) - 1):
        lo, hi = np.quantile(cosines[i], [0.05, 0.95])
        lo2, hi2 = np.quantile(cosines[i + 1], [0.05, 0.95])
        a, b = max(lo, lo2), min(hi, hi2)
        if not b > a:
            continue
        grid = np.linspace(a, b, 200)
        x, y = shapes[i + 1](grid), shapes[i](grid)
        xc, yc = x - x.mean(), y - y.mean()
        sxx = float(xc @ xc)
        if sxx <= 0:
            continue
        slope = float(xc @ yc) / sxx
        res[i] = slope, 1.0 - float(np.sum((yc - slope * xc) ** 2)) / max(float(yc @ yc), 1e-300)
    return res


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            **_: object) -> Finding:
    """Run the analysis on a saliency dataset; write figures and tables under ``out_dir``; return the finding."""
    import pandas as pd

    from sawdist import saw
    from sawdist._logspline import fit_log_spline

    from .context import Context

    ctx = context or Context(ds, out_dir)
    ps = ctx.pairs
    d = ctx.dim
    caps = ps.capacities
    K = len(caps)
    finding = Finding(KEY, TITLE, CLAIM)
    m_est, m_se, m_reps = ps.statistic(_pairs.mean_m)
    lowers, uppers, rows = [], [], []
    e1 = np.zeros(d)
    e1[0] = 1.0
    for f, fam in enumerate(ps.families):
        b = ps.block(f)
        parts = [pooled_cosines(*family_layout(ds, fam, idx), d) for idx in input_chunks(ds, K)]
        cos = [np.concatenate([p[k] for p in parts]) for k in range(K)]
        fits = [fit_log_spline(t, d) if np.unique(t).size >= 2 else None for t in cos]
        if any(fit is None for fit in fits):
            finding.measured.append(f"{fam}: too few inputs with 2 valid directions per capacity; no shapes.")
            continue
        shapes = [fit.log_shape for fit in fits]
        rel = shape_relation(shapes, cos)
        m, se = m_est[b], m_se[b]
        inc = m[-1] - m[0]
        reps = m_reps[:, b]
        inc_se = np.sqrt((ps.n_seeds - 1) / ps.n_seeds * np.sum((reps[:, -1] - reps[:, 0]
                                                                 - np.mean(reps[:, -1] - reps[:, 0])) ** 2))
        lo, hi = interval(inc, inc_se)
        lowers.append(lo)
        uppers.append(hi)
        for k in range(K):
            t = cos[k]
            lo_k, hi_k = interval(m[k], se[k])
            rows.append({"family": fam, "capacity": caps[k], "n_cosines": t.size, "m": m[k], "m_se": se[k],
                         "m_lower": lo_k, "m_upper": hi_k, "m_shape_fit": fits[k].mean, "cosine_sd": np.std(t),
                         "uniform_sd": 1.0 / np.sqrt(d), "z_vs_uniform": m[k] * np.sqrt(d),
                         "shape_slope_vs_next": rel[k, 0] if k < K - 1 else np.nan,
                         "shape_r2_vs_next": rel[k, 1] if k < K - 1 else np.nan, "edf": fits[k].edf})
        finding.measured.append(
            f"{fam}: m(k) (root mean square over inputs) from {fmt_ci(m[0], se[0])} at k = {caps[0]:g} "
            f"to {fmt_ci(m[-1], se[-1])} at "
            f"k = {caps[-1]:g} (uniform law: mean 0, sd {1 / np.sqrt(d):.3f}); increase {fmt_ci(inc, inc_se)}."
        )
        r2 = rel[:, 1]
        if np.any(np.isfinite(r2)):
            finding.measured.append(
                f"{fam}: log psi_k against log psi of the next capacity, where their cosine bands overlap: linear "
                f"with R^2 " + ", ".join("n/a" if not np.isfinite(r) else f"{r:.3f}" for r in r2)
                + " (slopes " + ", ".join("n/a" if not np.isfinite(x) else f"{x:.2f}" for x in rel[:, 0]) + ")."
            )
        else:
            finding.measured.append(f"{fam}: the cosine bands of adjacent capacities do not overlap; shapes are "
                                    "compared through the figure only.")
        finding.numbers[f"{fam}/m"] = m.tolist()
        finding.numbers[f"{fam}/m_se"] = se.tolist()
        finding.numbers[f"{fam}/m_increase"] = float(inc)
        finding.numbers[f"{fam}/shape_r2_adjacent"] = rel[:, 1].tolist()
        fake = types.SimpleNamespace(capacities=list(caps), distributions=[saw(e1, s) for s in shapes],
                                     cosines=cos, log_shapes=shapes, dim=d)
        finding.figures.append(_figure(fake, shapes, cos, caps, fam, out_dir))
    finding.status = verdict(lowers, uppers, 0.0) if lowers else "not tested"
    finding.reason = {
        "holds": "in every family m(k) rises from the smallest to the largest capacity (95 % interval above 0)",
        "fails": "in some family m(k) falls from the smallest to the largest capacity (95 % interval below 0)",
        "inconclusive": "the increase of m(k) has a 95 % interval that includes 0",
    }.get(finding.status, "too few valid directions")
    if rows:
        finding.tables.append(save_table(pd.DataFrame(rows), out_dir, "cosine_laws"))
    return finding


def _figure(fake, shapes, cos, caps, fam, out_dir):
    from sawdist.plots import plot_cosine_laws, plot_log_shapes

    fig, axes = new_figure(1, 3, figsize=(15.0, 4.2))
    plot_cosine_laws(fake, ax=axes[0])
    plot_log_shapes(fake, ax=axes[1])
    ax = axes[2]
    from sawdist.plots import capacity_colors

    colors = capacity_colors(len(shapes))
    for i in range(len(shapes) - 1):
        lo, hi = np.quantile(cos[i], [0.05, 0.95])
        lo2, hi2 = np.quantile(cos[i + 1], [0.05, 0.95])
        a, b = max(lo, lo2), min(hi, hi2)
        if b > a:
            grid = np.linspace(a, b, 100)
            x, y = shapes[i + 1](grid), shapes[i](grid)
            ax.plot(x - x.mean(), y - y.mean(), color=colors[i], label=f"k = {caps[i]:g} vs {caps[i + 1]:g}")
    ax.set_xlabel(r"$\log\psi_{k'}(t)$, next capacity (centred)")
    ax.set_ylabel(r"$\log\psi_k(t)$ (centred)")
    ax.set_title("Adjacent shapes where both are identified")
    ax.legend(frameon=False, fontsize="small")
    fig.suptitle(f"Cosine laws and Saw shapes — {fam}")
    return save_figure(fig, out_dir, f"cosine_laws_{fam}")

