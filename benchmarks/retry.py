"""Benchmark: the two retries of fit_convergence, side by side, on fits whose R-hat alone broke the sampler rule.

When a fit's chains mix well (no divergence, bulk ESS >= 400) but R-hat is above 1.01, ``fit_convergence`` samples
fresh chains of the same parametrisation from another seed (``SamplerDiagnostics.rhat_alone``); before, it switched
the input effects' parametrisation (centred <-> non-centred) at ``target_accept`` 0.95, as it still does when the
geometry breaks the rule. This script measures both answers to the same first fit, on datasets of the calibration
study (``benchmarks/calibration.py``: its cells, designs, priors and seeds, 2 chains x 400 draws after 300 tuning
steps, ``centered="auto"``) whose first fit broke the rule by R-hat alone in the study (``wide_cosine_law/14``'s was
sampled there before the Laplace start held sigma off the funnel's neck; now it meets the rule, and its other two
fits still compare the two answers):

1. the first fit (``retry=False``, the study's seed);
2. fresh chains: the same parametrisation and ``target_accept``, the retry's seed;
3. the other parametrisation at ``target_accept`` 0.95, the same seed as 2.

Each is one ``fit_convergence(..., retry=False)`` call, timed end to end, with the sampler rule's statistics and the
mean tree depth. The fits run one after the other in one process (the ratios are what to read: other work shares
the cores). Results go to ``--out`` after every fit; a rerun resumes.

With ``--first-seeds K`` the first fit is also run from seeds 0, ..., K - 1 (the spread of R-hat among chains that
mix well).

    python benchmarks/retry.py [--datasets random_slope/19 vmf/9 wide_cosine_law/14] [--first-seeds 4] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibration as study  # noqa: E402  (the study's cells, designs, priors and seeds)

#: Study datasets whose first fit broke the rule by R-hat alone in the study (1,000 inputs, 4 seeds, d = 3072): its
#: slowest fits, 274-696 s with the switching retry.
DATASETS = ("random_slope/19", "vmf/9", "wide_cosine_law/14")
DRAWS, TUNE, CHAINS = 400, 300, 2


def one_fit(summary, centered, random_seed, target_accept=None):
    from sawdist.bayes import fit_convergence, sampler_diagnostics

    kw = {} if target_accept is None else {"target_accept": target_accept}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = fit_convergence(summary, "power", priors=study.PRIORS, centered=centered, retry=False, cores=1,
                                random_seed=random_seed, draws=DRAWS, tune=TUNE, chains=CHAINS, progressbar=False,
                                idata_kwargs={"log_likelihood": False}, **kw)
    seconds = time.perf_counter() - t0
    diag = sampler_diagnostics(idata)
    stats = idata.sample_stats
    depth = stats["tree_depth"] if "tree_depth" in stats else stats["depth"]
    return {"seconds": round(seconds, 1), "centered": int(idata.posterior.attrs["sawdist_centered"]),
            "random_slope": int(idata.posterior.attrs["sawdist_random_slope"]),
            "rhat_max": diag.rhat_max, "ess_bulk_min": diag.ess_bulk_min, "divergences": diag.divergences,
            "rhat_alone": diag.rhat_alone, "reliable": diag.reliable, "tree_depth_mean": float(np.mean(depth))}


def run(args):
    from sawdist.bayes.fitting import RETRY_TARGET_ACCEPT, _retry_seed

    path = Path(args.out)
    results = json.loads(path.read_text()) if path.exists() else {}
    for key in args.datasets:
        cell, i = key.split("/")
        summary, _, design, seed = study.simulate(cell, int(i), args.seed)
        rec = results.setdefault(key, {"design": list(design)})
        if "first" not in rec:
            rec["first"] = one_fit(summary, "auto", seed)
        centered = bool(rec["first"]["centered"])
        if "fresh_chains" not in rec:
            rec["fresh_chains"] = one_fit(summary, centered, _retry_seed(seed, 1))
        if "other_parametrisation" not in rec:
            rec["other_parametrisation"] = one_fit(summary, not centered, _retry_seed(seed, 1), RETRY_TARGET_ACCEPT)
        # the first fit from seeds 0, 1, ...: how often chains that mix well break the rule by chance
        seeds = rec.setdefault("first_other_seeds", [])
        while len(seeds) < args.first_seeds:
            seeds.append(one_fit(summary, "auto", len(seeds)))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(path)
        print(key, design, {k: v for k, v in rec.items() if k != "design"}, flush=True)
    report(results)


def report(results):
    for key, rec in results.items():
        if rec.get("first_other_seeds"):
            print(f"{key}: the first fit from seeds 0-{len(rec['first_other_seeds']) - 1}: max R-hat "
                  + ", ".join(f"{r['rhat_max']:.3f}" for r in rec["first_other_seeds"]) + "; min bulk ESS "
                  + ", ".join(f"{r['ess_bulk_min']:.0f}" for r in rec["first_other_seeds"]))
    print("| dataset (N, S, K, d) | attempt | centred | s | max R-hat | min bulk ESS | divergences | mean tree depth "
          "| meets the rule |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, rec in results.items():
        for name in ("first", "fresh_chains", "other_parametrisation"):
            if name in rec:
                r = rec[name]
                print(f"| {key} {tuple(rec['design'])} | {name.replace('_', ' ')} | {r['centered']} | {r['seconds']} "
                      f"| {r['rhat_max']:.3f} | {r['ess_bulk_min']:.0f} | {r['divergences']} "
                      f"| {r['tree_depth_mean']:.1f} | {'yes' if r['reliable'] else 'no'} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), help="study datasets, as cell/index")
    parser.add_argument("--seed", type=int, default=20240611, help="the calibration study's seed")
    parser.add_argument("--first-seeds", type=int, default=0,
                        help="also fit the first attempt from this many other seeds (0, 1, ...)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "retry.json"))
    parser.add_argument("--report", action="store_true", help="print the table from --out and stop")
    args = parser.parse_args()
    if args.report:
        report(json.loads(Path(args.out).read_text()))
    else:
        run(args)


if __name__ == "__main__":
    main()
