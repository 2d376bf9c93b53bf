"""Benchmarks of the foundation: accuracy of the vMF log-density in high dimension, speed of vMF
sampling against its floor, and recovery of kappa by the fit — each side by side with its reference.

Run:  python benchmarks/distributions.py            (about a minute on 2 cores)
      python benchmarks/distributions.py --scipy    (also times scipy's sampler on a few draws)
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
import warnings

import mpmath as mp
import numpy as np
import scipy
from scipy import stats

import sawdist

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "tests", "reference", "bessel_reference.csv")


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def accuracy():
    """Max relative error of log C_d(kappa) against the 50-digit reference, and what scipy returns."""
    mp.mp.dps = 50
    with open(REFERENCE, newline="") as fh:
        rows = list(csv.DictReader(fh))
    print("\n== vMF log-normalizer against 50-digit mpmath (kappa in [0, 1e7]) ==")
    print(f"{'d':>7} {'points':>6} {'max rel err':>12}   scipy logpdf at x = mu (kappa = 1, 1000, 1e5)")
    for d in (2, 3, 64, 3072, 12288, 100000):
        nu = d / 2 - 1
        sel = [r for r in rows if float(r["nu"]) == nu and float(r["x"]) > 0]
        kappa = np.array([float(r["x"]) for r in sel])
        ours = sawdist.special.vmf_log_normalizer(d, kappa)
        worst = 0.0
        for value, r in zip(ours, sel):
            ref = nu * mp.log(mp.mpf(r["x"])) - mp.mpf(d) / 2 * mp.log(2 * mp.pi) - mp.mpf(r["log_iv"])
            worst = max(worst, float(abs(mp.mpf(float(value)) - ref) / max(1, abs(ref))))
        mu = np.zeros(d)
        mu[0] = 1.0
        scipy_vals = []
        for k in (1.0, 1000.0, 1e5):
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                try:
                    scipy_vals.append(f"{float(stats.vonmises_fisher(mu, k).logpdf(mu)):.6g}")
                except Exception as exc:  # noqa: BLE001 - report whatever scipy does
                    scipy_vals.append(type(exc).__name__)
        print(f"{d:>7} {len(sel):>6} {worst:>12.2e}   {', '.join(scipy_vals)}")


def extremes():
    """The log density at the mode against mpmath at concentrations up to the largest float, and the time of 1e4
    draws there (the sampler used to never return from kappa ~ 1e18 at d = 3072)."""
    mp.mp.dps = 50
    print("\n== vMF / power spherical log density at x = mu against 50-digit mpmath, and 1e4 draws ==")
    print(f"{'d':>6} {'kappa':>8} {'vMF rel err':>12} {'PS rel err':>11} {'1e4 vMF draws':>14}   scipy logpdf")
    for d, kappa in ((2, 1e7), (5, 2000.0), (5, 1e100), (3072, 1e18), (3072, 1e30), (3072, 1e300)):
        mu = np.zeros(d)
        mu[0] = 1.0
        nu, k = mp.mpf(d) / 2 - 1, mp.mpf(kappa)
        # log C + kappa = nu log k - (d/2) log 2 pi - (log I_nu(k) - k), by Hankel's expansion where k >> nu^2
        if kappa > 1e6:
            s, term, j = mp.mpf(1), mp.mpf(1), 0
            while abs(term) > mp.mpf(10) ** -60:
                j += 1
                term = -term * (4 * nu**2 - (2 * j - 1) ** 2) / (j * 8 * k)
                s += term
            log_ive = -mp.log(2 * mp.pi * k) / 2 + mp.log(s)
        else:
            log_ive = mp.log(mp.besseli(nu, k)) - k
        ref_vmf = nu * mp.log(k) - mp.mpf(d) / 2 * mp.log(2 * mp.pi) - log_ive
        b = mp.mpf(d - 1) / 2
        with mp.workdps(50 + 2 * int(mp.log10(k))):
            ref_ps = -(2 * b * mp.log(2) + b * mp.log(mp.pi)) + mp.loggamma(b + k + b) - mp.loggamma(b + k)
        e_vmf = float(abs(mp.mpf(float(sawdist.vonmises_fisher(mu, kappa).logpdf(mu))) - ref_vmf) / abs(ref_vmf))
        e_ps = float(abs(mp.mpf(float(sawdist.power_spherical(mu, kappa).logpdf(mu))) - ref_ps) / abs(ref_ps))
        t = best_of(lambda mu=mu, kappa=kappa: sawdist.vonmises_fisher(mu, kappa).rvs(size=10_000, rng=0), repeat=1)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                sc = f"{float(stats.vonmises_fisher(mu, kappa).logpdf(mu)):.6g}"
            except Exception as exc:  # noqa: BLE001 - report whatever scipy does
                sc = type(exc).__name__
        print(f"{d:>6} {kappa:>8.0e} {e_vmf:>12.1e} {e_ps:>11.1e} {t:>13.3f}s   {sc} (exact {float(ref_vmf):.6g})")


def sampling(with_scipy: bool):
    d, n, kappa = 3072, 10_000, 500.0
    mu = np.zeros(d)
    mu[0] = 1.0
    dist = sawdist.vonmises_fisher(mu, kappa)
    rng = np.random.default_rng(0)

    def floor():
        z = rng.standard_normal((n, d))
        z /= np.linalg.norm(z, axis=1, keepdims=True)

    t_floor = best_of(floor)
    t_ours = best_of(lambda: dist.rvs(size=n, rng=rng))
    mu2 = np.ones(d) / np.sqrt(d)  # a generic mean direction: the Householder reflection is not skipped
    t_ours_generic = best_of(lambda: sawdist.vonmises_fisher(mu2, kappa).rvs(size=n, rng=rng))
    print(f"\n== 1e4 vMF draws at d = {d}, kappa = {kappa:g} (best of 5) ==")
    print(f"floor (draw + normalize 1e4 x {d} normals): {t_floor:.3f} s")
    print(f"sawdist, mu = e1:      {t_ours:.3f} s   ratio {t_ours / t_floor:.2f}x (goal <= 2.5x)")
    print(f"sawdist, generic mu:   {t_ours_generic:.3f} s   ratio {t_ours_generic / t_floor:.2f}x (goal <= 2.5x)")
    if with_scipy:
        m = 200
        t0 = time.perf_counter()
        stats.vonmises_fisher(mu2, kappa).rvs(m, random_state=1)
        t_sc = time.perf_counter() - t0
        print(f"scipy, {m} draws:      {t_sc:.3f} s  (per draw {t_sc / m * 1e3:.2f} ms; sawdist "
              f"{t_ours_generic / n * 1e3:.4f} ms)")


def fitting():
    print("\n== kappa recovered from 5000 draws (goal: within 3 %) ==")
    print(f"{'d':>6} {'kappa':>7} {'sawdist':>10} {'error':>8} {'time':>7}   scipy fit")
    for d, kappa in ((3072, 500.0), (12288, 2000.0)):
        mu = np.zeros(d)
        mu[3] = 1.0
        x = sawdist.vonmises_fisher(mu, kappa).rvs(size=5000, rng=7)
        t0 = time.perf_counter()
        r = sawdist.fit(x, distribution="vonmises_fisher")
        t = time.perf_counter() - t0
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                sc = f"{stats.vonmises_fisher.fit(x)[1]:.3g}"
            except Exception as exc:  # noqa: BLE001
                sc = type(exc).__name__
        print(f"{d:>6} {kappa:>7g} {r.kappa:>10.2f} {r.kappa / kappa - 1:>+8.2%} {t:>6.2f}s   {sc}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scipy", action="store_true", help="also time scipy's vMF sampler (slow)")
    args = parser.parse_args()
    print(f"sawdist {sawdist.__version__}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    accuracy()
    extremes()
    sampling(args.scipy)
    fitting()


if __name__ == "__main__":
    main()
