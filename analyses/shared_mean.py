r"""Finding 3 — shared mean (H2): models of different capacity share the population-mean direction mu(x).

Measured:

* **Alignment** of the mean directions of every pair of capacities (and of families given one architecture label),
  bias-aware: cos(mu_j, mu_l) = sum_x rho_x(j, l) / sqrt(sum_x rho_x(j, j) sum_x rho_x(l, l)) (identity 2 with the
  unbiased pair sums of :mod:`sawdist.analyses._pairs`), with delete-one-seed jackknife intervals on the Fisher-z
  scale (:func:`~sawdist.analyses._common.cosine_interval`: inside [-1, 1]). Plug-in mean directions would not do: in
  high dimension their cosines are biased towards 0 by noise. Being a ratio of unbiased sums, the estimate itself
  can exceed 1 when the true cosine is near 1: it is reported as measured (table, figure), its interval ends at 1.
* **Bayesian comparison** of the collapsed vMF model with one mean direction per input shared by the capacities
  against one per capacity (:func:`sawdist.bayes.fit_convergence`, power law): leave-one-input-out with each
  input's effects integrated out (:func:`sawdist.bayes.loo.loo_inputs`; PSIS, and an exact refit where Pareto's k
  is too large), on the calibrated likelihood's scale. It says "shared" or "separate" when one model predicts held-out
  inputs better by more than 2 standard errors of the paired difference over inputs, else "tie".

Verdict, one rule over both (:func:`decide`): the alignment measures how close the means are, the comparison
whether sharing one mean predicts new inputs at least as well.

=====================  ===============  ==============  =========================  =========================
alignment (95 %)       shared or tie    separate        comparison unreliable      comparison not run
=====================  ===============  ==============  =========================  =========================
every pair above t     holds            inconclusive    unreliable (sampler) [1]_  holds (alignment alone)
some pair straddles t  inconclusive     inconclusive    inconclusive               inconclusive
some pair below t      fails            fails           fails                      fails
=====================  ===============  ==============  =========================  =========================

.. [1] "inconclusive" when the fits meet the sampler rule but some input's leave-one-out term stays approximate
   (Pareto k above the threshold after the refits) or the integral over the inputs' effects is inaccurate.

t is ``alignment_threshold`` (default 0.9: "almost the same"). A pair below t fails H2 whatever the comparison says:
it prefers a shared mean as soon as the means are partly aligned, so it cannot vouch for "almost" alone.

Run alone: ``sawdist report DATASET.nc --only shared_mean``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _pairs
from ._common import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_TESTED,
    UNRELIABLE,
    Finding,
    cosine_interval,
    fmt_ci,
    new_figure,
    retry_note,
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
    alignment_status = finding.status
    comparison = None
    if opts.bayes and rows:
        comparison = _compare(ctx, finding, out_dir)
    finding.numbers["alignment_status"] = alignment_status
    finding.numbers["comparison"] = comparison if comparison is not None else "not run"
    finding.status, finding.reason = decide(alignment_status, comparison, thr)
    finding.figures.append(_figure(A, name, ps, out_dir, thr))
    return finding


#: A model predicts held-out inputs decisively better when its elpd exceeds the other's by this many standard
#: errors of the paired difference over inputs.
DECISIVE_SE = 2.0


def _compare(ctx, finding, out_dir) -> str | None:
    """Run the shared-vs-separate comparison, report it, and return its outcome for :func:`decide`."""
    try:
        table, notes = ctx.compare({"shared": ("power", True), "separate": ("power", False)})
    except ValueError as err:  # e.g. fewer than 2 valid seeds everywhere
        finding.measured.append(f"Bayesian comparison not run: {err}")
        return None
    finding.tables.append(save_table(table.reset_index(names="model"), out_dir, "shared_mean_loo"))
    best, other = table.index[0], table.index[1]
    diff, dse = float(table.loc[other, "elpd_diff"]), float(table.loc[other, "dse"])
    outcome = best if diff > DECISIVE_SE * dse else "tie"
    finding.measured.append(
        f"Bayesian vMF models, leave-one-input-out with each input's effects integrated out (calibrated scale): "
        f"{best!r} mean predicts held-out inputs better by {diff:.1f} (se {dse:.1f} over inputs): "
        + (f"{best} decisively (> {DECISIVE_SE:g} se)." if outcome != "tie" else f"a tie (within {DECISIVE_SE:g} se).")
    )
    finding.measured.extend(f"({note}.)" for note in notes)
    finding.numbers["loo_best"] = str(best)
    finding.numbers["loo_elpd_diff"] = diff
    finding.numbers["loo_dse"] = dse
    finding.numbers["loo_pareto_k_max"] = float(np.nanmax(table["pareto_k_max"]))
    sampler_ok = True
    for model, shared in (("shared", True), ("separate", False)):
        checked = ctx.diagnostics("power", shared)
        note = retry_note(ctx.fit("power", shared).posterior.attrs, f"{model}-mean fit")
        if note:
            finding.measured.append(note)
        finding.numbers[f"sampler_reliable_{model}"] = bool(checked.reliable)
        if not checked.reliable:
            sampler_ok = False
            finding.measured.append(f"(The {model}-mean fit breaks the sampler rule "
                                    f"({', '.join(checked.problems)}).)")
    if not sampler_ok:
        return "unreliable (sampler)"
    approximate = int(table["unreliable"].sum()) > 0 or any("inaccurate" in w for k in (("power", True), (
        "power", False)) for w in ctx.loo_warnings.get(k, []))
    return "approximate" if approximate else outcome


#: The comparison outcomes :func:`decide` takes.
COMPARISONS = ("shared", "tie", "separate", "unreliable (sampler)", "approximate", None)


def decide(alignment: str, comparison: str | None, threshold: float = 0.9) -> tuple[str, str]:
    """H2's verdict and its reason from the alignment's verdict and the comparison's outcome (module docstring).

    Parameters
    ----------
    alignment : {"holds", "fails", "inconclusive", "not tested"}
        Every pair's 95 % interval above the threshold / some below / else.
    comparison : {"shared", "tie", "separate", "unreliable (sampler)", "approximate"} or None
        The leave-one-input-out comparison's outcome; None when it did not run.
    threshold : float
        The alignment threshold, for the reason.

    Returns
    -------
    (str, str)
        The verdict and one sentence of reason.
    """
    if comparison not in COMPARISONS:
        raise ValueError(f"'comparison' must be one of {', '.join(map(repr, COMPARISONS))}, got {comparison!r}.")
    t = f"{threshold:g}"
    if alignment == NOT_TESTED:
        return NOT_TESTED, "no pairs of capacities to compare"
    if alignment == FAILS:
        return FAILS, f"some pair of capacities has a mean-direction cosine below {t} (95 % interval)"
    if alignment == INCONCLUSIVE:
        return INCONCLUSIVE, f"some pair's 95 % interval for the mean-direction cosine includes {t}"
    if comparison in ("shared", "tie"):
        told = ("predicts held-out inputs better" if comparison == "shared"
                else "predicts held-out inputs as well (within 2 se)")
        return HOLDS, (f"every pair of capacities has a mean-direction cosine above {t} (95 % interval) and the "
                       f"shared-mean model {told} than one mean per capacity")
    if comparison == "separate":
        return INCONCLUSIVE, (f"every pair's mean-direction cosine is above {t}, but one mean per capacity predicts "
                              f"held-out inputs better than a shared mean: the means are close, not shared")
    if comparison == "unreliable (sampler)":
        return UNRELIABLE, (f"every pair's mean-direction cosine is above {t}, but a fit of the model comparison "
                            f"breaks the sampler rule, so the comparison decides nothing; fit again with more tuning "
                            f"and draws")
    if comparison == "approximate":
        return INCONCLUSIVE, (f"every pair's mean-direction cosine is above {t}, but the model comparison is "
                              f"approximate for some inputs (Pareto k above the threshold after the refits, or an "
                              f"inaccurate integral)")
    return HOLDS, (f"every pair of capacities has a mean-direction cosine above {t} (95 % interval); the Bayesian "
                   f"comparison did not run, so the verdict rests on the alignment alone")


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

