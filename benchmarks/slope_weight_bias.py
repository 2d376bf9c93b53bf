"""How the likelihood's estimate of beta moves with the weights on the level and on the slope. No sampler.

``benchmarks/pseudo_true_slope.py`` found that under strong additive anisotropy the tempered collapsed likelihood's
maximiser of beta (thousands of inputs, intercepts integrated out) rises with the weight. This script separates the
two directions of the power law: the intercepts a_x tempered by w_level, the slope by w_slope (each input's profile
likelihood carries the difference, ``pseudo_true_slope.marginal_fit``), and sweeps w_slope over multiples of the
default weight and 1 on one simulated dataset per truth, so that the differences between weights are free of
sampling noise. It then fits

    beta_hat(w_slope) - beta = B - C / w_slope

by least squares in 1 / w_slope. Why that form: the marginal likelihood's estimating equation for beta is, per input,
w_slope l_p'(beta) + w (l_beta(a~) - l_beta(a^)) - (1/2) d/dbeta log(w H_x(beta) + sigma^-2), the profile score (a^
the intercept's maximum likelihood), the shift from the intercept's shrinkage to its prior mode a~, and the Laplace
term of its integral (H_x its curvature); so its root is off by (mean profile score at the truth) / I_p - C /
w_slope: B is the profile score's own bias (the incidental-intercept effect), C the intercepts' pull
(``profile_score_bias.py`` computes B from the seeds' moments and C from the model). For a correct model the two
cancel at w_slope = 1 (B = C); the script reports B / C, the weight at which they cancel (C / B), beside the
default weight and the law's directions' ratios.

    python benchmarks/slope_weight_bias.py [--inputs 8000] [--truths vmf,anisotropic_deff5,...] [--json FILE]

With ``--study PATH`` (a ``calibration.py`` study) it predicts instead what the study's beta intervals would have
covered had each dataset's slope been tempered by its own estimated ratio and its location kept (the posterior the
finding above points to: the default's estimating equation, the slope's own width). Each dataset is simulated again
(same random streams), its slope's ratio estimated as ``calibration.py --weight law`` does, and Phi^-1 of beta's SBC
rank scaled by sqrt(w_slope / w) (a normal posterior narrowed about its mean by that factor; datasets fitted with
input slopes kept as they are, their beta's width being partly the slopes' spread):

    python benchmarks/slope_weight_bias.py --study benchmarks/results/calibration_study_300.json [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from sawdist.bayes.simulate import simulate_gram_summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CELLS, capacities, law_ratios  # noqa: E402  (the study's cells)
from pseudo_true_slope import DIM, SEEDS, TRUTHS, K, marginal_fit  # noqa: E402

MULTIPLES = (0.5, 1.0, 2.0, 4.0)


def predict_from_study(path, cells, out=None):
    """Coverage of beta per cell, as fitted and as predicted with the slope's own weight (module docstring)."""
    from calibration import _interval, simulate
    from scipy.stats import norm

    study = json.loads(Path(path).read_text())
    seed, kept = study["settings"]["fit"]["seed"], study["settings"]["fit"]["draws_kept"]
    rows = {}
    for key, rec in study["fits"].items():
        cell, i = key.split("/")
        if (cells and cell not in cells) or "calibrated" not in rec:
            continue
        summary, _, design, _ = simulate(cell, int(i), seed)
        ratio_slope, ratio_level, c = law_ratios(summary)
        w = rec["calibrated"]["weight"]
        if not np.isclose(float(c.weight[0]), w, rtol=1e-6):
            raise RuntimeError(f"{key}: the weight simulated again ({float(c.weight[0])}) is not the study's ({w})")
        rows[key] = {"design": list(design), "w": w, "slope_ratio": ratio_slope, "level_ratio": ratio_level,
                     "rank": rec["calibrated"]["ranks"]["beta"], "random_slope": rec["calibrated"]["random_slope"]}
    print("| cell | datasets | w_slope / w: median [10 %, 90 %] | sd of Phi^-1(rank): fitted -> predicted "
          "| beta 50 % | 90 % | 95 % (fitted -> predicted [95 % interval]) |")
    print("|---|---|---|---|---|---|---|")
    for cell in sorted({k.split("/")[0] for k in rows}):
        r = [v for k, v in rows.items() if k.split("/")[0] == cell]
        z = norm.ppf((np.array([v["rank"] for v in r]) + 0.5) / (kept + 1))
        w = np.array([v["w"] for v in r])
        ws = np.minimum(1.0, 1.0 / np.array([v["slope_ratio"] for v in r]))
        ws = np.where(np.isfinite(ws) & (ws > 0), ws, w)
        scaled = z * np.where(np.array([v["random_slope"] for v in r], dtype=bool), 1.0, np.sqrt(ws / w))
        line = (f"| {cell} | {len(r)} | {np.median(ws / w):.2f} [{np.quantile(ws / w, 0.1):.2f}, "
                f"{np.quantile(ws / w, 0.9):.2f}] | {z.std(ddof=1):.2f} -> {scaled.std(ddof=1):.2f} |")
        for level in (0.5, 0.9, 0.95):
            q = norm.ppf((1 + level) / 2)
            est, low, high = _interval(np.abs(scaled) < q)
            line += f" {100 * np.mean(np.abs(z) < q):.0f} -> {est:.0f} [{low:.0f}, {high:.0f}] |"
        print(line, flush=True)
    if out:
        Path(out).write_text(json.dumps({"study": str(path), "datasets": rows}, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=8000, help="inputs simulated per dataset")
    parser.add_argument("--truths", default=",".join(TRUTHS))
    parser.add_argument("--dataset", type=int, default=0, help="which dataset of each truth (its random stream)")
    parser.add_argument("--multiples", default=",".join(map(str, MULTIPLES)),
                        help="the slope's weights as multiples of the default weight (1 is always added)")
    parser.add_argument("--sigma", type=float, default=0.3, help="the truth's spread of the input intercepts")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--json", help="save the numbers here")
    parser.add_argument("--study", help="predict a study's coverage with the slope's own weight (see above)")
    parser.add_argument("--cells", default="", help="with --study: these cells only (comma-separated)")
    args = parser.parse_args()
    if args.study:
        predict_from_study(args.study, [c for c in args.cells.split(",") if c], args.json)
        return
    caps = capacities(K)
    x = np.log(caps) - np.log(caps).mean()
    rows = []
    t0 = time.perf_counter()
    for cell in args.truths.split(","):
        rng = np.random.default_rng([args.seed, list(CELLS).index(cell), args.dataset])
        summary, _ = simulate_gram_summary(dim=DIM, capacities=caps, n_inputs=args.inputs, n_seeds=SEEDS,
                                           beta=0.5, sigma=args.sigma, alpha_ref=np.log(DIM), rng=rng,
                                           **dict(CELLS[cell]))
        G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values[0]
        n = summary["count"].transpose("family", "input", "capacity").values[0].astype(np.float64)
        ratio_slope, ratio_level, c = law_ratios(summary)
        w = float(c.weight[0])
        sweep = sorted({min(1.0, w * float(f)) for f in args.multiples.split(",")} | {1.0})
        if len(sweep) < 2:  # w = 1 and multiples >= 1: the line needs a second weight
            sweep.insert(0, 0.5 * w)
        errors, sds = [], []
        for ws in sweep:
            b, _, sigma, sd = marginal_fit(G, n, x, w, ws, prior_sd=args.sigma)
            errors.append(b - 0.5)
            sds.append(sd)
            print(f"{cell}: w_level {w:.4g}, w_slope {ws:.4g}: beta_hat - beta {b - 0.5:+.5f} (model sd {sd:.2g}), "
                  f"sigma_hat {sigma:.3f}", flush=True)
        design = np.stack([np.ones(len(sweep)), -1.0 / np.asarray(sweep)], axis=1)
        (B, C), *_ = np.linalg.lstsq(design, np.asarray(errors), rcond=None)
        resid = np.asarray(errors) - design @ np.array([B, C])
        row = {"truth": cell, "dataset": args.dataset, "w_level": w, "w_slope": sweep, "error": errors,
               "model_sd": sds, "B": float(B), "C": float(C), "max_residual": float(np.abs(resid).max()),
               "cancelling_weight": float(C / B) if B > 0 else None, "default_weight": w,
               "diagonal_weight": float(c.diagonal_weight[0]), "score_ratio": float(c.score_ratio[0]),
               "slope_ratio": ratio_slope, "level_ratio": ratio_level}
        rows.append(row)
        print(f"  B {B:+.5f}, C {C:.3g}, residual <= {row['max_residual']:.1e}; B/C {B / C:.1f} against 1/w "
              f"{1 / w:.1f} (diagonal {1 / c.diagonal_weight[0]:.1f}, score {c.score_ratio[0]:.1f}), slope's ratio "
              f"{ratio_slope:.1f}, level's {ratio_level:.1f}", flush=True)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {"inputs": args.inputs, "dataset": args.dataset, "seed": args.seed, "dim": DIM,
                                    "seeds": SEEDS, "capacities": caps.tolist(), "alpha_ref": "log d", "beta": 0.5,
                                    "sigma": args.sigma, "multiples_of_default": args.multiples}, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
