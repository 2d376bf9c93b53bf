"""Calibration study of the convergence law: coverage of beta and m(k) and SBC ranks, under misspecified truths.

For each cell (a truth: the law of the directions about mu(x)) and each of ``--datasets`` replications, the design
cycles through ``DESIGNS`` (inputs N, seeds S, capacities K, dimension d). A replication draws the law's parameters
from the priors the fit uses (``PRIORS``: so that, for the vMF truth, posterior ranks are uniform and intervals cover
at their nominal rate, Talts et al. 2018), draws a summary with :func:`sawdist.bayes.simulate.simulate_gram_summary`
(the seeds' cosines drawn from their joint law, no directions materialised), fits it with
:func:`sawdist.bayes.fit_convergence` (calibrated, the default, and, for the misspecified cells, also with
``calibrate=False``), and records whether the central 50/90/95 % intervals of beta and of m(k) hold the truth, and
the rank of alpha, beta and sigma among ``--draws-kept`` thinned draws.

m(k) is what finding 4 of the analyses reports: A_d(exp(alpha + beta log k)), the mean resultant length of the
typical input (a_x = alpha_ref); its truth is A_d(kappa) of the truth's typical input (every truth is parametrised
by its mean resultant length m = E[mu'u], that of the vMF at kappa).

A second phase (``--diagnostics-datasets`` per design and truth) fits at the analyses' default settings (4 chains,
1000 draws, 300 tuning steps, Laplace start, ``fit_convergence``'s defaults: centred input effects, calibrated,
input slopes by rule, the retry with the other parametrisation when the first fit's geometry breaks the sampler rule)
and records the sampler rule's statistics of the fit returned, and whether it was the retry.

Results go to ``--out`` (JSON) after every fit; a rerun resumes from it (``--fresh`` starts over). ``--report PATH``
writes the Markdown tables, ``--figure PATH`` the SBC rank histograms, from the JSON, without fitting.

    nohup python benchmarks/calibration.py > calibration.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

#: (inputs, seeds, capacities, d)
DESIGNS = ((10, 4, 3, 64), (30, 8, 5, 3072), (100, 4, 3, 768), (10, 32, 8, 256), (1000, 4, 3, 3072))

#: cell name -> keyword arguments of simulate_gram_summary (effective_dimension capped at (d - 1) / 2)
CELLS = {
    "vmf": {"shape": "vmf"},
    "power_spherical": {"shape": "power_spherical"},
    "wide_cosine_law": {"shape": "wide", "wide_factor": 10.0},
    "anisotropic_deff5": {"shape": "projected_normal", "effective_dimension": 5},
    "anisotropic_deff30": {"shape": "projected_normal", "effective_dimension": 30},
    "anisotropic_deff100": {"shape": "projected_normal", "effective_dimension": 100},
    "tangent_only_deff20": {"shape": "anisotropic_tangent", "effective_dimension": 20},
    "random_slope": {"shape": "vmf", "slope_sd": 0.2},
}
#: cells also fitted without the calibration by default (``--uncalibrated`` names others: the vMF's w = 1 fit is
#: the exact model, the reference that tells the weight's caution from the rest)
UNCALIBRATED_TOO = ("wide_cosine_law", "anisotropic_deff5", "anisotropic_deff30", "anisotropic_deff100",
                    "tangent_only_deff20", "random_slope")
PRIORS = {"alpha_ref": ("log_d", 0.5), "beta": (0.5, 0.3), "sigma": 0.5}
LEVELS = (0.5, 0.9, 0.95)
PARAMS = ("alpha", "beta", "sigma")
DIAGNOSTIC_CELLS = ("vmf", "anisotropic_deff30", "random_slope")


def capacities(K):
    return 2.0 ** np.linspace(2, 6, K) if K <= 5 else 2.0 ** np.arange(1, K + 1)


def draw_truth(gen, d):
    alpha_ref = gen.normal(np.log(d), PRIORS["alpha_ref"][1])
    beta = gen.normal(*PRIORS["beta"])
    sigma = abs(gen.normal(0.0, PRIORS["sigma"]))
    return alpha_ref, beta, sigma


def simulate(cell, i, seed, design=None):
    from sawdist.bayes.simulate import simulate_gram_summary

    gen = np.random.default_rng([seed, list(CELLS).index(cell), i])
    N, S, K, d = DESIGNS[i % len(DESIGNS)] if design is None else design
    kw = dict(CELLS[cell])
    if "effective_dimension" in kw:
        kw["effective_dimension"] = min(kw["effective_dimension"], (d - 1) // 2)
    alpha_ref, beta, sigma = draw_truth(gen, d)
    summary, truth = simulate_gram_summary(dim=d, capacities=capacities(K), n_inputs=N, n_seeds=S, beta=beta,
                                           alpha_ref=alpha_ref, sigma=sigma, rng=gen, **kw)
    return summary, truth, (N, S, K, d), int(gen.integers(2**31))


def law_direction_weight(summary):
    r"""An alternative weight, tried and not adopted (``--weight law``; RESULTS.md "A weight from the law's own
    directions, tried and not adopted"): 1 over the sandwich's variance ratio in the power law's own directions
    instead of the Gram diagonal's and the worst direction of all K log-concentrations.

    Per input, the score covariances of :func:`sawdist.bayes.calibration.likelihood_weight`'s check (the vMF's A_x
    and the measured B_x, K x K in log kappa) are projected on the law's directions X = [1, log k - mean log k]; the
    slope's ratio, its input's intercept profiled out, is
    :math:`\sum_x (B_{\beta\beta} - 2c_xB_{\beta a} + c_x^2B_{aa}) / \sum_x (A_{\beta\beta} - c_xA_{\beta a})`,
    :math:`c_x = A_{\beta a}/A_{aa}`, the intercepts' :math:`\sum_x B_{aa}/\sum_x A_{aa}`; w is 1 over the larger,
    capped at 1 (first family only: the study's summaries have one). The recorded run
    (``benchmarks/results/calibration_law_weight.json``) floored m_hat at 0.001 rather than ``_moment_kappa``'s 0.01:
    its weights agree with these within 0.03 %.
    """
    slope, level, _ = law_ratios(summary)
    ratio = max(slope, level)
    return float(min(1.0, 1.0 / ratio)) if np.isfinite(ratio) and ratio > 0 else 1.0


def law_ratios(summary):
    """(the slope's ratio, the intercepts' ratio, ``likelihood_weight``'s Calibration) of
    :func:`law_direction_weight`: the sandwich's variance ratios in the law's two directions, pooled over inputs."""
    from sawdist.bayes import calibration as cal

    c = cal.likelihood_weight(summary)
    d = float(summary["n_features"])
    n, _, kappa = (a[0] for a in cal._moment_kappa(summary, d))  # (N, K) each: the first family
    x = np.log(np.asarray(summary["capacity"].values, dtype=np.float64))
    X = np.stack([np.ones_like(x), x - x.mean()], axis=1)
    A = np.einsum("ki,nkl,lj->nij", X, cal._score_covariance(n, kappa, d), X)
    B = np.einsum("ki,nkl,lj->nij", X, cal._score_covariance(n, kappa, d, c.radial_ratio[0], c.tangent_ratio[0]), X)
    cx = A[:, 1, 0] / A[:, 0, 0]
    slope = np.sum(B[:, 1, 1] - 2 * cx * B[:, 1, 0] + cx**2 * B[:, 0, 0]) / np.sum(A[:, 1, 1] - cx * A[:, 0, 1])
    return float(slope), float(np.sum(B[:, 0, 0]) / np.sum(A[:, 0, 0])), c


def fit_record(summary, truth, calibrate, random_seed, args, default_settings=False):
    from sawdist.bayes import fit_convergence, sampler_diagnostics
    from sawdist.special import vmf_mean_resultant_length

    kw = ({"draws": 1000, "tune": 300, "chains": 4} if default_settings
          else {"draws": args.draws, "tune": args.tune, "chains": args.chains})
    if calibrate is True and getattr(args, "weight", "min") == "diagonal":
        # the Gram diagonal's weight alone (fit_convergence's default before the score's check joined it)
        from sawdist.bayes.calibration import likelihood_weight

        calibrate = likelihood_weight(summary).diagonal_weight
    elif calibrate is True and getattr(args, "weight", "min") == "law":
        calibrate = law_direction_weight(summary)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the study chooses the centring from the data; the diagnostics use fit_convergence's own defaults
        centering = {} if default_settings else {"centered": "auto"}
        if getattr(args, "random_slope", "auto") == "never":
            centering["random_slope"] = False
        idata = fit_convergence(summary, "power", priors=PRIORS, calibrate=calibrate, cores=1,
                                random_seed=random_seed, **centering,
                                progressbar=False, idata_kwargs={"log_likelihood": False}, **kw)
    elapsed = time.perf_counter() - t0
    post = idata.posterior
    diag = sampler_diagnostics(idata)
    rec = {"seconds": round(elapsed, 2), "rhat_max": diag.rhat_max, "ess_bulk_min": diag.ess_bulk_min,
           "divergences": diag.divergences, "centered": int(post.attrs["sawdist_centered"]),
           "random_slope": int(post.attrs.get("sawdist_random_slope", 0)),
           "attempts": int(post.attrs.get("sawdist_attempts", 1)),
           "kept": int(post.attrs.get("sawdist_kept_attempt", 1)),
           "weight": float(post.attrs["sawdist_likelihood_weight"][0])}
    if "sawdist_effective_dimension" in post.attrs:
        rec["effective_dimension"] = float(post.attrs["sawdist_effective_dimension"][0])
        rec["variance_ratio"] = float(post.attrs["sawdist_variance_ratio"][0])
        if "sawdist_score_variance_ratio" in post.attrs:
            rec["score_variance_ratio"] = float(post.attrs["sawdist_score_variance_ratio"][0])
    if default_settings:
        return rec
    d = int(summary["n_features"])
    draws = {p: post[p].values.reshape(-1) for p in PARAMS}
    caps = np.asarray(post["capacity"].values, dtype=float)
    m_draws = np.asarray(vmf_mean_resultant_length(d, np.exp(draws["alpha"][:, None] + draws["beta"][:, None]
                                                              * np.log(caps)[None])))
    cover = {}
    for level in LEVELS:
        q = [(1 - level) / 2, (1 + level) / 2]
        lo, hi = np.quantile(draws["beta"], q)
        cover[f"beta_{level}"] = int(lo <= truth["beta"] <= hi)
        mlo, mhi = np.quantile(m_draws, q, axis=0)
        cover[f"m_{level}"] = [int(a <= t <= b) for a, b, t in zip(mlo, mhi, truth["m_typical"])]
    n = draws["beta"].size
    keep = np.linspace(0, n - 1, args.draws_kept).round().astype(int)
    rec["ranks"] = {p: int(np.sum(draws[p][keep] < truth[p])) for p in PARAMS}
    rec["cover"] = cover
    rec["beta_sd"] = float(draws["beta"].std())
    if "beta_sampled" in post:  # fit_convergence's slope sandwich moved beta: the rank as sampled beside it
        sampled = post["beta_sampled"].values.reshape(-1)
        rec["beta_rank_sampled"] = int(np.sum(sampled[keep] < truth["beta"]))
        rec["beta_sd_sampled"] = float(sampled.std())
        rec["slope_variance_ratio"] = float(post.attrs["sawdist_slope_variance_ratio"][0])
    return rec


def load(args):
    path = Path(args.out)
    if args.fresh or not path.exists():
        return {"settings": settings(args), "fits": {}, "diagnostics": {}}
    old = json.loads(path.read_text())
    if old.get("settings", {}).get("fit") != settings(args)["fit"]:
        print(f"{path} was written with other settings; starting over", flush=True)
        return {"settings": settings(args), "fits": {}, "diagnostics": {}}
    old["settings"] = settings(args)
    return old


def settings(args):
    fit = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "draws_kept": args.draws_kept,
           "seed": args.seed, "priors": {k: list(v) if isinstance(v, tuple) else v for k, v in PRIORS.items()}}
    if getattr(args, "weight", "min") != "diagonal":  # absent from the files of the diagonal's weight (all before
        fit["weight"] = args.weight                   # the option, and those that chose it since)
    if getattr(args, "random_slope", "auto") != "auto":  # absent from the files of fit_convergence's rule
        fit["random_slope"] = args.random_slope
    return {"fit": fit,
            "datasets_per_cell": args.datasets, "designs": [list(x) for x in DESIGNS], "cells": CELLS,
            "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def save(args, results):
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(args.out) + ".tmp")
    tmp.write_text(json.dumps(results, indent=0))
    tmp.replace(args.out)


def run(args):
    results = load(args)
    t0 = time.perf_counter()
    diagnostics(args, results)  # first: short, and the study's fits then fill the rest of the time
    cells = args.cells or list(CELLS)
    order = [(i, cell) for i in range(args.datasets) for cell in cells  # interleaved: every cell grows together
             if args.design is None or i % len(DESIGNS) in args.design]
    for i, cell in order:
        key = f"{cell}/{i}"
        reference = cell in args.uncalibrated and not args.calibrated_only
        if key in results["fits"] and (not reference or "uncalibrated" in results["fits"][key]):
            continue
        summary, truth, design, rs = simulate(cell, i, args.seed)
        if key in results["fits"]:  # a dataset fitted before with the calibration only: add its reference fit
            results["fits"][key]["uncalibrated"] = fit_record(summary, truth, False, rs, args)
            save(args, results)
            print(f"{key} N,S,K,d={design} not calibrated: beta cover95="
                  f"{results['fits'][key]['uncalibrated']['cover']['beta_0.95']} "
                  f"{results['fits'][key]['uncalibrated']['seconds']} s (total {time.perf_counter() - t0:.0f} s)",
                  flush=True)
            continue
        rec = {"design": list(design), "truth": {"beta": truth["beta"], "alpha": truth["alpha"],
                                                  "sigma": truth["sigma"],
                                                  "participation_ratio": truth["participation_ratio"]}}
        rec["calibrated"] = fit_record(summary, truth, True, rs, args)
        if reference:
            rec["uncalibrated"] = fit_record(summary, truth, False, rs, args)
        results["fits"][key] = rec
        save(args, results)
        c = rec["calibrated"]
        print(f"{key} N,S,K,d={design} w={c['weight']:.3g} beta cover95={c['cover']['beta_0.95']} "
              f"{c['seconds']} s (total {time.perf_counter() - t0:.0f} s)", flush=True)
    results["wall_s_last_run"] = round(time.perf_counter() - t0, 1)
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    save(args, results)


def diagnostics(args, results):
    for cell in DIAGNOSTIC_CELLS if not args.cells else [c for c in DIAGNOSTIC_CELLS if c in args.cells]:
        for j, design in enumerate(DESIGNS):
            for r in range(args.diagnostics_datasets):
                key = f"{cell}/{j}/{r}"
                if key in results["diagnostics"]:
                    continue
                summary, truth, design, rs = simulate(cell, 10_000 + r, args.seed, design)
                rec = fit_record(summary, truth, True, rs, args, default_settings=True)
                rec["design"] = list(design)
                results["diagnostics"][key] = rec
                save(args, results)
                print(f"diagnostics {key} {design}: R-hat {rec['rhat_max']:.3f} ESS {rec['ess_bulk_min']:.0f} "
                      f"div {rec['divergences']} centred {rec['centered']} ({rec['seconds']} s)", flush=True)


def _coverage_rows(results, which):
    from scipy import stats

    rows = []
    for cell in CELLS:
        recs = [r for k, r in results["fits"].items() if k.split("/")[0] == cell and which in r]
        if not recs:
            continue
        row = {"cell": cell, "n": len(recs)}
        for level in LEVELS:
            b = [r[which]["cover"][f"beta_{level}"] for r in recs]
            m = [x for r in recs for x in r[which]["cover"][f"m_{level}"]]
            row[f"beta_{level}"] = 100 * np.mean(b)
            row[f"m_{level}"] = 100 * np.mean(m)
            # does the binomial test reject nominal at 5 % (beta: one value per dataset)?
            row[f"beta_{level}_p"] = stats.binomtest(int(np.sum(b)), len(b), level).pvalue
        row["w_median"] = float(np.median([r[which]["weight"] for r in recs]))
        row["random_slope"] = int(sum(r[which].get("random_slope", 0) for r in recs))
        rows.append(row)
    return rows


def rank_spread_rows(results, param="beta"):
    r"""Per cell and fit (calibrated, and not where fitted): the spread of the SBC ranks of ``param`` as one number.

    z = Phi^-1((rank + 1/2)/(L + 1)) for L kept draws is standard normal when the posterior is calibrated (up to
    the ranks' discreteness, divided out: the sd of z over a uniform rank, 0.994 for L = 99). Its sd over datasets
    is then 1; below 1 the intervals are too wide, above too narrow, by about that factor, at every level at once,
    which 50 % coverage needs far more datasets to tell. The interval is chi^2 with one degree of freedom per dataset
    (the truth and the draws of each dataset are independent of the others'), about the mean of z."""
    from scipy import stats

    rows = []
    for which in ("calibrated", "uncalibrated"):
        for cell in CELLS:
            recs = [r[which] for k, r in results["fits"].items() if k.split("/")[0] == cell and which in r]
            if len(recs) < 3:
                continue
            kept = results["settings"]["fit"]["draws_kept"]
            ref = np.std(stats.norm.ppf((np.arange(kept + 1) + 0.5) / (kept + 1)))
            z = stats.norm.ppf((np.array([r["ranks"][param] for r in recs]) + 0.5) / (kept + 1)) / ref
            n = len(z)
            ss = np.sum((z - z.mean()) ** 2)
            rows.append({"cell": cell, "which": which, "n": n, "mean": float(z.mean()),
                         "mean_se": float(z.std(ddof=1) / np.sqrt(n)), "sd": float(np.sqrt(ss / (n - 1))),
                         "sd_low": float(np.sqrt(ss / stats.chi2.ppf(0.975, n - 1))),
                         "sd_high": float(np.sqrt(ss / stats.chi2.ppf(0.025, n - 1)))})
    return rows


#: The study's goal: coverage within this many points of nominal in every cell.
GOAL_POINTS = 5.0


def _interval(hits, level=0.95):
    """(estimate, low, high) in % for coverage, with an interval honest about the datasets as the random units.

    ``hits`` is one list per dataset (one entry for beta; K for m(k), which are not independent within a dataset).
    Each dataset counts as one unit with its coverage fraction: the Clopper-Pearson interval of x = the sum of the
    fractions in n = the number of datasets (exact for beta; for m(k) conservative, since a fraction varies less
    than a single hit of the same mean, and never degenerate when every capacity of every dataset was held)."""
    from scipy import stats

    per = np.array([np.mean(h) for h in hits], dtype=float)
    x, n = per.sum(), len(per)
    alpha = 1.0 - level
    low = stats.beta.ppf(alpha / 2, x, n - x + 1) if x > 0 else 0.0
    high = stats.beta.ppf(1 - alpha / 2, x + 1, n - x) if x < n else 1.0
    return 100 * x / n, 100 * low, 100 * high


def _goal_verdict(low, high, nominal):
    """'met' when the whole 95 % interval lies within GOAL_POINTS of nominal, 'missed' when none of it does, else
    'open' (the study is too small to tell)."""
    if nominal - GOAL_POINTS <= low and high <= nominal + GOAL_POINTS:
        return "met"
    if high < nominal - GOAL_POINTS or low > nominal + GOAL_POINTS:
        return "missed"
    return "open"


def goal_table(results, which="calibrated"):
    """Markdown lines: per cell and level, coverage of beta and m(k) with 95 % intervals over datasets, and whether
    the goal (within GOAL_POINTS of nominal) is met, missed or open at this study's size."""
    lines = ["| cell | fits | " + " | ".join(f"beta {100 * lv:.0f} %" for lv in LEVELS) + " | "
             + " | ".join(f"m(k) {100 * lv:.0f} %" for lv in LEVELS) + " |",
             "|---|---|" + "---|" * (2 * len(LEVELS))]
    tally = {"met": 0, "open": 0, "missed": 0}
    for cell in CELLS:
        recs = [r[which] for k, r in results["fits"].items() if k.split("/")[0] == cell and which in r]
        if len(recs) < 2:
            continue
        cells = []
        for name in ("beta", "m"):
            for lv in LEVELS:
                hits = [np.atleast_1d(r["cover"][f"{name}_{lv}"]) for r in recs]
                est, low, high = _interval(hits)
                verdict = _goal_verdict(low, high, 100 * lv)
                tally[verdict] += 1
                cells.append(f"{est:.0f} [{low:.0f}, {high:.0f}] {verdict}")
        lines.append(f"| {cell} | {len(recs)} | " + " | ".join(cells) + " |")
    lines += ["", f"Coverage in % with its 95 % Clopper-Pearson interval over datasets (for m(k), whose K "
              f"capacities per dataset are not independent, each dataset counts once, with its coverage fraction). "
              f"met: the whole interval within {GOAL_POINTS:.0f} points of nominal; missed: none of it; open: the "
              f"study is too small to tell. Of {sum(tally.values())} cell-levels: {tally['met']} met, "
              f"{tally['open']} open, {tally['missed']} missed."]
    return lines


def report(results, path):
    lines = []
    fit = results["settings"]["fit"]
    if results.get("fits"):  # (a --diagnostics-only run has no coverage to show)
        lines.append("| cell | fits | w (median) | random slopes | beta 50 % | beta 90 % | beta 95 % | m(k) 50 % "
                     "| m(k) 90 % | m(k) 95 % |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for which, label in (("calibrated", "calibrated"), ("uncalibrated", "not calibrated")):
            for row in _coverage_rows(results, which):
                flags = {lv: ("*" if row[f"beta_{lv}_p"] < 0.05 else "") for lv in LEVELS}
                lines.append(f"| {row['cell']} ({label}) | {row['n']} | {row['w_median']:.3g} | "
                             f"{row['random_slope']} | "
                             + " | ".join(f"{row[f'beta_{lv}']:.0f}{flags[lv]}" for lv in LEVELS) + " | "
                             + " | ".join(f"{row[f'm_{lv}']:.0f}" for lv in LEVELS) + " |")
        lines.append("")
        lines.append("Coverage in %, central posterior intervals; * : a binomial test rejects the nominal rate at 5 % "
                     "(beta). m(k) pools the capacities of each dataset (K values per dataset, not independent).")
        lines.append("")
        lines.append("Per design (calibrated fits, all cells): N inputs, S seeds, K capacities, d")
        lines.append("")
        lines.append("| design (N, S, K, d) | fits | beta 50 % | beta 90 % | beta 95 % | m(k) 95 % "
                     "| median s per fit |")
        lines.append("|---|---|---|---|---|---|---|")
        for design in DESIGNS:
            recs = [r["calibrated"] for r in results["fits"].values() if tuple(r["design"]) == tuple(design)]
            if recs:
                lines.append(f"| {design} | {len(recs)} | " + " | ".join(
                    f"{100 * np.mean([r['cover'][f'beta_{lv}'] for r in recs]):.0f}" for lv in LEVELS)
                    + f" | {100 * np.mean([x for r in recs for x in r['cover']['m_0.95']]):.0f} | "
                    f"{np.median([r['seconds'] for r in recs]):.1f} |")
        lines.append("")
        lines.append("The SBC ranks of beta in one number per cell: the sd of z = Phi^-1(rank) (1 when "
                     "calibrated; below 1 the intervals are too wide by about its inverse), with its 95 % interval, "
                     "and the mean of z (0 when calibrated; below 0 the posterior sits above the truth) +- its "
                     "standard error.")
        lines.append("")
        lines.append("| cell | fits | datasets | sd of z [95 %] | mean of z |")
        lines.append("|---|---|---|---|---|")
        for row in rank_spread_rows(results):
            lines.append(f"| {row['cell']} | {row['which']} | {row['n']} | {row['sd']:.2f} [{row['sd_low']:.2f}, "
                         f"{row['sd_high']:.2f}] | {row['mean']:+.2f} +- {row['mean_se']:.2f} |")
        lines.append("")
        lines.append("Against the goal (calibrated fits):")
        lines.append("")
        lines.extend(goal_table(results))
    lines.append("")
    diag = results.get("diagnostics", {})
    if diag:
        from sawdist.bayes.fitting import SamplerDiagnostics

        lines.append("Sampler diagnostics at the default settings (4 chains x 1000 draws, 300 tuning steps, Laplace "
                     "start, fit_convergence's defaults; max R-hat and min bulk ESS over alpha, beta, sigma):")
        lines.append("")
        lines.append("| truth | design (N, S, K, d) | w | centred | random slopes | attempts (kept) | max R-hat "
                     "| min bulk ESS | divergences | s |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for key, r in diag.items():
            lines.append(f"| {key.split('/')[0]} | {tuple(r['design'])} | {r['weight']:.3g} | {r['centered']} | "
                         f"{r.get('random_slope', 0)} | {r.get('attempts', 1)} ({r.get('kept', 1)}) | "
                         f"{r['rhat_max']:.3f} | {r['ess_bulk_min']:.0f} | {r['divergences']} | {r['seconds']} |")
        ok = sum(SamplerDiagnostics(r["rhat_max"], r["ess_bulk_min"], r["divergences"], 0, 0).reliable
                 for r in diag.values())
        lines.append("")
        lines.append(f"{ok} of {len(diag)} fits meet the sampler rule.")
    # sampler statistics of the study's own fits
    allrecs = [r[w] for r in results.get("fits", {}).values() for w in ("calibrated", "uncalibrated") if w in r]
    if allrecs:
        from sawdist.bayes.fitting import RHAT_MAX

        lines.append("")
        lines.append(f"Study fits ({fit['chains']} chains x {fit['draws']} draws, {fit['tune']} tuning steps): "
                     f"{len(allrecs)} fits, max R-hat > {RHAT_MAX} in "
                     f"{sum(r['rhat_max'] > RHAT_MAX for r in allrecs)}, "
                     f"divergences in {sum(r['divergences'] > 0 for r in allrecs)}, median "
                     f"{np.median([r['seconds'] for r in allrecs]):.1f} s per fit.")
    text = "\n".join(lines).strip("\n") + "\n"
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    print(text)


def figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in CELLS if any(k.split("/")[0] == c for k in results["fits"])]
    L = results["settings"]["fit"]["draws_kept"]
    fig, axes = plt.subplots(len(cells), 3, figsize=(9.0, 1.7 * len(cells)), squeeze=False, sharex=True)
    for i, cell in enumerate(cells):
        recs = [r["calibrated"] for k, r in results["fits"].items() if k.split("/")[0] == cell]
        for j, p in enumerate(PARAMS):
            ax = axes[i, j]
            ranks = [r["ranks"][p] for r in recs]
            ax.hist(ranks, bins=10, range=(-0.5, L + 0.5), color="C0")
            expected = len(ranks) / 10
            ax.axhline(expected, color="k", lw=0.8)
            ax.axhspan(*[max(0, x) for x in (expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected))],
                       color="k", alpha=0.1)
            if i == 0:
                ax.set_title(p)
            if j == 0:
                ax.set_ylabel(cell, fontsize="small", rotation=0, ha="right", va="center")
            if i == len(cells) - 1:
                ax.set_xlabel(f"rank among {L} draws")
    fig.suptitle("SBC ranks, calibrated fits (band: +-2 binomial sd about uniform)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def _design_indices(text):
    """``--design``'s value: comma-separated indices into DESIGNS."""
    try:
        indices = [int(v) for v in text.split(",")]
    except ValueError:
        indices = [-1]
    if not all(0 <= i < len(DESIGNS) for i in indices):
        raise argparse.ArgumentTypeError(f"must be indices 0-{len(DESIGNS) - 1} of DESIGNS, "
                                         f"comma-separated, got {text!r}.")
    return indices


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=30, help="replications per cell")
    parser.add_argument("--diagnostics-datasets", type=int, default=1, help="per design and truth, default settings")
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws-kept", type=int, default=99)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "calibration.json"))
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--calibrated-only", action="store_true",
                        help="skip the uncalibrated reference fits (--uncalibrated)")
    parser.add_argument("--uncalibrated", type=lambda v: v.split(",") if v else [], default=list(UNCALIBRATED_TOO),
                        metavar="CELL[,CELL...]",
                        help="cells also fitted with calibrate=False, on the same draws (default: the misspecified "
                             "ones; a dataset fitted before without that reference gets it on a rerun)")
    parser.add_argument("--weight", choices=("diagonal", "min", "law"), default="min",
                        help="the calibrated fits' w: fit_convergence's (min: the smaller of the Gram diagonal's and "
                             "1 / Calibration.score_ratio), the Gram diagonal's alone, or (law, tried and not "
                             "adopted) 1 over the sandwich's ratio in the power law's own directions")
    parser.add_argument("--random-slope", choices=("auto", "never"), default="auto",
                        help="input slopes by fit_convergence's rule (auto), or never (a check of that rule)")
    parser.add_argument("--design", type=_design_indices, default=None, metavar="INDEX[,INDEX...]",
                        help=f"only the replications of these DESIGNS (those with i %% {len(DESIGNS)} among them)")
    parser.add_argument("--cells", type=lambda v: v.split(","), default=None,
                        help="comma-separated cells to run (default all: " + ", ".join(CELLS) + ")")
    parser.add_argument("--report", metavar="PATH", help="write the Markdown tables from --out and stop")
    parser.add_argument("--figure", metavar="PATH", help="write the SBC rank histograms from --out and stop")
    args = parser.parse_args()
    if args.report or args.figure:
        results = json.loads(Path(args.out).read_text())
        if args.report:
            report(results, args.report)
        if args.figure:
            figure(results, args.figure)
        return
    run(args)


if __name__ == "__main__":
    main()
