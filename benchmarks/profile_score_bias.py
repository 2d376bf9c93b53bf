"""The profile score's bias at the truth, by Monte Carlo and by its second-order expansion. No sampler.

``benchmarks/slope_weight_bias.py`` writes the tempered likelihood's error in beta as B - C / w_slope, B the mean of
each input's profile score d l_p / d beta (its intercept a_x maximised out) at the truth, over the profile
curvature I_p. This script measures B directly, over many simulated inputs of one design, and checks the expansion
that could estimate it from data. With s = l_a, h = l_aa, g = l_beta, m = l_a,beta, u = l_aaa, t = l_aa,beta at the
truth, a_hat - a = delta solves s + h delta + u delta^2 / 2 = 0, so to second order in the data's noise

    E[l_p'] = E[g] - m E[s] / h - Cov(m, s) / h + m Cov(h, s) / h^2 + Var(s) (t / h^2 - m u / h^3) / 2

(h, m, u, t their means). The first two terms vanish where the score is unbiased at the truth (Bartlett), which it
is under every truth of the study to noise; the others are covariances of functions of the Gram matrix. The
script evaluates them twice: with the covariances over the simulated inputs (a check of the expansion), and from
the seeds' moments a fit measures (:func:`moment_prediction`). Derivatives by central differences (step 2e-3 in a
and beta) of the exact collapsed log-likelihood; a_hat by Newton's method from the truth.

    python benchmarks/profile_score_bias.py [--inputs 20000] [--truths ...] [--sigma 0.3] [--json FILE]
    python benchmarks/profile_score_bias.py --slope-weight-runs benchmarks/results/slope_weight_bias.json
    python benchmarks/profile_score_bias.py --study benchmarks/results/calibration_study_300.json [--json FILE]

The second predicts B and C (``intercept_pull``) for every dataset ``slope_weight_bias.py`` fitted; the third the
default's bias for each 1000-input dataset of a calibration study, against its standardised error.
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


def moment_prediction(summary, kappa, x, radial=1.0, tangent=1.0):
    """B predicted from the seeds' radial and tangent moments (``likelihood_weight``'s ratios; 1 and 1 for the vMF),
    at concentrations ``kappa`` (N, K), first family (:func:`_moment_pieces`)."""
    v = _moment_pieces(summary, kappa, x, radial, tangent)
    return float(v["bias"].sum() / v["information"].sum())


def _moment_pieces(summary, kappa, x, radial, tangent):
    """Per input: the profile score's bias (second order) and the derivatives at E[G] it is made of.

    s, h and m depend on the Gram matrix G only through q = kappa'G kappa and p = kappa' diag(x) G kappa: with
    phi(q) = -log C_d(sqrt q), their G parts are 2 q phi', 4 q^2 phi'' + 4 q phi' and 4 p (q phi'' + phi'), so
    their fluctuations are psi_s dq, psi_h dq and psi_mq dq + psi_mp dp. The score covariance in log kappa that
    ``_score_covariance`` gives (first order in G, any radial and tangent ratios) holds Var q and Cov(p, q): its
    sum 1'B1 is psi_s^2 Var q and 1'Bx is psi_s (2 phi' Cov(p, q) + 2 p phi'' Var q). The means h, m, u, t are the
    derivatives at E[G].
    """
    from sawdist.bayes import calibration as cal

    d = float(summary["n_features"])
    n = summary["count"].transpose("family", "input", "capacity").values[0].astype(np.float64)
    score_cov = cal._score_covariance(n, kappa, d, radial, tangent)
    m_k, _, _ = cal._seed_covariance_parts(d, kappa)
    eye = np.eye(kappa.shape[-1], dtype=bool)
    EG = np.where(eye, (n + n * (n - 1.0) * m_k * m_k)[..., :, None],
                  (n * m_k)[..., :, None] * (n * m_k)[..., None, :])
    q = np.einsum("nk,nkl,nl->n", kappa, EG, kappa)
    p = np.einsum("nk,k,nkl,nl->n", kappa, x, EG, kappa)
    e = 1e-3 * q
    f = {i: -vmf_log_normalizer(d, np.sqrt(q + i * e)) for i in (-2, -1, 0, 1, 2)}
    d1, d2 = (f[1] - f[-1]) / (2 * e), (f[1] - 2 * f[0] + f[-1]) / e**2
    d3 = (f[2] - 2 * f[1] + 2 * f[-1] - f[-2]) / (2 * e**3)
    psi_s, psi_h = 2 * d1 + 2 * q * d2, 4 * d1 + 12 * q * d2 + 4 * q * q * d3
    psi_mq, psi_mp = 4 * p * (2 * d2 + q * d3), 4 * (q * d2 + d1)
    one = np.ones(kappa.shape[-1])
    var_s = np.einsum("k,nkl,l->n", one, score_cov, one)
    var_q = var_s / psi_s**2
    cov_pq = (np.einsum("k,nkl,l->n", one, score_cov, x) / psi_s - 2 * p * d2 * var_q) / (2 * d1)
    cov_ms, cov_hs = psi_s * (psi_mq * var_q + psi_mp * cov_pq), psi_h * psi_s * var_q

    a0, b0 = np.log(kappa).mean(axis=-1), float(np.mean(np.diff(np.log(kappa), axis=-1) / np.diff(x)))

    def loglik(a, b):  # at E[G]
        kk = np.exp(a[:, None] + b * x)
        r = np.sqrt(np.einsum("nk,nkl,nl->n", kk, EG, kk))
        return (n * vmf_log_normalizer(d, kk)).sum(-1) - vmf_log_normalizer(d, r)

    dv = _derivatives(loglik, a0, b0)
    h, m, u, t = dv["h"], dv["m"], dv["u"], dv["t"]
    return {"bias": -cov_ms / h + m * cov_hs / h**2 + 0.5 * var_s * (t / h**2 - m * u / h**3),
            "information": -dv["gbb"] + m * m / h, "h": h, "m": m, "u": u, "t": t, "a": a0,
            "cov_ms": cov_ms, "cov_hs": cov_hs, "var_s": var_s}


def intercept_pull(v, w, sigma, alpha=None):
    """C of beta_hat - beta = B - C / w_slope, from :func:`_moment_pieces`' per-input pieces ``v``: the intercepts
    tempered by w and drawn from N(alpha, sigma^2). Returns (C, its Laplace part, its shrinkage part).

    The estimating equation of the marginal likelihood (``pseudo_true_slope.marginal_fit``) for beta is
    sum_x [w_slope l_p' + w (l_beta(a~) - l_beta(a^)) - D_x / 2]: a~ is the intercept's mode under its prior, a^ its
    likelihood's, D_x = w dH/dbeta / (w H + sigma^-2) the derivative of the Laplace term's log curvature along a~.
    With a~ - a^ = -(a^ - alpha) / (1 + sigma^2 w H) and a^ - a = s/H + E[delta] to second order,
    C = (sum D_x / 2 - w sum E[l_beta(a~) - l_beta(a^)]) / sum I_p.
    """
    h, m, u, t, a0 = v["h"], v["m"], v["u"], v["t"], v["a"]
    H, s2 = -h, sigma**2
    alpha = float(a0.mean()) if alpha is None else alpha
    dH = -(t + u * (-w * m / (w * h - 1.0 / s2)))  # along a~(beta)
    laplace = 0.5 * np.sum(w * dH / (w * H + 1.0 / s2))
    mean_shift = v["cov_hs"] / h**2 - 0.5 * u * v["var_s"] / h**3  # E[a^ - a], the score unbiased
    shrink = -np.sum((m * (a0 - alpha) + m * mean_shift + v["cov_ms"] / H) / (1.0 + s2 * w * H))
    info = v["information"].sum()
    return float((laplace - w * shrink) / info), float(laplace / info), float(-w * shrink / info)


def check_slope_weight_runs(path):
    """For each dataset of ``slope_weight_bias.py``'s JSON, B and C predicted (at the true concentrations, from the
    seeds' moments and the model) beside the fitted ones."""
    from sawdist.bayes.calibration import likelihood_weight

    print("| truth | sigma | dataset | inputs | B: fitted | predicted | C: fitted | predicted (Laplace, shrinkage) "
          "| error at the default's w: fitted | predicted |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    caps = capacities(K)
    x = np.log(caps) - np.log(caps).mean()
    for run in json.loads(Path(path).read_text())["runs"]:
        st = run["settings"]
        for row in run["rows"]:
            cell, sigma = row["truth"], st.get("sigma", 0.3)
            rng = np.random.default_rng([st["seed"], list(CELLS).index(cell), row["dataset"]])
            summary, truth = simulate_gram_summary(dim=DIM, capacities=caps, n_inputs=st["inputs"], n_seeds=SEEDS,
                                                   beta=0.5, sigma=sigma, alpha_ref=np.log(DIM), rng=rng,
                                                   **dict(CELLS[cell]))
            c = likelihood_weight(summary)
            w = float(c.weight[0])
            v = _moment_pieces(summary, np.asarray(truth["kappa"], dtype=np.float64), x, c.radial_ratio[0],
                               c.tangent_ratio[0])
            B = float(v["bias"].sum() / v["information"].sum())
            C, lap, shr = intercept_pull(v, w, sigma)
            fitted_default = row["error"][row["w_slope"].index(w)] if w in row["w_slope"] else float("nan")
            print(f"| {cell} | {sigma} | {row['dataset']} | {st['inputs']} | {row['B']:+.5f} | {B:+.5f} "
                  f"| {row['C']:.3g} | {C:.3g} ({lap:.2g}, {shr:.2g}) | {fitted_default:+.5f} | {B - C / w:+.5f} |",
                  flush=True)


def _derivatives(loglik, a, b):
    """Central differences (step STEP) of loglik(a, b) per input: the first three in a, and those with beta."""
    f = {(i, j): loglik(a + i * STEP, b + j * STEP) for i in (-2, -1, 0, 1, 2) for j in (-1, 0, 1)}
    e = STEP
    return {"s": (f[1, 0] - f[-1, 0]) / (2 * e), "g": (f[0, 1] - f[0, -1]) / (2 * e),
            "h": (f[1, 0] - 2 * f[0, 0] + f[-1, 0]) / e**2,
            "gbb": (f[0, 1] - 2 * f[0, 0] + f[0, -1]) / e**2,
            "m": (f[1, 1] - f[1, -1] - f[-1, 1] + f[-1, -1]) / (4 * e * e),
            "u": (f[2, 0] - 2 * f[1, 0] + 2 * f[-1, 0] - f[-2, 0]) / (2 * e**3),
            "t": ((f[1, 1] - 2 * f[0, 1] + f[-1, 1]) - (f[1, -1] - 2 * f[0, -1] + f[-1, -1])) / (2 * e**3)}


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

    a = a0.copy()
    for _ in range(30):  # a_hat at beta = b0, per input: Newton's method on l_a, l_aa by central differences
        f0, fp, fm = loglik(a, b0), loglik(a + STEP, b0), loglik(a - STEP, b0)
        a = a - np.clip((fp - fm) / (2 * STEP) / ((fp - 2 * f0 + fm) / STEP**2), -0.2, 0.2)
    profile_score = (loglik(a, b0 + STEP) - loglik(a, b0 - STEP)) / (2 * STEP)  # envelope: l_beta at a_hat
    dv = _derivatives(loglik, a0, b0)
    mean = {k: float(v.mean()) for k, v in dv.items()}

    def cov(p, q):
        return float(np.mean((dv[p] - mean[p]) * (dv[q] - mean[q])))

    h, m, u, t = mean["h"], mean["m"], mean["u"], mean["t"]
    terms = {"E[g]": mean["g"], "-m E[s]/h": -m * mean["s"] / h, "-Cov(m,s)/h": -cov("m", "s") / h,
             "m Cov(h,s)/h^2": m * cov("h", "s") / h**2,
             "Var(s)(t/h^2 - m u/h^3)/2": 0.5 * cov("s", "s") * (t / h**2 - m * u / h**3)}
    info = -mean["gbb"] + m * m / h  # the profile curvature per input
    se = lambda v: float(v.std() / np.sqrt(n_inputs))  # noqa: E731
    from sawdist.bayes.calibration import likelihood_weight

    c = likelihood_weight(summary)
    kappa = np.asarray(truth["kappa"], dtype=np.float64)
    return {"truth": cell, "inputs": n_inputs, "sigma": sigma, "profile_information": info,
            "B_monte_carlo": float(profile_score.mean()) / info, "B_monte_carlo_se": se(profile_score) / info,
            "B_expansion": sum(terms.values()) / info,
            "B_expansion_covariances_only": (sum(terms.values()) - terms["E[g]"] - terms["-m E[s]/h"]) / info,
            "mean_score_a_in_se": mean["s"] / se(dv["s"]), "mean_score_beta_in_se": mean["g"] / se(dv["g"]),
            "terms_over_information": {k: v / info for k, v in terms.items()},
            "B_from_moments": moment_prediction(summary, kappa, x, c.radial_ratio[0], c.tangent_ratio[0]),
            "B_from_vmf_moments": moment_prediction(summary, kappa, x),
            "radial_ratio": c.radial_ratio[0].tolist(), "tangent_ratio": c.tangent_ratio[0].tolist()}


def check_study(path, cells, out=None):
    """The default's bias B - C / w predicted for each dataset of a ``calibration.py`` study (at its true
    concentrations and sigma), and beta's standardised error before and after removing it (1000-input design)."""
    from calibration import simulate
    from scipy.stats import norm
    from slope_weight_bias import law_ratios

    study = json.loads(Path(path).read_text())
    seed, kept = study["settings"]["fit"]["seed"], study["settings"]["fit"]["draws_kept"]
    rows = {}
    for key, rec in study["fits"].items():
        cell, i = key.split("/")
        if (cells and cell not in cells) or "calibrated" not in rec or rec["design"][0] != 1000:
            continue
        summary, truth, design, _ = simulate(cell, int(i), seed)
        _, _, c = law_ratios(summary)
        w = float(c.weight[0])
        caps = capacities(design[2])
        x = np.log(caps) - np.log(caps).mean()
        v = _moment_pieces(summary, np.asarray(truth["kappa"], dtype=np.float64), x, c.radial_ratio[0],
                           c.tangent_ratio[0])
        B = float(v["bias"].sum() / v["information"].sum())
        C, _, _ = intercept_pull(v, w, max(truth["sigma"], 1e-3))
        cal = rec["calibrated"]
        rows[key] = {"sigma": truth["sigma"], "w": w, "B": B, "C": C, "beta_sd": cal["beta_sd"],
                     "z": float(norm.ppf((cal["ranks"]["beta"] + 0.5) / (kept + 1))),
                     "random_slope": cal["random_slope"]}
    print("| cell | datasets (no input slopes) | mean z | predicted bias / sd: median [10 %, 90 %] "
          "| corr(z, predicted bias / sd) | mean z after removing it |")
    print("|---|---|---|---|---|---|")
    for cell in sorted({k.split("/")[0] for k in rows}):
        r = [v for k, v in rows.items() if k.split("/")[0] == cell and not v["random_slope"]]
        z = np.array([v["z"] for v in r])
        b = np.array([(v["B"] - v["C"] / v["w"]) / v["beta_sd"] for v in r])
        print(f"| {cell} | {len(r)} | {z.mean():+.2f} | {np.median(b):+.2f} [{np.quantile(b, 0.1):+.2f}, "
              f"{np.quantile(b, 0.9):+.2f}] | {np.corrcoef(z, b)[0, 1]:+.2f} | {(z + b).mean():+.2f} |", flush=True)
    if out:
        Path(out).write_text(json.dumps({"study": str(path), "datasets": rows}, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20000)
    parser.add_argument("--truths", default=",".join(TRUTHS))
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="save the numbers here")
    parser.add_argument("--slope-weight-runs", metavar="PATH",
                        help="instead: B and C predicted for each dataset of slope_weight_bias.py's JSON")
    parser.add_argument("--study", metavar="PATH", help="instead: the default's bias predicted for each 1000-input "
                        "dataset of a calibration.py study, against its standardised error")
    args = parser.parse_args()
    if args.study:
        check_study(args.study, [c for c in args.truths.split(",") if c], args.json)
        return
    if args.slope_weight_runs:
        check_slope_weight_runs(args.slope_weight_runs)
        return
    rows = []
    t0 = time.perf_counter()
    print("| truth | B by Monte Carlo | B by the expansion | its covariance terms alone | B from the seeds' moments "
          "| the same with the vMF's moments | mean score in a, beta (in SE) |")
    print("|---|---|---|---|---|---|---|")
    for cell in args.truths.split(","):
        r = measure(cell, args.inputs, args.sigma, args.seed)
        rows.append(r)
        print(f"| {cell} | {r['B_monte_carlo']:+.5f} +- {r['B_monte_carlo_se']:.5f} | {r['B_expansion']:+.5f} "
              f"| {r['B_expansion_covariances_only']:+.5f} | {r['B_from_moments']:+.5f} "
              f"| {r['B_from_vmf_moments']:+.5f} | {r['mean_score_a_in_se']:+.1f}, "
              f"{r['mean_score_beta_in_se']:+.1f} |", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args) | {"dim": DIM, "seeds": SEEDS, "K": K,
                                                                        "step": STEP}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
