r"""Finding 5 — ensembles: the mean saliency of N small models approaches that of large models.

Measured, per family, for the smallest capacity k_s against the largest k_L: cos(u_bar_N, u_L), the cosine between
the normalized mean of N small models' directions and one large model's direction, averaged over random N-subsets of
seeds (drawn per input from a generator seeded by the options' seed, the family and the input:
:func:`sawdist.analyses.blocks.ensemble_block`), over the large models and over inputs, against N. Beside it:

* identity 4's prediction, per input rho_x(k_s, k_L) / sqrt(m_x^2 + (1 - m_x^2)/N) with m_x^2 the unbiased m_hat^2 of
  the small models, averaged over inputs; its limit N -> infinity is m(k_L) cos(mu_s, mu_L);
* the agreement of two large models, rho(k_L, k_L) = m(k_L)^2: with a shared mean direction an ensemble of enough
  small models agrees with a large model *more* than another large model does (m_L > m_L^2);
* with trained models at hand (``sawdist run``), the test accuracy of the averaged probabilities of N small models.

Uncertainty: over inputs (per-input differences, SE of their mean); the intervals of the cosines themselves are on the
Fisher-z scale (:func:`~sawdist.analyses._common.cosine_interval`, inside [-1, 1]). Verdict: the ensemble gain
cos(u_bar_N_max, u_L) - cos(u_1, u_L) > 0 in every family (95 % interval).

Run alone: ``sawdist report DATASET.nc --only ensembles``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._common import (
    Z95,
    Finding,
    cosine_interval,
    fmt_ci,
    mean_se,
    nanmean,
    new_figure,
    save_figure,
    save_table,
    verdict,
)
from .blocks import default_sizes

if TYPE_CHECKING:
    import os

    import xarray as xr

    from .context import Context

KEY = "ensembles"
TITLE = "Ensembles of small models approach large models"
CLAIM = ("Averaging the saliency directions of N small models approaches the direction of large models as N grows "
         "(identity 4), so the large-capacity limit can be estimated with small models.")


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            **_: object) -> Finding:
    """Run the analysis on a saliency dataset; write figures and tables under ``out_dir``; return the finding."""
    import pandas as pd

    from .context import Context

    ctx = context or Context(ds, out_dir)
    finding = Finding(KEY, TITLE, CLAIM)
    ps = ctx.pairs
    caps = ps.capacities
    K = len(caps)
    if K < 2:
        finding.reason = "needs at least two capacities"
        return finding
    rho_x = ps.per_input()
    rows, lowers, uppers, curves = [], [], [], []
    sizes_of = ctx.ensemble_sizes()
    for f, fam in enumerate(ps.families):
        js, jl = ps.slot(f, 0), ps.slot(f, K - 1)
        sizes = list(sizes_of[f])
        obs = ctx.scan.ensembles[f]  # (input, size), from the one pass over the directions (blocks.ensemble_block)
        m2 = np.clip(rho_x[:, js, js], 0.0, 1.0)
        cross = rho_x[:, js, jl]
        Nn = np.asarray(sizes, float)
        pred = nanmean(cross[:, None] / np.sqrt(m2[:, None] + (1.0 - m2[:, None]) / Nn[None]), axis=0)
        ok_l = np.isfinite(cross) & np.isfinite(m2)
        limit = float(np.sum(cross[ok_l]) / np.sum(np.sqrt(m2[ok_l])))
        large = rho_x[:, jl, jl]
        mean_obs = nanmean(obs, axis=0)
        cnt = np.sum(np.isfinite(obs), axis=0)
        se_obs = np.sqrt(nanmean((obs - mean_obs) ** 2, axis=0) * cnt / np.maximum(cnt - 1, 1) / np.maximum(cnt, 1))
        gain_x = obs[:, -1] - obs[:, 0]
        gain, gain_se = mean_se(gain_x)
        lowers.append(gain - Z95 * gain_se)
        uppers.append(gain + Z95 * gain_se)
        beat_x = obs[:, -1] - large
        beat, beat_se = mean_se(beat_x)
        cos_lo, cos_hi = cosine_interval(mean_obs, se_obs)
        for j, size in enumerate(sizes):
            rows.append({"family": fam, "capacity_small": caps[0], "capacity_large": caps[-1], "ensemble_size": size,
                         "cosine": mean_obs[j], "se": se_obs[j], "lower": cos_lo[j], "upper": cos_hi[j],
                         "predicted": pred[j], "limit": limit, "large_large_rho": float(nanmean(large))})
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = float(np.max(np.abs(mean_obs - pred) / np.abs(pred)))
        finding.measured.append(
            f"{fam}: cos(mean of N models of k = {caps[0]:g}, a k = {caps[-1]:g} model) from "
            f"{fmt_ci(mean_obs[0], se_obs[0], cosine=True)} at N = 1 to "
            f"{fmt_ci(mean_obs[-1], se_obs[-1], cosine=True)} at N = {sizes[-1]} "
            f"(gain {fmt_ci(gain, gain_se)}); identity 4 predicts {pred[0]:.3f} to {pred[-1]:.3f} (largest relative "
            f"miss {100 * rel:.1f} %), limit {limit:.3f} as N grows."
        )
        finding.measured.append(
            f"{fam}: two independent k = {caps[-1]:g} models agree at rho = {nanmean(large):.3f}; the N = "
            f"{sizes[-1]} ensemble of small models minus that: {fmt_ci(beat, beat_se)}."
        )
        finding.numbers[f"{fam}/gain"] = gain
        finding.numbers[f"{fam}/gain_se"] = gain_se
        finding.numbers[f"{fam}/sizes"] = sizes
        finding.numbers[f"{fam}/curve"] = mean_obs.tolist()
        finding.numbers[f"{fam}/predicted"] = pred.tolist()
        finding.numbers[f"{fam}/beats_large"] = beat
        curves.append((fam, sizes, mean_obs, (cos_lo, cos_hi), pred, limit, float(nanmean(large))))
    finding.status = verdict(lowers, uppers, 0.0)
    finding.reason = {
        "holds": "in every family the ensemble of small models moves towards the large models as N grows "
                 "(95 % interval of the gain above 0)",
        "fails": "in some family the ensemble of small models moves away from the large models as N grows",
        "inconclusive": "some family's 95 % interval of the ensemble gain includes 0 (no shared direction to "
                        "approach, or too little data)",
    }.get(finding.status, "no valid ensembles")
    finding.tables.append(save_table(pd.DataFrame(rows), out_dir, "ensembles"))
    accuracy = _ensemble_accuracy(ctx) if ctx.models is not None else None
    if accuracy is not None:
        finding.tables.append(save_table(accuracy, out_dir, "ensembles_accuracy"))
        for fam, sub in accuracy.groupby("family"):
            finding.measured.append(
                f"{fam}: test accuracy of the averaged probabilities of N k = {sub['capacity_small'].iloc[0]:g} "
                f"models from {sub['accuracy'].iloc[0]:.3f} (N = 1) to {sub['accuracy'].iloc[-1]:.3f} "
                f"(N = {sub['ensemble_size'].iloc[-1]}); one k = {sub['capacity_large'].iloc[0]:g} model: "
                f"{sub['large_accuracy'].iloc[0]:.3f}."
            )
    finding.figures.append(_figure(curves, caps, accuracy, out_dir))
    return finding


def _ensemble_accuracy(ctx):
    """Accuracy of the averaged softmax of the first N small models of the model pool, per family."""
    import pandas as pd

    pool = ctx.models
    rows = []
    for fam in pool.families:
        caps = pool.capacities(fam)
        p_small = pool.probabilities_of(fam, caps[0])  # (M, n, C)
        p_large = pool.probabilities_of(fam, caps[-1])
        y = pool.labels
        large_acc = float(np.mean(p_large.argmax(-1) == y[None]))
        for size in default_sizes(p_small.shape[0]):
            acc = float(np.mean(p_small[:size].mean(0).argmax(-1) == y))
            rows.append({"family": fam, "capacity_small": caps[0], "capacity_large": caps[-1], "ensemble_size": size,
                         "accuracy": acc, "large_accuracy": large_acc})
    return pd.DataFrame(rows) if rows else None


def _figure(curves, caps, accuracy, out_dir):
    n_panels = 2 if accuracy is not None else 1
    fig, axes = new_figure(1, n_panels, figsize=(6.4 * n_panels, 4.2), squeeze=False)
    ax = axes[0, 0]
    for i, (fam, sizes, obs, (lo, hi), pred, limit, large) in enumerate(curves):
        color = f"C{i}"
        # asymmetric bars: the 95 % intervals of a cosine (Fisher z), inside [-1, 1]
        ax.errorbar(sizes, obs, yerr=np.stack([obs - lo, hi - obs]), fmt="o", color=color,
                    label=f"{fam}: observed (95 %)")
        ax.plot(sizes, pred, "-", color=color, label=f"{fam}: identity 4")
        ax.axhline(limit, color=color, ls=":", lw=1)
        ax.axhline(large, color=color, ls="--", lw=1, label=f"{fam}: two large models agree")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"ensemble size N (models of k = {caps[0]:g})")
    ax.set_ylabel(f"cos(ensemble mean, a k = {caps[-1]:g} model)")
    ax.set_title("Ensembles of small models (dotted: N -> infinity)")
    ax.legend(frameon=False, fontsize="x-small")
    if accuracy is not None:
        ax = axes[0, 1]
        for i, (fam, sub) in enumerate(accuracy.groupby("family", sort=False)):
            ax.plot(sub["ensemble_size"], sub["accuracy"], "o-", color=f"C{i}", label=f"{fam}: ensemble")
            ax.axhline(sub["large_accuracy"].iloc[0], color=f"C{i}", ls="--", lw=1, label=f"{fam}: one large model")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("ensemble size N")
        ax.set_ylabel("test accuracy")
        ax.set_title("Ensemble accuracy")
        ax.legend(frameon=False, fontsize="x-small")
    return save_figure(fig, out_dir, "ensembles")

