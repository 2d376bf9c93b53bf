"""Does the likelihood weight make each input's intervals honest? Per-input maximum likelihood under several truths.

For each input of a simulated summary, the collapsed log-likelihood (sawdist.bayes.model) is maximised in
(a_x, b_x), log kappa_k(x) = a_x + b_x (log k - mean log k), and the error of the estimate about the truth is
standardised by the tempered curvature: z^2 = (theta_hat - theta)^2 / [(w H)^-1]. A weight that matches the score's
actual variance gives E z^2 = 1 for both parameters; below 1 the tempered intervals are too wide, above too narrow.
Two weights side by side: the Gram diagonal's (``Calibration.diagonal_weight``), and one from the score's worst
direction (1 / ``Calibration.score_ratio``, capped at 1); ``fit_convergence`` uses the smaller of the two.

Inputs are independent, so the mean of z^2 over 200 inputs has a standard error of about 0.1-0.2 (z^2 is about
chi^2_1 when the estimate is near normal; with 4 seeds and heavy tempering it is not, so the median of z^2 / 0.455,
the chi^2_1 median, is given too). The mean error of b_hat over the inputs is a bias that pooling does not
shrink: beside the posterior sd of beta at many inputs it decides coverage there.

    python benchmarks/score_variance.py [--inputs 200] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import optimize

from sawdist.bayes.calibration import likelihood_weight
from sawdist.bayes.simulate import simulate_gram_summary
from sawdist.special import vmf_log_normalizer

TRUTHS = {"vmf": {"shape": "vmf"}, "wide cosine law": {"shape": "wide"},
          "anisotropic d_eff 5": {"shape": "projected_normal", "effective_dimension": 5},
          "anisotropic d_eff 100": {"shape": "projected_normal", "effective_dimension": 100},
          "tangent only d_eff 20": {"shape": "anisotropic_tangent", "effective_dimension": 20}}
DESIGNS = ((1000, 4, 3, 3072), (100, 4, 3, 768), (30, 8, 5, 3072))  # inputs, seeds, capacities, d
CHI2_1_MEDIAN = 0.4549


def per_input_fits(summary, d, capacities, n_fit):
    """(theta_hat, H) per input: the maximiser of the collapsed log-likelihood in (a, b) and its negative Hessian."""
    G = summary["gram"].values[0]
    n = summary["count"].values[0, :, 0].astype(float)
    x = np.log(capacities) - np.log(capacities).mean()

    def nll(p, g):
        kappa = np.exp(p[0] + p[1] * x)
        return -(np.sum(n * vmf_log_normalizer(d, kappa)) - vmf_log_normalizer(d, np.sqrt(kappa @ g @ kappa)))

    out = []
    for i in range(n_fit):
        fit = optimize.minimize(nll, np.array([np.log(d), 0.5]), args=(G[i],), method="Nelder-Mead",
                                options={"xatol": 1e-7, "fatol": 1e-9, "maxiter": 4000})
        p, h, H = fit.x, 1e-4, np.zeros((2, 2))
        for a in range(2):
            for b in range(2):
                ea, eb = np.eye(2)[a] * h, np.eye(2)[b] * h
                H[a, b] = (nll(p + ea + eb, G[i]) - nll(p + ea - eb, G[i]) - nll(p - ea + eb, G[i])
                           + nll(p - ea - eb, G[i])) / (4 * h * h)
        out.append((p, H))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200, help="inputs fitted per design and truth")
    parser.add_argument("--json", help="save the numbers here")
    args = parser.parse_args()
    rows = []
    print("| truth | design (N, S, K, d) | w Gram diagonal | w score | z2 a (diag / score) | z2 b (diag / score) "
          "| median-based z2 b (diag / score) | mean error of b_hat (SE) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, kw in TRUTHS.items():
        for N, S, K, d in DESIGNS:
            t0 = time.perf_counter()
            kw = dict(kw)
            if "effective_dimension" in kw:
                kw["effective_dimension"] = min(kw["effective_dimension"], (d - 1) // 2)
            capacities = 2.0 ** np.linspace(2, 6, K)
            summary, truth = simulate_gram_summary(dim=d, capacities=capacities, n_inputs=N, n_seeds=S, beta=0.5,
                                                   sigma=0.3, rng=0, **kw)
            cal = likelihood_weight(summary)
            weights = {"diag": cal.diagonal_weight[0], "score": min(1.0, 1.0 / cal.score_ratio[0])}
            z2 = {k: [] for k in weights}
            errors = []
            for i, (p, H) in enumerate(per_input_fits(summary, float(d), capacities, min(args.inputs, N))):
                err = p - np.array([np.log(truth["kappa"][i]).mean(), 0.5])
                errors.append(err[1])
                for key, w in weights.items():
                    try:
                        var = np.diagonal(np.linalg.inv(w * H))
                    except np.linalg.LinAlgError:
                        continue
                    z2[key].append(err**2 / var)
            z2 = {k: np.array(v) for k, v in z2.items()}
            row = {"truth": name, "design": [N, S, K, d], "w_diag": float(weights["diag"]),
                   "w_score": float(weights["score"]), "inputs": int(len(z2["score"])),
                   **{f"mean_z2_{p}_{k}": float(z2[k][:, j].mean()) for k in z2 for j, p in enumerate("ab")},
                   **{f"median_z2_b_{k}": float(np.median(z2[k][:, 1]) / CHI2_1_MEDIAN) for k in z2},
                   "mean_error_b": float(np.mean(errors)),
                   "se_mean_error_b": float(np.std(errors, ddof=1) / np.sqrt(len(errors))),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(f"| {name} | {(N, S, K, d)} | {row['w_diag']:.3g} | {row['w_score']:.3g} | "
                  f"{row['mean_z2_a_diag']:.2f} / {row['mean_z2_a_score']:.2f} | "
                  f"{row['mean_z2_b_diag']:.2f} / {row['mean_z2_b_score']:.2f} | "
                  f"{row['median_z2_b_diag']:.2f} / {row['median_z2_b_score']:.2f} | "
                  f"{row['mean_error_b']:+.4f} ({row['se_mean_error_b']:.4f}) |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
