"""Finding 1 — similarity across capacities (H1): two models agree more as either one's capacity grows.

Measured, per family: rho(k1, k2), the mean cosine between the saliency directions of models of capacities k1 and k2
trained with different seeds, averaged over inputs (:mod:`sawdist.analyses._pairs`); beside it the rank-one prediction
mean_x m_x(k1) m_x(k2) of identity 2 with a shared mean direction, and the residual. Across families, the full
(family, capacity) matrix.

Verdict: for every family and every k2, the end-to-end increase rho(k_max, k2) - rho(k_min, k2) > 0 (95 % jackknife
intervals over seeds). The intervals of rho itself (table, text) are on the Fisher-z scale and lie in [-1, 1]
(:func:`~sawdist.analyses._common.cosine_interval`). The fraction of adjacent steps that increase is reported as well.

Run alone: ``sawdist report DATASET.nc --only similarity``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _pairs
from ._common import (
    Finding,
    cosine_interval,
    fmt_ci,
    interval,
    new_figure,
    save_figure,
    save_table,
    verdict,
)

if TYPE_CHECKING:
    import os

    import xarray as xr

    from .context import Context

KEY = "similarity"
TITLE = "Similarity rises with capacity (H1)"
CLAIM = ("Two independently trained models agree more (higher cosine between their saliency directions) as either "
         "model's capacity grows.")


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            **_: object) -> Finding:
    """Run the analysis on a saliency dataset; write figures and tables under ``out_dir``; return the finding."""
    import pandas as pd

    from .context import Context

    ctx = context or Context(ds, out_dir)
    ps = ctx.pairs
    caps = ps.capacities
    K = len(caps)
    finding = Finding(KEY, TITLE, CLAIM)
    rho, rho_se, rho_reps = ps.statistic(_pairs.mean_rho)
    pred = _pairs.rank_one(ps.per_input())
    rows = []
    lowers, uppers = [], []
    for f, fam in enumerate(ps.families):
        b = ps.block(f)
        R, S = rho[b, b], rho_se[b, b]
        for i in range(K):
            for j in range(K):
                lo, hi = cosine_interval(R[i, j], S[i, j])
                rows.append({"family": fam, "capacity_1": caps[i], "capacity_2": caps[j], "rho": R[i, j],
                             "se": S[i, j], "lower": lo, "upper": hi, "rank_one": pred[b, b][i, j],
                             "residual": R[i, j] - pred[b, b][i, j]})
        # End-to-end increase along k1 for every k2 (the matrix is symmetric, so this covers k2 too).
        inc_reps = rho_reps[:, b, b][:, K - 1, :] - rho_reps[:, b, b][:, 0, :]
        inc = R[K - 1, :] - R[0, :]
        inc_se = np.sqrt((ps.n_seeds - 1) / ps.n_seeds * np.sum((inc_reps - inc_reps.mean(0)) ** 2, axis=0))
        lo, hi = interval(inc, inc_se)
        lowers.append(lo)
        uppers.append(hi)
        steps = np.diff(R, axis=0)
        frac_up = float(np.mean(steps > 0)) if K > 1 else float("nan")
        diag = np.diag(R)
        finding.measured.append(
            f"{fam}: rho(k, k) from {fmt_ci(diag[0], S[0, 0], cosine=True)} at k = {caps[0]:g} to "
            f"{fmt_ci(diag[-1], S[-1, -1], cosine=True)} at k = {caps[-1]:g}; rho(k_max, k2) - rho(k_min, k2) "
            f"ranges over [{inc.min():.3f}, {inc.max():.3f}] (smallest lower bound {lo.min():.3f}); "
            f"{100 * frac_up:.0f} % of adjacent capacity steps increase."
        )
        finding.numbers[f"{fam}/increase_min"] = float(inc.min())
        finding.numbers[f"{fam}/increase_lower_min"] = float(lo.min())
        finding.numbers[f"{fam}/fraction_increasing"] = frac_up
        finding.numbers[f"{fam}/rho_diag"] = diag.tolist()
        off = ~np.eye(K, dtype=bool)
        rel = float(np.linalg.norm((R - pred[b, b])[off]) / max(np.linalg.norm(R[off]), 1e-300)) if K > 1 else 0.0
        finding.numbers[f"{fam}/rank_one_relative_residual"] = rel
        finding.measured.append(f"{fam}: rank-one prediction m(k1) m(k2) misses the off-diagonal rho by "
                                f"{100 * rel:.1f} % (relative Frobenius norm).")
    finding.status = verdict(np.concatenate(lowers), np.concatenate(uppers), 0.0)
    finding.reason = {
        "holds": "every family's similarity rises from the smallest to the largest capacity, for every partner "
                 "capacity, with the 95 % interval above 0",
        "fails": "for some family and partner capacity the similarity falls from the smallest to the largest "
                 "capacity, with the 95 % interval below 0",
        "inconclusive": "the end-to-end increase is positive for some partner capacities but an interval "
                        "includes 0",
    }.get(finding.status, "no valid pairs")
    finding.tables.append(save_table(pd.DataFrame(rows), out_dir, "similarity"))
    # Cross-family matrix (all slots).
    labels = [f"{fam} {k:g}" for fam in ps.families for k in caps]
    full = pd.DataFrame(rho, index=labels, columns=labels).reset_index(names="slot")
    finding.tables.append(save_table(full, out_dir, "similarity_all_slots"))
    finding.figures.extend(_figures(ps, rho, pred, out_dir))
    return finding


def _figures(ps, rho, pred, out_dir):
    from sawdist.plots import plot_similarity

    caps = ps.capacities
    K = len(caps)
    paths = []
    for f, fam in enumerate(ps.families):
        b = ps.block(f)
        fig, axes = new_figure(1, 3, figsize=(13.0, 4.2))
        plot_similarity(rho[b, b], pred[b, b], capacities=caps, axes=axes[:2])
        res = rho[b, b] - pred[b, b]
        lim = max(float(np.nanmax(np.abs(res))), 1e-6)
        im = axes[2].imshow(res, origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[2].set_xticks(range(K), [f"{c:g}" for c in caps])
        axes[2].set_yticks(range(K), [f"{c:g}" for c in caps])
        axes[2].set_title("residual observed - rank-one", fontsize="medium")
        axes[2].set_xlabel(r"capacity $k_2$")
        fig.colorbar(im, ax=axes[2], shrink=0.85, label=r"$\rho$ observed $-$ rank-one")
        fig.suptitle(f"Similarity across capacities — {fam}")
        paths.append(save_figure(fig, out_dir, f"similarity_{fam}"))
    if len(ps.families) > 1:
        labels = [f"{fam}\n{k:g}" for fam in ps.families for k in caps]
        fig, ax = new_figure(figsize=(1.0 + 0.55 * len(labels), 0.6 + 0.5 * len(labels)))
        im = ax.imshow(rho, origin="lower", cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, fontsize="x-small", rotation=90)  # many slots: no overlap
        ax.set_yticks(range(len(labels)), labels, fontsize="x-small")
        for f in range(1, len(ps.families)):
            ax.axhline(f * K - 0.5, color="w", lw=1)
            ax.axvline(f * K - 0.5, color="w", lw=1)
        ax.set_title("rho across families and capacities (different seeds)")
        fig.colorbar(im, ax=ax, shrink=0.85, label="mean cosine")
        paths.append(save_figure(fig, out_dir, "similarity_all_families"))
    return paths

