r"""Finding 3 — shared mean (H2): models of different capacity share the population-mean direction mu(x).

Measured:

* **Alignment** of the mean directions of every pair of capacities (and of families given one architecture label),
  bias-aware: cos(mu_j, mu_l) = sum_x rho_x(j, l) / sqrt(sum_x rho_x(j, j) sum_x rho_x(l, l)) (identity 2 with the
  unbiased pair sums of :mod:`sawdist.analyses._pairs`), with delete-one-seed jackknife intervals on the Fisher-z
  scale (:func:`~sawdist.analyses._common.cosine_interval`: inside [-1, 1]). Plug-in mean directions would not do: in
  high dimension their cosines are biased towards 0 by noise. Being a ratio of unbiased sums, the estimate itself
  can exceed 1 when the true cosine is near 1: it is reported as measured (table, figure), its interval ends at 1.
* **Bayesian comparison** of the collapsed vMF model with one mean direction per input shared by the capacities
  against one per capacity (:func:`sawdist.bayes.fit_convergence`, PSIS-LOO over inputs, power law).

Verdict: H2 holds when every pair's alignment lies above ``alignment_threshold`` (default 0.9: "almost the same"),
95 % intervals, and fails when one lies below. The LOO comparison is reported beside it (it prefers the shared
mean as soon as the means are partly aligned, so it cannot decide "almost" alone), with a caveat when either fit
breaks the sampler rule (:func:`sawdist.bayes.fitting.sampler_diagnostics`); the verdict does not rest on the fits,
so it is never "unreliable (sampler)".

Run alone: ``sawdist report DATASET.nc --only shared_mean``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _pairs
from ._common import (
    Finding,
    cosine_interval,
    fmt_ci,
    new_figure,
    save_figure,
    save_table,
    verdict,
)

if TYPE_CHECKING:
    import os

    import xarray as xr

    from .context import Context

KEY = "shared_mean"
TITLE = "Capacities share the mean direction (H2)"
CLAIM = ("Within one architecture, models of different capacity share (almost) the same population-mean saliency "
         "direction mu(x).")


def _pairs_to_test(ps, architecture):
    """Slot pairs (j, l), j < l, whose mean directions H2 says are equal: same family, or same architecture."""
    K = len(ps.capacities)
    label = {fam: (architecture or {}).get(fam, fam) for fam in ps.families}
    out = []
    for f, fa in enumerate(ps.families):
        for g, fb in enumerate(ps.families):
            if g < f or label[fa] != label[fb]:
                continue
            for i in range(K):
                for j in range(K):
                    a, b = ps.slot(f, i), ps.slot(g, j)
                    if a < b:
                        out.append((a, b))
    return out


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            **_: object) -> Finding:
    """Run the analysis on a saliency dataset; write figures and tables under ``out_dir``; return the finding."""
    import pandas as pd

    from .context import Context

    ctx = context or Context(ds, out_dir)
    opts = ctx.options
    ps = ctx.pairs
    caps = ps.capacities
    finding = Finding(KEY, TITLE, CLAIM)
    A, A_se, _ = ps.statistic(_pairs.alignment)
    pairs = _pairs_to_test(ps, opts.architecture)
    K = len(caps)
    name = [f"{fam} k={k:g}" for fam in ps.families for k in caps]
    rows = []
    for a, b in pairs:
        lo, hi = cosine_interval(A[a, b], A_se[a, b])
        rows.append({"slot_1": name[a], "slot_2": name[b], "alignment": A[a, b], "se": A_se[a, b], "lower": lo,
                     "upper": hi})
    table = pd.DataFrame(rows)
    thr = float(opts.alignment_threshold)
    if rows:
        finding.status = verdict(table["lower"], table["upper"], thr)
        worst = table.iloc[int(np.argmin(table["alignment"].to_numpy()))]
        finding.measured.append(
            f"bias-aware cos(mu_k1, mu_k2) over {len(rows)} pairs of capacities: median "
            f"{np.median(table['alignment']):.3f}, smallest {fmt_ci(worst['alignment'], worst['se'], cosine=True)} "
            f"({worst['slot_1']} vs {worst['slot_2']}); threshold {thr:g}."
        )
        finding.numbers["alignment_min"] = float(table["alignment"].min())
        finding.numbers["alignment_median"] = float(np.median(table["alignment"]))
        finding.numbers["alignment_upper_min"] = float(table["upper"].min())
        for f, fam in enumerate(ps.families):
            b = ps.block(f)
            adjacent = [A[b, b][i, i + 1] for i in range(K - 1)]
            finding.numbers[f"{fam}/alignment_adjacent"] = [float(x) for x in adjacent]
    finding.tables.append(save_table(table, out_dir, "shared_mean_alignment"))
    # Bayesian shared-vs-separate comparison.
    if opts.bayes:
        try:
            comparison, notes = ctx.compare({"shared": ctx.fit("power", True), "separate": ctx.fit("power", False)})
        except ValueError as err:  # e.g. fewer than 2 valid seeds everywhere
            finding.measured.append(f"Bayesian comparison not run: {err}")
        else:
            finding.tables.append(save_table(comparison.reset_index(names="model"), out_dir, "shared_mean_loo"))
            best = comparison.index[0]
            other = comparison.index[1]
            diff, dse = float(comparison.loc[other, "elpd_diff"]), float(comparison.loc[other, "dse"])
            finding.measured.append(
                f"Bayesian vMF model, PSIS-LOO over inputs: the {best!r} mean model is preferred; elpd difference "
                f"to {other!r} {diff:.1f} (se {dse:.1f})."
            )
            finding.measured.extend(f"({note}.)" for note in notes)
            # The verdict rests on the moment alignment, not on these fits: a fit that breaks the sampler rule
            # discredits the LOO line only.
            for model, shared in (("shared", True), ("separate", False)):
                checked = ctx.diagnostics("power", shared)
                finding.numbers[f"sampler_reliable_{model}"] = bool(checked.reliable)
                if not checked.reliable:
                    finding.measured.append(f"(The {model}-mean fit breaks the sampler rule "
                                            f"({', '.join(checked.problems)}): this comparison is not to be relied "
                                            f"on.)")
            finding.numbers["loo_best"] = str(best)
            finding.numbers["loo_elpd_diff"] = diff
            finding.numbers["loo_dse"] = dse
    finding.reason = {
        "holds": f"every pair of capacities has a mean-direction cosine above {thr:g} (95 % interval)",
        "fails": f"some pair of capacities has a mean-direction cosine below {thr:g} (95 % interval)",
        "inconclusive": f"some pair's 95 % interval for the mean-direction cosine includes {thr:g}",
    }.get(finding.status, "no pairs of capacities to compare")
    finding.figures.append(_figure(A, name, ps, out_dir, thr))
    return finding


def _figure(A, names, ps, out_dir, thr):
    K = len(ps.capacities)
    fig, ax = new_figure(figsize=(2.0 + 0.55 * len(names), 1.0 + 0.5 * len(names)))
    im = ax.imshow(np.clip(A, -1, 1), origin="lower", cmap="magma", vmin=min(0.0, float(np.nanmin(A))), vmax=1.0)
    labels = [n.replace(" ", "\n") for n in names]
    ax.set_xticks(range(len(names)), labels, fontsize="x-small", rotation=90)  # many slots: no overlap
    ax.set_yticks(range(len(names)), labels, fontsize="x-small")
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(A[i, j]):
                ax.text(j, i, f"{A[i, j]:.2f}", ha="center", va="center", fontsize="xx-small",
                        color="k" if A[i, j] > 0.6 else "w")
    for f in range(1, len(ps.families)):
        ax.axhline(f * K - 0.5, color="w", lw=1)
        ax.axvline(f * K - 0.5, color="w", lw=1)
    ax.set_title(f"Alignment of mean directions cos(mu_j, mu_l) (H2 threshold {thr:g})", fontsize="medium")
    fig.colorbar(im, ax=ax, shrink=0.85, label=r"bias-aware $\cos(\mu_j, \mu_l)$")
    return save_figure(fig, out_dir, "shared_mean_alignment")

