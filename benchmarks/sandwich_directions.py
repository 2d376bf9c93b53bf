"""Which weight does each direction of the power law need? The exact score and curvature at the truth, per truth.

The calibration tempers each family's collapsed log-likelihood by one number w (docs/bayes.md, "The weight"). A
tempered posterior has the sandwich's width in a direction of the parameters exactly when w equals that direction's
ratio of model to actual variance, and the power law has two directions per input: the level a_x and the slope.
This script measures both, without any fit, where the linearised formulas of ``likelihood_weight`` could be wrong:

* at the true concentrations of every input (no estimate), the exact score g_x and Hessian H_x of the collapsed
  log-likelihood in (a_x, b), log kappa_k = a_x + b (log k - mean log k), by central differences;
* **checks**: the score's covariance over inputs J against the first-order B of
  ``sawdist.bayes.calibration._score_covariance`` (vMF moments scaled by the radial and tangent ratios the data
  show), and the mean curvature H against the vMF's Fisher information A (same function, factors 1); a ratio of 1
  means the formulas the weight rests on hold for that truth;
* **the weight each direction needs**: the level's sum_x A_aa / sum_x Var(g_a), and the slope's with a_x profiled
  out, sum_x A~ / sum_x Var(g~), g~ = g_b - (A_ab / A_aa) g_a, A~ = A_bb - A_ab^2 / A_aa, beside the weights
  estimated from the data: the Gram diagonal's, 1 / ``score_ratio`` (the worst of all K directions of log kappa),
  ``fit_convergence``'s default (the smaller of the two) and the law's own directions (``calibration.py --weight
  law``: 1 over the larger of the level's and the slope's estimated ratios);
* **the slope's score at the truth**: its mean over inputs, per input in units of its sd (with its standard error),
  is 0 for the vMF; a bias of the score would shift beta by sqrt(N) times it, in units of beta's sampling sd.

Each design's inputs, seeds, capacities and d are the calibration study's (``calibration.DESIGNS``), at a typical
truth (alpha_ref = log d, beta = 0.5, sigma = 0.3), with ``--inputs`` inputs simulated (4000: standard errors of 2-3 %
on the ratios).

``--study FILE --cell CELL`` instead checks the weights a calibration-study run recorded for that cell's datasets
(``calibration.py --out FILE``): for each, the slope's needed weight at that dataset's own truth (its alpha_ref,
beta and sigma, ``--inputs`` inputs simulated afresh) beside the weight its fit used.

    python benchmarks/sandwich_directions.py [--inputs 4000] [--json FILE]
    python benchmarks/sandwich_directions.py --study benchmarks/results/calibration_law_weight.json \
        --cell tangent_only_deff20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sawdist.bayes.calibration import _score_covariance, likelihood_weight
from sawdist.bayes.simulate import simulate_gram_summary
from sawdist.special import vmf_log_normalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CELLS, DESIGNS, capacities, law_direction_weight  # noqa: E402  (the study's cells and designs)

TRUTHS = ("vmf", "power_spherical", "wide_cosine_law", "anisotropic_deff5", "anisotropic_deff30",
          "anisotropic_deff100", "tangent_only_deff20")


def exact_score(summary, kappa, d, caps):
    """Per input, the score (N, 2) and negative Hessian (N, 2, 2) in (a, b) at the true kappa (N, K)."""
    G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values[0]
    n = summary["count"].transpose("family", "input", "capacity").values[0].astype(float)  # (N, K)
    x = np.log(caps) - np.log(caps).mean()
    X = np.stack([np.ones_like(x), x], axis=1)
    theta = np.stack([np.log(kappa).mean(axis=1), np.log(kappa) @ x / (x @ x)], axis=1)

    def loglik(th):
        kap = np.exp(th @ X.T)
        r = np.sqrt(np.einsum("nk,nkl,nl->n", kap, G, kap))
        return np.sum(n * vmf_log_normalizer(d, kap), axis=1) - vmf_log_normalizer(d, r)

    h = 1e-4  # the log-likelihood is smooth in theta on a scale of 1e-2 or more: truncation error ~1e-8 relative
    E = np.eye(2) * h
    score = np.stack([(loglik(theta + E[i]) - loglik(theta - E[i])) / (2 * h) for i in range(2)], axis=1)
    hess = np.empty((len(theta), 2, 2))
    for i in range(2):
        for j in range(2):
            hess[:, i, j] = -(loglik(theta + E[i] + E[j]) - loglik(theta + E[i] - E[j])
                              - loglik(theta - E[i] + E[j]) + loglik(theta - E[i] - E[j])) / (4 * h * h)
    return score, hess, X, n


def _simulate(cell, design, n_inputs, rng, beta=0.5, sigma=0.3, alpha_ref=None):
    _, S, K, d = design
    kw = dict(CELLS[cell])
    if "effective_dimension" in kw:
        kw["effective_dimension"] = min(kw["effective_dimension"], (d - 1) // 2)
    return simulate_gram_summary(dim=d, capacities=capacities(K), n_inputs=n_inputs, n_seeds=S, beta=beta,
                                 sigma=sigma, alpha_ref=alpha_ref, rng=rng, **kw)


def needed_slope_weight(summary, kappa, d, caps):
    """The slope's needed weight (a_x profiled out) from the exact score at the true kappa."""
    g, _, X, n = exact_score(summary, kappa, float(d), caps)
    A = np.einsum("ki,nkl,lj->nij", X, _score_covariance(n, kappa, float(d)), X)
    c = A[:, 0, 1] / A[:, 0, 0]
    return float((A[:, 1, 1] - A[:, 0, 1] ** 2 / A[:, 0, 0]).mean() / (g[:, 1] - c * g[:, 0]).var(ddof=1))


def check_study(path, cell, n_inputs):
    """Each recorded dataset of ``cell``: the needed slope weight at its truth against the weight its fit used."""
    from calibration import simulate

    recorded = json.loads(Path(path).read_text())
    fits, seed = recorded["fits"], recorded["settings"]["fit"]["seed"]
    print("| dataset | design (N, S, K, d) | beta, sigma, alpha_ref - log d | needed slope w | fit's w | ratio |")
    print("|---|---|---|---|---|---|")
    for key in sorted((k for k in fits if k.split("/")[0] == cell), key=lambda k: int(k.split("/")[1])):
        i = int(key.split("/")[1])
        _, truth, design, _ = simulate(cell, i, seed)
        d = design[3]
        summary, t = _simulate(cell, design, n_inputs, i, truth["beta"], truth["sigma"], truth["alpha_ref"])
        need = needed_slope_weight(summary, t["kappa"], d, capacities(design[2]))
        w = fits[key]["calibrated"]["weight"]
        print(f"| {key} | {tuple(design)} | {truth['beta']:.2f}, {truth['sigma']:.2f}, "
              f"{truth['alpha_ref'] - np.log(d):+.2f} | {need:.3g} | {w:.3g} | {w / need:.2f} |", flush=True)


def measure(cell, design, n_inputs, seed):
    _, S, K, d = design
    caps = capacities(K)
    summary, truth = _simulate(cell, design, n_inputs, np.random.default_rng([seed, list(CELLS).index(cell), K, d]))
    cal = likelihood_weight(summary)
    kappa = truth["kappa"]
    g, H, X, n = exact_score(summary, kappa, float(d), caps)
    A = np.einsum("ki,nkl,lj->nij", X, _score_covariance(n, kappa, float(d)), X)
    B = np.einsum("ki,nkl,lj->nij", X, _score_covariance(n, kappa, float(d), cal.radial_ratio[0],
                                                         cal.tangent_ratio[0]), X)
    J = np.cov(g.T)
    c = A[:, 0, 1] / A[:, 0, 0]
    g_slope = g[:, 1] - c * g[:, 0]
    a_slope = A[:, 1, 1] - A[:, 0, 1] ** 2 / A[:, 0, 0]
    b_slope = B[:, 1, 1] - 2 * c * B[:, 0, 1] + c**2 * B[:, 0, 0]
    var_slope = g_slope.var(ddof=1)
    bias = g_slope.mean() / np.sqrt(var_slope)  # per input, in units of one input's slope-score sd
    return {
        "cell": cell, "design": list(design), "inputs_simulated": n_inputs,
        "J_over_B": {"level": J[0, 0] / B[:, 0, 0].mean(), "slope": var_slope / b_slope.mean()},
        "H_over_A": {"level": H[:, 0, 0].mean() / A[:, 0, 0].mean(), "slope": H[:, 1, 1].mean() / A[:, 1, 1].mean()},
        "needed": {"level": A[:, 0, 0].mean() / J[0, 0], "slope": a_slope.mean() / var_slope},
        "weights": {"diagonal": float(cal.diagonal_weight[0]), "score": float(min(1.0, 1.0 / cal.score_ratio[0])),
                    "default": float(cal.weight[0]), "law": law_direction_weight(summary)},
        "slope_score_mean": bias, "slope_score_mean_se": 1.0 / np.sqrt(n_inputs),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=4000, help="inputs simulated per truth and design")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--json", help="save the numbers here")
    parser.add_argument("--study", help="a calibration-study JSON whose recorded weights to check (with --cell)")
    parser.add_argument("--cell", default="tangent_only_deff20", help="the study's cell to check")
    args = parser.parse_args()
    if args.study:
        check_study(args.study, args.cell, args.inputs)
        return
    rows = []
    print("| truth | design (N, S, K, d) | J/B level, slope | H/A level, slope | needed w level, slope "
          "| w diagonal | w score | w default | w law | mean slope score / sd (x 100) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    t0 = time.perf_counter()
    for cell in TRUTHS:
        for design in DESIGNS:
            r = measure(cell, design, args.inputs, args.seed)
            rows.append(r)
            w = r["weights"]
            print(f"| {cell} | {tuple(design)} | {r['J_over_B']['level']:.2f}, {r['J_over_B']['slope']:.2f} "
                  f"| {r['H_over_A']['level']:.2f}, {r['H_over_A']['slope']:.2f} "
                  f"| {r['needed']['level']:.3g}, {r['needed']['slope']:.3g} | {w['diagonal']:.3g} "
                  f"| {w['score']:.3g} | {w['default']:.3g} | {w['law']:.3g} "
                  f"| {100 * r['slope_score_mean']:+.1f} ({100 * r['slope_score_mean_se']:.1f}) |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {"inputs": args.inputs, "seed": args.seed, "alpha_ref": "log d", "beta": 0.5,
                                    "sigma": 0.3}, "rows": rows}, f, indent=1, default=float)


if __name__ == "__main__":
    main()
