"""Is the calibrated convergence law's beta biased under anisotropic tangent noise, or only too narrow?

Replications of one design and one truth (beta, alpha_ref = log d, sigma fixed; no random slopes), each fitted with
``fit_convergence``'s defaults but one slope per family and the calibration study's short chains (2 x 400 draws after
300 tuning steps). Prints, per replication, the posterior mean and sd of beta, its z-score against the truth, the
likelihood weight w and the sampler diagnostics; then, over the fits whose chains agree (R-hat <= 1.01, no
divergence: the short chains' bulk ESS is not asked for), the mean error of the posterior mean with its
standard error over the replications (the bias), the sd of the posterior means (the sampling spread) and the mean
posterior sd (what the intervals claim). Results go to ``--out`` as JSON.

    python benchmarks/anisotropy_bias.py --shape projected_normal --effective-dimension 5   # the anisotropic truth
    python benchmarks/anisotropy_bias.py --shape vmf                                        # the control
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--dim", type=int, default=3072)
    parser.add_argument("--shape", default="projected_normal")
    parser.add_argument("--effective-dimension", type=float, default=None)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--replications", type=int, default=8)
    parser.add_argument("--out", default=None, help="JSON (default: benchmarks/results/anisotropy_bias_SHAPE.json)")
    args = parser.parse_args(argv)

    from sawdist.bayes import fit_convergence, sampler_diagnostics
    from sawdist.bayes.simulate import simulate_gram_summary

    caps = 2.0 ** np.linspace(2, 6, 3)
    shape = {"shape": args.shape}
    if args.effective_dimension is not None:
        shape["effective_dimension"] = args.effective_dimension
    rows = []
    for r in range(args.replications):
        summary, _ = simulate_gram_summary(dim=args.dim, capacities=caps, n_inputs=args.inputs, n_seeds=args.seeds,
                                           beta=args.beta, alpha_ref=np.log(args.dim), sigma=args.sigma,
                                           rng=np.random.default_rng([5, r]), **shape)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = fit_convergence(summary, random_slope=False, draws=400, tune=300, chains=2, cores=1,
                                    random_seed=r, idata_kwargs={"log_likelihood": False})
        beta = idata.posterior["beta"].values.ravel()
        diag = sampler_diagnostics(idata)
        row = {"mean": float(beta.mean()), "sd": float(beta.std()), "z": float((beta.mean() - args.beta) / beta.std()),
               "weight": float(idata.posterior.attrs["sawdist_likelihood_weight"][0]), "rhat_max": diag.rhat_max,
               "divergences": diag.divergences, "mixed": bool(diag.rhat_max <= 1.01 and diag.divergences == 0),
               "attempts": int(idata.posterior.attrs["sawdist_attempts"]),
               "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"replication {r}: beta {row['mean']:.4f} (sd {row['sd']:.4f}, z {row['z']:+.2f}), "
              f"w {row['weight']:.4g}, {diag.summary()}, {row['attempts']} attempt(s), {row['seconds']} s",
              flush=True)
    ok = [x for x in rows if x["mixed"]]
    means = np.array([x["mean"] for x in ok])
    result = {"settings": vars(args), "replications": rows, "mixed": len(ok),
              "bias": float(means.mean() - args.beta), "bias_se": float(means.std(ddof=1) / np.sqrt(len(ok))),
              "sd_of_means": float(means.std(ddof=1)), "mean_posterior_sd": float(np.mean([x["sd"] for x in ok]))}
    print(f"{len(ok)} of {len(rows)} fits with R-hat <= 1.01 and no divergence; over them: bias of beta "
          f"{result['bias']:+.4f} +- {result['bias_se']:.4f}, sd of the posterior means {result['sd_of_means']:.4f}, "
          f"mean posterior sd {result['mean_posterior_sd']:.4f}")
    out = Path(args.out or Path(__file__).parent / "results" / f"anisotropy_bias_{args.shape}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
