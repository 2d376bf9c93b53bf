"""Arbitrary-precision references for the property-based tests (tests/test_*_properties.py), from mpmath.

Unlike ``bessel_reference.py`` this module stores no values: the property tests call it on the points hypothesis
draws. Every function returns an ``mpmath.mpf`` accurate to far more than float64 (at least 30 significant digits
of the quantity returned, whatever its size), by one of three methods that do not share sawdist's algorithm
(power series / Debye expansion / recurrence):

* where it converges within 3000 terms: mpmath's ``besseli`` (hypergeometric series, with its own asymptotic
  expansions for large arguments), with the working precision raised by the number of digits that cancel in
  ``log I`` near 0 (tiny orders and arguments: log I_1e-300(1e-300) ~ -7e-298);
* ``x >= max(1.2 (digits + 10), 20 nu^2)``: Hankel's expansion (DLMF 10.40.1),
  ``I_nu(x) = e^x / sqrt(2 pi x) * sum_k (-1)^k a_k(nu) / x^k`` with
  ``a_k = prod_{j <= k} (4 nu^2 - (2j - 1)^2) / (k! 8^k)``, summed until the terms fall below the working precision
  (they decrease by at least a factor 40 here, and the neglected e^{-2x} part is below 10^-(digits + 10));
* otherwise: Poisson's integral (DLMF 10.32.2) by tanh-sinh quadrature split around the peak of the integrand,
  :func:`log_iv_quad`, the method of ``bessel_reference.py`` (which imports it).

The Hankel form gives log Ive = log I - x and the ratio as a quotient of two sums, so no digit of them depends on
the size of x (up to the largest float).
"""

from __future__ import annotations

import mpmath as mp

DPS = 50


def _digits_lost(nu, x):
    """Decimal digits by which log I_nu(x) is smaller than its terms (nu log(x/2), log Gamma(1 + nu), x^2/4)."""
    extra = 0
    if 0 < nu < 1:
        extra += int(-mp.log10(nu)) + 1
    if 0 < x < 1:
        extra += int(-2 * mp.log10(x)) + 1
    return extra


def _hankel_sum(nu, x, dps):
    """sum_k (-1)^k a_k(nu) / x^k (DLMF 10.40.1) at the working precision `dps`."""
    with mp.workdps(dps + 10):
        mu = 4 * nu * nu
        term, total, k = mp.mpf(1), mp.mpf(1), 0
        eps = mp.mpf(10) ** (-(dps + 5))
        while True:
            k += 1
            term = -term * (mu - (2 * k - 1) ** 2) / (k * 8 * x)
            total += term
            if abs(term) < eps * abs(total):
                return total
            if k > 10000:
                raise RuntimeError(f"Hankel series did not converge at nu={nu}, x={x}")


def _use_hankel(nu, x, dps):
    """Hankel's series is asymptotic: its error is ~e^{-2x} whatever the number of terms, so it serves only where
    that is below the working precision (and where its terms fall fast: x >= 20 nu^2)."""
    return x >= 1.2 * (dps + 10) and x >= 20 * nu * nu


def log_iv_quad(nu, x, dps=DPS):
    """log I_nu(x) from Poisson's integral at `dps` + 10 working digits, for mpf nu >= 0, x >= 0:

        I_nu(x) = (x/2)^nu / (sqrt(pi) Gamma(nu + 1/2)) * int_0^pi exp(x cos th) sin(th)^(2 nu) dth,

    by tanh-sinh quadrature on intervals split around the peak of the integrand (cos th* = (sqrt(nu^2 + x^2) - nu)
    / x, width from the curvature there), with the peak factored out so that nothing overflows."""
    if x == 0:
        return mp.mpf(0) if nu == 0 else mp.ninf
    with mp.workdps(dps + 10):
        c = (mp.sqrt(nu * nu + x * x) - nu) / x
        th = mp.acos(c)

        def logg(t):
            v = x * mp.cos(t)
            if nu != 0:
                v += 2 * nu * mp.log(mp.sin(t))
            return v

        w = 1 / mp.sqrt(x * c + (2 * nu / (1 - c * c) if nu else 0))
        lmax = logg(th) if th > 0 else x
        pts = [mp.mpf(0)] + [th + k * w for k in (-60, -30, -15, -8, -4, -2, -1, 0, 1, 2, 4, 8, 15, 30, 60)] + [mp.pi]
        pts = sorted(set(p for p in pts if 0 <= p <= mp.pi))
        integral = mp.quad(lambda t: mp.exp(logg(t) - lmax), pts)
        return (nu * mp.log(x / 2) - mp.log(mp.sqrt(mp.pi)) - mp.loggamma(nu + mp.mpf(1) / 2) + lmax
                + mp.log(integral))


def log_iv(nu, x, dps=DPS):
    """log I_nu(x) for floats nu >= 0, x >= 0 (-inf at x = 0 for nu > 0)."""
    nu, x = mp.mpf(nu), mp.mpf(x)
    if x == 0:
        return mp.mpf(0) if nu == 0 else mp.ninf
    if _use_hankel(nu, x, dps):
        with mp.workdps(dps + int(mp.log10(x)) + 10):
            return x - mp.log(2 * mp.pi * x) / 2 + mp.log(_hankel_sum(nu, x, dps))
    try:
        with mp.workdps(dps + _digits_lost(nu, x) + 10):
            return mp.log(mp.besseli(nu, x, maxterms=3000))
    except mp.libmp.NoConvergence:
        return log_iv_quad(nu, x, dps)


def log_ive(nu, x, dps=DPS):
    """log I_nu(x) - x, for x > 0, accurate to `dps` digits of itself at every x."""
    nu, x = mp.mpf(nu), mp.mpf(x)
    if _use_hankel(nu, x, dps):
        with mp.workdps(dps + 10):
            return -mp.log(2 * mp.pi * x) / 2 + mp.log(_hankel_sum(nu, x, dps))
    with mp.workdps(dps + int(mp.log10(max(x, 1))) + 10):
        return log_iv(nu, x, mp.mp.dps) - x


def ratio(nu, x, dps=DPS):
    """I_{nu+1}(x) / I_nu(x) for x > 0."""
    nu, x = mp.mpf(nu), mp.mpf(x)
    if _use_hankel(nu + 1, x, dps):
        with mp.workdps(dps + 10):
            return _hankel_sum(nu + 1, x, dps) / _hankel_sum(nu, x, dps)
    with mp.workdps(dps + int(mp.log10(max(x, 1))) + 10):
        return mp.exp(log_iv(nu + 1, x, mp.mp.dps) - log_iv(nu, x, mp.mp.dps))


def ratio_complement(nu, x, dps=DPS):
    """1 - I_{nu+1}(x) / I_nu(x) for x > 0, accurate to `dps` digits of itself (it is ~ (2 nu + 1)/(2x))."""
    nu, x = mp.mpf(nu), mp.mpf(x)
    with mp.workdps(dps + int(mp.log10(max(x, 1))) + 10):
        return 1 - ratio(nu, x, mp.mp.dps)


def vmf_log_normalizer(dim, kappa, scaled=False, dps=DPS):
    """log C_d(kappa) (+ kappa with `scaled`), from log I (log Ive with `scaled`)."""
    d, k = mp.mpf(dim), mp.mpf(kappa)
    nu = d / 2 - 1
    if k == 0:
        return mp.loggamma(d / 2) - mp.log(2) - d / 2 * mp.log(mp.pi)
    with mp.workdps(dps + 10):
        head = (nu * mp.log(k) if nu else 0) - d / 2 * mp.log(2 * mp.pi)
        if scaled:
            return head - log_ive(nu, k, dps)
    with mp.workdps(dps + int(mp.log10(max(k, 1))) + 10):
        return head - log_iv(nu, k, mp.mp.dps)


def vmf_entropy(dim, kappa, dps=DPS):
    """-log C_d(kappa) - kappa A_d(kappa) = -(log C + kappa) + kappa (1 - A_d), each part accurate."""
    d, k = mp.mpf(dim), mp.mpf(kappa)
    if k == 0:
        return -vmf_log_normalizer(dim, 0, dps=dps)
    with mp.workdps(dps + 10):
        return -vmf_log_normalizer(dim, kappa, scaled=True, dps=dps) + k * ratio_complement(d / 2 - 1, k, dps)


def lgamma1p(nu, dps=DPS):
    """log Gamma(1 + nu), with the precision raised so that 1 + nu is exact."""
    nu = mp.mpf(nu)
    extra = int(-mp.log10(nu)) + 1 if 0 < nu < 1 else 0
    with mp.workdps(dps + extra + 10):
        return mp.loggamma(1 + nu)


def power_spherical_log_normalizer(dim, kappa, scaled=False, dps=DPS):
    """log C of the power spherical law (+ kappa log 2 with `scaled`), with the precision raised by the digits that
    cancel between log Gamma(a + b) and log Gamma(a)."""
    d, k = mp.mpf(dim), mp.mpf(kappa)
    b = (d - 1) / 2
    a = b + k
    with mp.workdps(dps + 2 * int(mp.log10(max(a, 10))) + 10):
        value = -(2 * b * mp.log(2) + b * mp.log(mp.pi)) + mp.loggamma(a + b) - mp.loggamma(a)
        return value if scaled else value - k * mp.log(2)


def power_spherical_entropy(dim, kappa, dps=DPS):
    """-(log C + kappa log 2) + kappa (psi(a + b) - psi(a))."""
    d, k = mp.mpf(dim), mp.mpf(kappa)
    b = (d - 1) / 2
    a = b + k
    with mp.workdps(dps + 2 * int(mp.log10(max(a, 10))) + 10):
        return (-power_spherical_log_normalizer(dim, kappa, scaled=True, dps=mp.mp.dps)
                + k * (mp.digamma(a + b) - mp.digamma(a)))


def log_sphere_area(dim):
    """log omega_d = log 2 + (d/2) log pi - log Gamma(d/2), the surface area of S^{d-1}."""
    d = mp.mpf(dim)
    return mp.log(2) + d / 2 * mp.log(mp.pi) - mp.loggamma(d / 2)


def vmf_logpdf(dim, kappa, t, dps=DPS):
    """log density of the vMF at a point with cosine t = mu'x (a float, taken exactly)."""
    k, t = mp.mpf(kappa), mp.mpf(t)
    with mp.workdps(dps + 10):
        return vmf_log_normalizer(dim, kappa, scaled=True, dps=dps) - k * (1 - t)


def vmf_cosine_logpdf(dim, kappa, t, dps=DPS):
    """log f_T(t) = log C_d(kappa) + log omega_{d-1} + kappa t + (d-3)/2 log(1 - t^2)."""
    d, t = mp.mpf(dim), mp.mpf(t)
    with mp.workdps(dps + 10):
        base = 0 if dim == 3 else (d - 3) / 2 * mp.log((1 - t) * (1 + t)) if abs(t) < 1 else (
            mp.ninf if dim > 3 else mp.inf)
        return vmf_logpdf(dim, kappa, t, dps) + log_sphere_area(dim - 1) + base


def power_spherical_logpdf(dim, kappa, t, dps=DPS):
    """log density of the power spherical law at cosine t: log C + kappa log(1 + t)."""
    k, t = mp.mpf(kappa), mp.mpf(t)
    with mp.workdps(dps + 10):
        shape = 0 if k == 0 else (k * mp.log((1 + t) / 2) if t > -1 else mp.ninf)
        return power_spherical_log_normalizer(dim, kappa, scaled=True, dps=dps) + shape


def power_spherical_cosine_logpdf(dim, kappa, t, dps=DPS):
    """log of ((1+t)/2)^(a-1) ((1-t)/2)^(b-1) / (2 B(a, b)), a = (d-1)/2 + kappa, b = (d-1)/2."""
    d, k, t = mp.mpf(dim), mp.mpf(kappa), mp.mpf(t)
    b = (d - 1) / 2
    a = b + k
    with mp.workdps(dps + 2 * int(mp.log10(max(a, 10))) + 10):
        def part(e, y):
            return 0 if e == 0 else (e * mp.log(y) if y > 0 else (mp.ninf if e > 0 else mp.inf))
        return (part(a - 1, (1 + t) / 2) + part(b - 1, (1 - t) / 2) - mp.log(2)
                - (mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)))
