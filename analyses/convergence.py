r"""Finding 4 — the convergence law: concentration kappa(k) and m(k) rise with capacity, by a Bayesian fit.

Measured, per family, from the collapsed vMF model with a shared mean direction (:func:`sawdist.bayes.fit_convergence`,
mu(x) integrated out, inputs partially pooled):

* the power law log kappa = alpha + beta log k: posterior of beta, and kappa(k) and m(k) = A_d(kappa(k)) for the
  typical input, with 95 % posterior bands;
* the laws of concentration (``Options.laws``) compared by leave-one-input-out with each input's effects integrated
  out (:func:`sawdist.bayes.loo.loo_inputs`);
* the posterior predictive similarity matrix mean_x m_x(k1) m_x(k2) against the observed rho(k1, k2) (same inputs).

Verdict: the concentration rises with capacity, beta > 0, for every family (95 % posterior interval), provided the
power-law fit meets the sampler rule (:func:`sawdist.bayes.fitting.sampler_diagnostics`: max R-hat <= 1.01 and bulk
ESS >= 400 over alpha, beta and sigma, no divergences); otherwise the verdict is "unreliable (sampler)", whatever
the interval says. The diagnostics are reported with it, and those of the other laws' fits beside the LOO
comparison.

Run alone: ``sawdist report DATASET.nc --only convergence``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import _pairs
from ._common import Finding, apply_sampler_rule, nanmean, new_figure, retry_note, save_figure, save_table, verdict

if TYPE_CHECKING:
    import os

    import xarray as xr

    from .context import Context

KEY = "convergence"
TITLE = "Convergence law: concentration rises with capacity (Bayesian)"
CLAIM = ("The concentration of a family's directions about mu(x) grows with capacity: log kappa = alpha + "
         "beta log k with beta > 0 (Bayesian vMF model, mu(x) integrated out).")


def _q(a, axis=0):
    return np.quantile(a, [0.025, 0.975], axis=axis)


def _weight_text(family: str, w: float, score: float, ratio: float, d_eff: float, d: int) -> str:
    """What finding 4 says of one family's likelihood weight w (sawdist.bayes.calibration): which measurement set
    it, and, should w be larger than the score's check allows (a weight given by hand), by how much intervals may be
    too narrow."""
    diagonal = min(1.0, 1.0 / ratio) if np.isfinite(ratio) and ratio > 0 else 1.0
    if np.isfinite(score) and score > 0 and w <= 1.0 / score * (1 + 1e-9) and 1.0 / score < diagonal:
        return (f"{family}: w = {w:.3g}, set by the score's worst-calibrated direction, which varies {score:.3g}x "
                f"the vMF's (the Gram diagonal {ratio:.3g}x; d_eff = {d_eff:.3g} of d = {d})")
    text = f"{family}: w = {w:.3g} (seed-level variance {ratio:.3g}x the vMF's, d_eff = {d_eff:.3g} of d = {d})"
    if np.isfinite(score) and score * w > 1.1:
        # w allows a variance 1/w times the vMF's in every direction; the score's check says one has more
        text += (f", but the score's worst-calibrated direction varies {score:.3g}x the vMF's: intervals along "
                 f"it may be up to {np.sqrt(score * w):.2g}x too narrow")
    return text


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            **_: object) -> Finding:
    """Run the analysis on a saliency dataset; write figures and tables under ``out_dir``; return the finding."""
    import pandas as pd

    from sawdist.special import vmf_mean_resultant_length

    from .context import Context

    ctx = context or Context(ds, out_dir)
    opts = ctx.options
    finding = Finding(KEY, TITLE, CLAIM)
    if not opts.bayes:
        finding.reason = "the Bayesian fits were switched off (bayes = false)"
        return finding
    try:
        idata = ctx.fit("power", True)
    except ValueError as err:
        finding.reason = f"the Bayesian model could not be fitted: {err}"
        return finding
    from sawdist.bayes import posterior_predictive

    d = ctx.dim
    post = idata.posterior
    caps = np.asarray(post["capacity"].values, dtype=float)
    families = [str(f) for f in post["family"].values]
    alpha = post["alpha"].stack(s=("chain", "draw")).transpose("s", "family").values
    beta = post["beta"].stack(s=("chain", "draw")).transpose("s", "family").values
    m_x = post["mean_resultant_length"].stack(s=("chain", "draw")).transpose("s", "family", "input", "capacity").values
    # The predicted similarity mean_x m_x(k1) m_x(k2), per posterior draw.
    predicted = posterior_predictive(idata)["similarity"].stack(s=("chain", "draw")).transpose(
        "s", "family", "capacity", "capacity_b").values
    checked = ctx.diagnostics("power", True)
    b_lo, b_hi = _q(beta)
    finding.status = verdict(b_lo, b_hi, 0.0)
    # Observed rho on the inputs of the fit.
    ps = ctx.pairs
    pos = ctx.ds.get_index("input").get_indexer(ctx.summary["input"].values)
    rho_x = ps.per_input()[pos]
    obs_all, obs_se_all, _ = ps.statistic(_pairs.mean_rho, inputs=1)  # over the inputs of the fit
    rows, pred_rows = [], []
    figs_data = []
    for f, fam in enumerate(families):
        kappa_typ = np.exp(alpha[:, f, None] + beta[:, f, None] * np.log(caps)[None])  # (draws, K)
        m_typ = np.asarray(vmf_mean_resultant_length(d, kappa_typ))
        m_avg = m_x[:, f].mean(axis=1)  # averaged over inputs
        fam_index = ps.families.index(fam)
        b = ps.block(fam_index)
        obs, obs_se = obs_all[b, b], obs_se_all[b, b]
        pred = predicted[:, f]
        p_lo, p_hi = _q(pred)
        p_mean = pred.mean(0)
        # Agreement within the combined uncertainty: the observed rho's jackknife SE and the posterior spread.
        z = (obs - p_mean) / np.sqrt(obs_se**2 + pred.std(0) ** 2)
        inside = float(np.mean(np.abs(z) < 1.96))
        rel = float(np.linalg.norm(obs - p_mean) / max(np.linalg.norm(obs), 1e-300))
        for i, k in enumerate(caps):
            lo, hi = _q(kappa_typ[:, i])
            mlo, mhi = _q(m_typ[:, i])
            alo, ahi = _q(m_avg[:, i])
            rows.append({"family": fam, "capacity": k, "kappa": np.median(kappa_typ[:, i]), "kappa_lower": lo,
                         "kappa_upper": hi, "m_typical": np.median(m_typ[:, i]), "m_typical_lower": mlo,
                         "m_typical_upper": mhi, "m_mean_over_inputs": m_avg[:, i].mean(), "m_mean_lower": alo,
                         "m_mean_upper": ahi, "m_moment": float(nanmean(np.sqrt(np.maximum(
                             np.diagonal(rho_x[:, b, b], axis1=1, axis2=2)[:, i], 0.0))))})
            for j, k2 in enumerate(caps):
                pred_rows.append({"family": fam, "capacity_1": k, "capacity_2": k2, "rho_observed": obs[i, j],
                                  "observed_se": obs_se[i, j],
                                  "rho_predicted": p_mean[i, j], "predicted_lower": p_lo[i, j],
                                  "predicted_upper": p_hi[i, j]})
        finding.measured.append(
            f"{fam}: beta = {np.median(beta[:, f]):.3f} [{b_lo[f]:.3f}, {b_hi[f]:.3f}] (posterior median, 95 % "
            f"interval), P(beta > 0) = {np.mean(beta[:, f] > 0):.3f}; kappa from {np.median(kappa_typ[:, 0]):.3g} "
            f"at k = {caps[0]:g} to {np.median(kappa_typ[:, -1]):.3g} at k = {caps[-1]:g}."
        )
        finding.measured.append(
            f"{fam}: posterior predictive rho(k1, k2) misses the observed matrix by {100 * rel:.1f} % (relative "
            f"Frobenius norm); {100 * inside:.0f} % of its entries agree within 1.96 combined standard errors "
            f"(observed: jackknife over seeds; predicted: posterior)."
        )
        finding.numbers[f"{fam}/beta"] = float(np.median(beta[:, f]))
        finding.numbers[f"{fam}/beta_lower"] = float(b_lo[f])
        finding.numbers[f"{fam}/beta_upper"] = float(b_hi[f])
        finding.numbers[f"{fam}/rho_relative_error"] = rel
        finding.numbers[f"{fam}/rho_fraction_agreeing"] = inside
        figs_data.append((fam, kappa_typ, m_typ, m_avg, rows[-len(caps):], obs, obs_se, p_mean, p_lo, p_hi))
    finding.measured.append(f"Sampler (power law): {checked.summary()}; {ctx.summary.sizes['input']} inputs.")
    attrs = post.attrs
    note = retry_note(attrs, "power-law fit")
    if note:
        finding.measured.append(note)
    if attrs.get("sawdist_calibrated"):
        # The tempered likelihood (sawdist.bayes.calibration): how much wider the seeds scatter than the vMF says.
        score = np.broadcast_to(np.atleast_1d(attrs.get("sawdist_score_variance_ratio", np.nan)), (len(families),))
        parts = []
        for fam, w, s, r, e in zip(families, np.atleast_1d(attrs["sawdist_likelihood_weight"]), score,
                                   np.atleast_1d(attrs["sawdist_variance_ratio"]),
                                   np.atleast_1d(attrs["sawdist_effective_dimension"])):
            parts.append(_weight_text(fam, w, s, r, e, d))
            finding.numbers[f"{fam}/score_variance_ratio"] = float(s)
        finding.measured.append("Likelihood calibrated to the seed-level scatter (docs/bayes.md, \"Calibration\"): "
                                + "; ".join(parts) + ".")
        for fam, w in zip(families, np.atleast_1d(attrs["sawdist_likelihood_weight"])):
            finding.numbers[f"{fam}/likelihood_weight"] = float(w)
    if attrs.get("sawdist_slope_adjusted"):
        # beta's width from the inputs' own scores (sawdist.bayes.sandwich): what the interval above already holds
        ratios, dofs = np.atleast_1d(attrs["sawdist_slope_variance_ratio"]), np.atleast_1d(attrs["sawdist_slope_dof"])
        finding.measured.append(
            "beta's interval has the width of its sandwich, the scatter of the inputs' own scores (docs/bayes.md, "
            "\"The slope's own width\"): " + "; ".join(
                f"{fam}: sd x {np.sqrt(r):.2f} of the tempered posterior's, t with {dof:.0f} degrees of freedom"
                if np.isfinite(r) else f"{fam}: not measured (as sampled)"
                for fam, r, dof in zip(families, ratios, dofs)) + ".")
        for fam, r in zip(families, ratios):
            finding.numbers[f"{fam}/slope_variance_ratio"] = float(r)
    if "sawdist_slope_test_p" in attrs:
        # Whether the inputs got their own slopes (sawdist.bayes.calibration.choose_random_slope).
        p_values = np.atleast_1d(attrs["sawdist_slope_test_p"])
        slopes = bool(attrs.get("sawdist_random_slope", 0))
        finding.measured.append(
            ("Input-specific slopes fitted" if slopes else "One slope per family")
            + " (Cochran's test of equal slopes across inputs, p = "
            + ", ".join(f"{p:.2g} ({fam})" for fam, p in zip(families, p_values))
            + "; random slopes below 0.01)."
        )
        finding.numbers["random_slope"] = slopes
    # other warnings than the sampler rule's own sentence, which the line above already states
    others = [w for w in ctx.sampler_warnings.get(("power", True), [])
              if not w.startswith("SamplerDiagnosticsWarning")]
    if others:
        finding.measured.append(f"The sampler emitted {len(others)} kind(s) of warning (e.g. {others[0][:120]}).")
    finding.numbers["rhat_max"] = checked.rhat_max
    finding.numbers["ess_min"] = checked.ess_bulk_min
    finding.numbers["divergences"] = checked.divergences
    # Law comparison.
    if len(opts.laws) > 1:
        fits = {}
        for law in opts.laws:
            try:
                ctx.fit(law, True)
            except ValueError as err:
                finding.measured.append(f"law {law!r} not fitted: {err}")
            else:
                fits[law] = (law, True)
        try:
            table, notes = ctx.compare(fits) if len(fits) > 1 else (None, [])
        except ValueError as err:  # e.g. more input effects per term than the integral takes
            finding.measured.append(f"Laws not compared: {err}")
            table = None
        if table is not None:
            finding.tables.append(save_table(table.reset_index(names="law"), out_dir, "convergence_laws_loo"))
            finding.measured.append(
                f"Laws by leave-one-input-out (each input's effects integrated out; calibrated scale): "
                f"{' > '.join(table.index)} (elpd differences "
                f"{', '.join(f'{x:.1f}' for x in table['elpd_diff'])}, se over inputs "
                f"{', '.join(f'{x:.1f}' for x in table['dse'])})."
            )
            finding.measured.extend(f"({note}.)" for note in notes)
            unreliable = [law for law in fits if not ctx.diagnostics(law, True).reliable]
            if unreliable:
                finding.measured.append(
                    "(The fit of " + ", ".join(f"law {law!r} ({', '.join(ctx.diagnostics(law, True).problems)})"
                                               for law in unreliable)
                    + " breaks the sampler rule: this comparison is not to be relied on.)")
            finding.numbers["best_law"] = str(table.index[0])
    finding.reason = {
        "holds": "beta > 0 in every family (95 % posterior interval above 0)",
        "fails": "beta < 0 in some family (95 % posterior interval below 0)",
        "inconclusive": "some family's 95 % posterior interval for beta includes 0",
    }.get(finding.status, "no posterior")
    apply_sampler_rule(finding, checked, "power-law fit")
    finding.tables.append(save_table(pd.DataFrame(rows), out_dir, "convergence_law"))
    finding.tables.append(save_table(pd.DataFrame(pred_rows), out_dir, "convergence_predictive_rho"))
    for data in figs_data:
        finding.figures.append(_figure(caps, *data, dim=d, out_dir=out_dir))
    return finding


def _figure(caps, fam, kappa_typ, m_typ, m_avg, rows, obs, obs_se, p_mean, p_lo, p_hi, *, dim, out_dir):
    from sawdist.special import vmf_kappa_from_mean_resultant_length

    fig, axes = new_figure(1, 3, figsize=(14.0, 4.2))
    lo, hi = _q(kappa_typ)
    ax = axes[0]
    ax.fill_between(caps, lo, hi, alpha=0.3, color="C0", label="fitted law, 95 % band")
    ax.plot(caps, np.median(kappa_typ, axis=0), "-", color="C0")
    # Beside the law: each capacity on its own, the kappa whose m is the moment estimate mean_x m_hat_x(k).
    m_moment = np.array([r["m_moment"] for r in rows], dtype=float)
    ok = (m_moment > 0) & (m_moment < 1)
    kappa_k = np.full(m_moment.shape, np.nan)
    kappa_k[ok] = np.asarray(vmf_kappa_from_mean_resultant_length(dim, m_moment[ok]), dtype=float)
    ax.plot(caps, kappa_k, "ks", ms=4, label=r"per capacity, $A_d^{-1}$(moment $\hat m(k)$)")
    ax.legend(frameon=False, fontsize="small")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("capacity k")
    ax.set_ylabel(r"$\kappa(k)$, typical input")
    ax.set_title("Concentration (95 % band)")
    ax = axes[1]
    lo, hi = _q(m_avg)
    ax.fill_between(caps, lo, hi, alpha=0.3, color="C1", label="posterior, mean over inputs")
    ax.plot(caps, m_avg.mean(0), "-", color="C1")
    ax.plot(caps, [r["m_moment"] for r in rows], "ks", ms=4, label=r"moment estimate mean$_x\,\hat m_x(k)$")
    mlo, mhi = _q(m_typ)
    ax.fill_between(caps, mlo, mhi, alpha=0.2, color="C2", label="posterior, typical input")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("capacity k")
    ax.set_ylabel("m(k)")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize="small")
    ax.set_title("Mean resultant length")
    ax = axes[2]
    err = np.stack([(p_mean - p_lo).ravel(), (p_hi - p_mean).ravel()])
    # observed: +-1.96 jackknife SE over seeds; predicted: the posterior's 95 % band
    ax.errorbar(obs.ravel(), p_mean.ravel(), xerr=1.959963984540054 * obs_se.ravel(), yerr=err, fmt="o", ms=3,
                color="C3", elinewidth=0.8)
    lim = [0, max(float(np.nanmax(obs)), float(np.nanmax(p_hi))) * 1.05]
    ax.plot(lim, lim, "k--", lw=1)
    ax.set_xlabel(r"observed $\rho(k_1, k_2)$ (95 % interval)")
    ax.set_ylabel(r"predicted $\rho(k_1, k_2)$ (95 % band)")
    ax.set_title("Posterior predictive similarity")
    fig.suptitle(f"Convergence law — {fam}")
    return save_figure(fig, out_dir, f"convergence_{fam}")

