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

The two assumptions behind "Saw-shaped" are tested, per family, with the seeds as the random draws of each input:

* **Rotational symmetry about mu(x)** (:func:`sawdist.stats.rotational_symmetry_test`): at each capacity, the
  scatter of the seeds around their input's mean direction must be isotropic in the tangent space. The statistic
  pools the squared cosines of tangent contrasts over inputs (valid for few seeds in any dimension); the capacities
  are combined by adding the statistic and its null mean and variance, and the p-value is that of the same scaled
  chi-square. At most :data:`SYMMETRY_INPUTS` inputs enter, from evenly spaced stored chunks
  (:func:`chunk_aligned`). The tangent effective dimension (participation ratio of the scatter; d - 1 when
  isotropic) is reported per capacity.
* **The shape of the cosine law** (:func:`sawdist.stats.saw_shape_test`): von Mises–Fisher against the
  semi-parametric law, fitted per (input, capacity) on the other seeds and scored on held-out seeds
  (:data:`SHAPE_FOLDS`-fold cross-validation over seeds, at most :data:`SHAPE_INPUTS` inputs, chosen alike); the
  mean gain of the semi-parametric law in nats per held-out seed has a 95 % interval over the (input, capacity)
  groups, and the verdict is "the semi-parametric law fits better" (interval above 0), "vMF is adequate" (interval
  at or below 0) or "inconclusive". It scores held-out cosines through the blur that rotational symmetry implies,
  so it is read after the symmetry test (the measured line says so when symmetry is rejected).

Verdict: the claim holds when the cosine law concentrates away from the uniform law as capacity grows —
m(k_max) - m(k_min) > 0 for every family, with m(k) = sqrt(mean_x m_hat_k(x)^2) (root mean square over inputs,
unbiased inside the root) and a 95 % delete-one-seed jackknife interval — and rotational symmetry about mu(x) is not
rejected in any family (p >= 0.05 / the number of families, Bonferroni). It fails when m(k) falls in some family or
the symmetry test rejects in some family, and is inconclusive otherwise. The shape verdict is reported beside it: the
claim names no shape (any rotationally symmetric law is a Saw law), so it does not enter the verdict.

Run alone: ``sawdist report DATASET.nc --only cosine_laws``.
"""

from __future__ import annotations

import types
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
from .blocks import BYTES_PER_VALUE

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

    import xarray as xr

    from .context import Context

KEY = "cosine_laws"
TITLE = "Cosine laws concentrate with capacity; Saw shapes"
CLAIM = ("At every capacity the directions follow a rotationally symmetric (Saw) law about the input's mean "
         "direction, whose cosine law moves away from the uniform law as capacity grows.")

#: At most this many inputs enter the test of rotational symmetry (:func:`chunk_aligned`); fewer when one capacity's
#: directions at that many inputs would exceed the memory budget of a block (:mod:`sawdist.analyses.blocks`).
SYMMETRY_INPUTS = 1000
#: At most this many inputs (:func:`chunk_aligned`) enter the Saw-shape test, which fits a spline per input,
#: capacity and fold.
SHAPE_INPUTS = 12
#: Folds of seeds in the Saw-shape test.
SHAPE_FOLDS = 4
#: The shape test's verdicts as the report words them.
SHAPE_WORDS = {"semi-parametric better": "the semi-parametric law fits better", "vMF adequate": "vMF is adequate",
               "inconclusive": "inconclusive"}


def fmt_p(p: float) -> str:
    """A p-value in two significant digits; one that underflows is "< 1e-300"."""
    return "< 1e-300" if p < 1e-300 else f"= {p:.2g}"


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced positions among ``n`` (all of them when n <= k)."""
    return np.unique(np.round(np.linspace(0, n - 1, min(n, k))).astype(int))


def chunk_aligned(n: int, k: int, extent: int) -> np.ndarray:
    """At most ``k`` input positions among ``n`` that lie in as few stored chunks (of ``extent`` inputs) as they can:
    the inputs of ceil(k / extent) evenly spaced chunks, thinned evenly to ``k``. Reading them reads those chunks and
    no other; ``k`` evenly spaced inputs would read up to ``k`` chunks, up to ``k`` x ``extent`` inputs' worth."""
    n_chunks = -(-n // extent)
    chunks = evenly_spaced(n_chunks, -(-min(n, k) // extent))
    idx = np.concatenate([np.arange(c * extent, min((c + 1) * extent, n)) for c in chunks])
    return idx[evenly_spaced(idx.size, k)]


def with_nan(ds: xr.Dataset, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The directions ``U`` with NaN rows where ``V`` is False, in the dataset's dtype (whose rounding the unit-norm
    check of :mod:`sawdist.stats` allows for: float32 files hold float32 unit vectors)."""
    return np.where(V[..., None], U, np.nan).astype(ds["direction"].dtype, copy=False)


def symmetry_tests(ctx: Context, family: int, inputs: np.ndarray, n_capacities: int) -> list:
    """:func:`sawdist.stats.rotational_symmetry_test` at each capacity, the inputs as groups (None where no input
    has 4 valid seeds)."""
    from sawdist.stats import rotational_symmetry_test

    ds = ctx.ds
    out = []
    for k in range(n_capacities):
        U, V = ctx.read(family, inputs, capacities=[k])
        if not np.any(V[0].sum(axis=0) >= 4):
            out.append(None)
            continue
        out.append(rotational_symmetry_test(with_nan(ds, U[0], V[0]), axis=0))
    return out


def combined_symmetry(results: Sequence) -> tuple[float, float]:
    """(z, p) of the symmetry statistic summed over capacities (disjoint groups: the statistic, its null mean and
    variance add), with the scaled chi-square of :func:`sawdist.stats.rotational_symmetry_test`."""
    from scipy.special import chdtrc

    done = [r for r in results if r is not None]
    T = sum(r.statistic for r in done)
    E = sum(r.expected for r in done)
    V = sum(r.variance for r in done)
    return (T - E) / np.sqrt(V), float(chdtrc(2.0 * E * E / V, T * 2.0 * E / V))


def shape_gains(difference: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per capacity (rows), the mean held-out gain per seed and its SE with the inputs (columns) as units."""
    mean, se = np.full(difference.shape[0], np.nan), np.full(difference.shape[0], np.nan)
    for k in range(difference.shape[0]):
        ok = count[k] > 0
        n, total = int(ok.sum()), float(count[k][ok].sum())
        if n == 0:
            continue
        mean[k] = float(difference[k][ok].sum()) / total
        if n >= 2:
            r = difference[k][ok] - mean[k] * count[k][ok]
            se[k] = np.sqrt(n / (n - 1.0) * float(r @ r)) / total
    return mean, se


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
    from sawdist.semiparametric import fit_log_spline

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
    n_inputs, n_seeds = ds.sizes["input"], ds.sizes["seed"]
    extent = ctx.scan.plan.chunk_extent
    n_sym = min(SYMMETRY_INPUTS, max(1, ctx.memory // (BYTES_PER_VALUE * n_seeds * d)))
    inputs_sym = chunk_aligned(n_inputs, n_sym, extent)
    inputs_shape = chunk_aligned(n_inputs, SHAPE_INPUTS, extent)
    symmetry_p = {}
    shape_verdicts = {}
    alpha = 0.05 / max(len(ps.families), 1)  # symmetry rejected in a family: Bonferroni over the families
    for f, fam in enumerate(ps.families):
        b = ps.block(f)
        cos = ctx.scan.cosines[f]  # pooled_cosines of every input, from the one pass over the directions
        fits = [fit_log_spline(t, d) if np.unique(t).size >= 2 else None for t in cos]
        if any(fit is None for fit in fits):
            finding.measured.append(f"{fam}: too few inputs with 2 valid directions per capacity; no shapes.")
            continue
        shapes = [fit.log_shape for fit in fits]
        rel = shape_relation(shapes, cos)
        sym = symmetry_tests(ctx, f, inputs_sym, K)
        shape = None
        U, V = ctx.read(f, inputs_shape)
        if np.any(V.sum(axis=1) >= 4):
            from sawdist.stats import saw_shape_test

            shape = saw_shape_test(with_nan(ds, U, V), axis=1, n_folds=SHAPE_FOLDS,
                                   rng=np.random.default_rng([ctx.options.seed, f]))
            gain, gain_se = shape_gains(shape.group_difference, shape.n_heldout)
        else:
            gain = gain_se = np.full(K, np.nan)
        gain_lo, gain_hi = interval(gain, gain_se)
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
            lo_k, hi_k = cosine_interval(m[k], se[k])  # m(k) is a mean cosine: its interval stays in [-1, 1]
            sk = sym[k]
            rows.append({"family": fam, "capacity": caps[k], "n_cosines": t.size, "m": m[k], "m_se": se[k],
                         "m_lower": lo_k, "m_upper": hi_k, "m_shape_fit": fits[k].mean, "cosine_sd": np.std(t),
                         "uniform_sd": 1.0 / np.sqrt(d), "z_vs_uniform": m[k] * np.sqrt(d),
                         "shape_slope_vs_next": rel[k, 0] if k < K - 1 else np.nan,
                         "shape_r2_vs_next": rel[k, 1] if k < K - 1 else np.nan, "edf": fits[k].edf,
                         "symmetry_inputs": np.nan if sk is None else sk.n_groups,
                         "symmetry_z": np.nan if sk is None else sk.zscore,
                         "symmetry_p": np.nan if sk is None else sk.pvalue,
                         "tangent_effective_dim": np.nan if sk is None else sk.effective_dimension,
                         "tangent_effective_dim_lower": np.nan if sk is None else sk.effective_dimension_interval[0],
                         "tangent_effective_dim_upper": np.nan if sk is None else sk.effective_dimension_interval[1],
                         "tangent_dim_isotropic": np.nan if sk is None else sk.reference_dimension,
                         "shape_gain_nats": gain[k], "shape_gain_lower": gain_lo[k], "shape_gain_upper": gain_hi[k]})
        finding.measured.append(
            f"{fam}: m(k) (root mean square over inputs) from {fmt_ci(m[0], se[0], cosine=True)} at k = {caps[0]:g} "
            f"to {fmt_ci(m[-1], se[-1], cosine=True)} at "
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
        done = [(caps[k], r) for k, r in enumerate(sym) if r is not None]
        if done:
            z, p = combined_symmetry([r for _, r in done])
            symmetry_p[fam] = p
            dims = "; ".join(f"{r.effective_dimension:.0f} [{r.effective_dimension_interval[0]:.0f}, "
                             f"{r.effective_dimension_interval[1]:.0f}] at k = {c:g}" for c, r in done)
            finding.measured.append(
                f"{fam}: rotational symmetry about mu(x), tested as isotropy of the seeds' scatter around their "
                f"input's mean direction (pairwise cosines of tangent contrasts, {len(inputs_sym)} inputs x "
                f"{len(done)} capacities): z = {z:.2f}, p {fmt_p(p)}; tangent effective dimension {dims} "
                f"(isotropic scatter: {done[0][1].reference_dimension:.0f})."
            )
            finding.numbers[f"{fam}/symmetry_z"] = float(z)
            finding.numbers[f"{fam}/symmetry_p"] = p
            finding.numbers[f"{fam}/tangent_effective_dimension"] = [
                np.nan if r is None else r.effective_dimension for r in sym]
        else:
            finding.measured.append(f"{fam}: rotational symmetry not tested (no input with 4 valid seeds at a "
                                    "capacity).")
        if shape is not None:
            s_lo, s_hi = shape.interval
            shape_verdicts[fam] = shape.verdict
            finding.measured.append(
                f"{fam}: Saw shape, von Mises-Fisher against the semi-parametric cosine law by held-out "
                f"log-likelihood ({shape.n_folds}-fold cross-validation over seeds, {len(inputs_shape)} inputs x "
                f"{K} capacities, the (input, capacity) groups as random units): the semi-parametric law gains "
                f"{shape.mean_difference:+.3f} [{s_lo:+.3f}, {s_hi:+.3f}] nats per held-out seed "
                f"(per capacity: " + ", ".join("n/a" if not np.isfinite(g) else f"{g:+.3f}" for g in gain)
                + f"): {SHAPE_WORDS[shape.verdict]}."
                + (" The comparison scores held-out cosines through the blur that rotational symmetry implies; "
                   "with symmetry rejected it is a comparison of two approximations." if fam in symmetry_p
                   and symmetry_p[fam] < alpha else "")
            )
            finding.numbers[f"{fam}/shape_gain"] = shape.mean_difference
            finding.numbers[f"{fam}/shape_gain_interval"] = [s_lo, s_hi]
            finding.numbers[f"{fam}/shape_verdict"] = shape.verdict
        else:
            finding.measured.append(f"{fam}: Saw shape not tested (no input with 4 valid seeds at a capacity).")
        finding.numbers[f"{fam}/m"] = m.tolist()
        finding.numbers[f"{fam}/m_se"] = se.tolist()
        finding.numbers[f"{fam}/m_increase"] = float(inc)
        finding.numbers[f"{fam}/shape_r2_adjacent"] = rel[:, 1].tolist()
        fake = types.SimpleNamespace(capacities=list(caps), distributions=[saw(e1, s) for s in shapes],
                                     cosines=cos, log_shapes=shapes, dim=d)
        finding.figures.append(_figure(fake, shapes, cos, caps, fam, out_dir))
    status = verdict(lowers, uppers, 0.0) if lowers else "not tested"
    concentration = {
        "holds": "in every family m(k) rises from the smallest to the largest capacity (95 % interval above 0)",
        "fails": "in some family m(k) falls from the smallest to the largest capacity (95 % interval below 0)",
        "inconclusive": "the increase of m(k) has a 95 % interval that includes 0",
    }.get(status, "too few valid directions")
    rejected = [fam for fam, p in symmetry_p.items() if p < alpha]
    if status != "not tested" and rejected:
        status = "fails"
        reason = ("rotational symmetry about the input's mean direction is rejected in "
                  + ", ".join(f"{fam} (p {fmt_p(symmetry_p[fam])})" for fam in rejected)
                  + f" at level {alpha:.3g}: the seeds' scatter around mu(x) is anisotropic; " + concentration)
    elif status != "not tested" and symmetry_p:
        reason = (concentration + "; rotational symmetry about mu(x) is not rejected (p >= "
                  f"{alpha:.3g} in every family)")
    elif status != "not tested":
        reason = concentration + "; rotational symmetry not tested"
    else:
        reason = concentration
    if shape_verdicts:
        reason += "; cosine-law shape: " + ", ".join(f"{SHAPE_WORDS[v]} ({fam})" for fam, v in shape_verdicts.items())
    finding.status, finding.reason = status, reason
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

