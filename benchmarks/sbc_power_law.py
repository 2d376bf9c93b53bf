"""Simulation-based calibration (Talts et al. 2018) of the collapsed power-law convergence model.

For each of ``--datasets`` replications: draw (alpha_ref, beta, sigma, a_x) from the model's prior, draw vMF
directions (mu(x) uniform) with log kappa_k(x) = a_x + beta (log k - log k_ref), summarise them, fit the model
with NUTS, thin the posterior to ``--draws-kept`` draws and record the rank of each true parameter among them.
If the sampler and the likelihood are right, the ranks are uniform on {0, ..., L}; we test that with a chi-square
test over 10 bins per parameter and write the ranks and p-values to benchmarks/results/sbc_power_law.json after
every dataset. A rerun with the same design resumes from that file (``--fresh`` starts over).

    nohup python benchmarks/sbc_power_law.py --datasets 100 > sbc.log &
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

from sawdist.bayes import fit_convergence, simulate_summary  # noqa: E402

PARAMS = ("alpha", "beta", "sigma")


def one_replication(i, args):
    gen = np.random.default_rng([args.seed, i])
    d, capacities = args.dim, np.array(args.capacities)
    log_k = np.log(capacities)
    k_ref = log_k.mean()
    alpha_ref = gen.normal(np.log(d), 2.0)
    beta = gen.normal(0.0, 1.0)
    sigma = abs(gen.normal(0.0, 1.0))
    a = gen.normal(alpha_ref, sigma, size=args.inputs)
    kappa = np.exp(a[None, :, None] + beta * (log_k - k_ref))
    summary = simulate_summary(dim=d, capacities=capacities, n_inputs=args.inputs, n_seeds=args.seeds,
                               kappa=kappa, rng=gen)
    truth = {"alpha": alpha_ref - beta * k_ref, "beta": beta, "sigma": sigma}
    # Non-centred input effects: at small d and few inputs the data pin a_x down weakly, and the centred form
    # funnels when sigma is small (the prior puts mass there).
    idata = fit_convergence(summary, "power", centered=False, draws=args.draws, tune=args.tune, chains=args.chains,
                            cores=1, random_seed=int(gen.integers(2**31)), compute_convergence_checks=False,
                            idata_kwargs={"log_likelihood": False})
    post = idata.posterior
    n = post.sizes["chain"] * post.sizes["draw"]
    keep = np.linspace(0, n - 1, args.draws_kept).round().astype(int)
    ranks = {p: int(np.sum(post[p].values.reshape(n)[keep] < truth[p])) for p in PARAMS}
    divergences = int(idata.sample_stats["diverging"].sum())
    return ranks, truth, divergences


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--capacities", type=float, nargs="+", default=[4, 16, 64])
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--draws-kept", type=int, default=99)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sbc_power_law.json"))
    parser.add_argument("--fresh", action="store_true", help="ignore the ranks already in --out")
    args = parser.parse_args()

    t0 = time.perf_counter()
    ranks, divergences, elapsed = resume(args)
    if divergences:
        print(f"resuming from {args.out}: {len(divergences)} datasets done with the same design", flush=True)
    for i in range(len(divergences), args.datasets):
        r, _, div = one_replication(i, args)
        for p in PARAMS:
            ranks[p].append(r[p])
        divergences.append(div)
        print(f"{i + 1}/{args.datasets} ranks {r} divergences {div} ({time.perf_counter() - t0:.0f} s)", flush=True)
        write(args, ranks, divergences, t0 - elapsed, final=i + 1 == args.datasets)


def _design(args):
    return {k: v for k, v in vars(args).items() if k not in ("out", "fresh", "datasets")}


def resume(args):
    """Ranks already in ``args.out`` when it was written with the same design (replication i always uses the seed
    ``[seed, i]``, so a resumed run is the run that was interrupted), else nothing; ``--fresh`` starts over."""
    ranks = {p: [] for p in PARAMS}
    path = Path(args.out)
    if args.fresh or not path.exists():
        return ranks, [], 0.0
    old = json.loads(path.read_text())
    design = {k: v for k, v in old.get("design", {}).items() if k != "datasets"}
    if design != _design(args):
        print(f"{path} has another design; starting over", flush=True)
        return ranks, [], 0.0
    n = min(int(old["completed"]), args.datasets)
    return ({p: list(old["ranks"][p][:n]) for p in PARAMS}, list(old["divergent_transitions"][:n]),
            float(old.get("wall_s", 0.0)))


def write(args, ranks, divergences, t0, final):
    """Write the ranks so far (and, at the end, the chi-square tests) to ``args.out``."""
    L = args.draws_kept
    result = {"design": {"datasets": args.datasets, **_design(args)}, "completed": len(divergences),
              "ranks": ranks, "divergent_transitions": divergences, "chi2": {},
              "wall_s": round(time.perf_counter() - t0, 1)}
    for p in PARAMS:
        # ranks take L + 1 values 0..L; bins of equal width in rank
        counts = np.histogram(ranks[p], bins=args.bins, range=(-0.5, L + 0.5))[0]
        chi2 = stats.chisquare(counts)
        result["chi2"][p] = {
            "counts": counts.tolist(),
            "statistic": float(chi2.statistic),
            "p_value": float(chi2.pvalue),
        }
        if final:
            print(f"{p}: counts {counts.tolist()} chi2 p = {chi2.pvalue:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if final:
        print(f"wrote {args.out} in {result['wall_s']} s")


if __name__ == "__main__":
    main()
