"""Benchmark: the collapsed power-law convergence model against the explicit-mu model.

Collapsed: 5 capacities x 500 inputs, 8 seeds, d = 3072, 4 chains x 1000 draws (1000 tuning), cores=2.
Explicit (reference): the same design at d = 64 with mu(x) sampled as a normalized Gaussian and the directions
observed through the VonMisesFisher likelihood; by default fewer draws (--explicit-draws), timed per draw.

    python benchmarks/bayes_convergence.py [--tune 1000] [--explicit-draws 200] [--skip-explicit | --gradient-only]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

import arviz as az  # noqa: E402
import pymc as pm  # noqa: E402
import pytensor.tensor as pt  # noqa: E402

import sawdist  # noqa: E402
from sawdist.bayes import VonMisesFisher, fit_convergence, simulate_summary  # noqa: E402

CAPACITIES = [4, 8, 16, 32, 64]


def explicit_model(directions, capacities, dim):
    """mu(x) = z/||z||, z ~ N(0, I); directions[k, s, x] ~ vMF(mu(x), kappa[x, k]); same priors as the collapsed
    power law (centred input effects)."""
    K, S, N, d = directions.shape
    log_k = np.log(np.asarray(capacities, float))
    k_ref = log_k.mean()
    with pm.Model() as model:
        alpha_ref = pm.Normal("alpha_ref", np.log(dim), 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        beta = pm.Normal("beta", 0.0, 1.0)
        pm.Deterministic("alpha", alpha_ref - beta * k_ref)
        a = pm.Normal("a", alpha_ref, sigma, shape=N)
        z = pm.Normal("z", 0.0, 1.0, shape=(N, d))
        mu = z / pt.sqrt(pt.sum(z**2, axis=-1, keepdims=True))
        kappa = pt.exp(a[None, :] + beta * (log_k - k_ref)[:, None])  # (K, N)
        VonMisesFisher("u", mu=mu[None, None], kappa=kappa[:, None, :], observed=directions)
    return model


def _time_logp_dlogp(model, repeats):
    from pymc.blocking import DictToArrayBijection

    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    x = DictToArrayBijection.map(model.initial_point()).data
    fn(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    return (time.perf_counter() - t0) / repeats, x.size


def compare_gradients(summary, args):
    """One logp-and-gradient evaluation of each model (what every leapfrog step costs), same design."""
    from sawdist.bayes import convergence_model

    t_c, n_c = _time_logp_dlogp(convergence_model(summary, "power"), 200)
    print(f"collapsed d=3072: {n_c} parameters, {1e3 * t_c:.2f} ms per logp+gradient")
    gen = np.random.default_rng(2)
    d = 64
    log_k = np.log(CAPACITIES)
    kappa = np.exp(np.log(d) + 0.3 * gen.standard_normal(args.inputs)[:, None] + 0.5 * (log_k - log_k.mean()))
    mu = sawdist.uniform_direction(d).rvs(size=args.inputs, rng=gen)
    directions = np.stack([sawdist.vonmises_fisher(mu, kappa[:, k]).rvs(size=args.seeds, rng=gen)
                           for k in range(len(CAPACITIES))])
    t_e, n_e = _time_logp_dlogp(explicit_model(directions, CAPACITIES, d), 50)
    print(f"explicit d=64: {n_e} parameters, {1e3 * t_e:.2f} ms per logp+gradient (x{t_e / t_c:.1f})")
    print("load:", os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inputs", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--explicit-draws", type=int, default=200)
    parser.add_argument("--skip-explicit", action="store_true")
    parser.add_argument("--gradient-only", action="store_true",
                        help="after the collapsed fit, time one logp+gradient of each model instead of sampling the "
                             "explicit one")
    args = parser.parse_args()

    print("load:", os.getloadavg())
    summary = simulate_summary(dim=3072, capacities=CAPACITIES, n_inputs=args.inputs, n_seeds=args.seeds, rng=1)
    t0 = time.perf_counter()
    idata = fit_convergence(summary, "power", draws=1000, tune=args.tune, chains=4, cores=2, random_seed=1,
                            progressbar=False)
    wall = time.perf_counter() - t0
    table = az.summary(idata, var_names=["alpha", "beta", "sigma"])
    print(table)
    rhat = az.rhat(idata, var_names=["alpha_ref", "beta", "sigma", "a"])
    print("max R-hat over the free parameters:", {k: round(float(v.max()), 4) for k, v in rhat.items()})
    steps = idata.sample_stats["n_steps"].values
    print(f"collapsed d=3072: {wall:.1f} s total (model build, Laplace start, {args.tune} tune + 1000 draws x 4 "
          f"chains, log-likelihood); sampling {idata.posterior.attrs.get('sampling_time', float('nan')):.1f} s; "
          f"{steps.mean():.1f} leapfrog steps per draw, max tree depth "
          f"{int(idata.sample_stats['tree_depth'].max())}, divergences {int(idata.sample_stats['diverging'].sum())}")
    print("load:", os.getloadavg())

    if args.skip_explicit:
        return
    if args.gradient_only:
        compare_gradients(summary, args)
        return
    gen = np.random.default_rng(2)
    d = 64
    log_k = np.log(CAPACITIES)
    kappa = np.exp(np.log(d) + 0.3 * gen.standard_normal(args.inputs)[:, None] + 0.5 * (log_k - log_k.mean()))
    mu = sawdist.uniform_direction(d).rvs(size=args.inputs, rng=gen)
    directions = np.stack([sawdist.vonmises_fisher(mu, kappa[:, k]).rvs(size=args.seeds, rng=gen)
                           for k in range(len(CAPACITIES))])
    with explicit_model(directions, CAPACITIES, d):
        t0 = time.perf_counter()
        ex = pm.sample(args.explicit_draws, tune=args.explicit_draws, chains=4, cores=2, random_seed=1,
                       progressbar=False)
        wall_ex = time.perf_counter() - t0
    print(az.summary(ex, var_names=["alpha", "beta", "sigma"]))
    per_draw = wall_ex / (2 * args.explicit_draws)
    print(f"explicit d=64: {wall_ex:.1f} s for {args.explicit_draws} tune + draws per chain "
          f"({per_draw:.3f} s per iteration of 4 chains; x{2000 * per_draw / wall:.1f} the collapsed model's "
          f"total at 1000 + 1000)")


if __name__ == "__main__":
    main()
