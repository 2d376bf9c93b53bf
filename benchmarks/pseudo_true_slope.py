"""Where does the tempered collapsed likelihood put beta when the directions are not vMF? No sampler, many inputs.

A posterior at many inputs concentrates at the maximiser of its marginal likelihood, the input intercepts integrated
out. This script computes that maximiser for the power law with one slope per family,

    max over (beta, alpha, sigma) of sum_x log integral exp(w l_x(a, beta)) N(a; alpha, sigma) da,

l_x the collapsed log-likelihood of input x (``sawdist.bayes.model``), each integral by the trapezoid rule on 97 nodes
over +- 8 sd of a_x's posterior at that input (found by Newton's method under the truth's population as the prior),
beta by Brent's method on the profile (alpha and sigma maximised at each beta). With thousands of inputs the
maximiser's distance from the truth is the bias that pooling does not shrink (its sampling error is beside it: the
profile's curvature, "model sd"). Several weights on the same simulated data, so that their differences are not
noise: w = 1 (the vMF likelihood as it is), ``fit_convergence``'s default (the smaller of the Gram diagonal's and
1 / ``score_ratio``) and the law's-directions weight (``calibration.py --weight law``).

Truths as the calibration study's cells, at a typical truth (alpha_ref = log d, beta = 0.5, sigma = 0.3), d = 3072,
4 seeds at 3 capacities (the study's 1000-input design) with ``--inputs`` inputs simulated. The error is also given
in units of the default weight's model sd at the study's 1000 inputs, where it decides coverage; its own sampling
noise there is about sqrt(1000 / inputs) of a unit (0.35 at 8000 inputs): the weights' differences on one dataset
are the precise part.

    python benchmarks/pseudo_true_slope.py [--inputs 8000] [--datasets 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import optimize

from sawdist.bayes.calibration import likelihood_weight
from sawdist.bayes.simulate import simulate_gram_summary
from sawdist.special import vmf_log_normalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CELLS, capacities, law_direction_weight  # noqa: E402  (the study's cells)

TRUTHS = ("vmf", "wide_cosine_law", "anisotropic_deff5", "anisotropic_deff30", "tangent_only_deff20")
DIM, SEEDS, K, STUDY_INPUTS = 3072, 4, 3, 1000


def _input_grids(loglik_at, w, anchor, prior_sd=0.3):
    """Per input, NODES intercepts spanning +- 8 sd of a_x's posterior under the reference prior
    N(log d, prior_sd^2) (the truth's population, near every fit's alpha and sigma), and their spacing: the
    integrand's peak is resolved at every weight (its sd is 0.005-0.01 at w = 1, near 1 at the smallest w here,
    where a fixed grid would need thousands of nodes)."""
    coarse = np.log(DIM) + np.linspace(-3.0, 3.0, 41)
    lp = w * np.stack([loglik_at(np.full(anchor.shape, a)) for a in coarse], axis=1) \
        - 0.5 * ((coarse - np.log(DIM)) / prior_sd) ** 2
    a = coarse[np.argmax(lp, axis=1)]
    h = 1e-3

    def target(v):
        return w * loglik_at(v) - 0.5 * ((v - np.log(DIM)) / prior_sd) ** 2

    for _ in range(8):  # Newton's method from the coarse grid's best node, steps capped at 0.1
        f0, fp, fm = target(a), target(a + h), target(a - h)
        grad, curv = (fp - fm) / (2 * h), -(fp - 2 * f0 + fm) / h**2
        a = a + np.clip(grad / np.maximum(curv, 1e-12), -0.1, 0.1)
    f0, fp, fm = target(a), target(a + h), target(a - h)
    sd = 1.0 / np.sqrt(np.maximum(-(fp - 2 * f0 + fm) / h**2, 1e-12))
    nodes = a[:, None] + sd[:, None] * np.linspace(-8.0, 8.0, NODES)[None, :]
    return nodes, sd * 16.0 / (NODES - 1)


NODES = 97


def marginal_fit(G, n, x, w, w_slope=None, prior_sd=0.3):
    """(beta_hat, alpha_hat, sigma_hat, model sd of beta_hat) maximising the marginal likelihood with weight w.

    With ``w_slope`` the slope is tempered by it and the intercepts by w, through each input's profile
    likelihood l_p(b) = max_a l_x(a, b): the integrand is exp(w l_x(a, b) + (w_slope - w) l_p(b)), whose curvature
    in a_x is w's and whose profile curvature in b is w_slope's (``benchmarks/slope_weight_bias.py``). ``prior_sd``:
    the truth's sigma, which places the integration grids and starts the search.
    """
    cache = {}
    w_slope = w if w_slope is None else w_slope

    def loglik(a, b):  # l_x(a_x, b) for intercepts a of shape (N,) or (N, nodes)
        kappa = np.exp(a[..., None] + b * x)
        g = G if a.ndim == 1 else G[:, None]
        r = np.sqrt(np.einsum("...k,...kl,...l->...", kappa, g, kappa))
        nn = n if a.ndim == 1 else n[:, None]
        return (nn * vmf_log_normalizer(DIM, kappa)).sum(-1) - vmf_log_normalizer(DIM, r)

    def profile_loglik(b, a):  # max over a of l_x(a, b), by Newton's method from a, steps capped at 0.2
        h = 1e-3
        for _ in range(30):
            f0, fp, fm = loglik(a, b), loglik(a + h, b), loglik(a - h, b)
            a = a + np.clip((fp - fm) / (2 * h) / np.maximum(-(fp - 2 * f0 + fm) / h**2, 1e-12), -0.2, 0.2)
        return loglik(a, b)

    def tables(b):  # the integration nodes, w l_x there and (w_slope - w) l_p, once per beta
        if b not in cache:
            nodes, step = _input_grids(lambda a: loglik(a, b), w, np.zeros(len(G)), prior_sd)
            extra = 0.0 if w_slope == w else (w_slope - w) * profile_loglik(b, nodes[:, NODES // 2])
            cache[b] = nodes, np.log(step), w * loglik(nodes, b), extra
        return cache[b]

    def nll(b, alpha, log_sigma):
        nodes, log_step, wl, extra = tables(b)
        lp = wl - 0.5 * ((nodes - alpha) / np.exp(log_sigma)) ** 2 - log_sigma
        top = lp.max(axis=1, keepdims=True)
        return -np.sum(top[:, 0] + np.log(np.exp(lp - top).sum(axis=1)) + log_step + extra)

    start = {"p": np.array([np.log(DIM), np.log(prior_sd)])}

    def profile(b):
        b = float(b)
        fit = optimize.minimize(lambda p: nll(b, *p), start["p"], method="Nelder-Mead",
                                options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
        start["p"] = fit.x
        return fit.fun, fit.x

    best = optimize.minimize_scalar(lambda b: profile(b)[0], bounds=(0.40, 0.60), method="bounded",
                                    options={"xatol": 1e-6})
    b = float(best.x)
    f0, (alpha, log_sigma) = profile(b)
    h = 2e-3  # the profile is quadratic in beta over +- a model sd (>= 1e-4 here; checked against h = 5e-4)
    curvature = (profile(b + h)[0] - 2 * f0 + profile(b - h)[0]) / h**2
    return b, alpha, float(np.exp(log_sigma)), float(1.0 / np.sqrt(curvature))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=8000, help="inputs simulated per dataset")
    parser.add_argument("--datasets", type=int, default=2, help="datasets per truth")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--json", help="save the numbers here")
    args = parser.parse_args()
    caps = capacities(K)
    x = np.log(caps) - np.log(caps).mean()
    rows = []
    print("| truth | dataset | weight | w | beta_hat - beta | model sd (these inputs) | sigma_hat "
          "| error / default's model sd at 1000 inputs |")
    print("|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for cell in TRUTHS:
        kw = dict(CELLS[cell])
        for i in range(args.datasets):
            rng = np.random.default_rng([args.seed, list(CELLS).index(cell), i])
            summary, _ = simulate_gram_summary(dim=DIM, capacities=caps, n_inputs=args.inputs, n_seeds=SEEDS,
                                               beta=0.5, sigma=0.3, alpha_ref=np.log(DIM), rng=rng, **kw)
            G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values[0]
            n = summary["count"].transpose("family", "input", "capacity").values[0].astype(np.float64)
            weights = {"default": float(likelihood_weight(summary).weight[0]),
                       "law": law_direction_weight(summary), "1": 1.0}
            default_sd = None
            for name, w in weights.items():
                b, alpha, sigma, sd = marginal_fit(G, n, x, w)
                if name == "default":
                    default_sd = sd * np.sqrt(args.inputs / STUDY_INPUTS)
                row = {"truth": cell, "dataset": i, "weight": name, "w": w, "error": b - 0.5, "model_sd": sd,
                       "alpha_error": alpha - np.log(DIM), "sigma": sigma,
                       "error_in_default_sd_at_1000": (b - 0.5) / default_sd}
                rows.append(row)
                print(f"| {cell} | {i} | {name} | {w:.4g} | {b - 0.5:+.5f} | {sd:.2g} | {sigma:.3f} "
                      f"| {row['error_in_default_sd_at_1000']:+.2f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {"inputs": args.inputs, "datasets": args.datasets, "seed": args.seed, "dim": DIM,
                                    "seeds": SEEDS, "capacities": caps.tolist(), "alpha_ref": "log d",
                                    "beta": 0.5, "sigma": 0.3}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
