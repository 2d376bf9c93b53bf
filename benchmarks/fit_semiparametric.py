"""Benchmark of the semi-parametric Saw fit: 10^4 directions at d = 3072 in <= 1 s on 2 cores.

Each cost is printed side by side with the cost of the resultant R = sum_i u_i (one pass over the data, the floor of
any fit), as a ratio. The fit's one-dimensional work (spline, Newton, AIC grid, quadrature tables) does not grow with
d; the rest is a few passes over the (n, d) array.

Run:  python benchmarks/fit_semiparametric.py            (about 20 s)
      python benchmarks/fit_semiparametric.py --n 20000 --dim 12288
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import sawdist
from sawdist._logspline import fit_log_spline
from sawdist.capacity import fit_family
from sawdist.semiparametric import corrected_cosines, fit_semiparametric


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=3072)
    ap.add_argument("--kappa", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n, d = args.n, args.dim
    mu = np.zeros(d)
    mu[0] = 1.0
    x = sawdist.vonmises_fisher(mu, args.kappa).rvs(size=n, rng=0)
    x32 = x.astype(np.float32)
    print(
        f"sawdist {sawdist.__version__}, numpy {np.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    print(f"n = {n} directions, d = {d}, vMF kappa = {args.kappa:g}; best / median of {args.repeat} runs\n")

    fit_semiparametric(x[:200])  # warm-up (imports, caches)
    t = np.clip(corrected_cosines(x, d)["t_c"], -1, 1)
    rows = [
        ("resultant x.sum(0)  [floor]", lambda: x.sum(axis=0)),
        ("corrected cosines (LOO + deconvolution)", lambda: corrected_cosines(x, d)),
        ("1-D log-spline fit (AIC grid, Newton)", lambda: fit_log_spline(t, d)),
        ("fit_semiparametric(x)  (validation + all)", lambda: fit_semiparametric(x)),
        ("sawdist.fit(x)  (front door, default family)", lambda: sawdist.fit(x)),
        ("sawdist.fit(x float32)", lambda: sawdist.fit(x32)),
        (
            "sawdist.fit(x, distribution='vonmises_fisher')  (for comparison)",
            lambda: sawdist.fit(x, distribution="vonmises_fisher"),
        ),
    ]
    print(f"{'step':50s} {'best [s]':>9s} {'median [s]':>10s} {'/ resultant':>12s}")
    results = {}
    base = None
    for name, fn in rows:
        best, med = best_of(fn, args.repeat)
        base = best if base is None else base  # the first row, the resultant, is the unit of the ratios
        results[name] = best
        print(f"{name:50s} {best:9.4f} {med:10.4f} {best / base:12.1f}")
    total = results["sawdist.fit(x)  (front door, default family)"]
    verdict = "met" if total <= 1 else "MISSED"
    print(f"\nsawdist.fit (semi-parametric) on {n} x {d}: {total:.3f} s -> goal <= 1 s: {verdict}")

    res = sawdist.fit(x)
    m_true = float(sawdist.vonmises_fisher(mu, args.kappa).mean_resultant_length())
    plug = res.bias_correction["m_plugin"]
    print(
        f"fitted m = {res.mean_resultant_length:.6f} (true {m_true:.6f}, plug-in {plug:.6f}); "
        f"{res.smoothing['knots'].size} knots, edf {res.smoothing['edf']:.2f}"
    )

    # A capacity family of the size of the paper's experiments: 8 capacities x 20 seeds, d = 3072.
    caps = [2, 4, 8, 16, 32, 64, 128, 256]
    kappas = np.geomspace(200, 4000, len(caps))
    fam = np.stack([sawdist.vonmises_fisher(mu, k).rvs(size=20, rng=i) for i, k in enumerate(kappas)])
    for n_boot in (0, 200):
        best, med = best_of(lambda nb=n_boot: fit_family(fam, capacities=caps, n_boot=nb, rng=0), 3)
        print(
            f"fit_family, 8 capacities x 20 seeds, d = {d}, n_boot = {n_boot:3d}: best {best:.3f} s, median {med:.3f} s"
        )


if __name__ == "__main__":
    main()
