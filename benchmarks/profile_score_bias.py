"""The profile score's bias at the truth, by Monte Carlo and by its second-order expansion. No sampler.

``benchmarks/slope_weight_bias.py`` writes the tempered likelihood's error in beta as B - C / w_slope, B the mean of
each input's profile score d l_p / d beta (its intercept a_x maximised out) at the truth, over the profile
curvature I_p. This script measures B directly, over many simulated inputs of one design, and checks the expansion
that could estimate it from data. With s = l_a, h = l_aa, g = l_beta, m = l_a,beta, u = l_aaa, t = l_aa,beta at the
truth, a_hat - a = delta solves s + h delta + u delta^2 / 2 = 0, so to second order in the data's noise

    E[l_p'] = E[g] - m E[s] / h - Cov(m, s) / h + m Cov(h, s) / h^2 + Var(s) (t / h^2 - m u / h^3) / 2

(h, m, u, t their means). The first two terms vanish where the score is unbiased at the truth (Bartlett), which it
is under every truth of the study to noise; the other four are covariances of functions of the Gram matrix. The
script evaluates them with the covariances over the simulated inputs, to check the expansion, not yet from the
moments a fit could measure. Derivatives by central differences (step 2e-3 in a and beta) of the exact collapsed
log-likelihood; a_hat by Newton's method from the truth.

    python benchmarks/profile_score_bias.py [--inputs 20000] [--truths ...] [--sigma 0.3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sawdist.bayes.simulate import simulate_gram_summary
from sawdist.special import vmf_log_normalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CELLS, capacities  # noqa: E402  (the study's cells)

DIM, SEEDS, K, STEP = 3072, 4, 3, 2e-3
TRUTHS = ("vmf", "power_spherical", "wide_cosine_law", "anisotropic_deff5", "anisotropic_deff30",
          "anisotropic_deff100", "tangent_only_deff20")


def measure(cell, n_inputs, sigma, seed):
    caps = capacities(K)
    x = np.log(caps) - np.log(caps).mean()
    rng = np.random.default_rng([seed, list(CELLS).index(cell)])
    summary, truth = simulate_gram_summary(dim=DIM, capacities=caps, n_inputs=n_inputs, n_seeds=SEEDS, beta=0.5,
                                           sigma=sigma, alpha_ref=np.log(DIM), rng=rng, **dict(CELLS[cell]))
    G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values[0]
    n = summary["count"].transpose("family", "input", "capacity").values[0].astype(np.float64)
    a0 = np.log(np.asarray(truth["kappa"], dtype=np.float64)).mean(axis=-1)  # log kappa = a + beta x, x centred
    b0 = truth["beta"]

    def loglik(a, b):
        kappa = np.exp(a[:, None] + b * x)
        r = np.sqrt(np.einsum("nk,nkl,nl->n", kappa, G, kappa))
        return (n * vmf_log_normalizer(DIM, kappa)).sum(-1) - vmf_log_normalizer(DIM, r)

    def derivatives(a, b):
        f = {(i, j): loglik(a + i * STEP, b + j * STEP) for i in (-2, -1, 0, 1, 2) for j in (-1, 0, 1)}
        e = STEP
        return {"s": (f[1, 0] - f[-1, 0]) / (2 * e), "g": (f[0, 1] - f[0, -1]) / (2 * e),
                "h": (f[1, 0] - 2 * f[0, 0] + f[-1, 0]) / e**2,
                "gbb": (f[0, 1] - 2 * f[0, 0] + f[0, -1]) / e**2,
                "m": (f[1, 1] - f[1, -1] - f[-1, 1] + f[-1, -1]) / (4 * e * e),
                "u": (f[2, 0] - 2 * f[1, 0] + 2 * f[-1, 0] - f[-2, 0]) / (2 * e**3),
                "t": ((f[1, 1] - 2 * f[0, 1] + f[-1, 1]) - (f[1, -1] - 2 * f[0, -1] + f[-1, -1])) / (2 * e**3)}

    a = a0.copy()
    for _ in range(30):  # a_hat at beta = b0, per input
        dv = derivatives(a, b0)
        a = a - np.clip(dv["s"] / dv["h"], -0.2, 0.2)
    profile_score = (loglik(a, b0 + STEP) - loglik(a, b0 - STEP)) / (2 * STEP)  # envelope: l_beta at a_hat
    dv = derivatives(a0, b0)
    mean = {k: float(v.mean()) for k, v in dv.items()}

    def cov(p, q):
        return float(np.mean((dv[p] - mean[p]) * (dv[q] - mean[q])))

    h, m, u, t = mean["h"], mean["m"], mean["u"], mean["t"]
    terms = {"E[g]": mean["g"], "-m E[s]/h": -m * mean["s"] / h, "-Cov(m,s)/h": -cov("m", "s") / h,
             "m Cov(h,s)/h^2": m * cov("h", "s") / h**2,
             "Var(s)(t/h^2 - m u/h^3)/2": 0.5 * cov("s", "s") * (t / h**2 - m * u / h**3)}
    info = -mean["gbb"] + m * m / h  # the profile curvature per input
    se = lambda v: float(v.std() / np.sqrt(n_inputs))  # noqa: E731
    return {"truth": cell, "inputs": n_inputs, "sigma": sigma, "profile_information": info,
            "B_monte_carlo": float(profile_score.mean()) / info, "B_monte_carlo_se": se(profile_score) / info,
            "B_expansion": sum(terms.values()) / info,
            "B_expansion_covariances_only": (sum(terms.values()) - terms["E[g]"] - terms["-m E[s]/h"]) / info,
            "mean_score_a_in_se": mean["s"] / se(dv["s"]), "mean_score_beta_in_se": mean["g"] / se(dv["g"]),
            "terms_over_information": {k: v / info for k, v in terms.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--truths", default=",".join(TRUTHS))
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="save the numbers here")
    args = parser.parse_args()
    rows = []
    t0 = time.perf_counter()
    print("| truth | B by Monte Carlo | B by the expansion | its covariance terms alone "
          "| mean score in a, beta (in SE) |")
    print("|---|---|---|---|---|")
    for cell in args.truths.split(","):
        r = measure(cell, args.inputs, args.sigma, args.seed)
        rows.append(r)
        print(f"| {cell} | {r['B_monte_carlo']:+.5f} +- {r['B_monte_carlo_se']:.5f} | {r['B_expansion']:+.5f} "
              f"| {r['B_expansion_covariances_only']:+.5f} | {r['mean_score_a_in_se']:+.1f}, "
              f"{r['mean_score_beta_in_se']:+.1f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args) | {"dim": DIM, "seeds": SEEDS, "K": K,
                                                                        "step": STEP}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
