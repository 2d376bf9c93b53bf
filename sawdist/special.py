r"""Special functions for directional statistics in high dimension.

Everything here works in log space and in float64, vectorised over broadcast arguments, without warnings, for
orders ``nu`` in [0, 1e5] (tiny ones included) and arguments ``x`` from 0 to the largest float, with the accuracy
of the table "Supported range and accuracy" in docs/distributions.md: 1e-13 relative for the ratio and its
complement; for logarithms, 1e-13 relative where their magnitude is >= 1 and absolute below (i.e. relative error
of I_nu or C_d itself; relative error of log I is meaningless at its zeros). ``tests/reference/bessel_reference.py``
keeps the script behind the stored reference values, ``tests/reference/mpmath_reference.py`` the references of the
property-based tests (``tests/test_special_properties.py``).

Algorithm (one path for every ``nu`` and ``x``)
-----------------------------------------------
We compute the *reduced* logarithm ``L(nu, x) = log I_nu(x) - nu log x`` and the *reduced ratio*
``Q(nu, x) = I_{nu+1}(x) / (x I_nu(x))``. Both are smooth and O(1)-sized where log I_nu(x) and I_{nu+1}/I_nu are
not, and ``log I_nu = L + nu log x``, ``I_{nu+1}/I_nu = x Q``, ``log C_d(kappa) = -(d/2) log 2 pi - L(d/2 - 1, kappa)``
follow without cancellation.

1. Small x, ``x <= 2 sqrt(nu + 1)``: the power series
   ``I_nu(x) = (x/2)^nu / Gamma(nu+1) * sum_k (x^2/4)^k / (k! (nu+1)_k)``.
   Every term is positive and the ratio of consecutive terms is at most 1/k, so 24 terms give full precision and
   ``log1p`` of the tail keeps ``log I_0(x) ~ x^2/4`` accurate as x -> 0.
2. ``nu >= NU_DEBYE`` (any x): the uniform asymptotic (Debye) expansion, DLMF 10.41.3,
   ``I_nu(nu z) ~ exp(nu eta) / (sqrt(2 pi nu) (1+z^2)^(1/4)) * sum_k U_k(p) / nu^k``, ``p = 1/sqrt(1+z^2)``.
   With ``s = sqrt(nu^2 + x^2)``: ``nu eta = s + nu log x - nu log(nu + s)``, hence
   ``L = s - nu log(nu + s) - log(2 pi s)/2 + log sum_k U_k(p)/nu^k``.
   The polynomials ``U_k`` come from the exact recurrence DLMF 10.41.9 in rational arithmetic. The expansion is
   uniform in z, so it holds from x = 0 to x = infinity; at ``nu >= 25`` the first ``N_DEBYE_TERMS`` terms leave an
   error far below 1e-16 (the series behaves like Stirling's at p = 1).
   ``log Q = L(nu+1) - L(nu)`` is formed term by term so that the O(x) parts cancel analytically, not numerically:
   ``s1 - s0 = (2 nu + 1)/(s1 + s0)`` and ``(nu+1) log(nu+1+s1) - nu log(nu+s0) =
   log(nu+1+s1) + nu log1p((1 + s1 - s0)/(nu + s0))``.
3. ``nu < NU_DEBYE`` and x beyond the series: the Debye values at ``nu + M`` (M the smallest integer with
   ``nu + M >= NU_DEBYE``), carried down by the three-term recurrence ``I_{n-1} - I_{n+1} = (2n/x) I_n``, which in
   reduced form reads ``Q(n-1) = 1 / (2n + x^2 Q(n))`` and ``L(n-1) = L(n) - log Q(n-1)``; for x >= 1 it runs on
   R = x Q, ``R(n-1) = 1/(2n/x + R(n))``, carrying ``log I - x`` (x^2 overflows from x ~ 1.3e154; see
   :func:`_reduced`). Downward recurrence of the ratio is the stable direction for I (it is the minimal-solution
   direction of the continued fraction), and all terms are positive, so no digit is lost.

The ratio never forms I_nu, so it is exact to a few ulps even where I_nu overflows (x = 1e7 and up to the largest
float) or underflows (nu = 1e5, x = 1e-5). ``log Gamma(1 + nu)`` comes from :func:`lgamma1p`, which keeps tiny
orders (``gammaln(1.0 + 1e-20)`` is 0).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import special as sc
from scipy.special import gammaln
from scipy.special import zeta as sc_zeta

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "bessel_ratio",
    "bessel_ratio_complement",
    "lgamma1p",
    "vmf_entropy",
    "log_bessel_iv",
    "vmf_kappa_from_mean_resultant_length",
    "vmf_log_normalizer",
    "vmf_mean_resultant_length",
]

#: Orders at or above this use the Debye expansion directly; smaller ones recur down from it.
NU_DEBYE = 25.0
#: Number of Debye terms U_0 .. U_{N-1}.
N_DEBYE_TERMS = 14
#: Terms of the power series (ratio of consecutive terms <= 1/k in its region; 1/24! ~ 1.6e-24).
N_SERIES_TERMS = 24

_LOG_2PI = float(np.log(2.0 * np.pi))


@lru_cache(maxsize=1)
def debye_polynomials() -> tuple[np.ndarray, ...]:
    """Coefficients (increasing powers of p) of the Debye polynomials U_0 .. U_{N-1}, DLMF 10.41.9:
    ``U_{k+1}(p) = p^2 (1 - p^2) U_k'(p) / 2 + (1/8) int_0^p (1 - 5 t^2) U_k(t) dt``, computed exactly."""
    polys = [[Fraction(1)]]
    for _ in range(N_DEBYE_TERMS - 1):
        u = polys[-1]
        new = [Fraction(0)] * (len(u) + 3)
        for j, c in enumerate(u):
            if j:
                # p^2 (1 - p^2) * j c p^(j-1) / 2
                new[j + 1] += Fraction(j) * c / 2
                new[j + 3] -= Fraction(j) * c / 2
            # (1/8) * int_0^p (1 - 5 t^2) c t^j dt
            new[j + 1] += c / (8 * (j + 1))
            new[j + 3] -= 5 * c / (8 * (j + 3))
        polys.append(new)
    return tuple(np.array([float(c) for c in p]) for p in polys)


@lru_cache(maxsize=1)
def _debye_term_bounds() -> np.ndarray:
    """max over p in [0, 1] of |U_k(p)|, to decide how many terms an order needs."""
    p = np.linspace(0.0, 1.0, 2001)
    return np.array([np.max(np.abs(np.polynomial.polynomial.polyval(p, c))) for c in debye_polynomials()])


def _debye_n_terms(nu_min: float) -> int:
    """Terms U_0 .. U_{K-1} with every omitted |U_k| / nu^k below 1e-18 (14 at nu = 25, 6 at nu = 1535)."""
    bounds = _debye_term_bounds()
    k = np.arange(len(bounds))
    needed = np.nonzero(bounds * np.exp(-k * np.log(nu_min)) > 1e-18)[0]
    return int(needed[-1]) + 1 if len(needed) else 1


def _debye_log_sum(nu: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log sum_k U_k(p) / nu^k (the first term is 1; the rest is small, hence log1p)."""
    polys = debye_polynomials()[: _debye_n_terms(float(np.min(nu)))]
    if nu.size and np.all(nu == nu.flat[0]):
        # One order for all: fold the 1/nu^k into the coefficients and evaluate a single polynomial in p.
        coeffs = np.zeros(3 * len(polys))
        for k, c in enumerate(polys[1:], start=1):
            coeffs[: len(c)] += c / float(nu.flat[0]) ** k
        return np.log1p(np.polynomial.polynomial.polyval(p, coeffs))
    tail = np.zeros(np.broadcast(nu, p).shape)
    inv_nu_k = np.ones_like(tail)
    inv_nu = 1.0 / nu
    for coeffs in polys[1:]:
        inv_nu_k = inv_nu_k * inv_nu
        tail = tail + np.polynomial.polynomial.polyval(p, coeffs) * inv_nu_k
    return np.log1p(tail)


def _debye_L(nu: np.ndarray, x: np.ndarray, minus_x: bool = False):
    """(L(nu, x), s, log sum_k U_k/nu^k) from the Debye expansion; nu >= NU_DEBYE, x >= 0.

    With `minus_x` (x > 0), ``log I_nu(x) - x`` (the log of scipy's ``ive``) instead of L, formed so that no O(x)
    or O(nu log x) terms meet: with ``lead = s - x = nu^2 / (s + x)`` and ``(nu + s)/x = 1 + (nu + lead)/x``,
    ``log I - x = s - x + nu log x - nu log(nu + s) - log(2 pi s)/2 + log sum
    = lead - nu log1p((nu + lead)/x) - log(2 pi s)/2 + log sum``.
    (Forming L - x = lead - nu log(nu + s) - ... instead left nu log(nu + s) ~ 25 log x to cancel against the
    recurrence's 25 log x below NU_DEBYE: 1e-14 relative at x = 1e100.)"""
    s = np.hypot(nu, x)
    log_sum = _debye_log_sum(nu, nu / s)
    if minus_x:
        # s + x overflows at x ~ 9e307; nu^2 / (s + x) = nu (nu / ((s + x)/2)) / 2 with (s + x)/2 = s/2 + x/2 does not
        lead = 0.5 * nu * (nu / (0.5 * s + 0.5 * x))
        with np.errstate(over="ignore", divide="ignore"):  # x -> 0: log1p(inf) = inf, log Ive -> -inf
            L = lead - nu * np.log1p((nu + lead) / x) - 0.5 * (_LOG_2PI + np.log(s)) + log_sum
    else:
        L = s - nu * np.log(nu + s) - 0.5 * (_LOG_2PI + np.log(s)) + log_sum
    return L, s, log_sum


def _debye_L_logQ(nu: np.ndarray, x: np.ndarray, minus_x: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(L(nu, x), log Q(nu, x)) from the Debye expansion at nu and nu + 1, cancellation-free (module docstring).
    With `minus_x`: (log I_nu - x, log R) where R = x Q = I_{nu+1}/I_nu, log R formed as
    ``-log1p((nu + 1 + (nu+1)^2/(s1 + x)) / x) + ...`` so that 1 - R = -expm1(log R) keeps its digits as R -> 1."""
    L0, s0, log_sum0 = _debye_L(nu, x, minus_x)
    nu1 = nu + 1.0
    s1 = np.hypot(nu1, x)
    ds = (nu + 0.5) / (0.5 * s1 + 0.5 * s0)  # s1 - s0 = (2 nu + 1)/(s1 + s0), halved so that nothing overflows
    if minus_x:  # log x - log(nu1 + s1), with s1 - x = nu1^2 / (s1 + x)
        with np.errstate(divide="ignore", over="ignore"):
            head = -np.log1p((nu1 + 0.5 * nu1 * (nu1 / (0.5 * s1 + 0.5 * x))) / x)
    else:
        head = -np.log(nu1 + s1)
    log_q = (
        ds
        + head
        - nu * np.log1p((1.0 + ds) / (nu + s0))
        - 0.5 * np.log1p(ds / s0)
        + _debye_log_sum(nu1, nu1 / s1)
        - log_sum0
    )
    return L0, log_q


def _ratio_complement_and_L_minus_x(nu: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1 - I_{nu+1}(x)/I_nu(x), L(nu, x) - x) for 1-D arrays, x > 0, both without cancellation as x -> inf.

    Debye region as in :func:`_debye_L_logQ` with ``minus_x``; below it the complement delta = 1 - R recurs down
    as ``delta(n-1) = (2n/x - delta(n)) / (2n/x + 1 - delta(n))`` (from R(n-1) = 1/(2n/x + R(n))), where the
    difference 2n/x - delta(n) ~ (2n - 1)/(2x) amplifies a relative error by (2n + 1)/(2n - 1) per step, by
    (2 nu + 2M + 1)/(2 nu + 1) <= 51 over the M steps (measured: 7e-14 at worst), and ``log Ive = log I - x`` recurs as
    ``log Ive_{n-1} = log Ive_n - log R(n-1)`` with ``log R = log1p(-delta)``; then ``L - x = log Ive - nu log x``.
    """
    shift = np.where(nu < NU_DEBYE, np.ceil(NU_DEBYE - nu), 0.0)
    log_ive, log_r = _debye_L_logQ(nu + shift, x, minus_x=True)
    delta = -np.expm1(log_r)
    if np.any(shift > 0):
        for step in range(int(shift.max()), 0, -1):
            active = shift >= step
            n = nu + step
            with np.errstate(over="ignore", invalid="ignore"):  # 2n/x = inf at tiny x: delta(n-1) = 1 there
                c = 2.0 * n / x
                new = np.where(np.isinf(c), 1.0, (c - delta) / (c + 1.0 - delta))
            with np.errstate(divide="ignore", invalid="ignore"):  # delta rounds to 1 (and log Ive = -inf) only
                log_ive = np.where(active, log_ive - np.log1p(-new), log_ive)  # for tiny x: the series replaces L
            delta = np.where(active, new, delta)
    with np.errstate(invalid="ignore"):  # -inf + inf at tiny x, replaced by the series below
        Lmx = log_ive - np.where(nu == 0.0, 0.0, nu * np.log(x))
    small = x <= 2.0 * np.sqrt(nu + 1.0)
    if np.any(small):
        Lmx = np.where(small, _series_L(nu, np.where(small, x, 0.0)) - x, Lmx)
    return delta, Lmx


#: log Gamma(1 + nu) = -gamma nu + sum_{k >= 2} (-1)^k zeta(k)/k nu^k (DLMF 5.7.3) is summed for nu below this.
_LGAMMA1P_SERIES_MAX = 0.2
#: zeta(k)/k for k = 2 .. 31 (the omitted terms are below 0.2^32/32 ~ 1e-24 relative to gamma nu).
_LGAMMA1P_COEFFS = sc_zeta(np.arange(2.0, 32.0), 1.0) / np.arange(2.0, 32.0)
_EULER_GAMMA = float(np.euler_gamma)


def lgamma1p(nu: ArrayLike) -> float | np.ndarray:
    r"""``log Gamma(1 + nu)`` for ``nu >= 0``, relative-accurate as ``nu -> 0``.

    ``gammaln(1.0 + nu)`` rounds ``1 + nu`` first: below ``nu ~ 1e-16`` it returns 0 instead of
    :math:`-\gamma\nu`, and at ``nu = 1e-8`` it keeps only 8 digits. For ``nu < 0.2`` the Taylor series at 0,
    :math:`\log\Gamma(1+\nu) = -\gamma\nu + \sum_{k\ge2} (-1)^k \zeta(k)\nu^k/k` (DLMF 5.7.3), is summed by
    Horner's rule from the small end (alternating terms decreasing by at least a factor 0.2, so the sum keeps the
    relative accuracy of its first term); above, ``gammaln`` has no such loss (1 + nu is then exact to 1 ulp of a
    number >= 1.2, and log Gamma(1 + nu) has its zero at nu = 1, where only its absolute error is meaningful).

    Examples
    --------
    >>> from sawdist.special import lgamma1p
    >>> print(f"{lgamma1p(1e-20):.12e}")  # -gamma * 1e-20; scipy.special.gammaln(1.0 + 1e-20) is 0.0
    -5.772156649015e-21
    """
    nu = np.asarray(nu, dtype=float)
    small = nu < _LGAMMA1P_SERIES_MAX
    ns = np.where(small, nu, 0.0)
    acc = np.zeros_like(ns)
    for k in range(len(_LGAMMA1P_COEFFS) - 1, -1, -1):  # coefficient of nu^(k+2) is (-1)^k zeta(k+2)/(k+2)
        acc = (-1.0) ** k * _LGAMMA1P_COEFFS[k] + ns * acc
    series = ns * (-_EULER_GAMMA + ns * acc)
    return _scalar_or_array(np.where(small, series, gammaln(np.where(small, 1.0, nu + 1.0))))


#: Bernoulli numbers B_2, B_4, ..., B_16 of the Stirling series (DLMF 5.11.1, 5.11.2; 24.2.1).
_BERNOULLI_2K = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510])
_K2 = 2.0 * np.arange(1, len(_BERNOULLI_2K) + 1)  # 2k
#: From here on the Stirling series (8 terms) replaces gammaln / digamma differences: at z = 10 the first omitted
#: terms are B_18/(18 17 z^17) ~ 2e-18 and B_18/(18 z^18) ~ 3e-18, far below what the differences need.
_STIRLING_MIN = 10.0


def _stirling_corrections(z, kind):
    """sum_k B_2k / (2k (2k-1) z^(2k-1)) (kind "lgamma", DLMF 5.11.1) or sum_k B_2k / (2k z^2k) ("digamma",
    DLMF 5.11.2) for z >= _STIRLING_MIN: the parts of log Gamma(z) and psi(z) beyond the elementary terms."""
    z = np.asarray(z, dtype=float)[..., None]
    with np.errstate(under="ignore"):
        if kind == "lgamma":
            terms = _BERNOULLI_2K / (_K2 * (_K2 - 1.0)) * z ** (1.0 - _K2)
        else:
            terms = _BERNOULLI_2K / _K2 * z ** (-_K2)
    return terms[..., ::-1].sum(axis=-1)  # smallest first


def _log_gamma_ratio(a, b):
    r"""``log Gamma(a + b) - log Gamma(a)`` for ``a >= b > 0``, without the cancellation of the two gammaln.

    ``gammaln(a + b) - gammaln(a)`` loses the digits of a result ~ b log a to two terms ~ a log a: a relative error
    ~ (a/b) eps, 4e-9 at a = 1e7, b = 1/2 (the power spherical normaliser at d = 2, kappa = 1e7), and inf - inf
    from a ~ 2.5e305. For ``a >= 10`` the Stirling series (DLMF 5.11.1) of both terms is subtracted analytically:
    with ``c(z) = log Gamma(z) - (z - 1/2) log z + z - log(2 pi)/2``,

    .. math:: \log\Gamma(a+b) - \log\Gamma(a) = (a - \tfrac12)\log\left(1 + \tfrac{b}{a}\right) + b\log(a+b) - b
              + c(a+b) - c(a),

    where ``(a - 1/2) log1p(b/a) - b`` is O(b^2/a + b/a) and ``b log(a + b) >= 2.35 b``, so at most a factor ~2 is
    lost, and ``c(a + b) - c(a)`` is a difference of numbers below 1/(12 a). Below a = 10 both gammaln are O(10).
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    big = a >= _STIRLING_MIN
    ab = np.where(big, a, _STIRLING_MIN)
    bb = np.where(big, b, 0.0)
    stirling = ((ab - 0.5) * np.log1p(bb / ab) + bb * np.log(ab + bb) - bb
                + (_stirling_corrections(ab + bb, "lgamma") - _stirling_corrections(ab, "lgamma")))
    small = sc.gammaln(np.where(big, 1.0, a + b)) - sc.gammaln(np.where(big, 1.0, a))
    return np.where(big, stirling, small)[()]


def _digamma_difference(a, b):
    r"""``psi(a + b) - psi(a)`` for ``a >= b > 0``, relative-accurate when ``a >> b``.

    The direct difference of two values ~ log a has an absolute error ~ eps log a, a relative error
    ~ (a/b) eps log a of the result ~ b/a (7e-8 at a = 1e7, b = 1/2). For ``a >= 10``, from DLMF 5.11.2,
    ``psi(z) = log z - 1/(2z) - sum_k B_2k / (2k z^2k)``:

    .. math:: \psi(a+b) - \psi(a) = \log\left(1 + \tfrac{b}{a}\right) + \frac{b}{2a(a+b)}
              + \sum_k \frac{B_{2k}}{2k}\left(a^{-2k} - (a+b)^{-2k}\right),

    whose first two terms are positive and whose last sum is below 1/(6 a^2) of the first (a >= 10): nothing
    cancels.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    big = a >= _STIRLING_MIN
    ab = np.where(big, a, _STIRLING_MIN)
    bb = np.where(big, b, 0.0)
    stirling = (np.log1p(bb / ab) + 0.5 * bb / ab / (ab + bb)
                + (_stirling_corrections(ab, "digamma") - _stirling_corrections(ab + bb, "digamma")))
    small = sc.digamma(np.where(big, 1.0, a + b)) - sc.digamma(np.where(big, 1.0, a))
    return np.where(big, stirling, small)[()]


def _log1pmx(x):
    """log(1 + x) - x for x > -1 without cancellation as x -> 0 (~ -x^2/2).

    With w = x/(2 + x): log1p(x) = 2 atanh(w) = 2 (w + w^3/3 + w^5/5 + ...) and 2w - x = -x^2/(2 + x), so
    log1p(x) - x = -x^2/(2 + x) + 2 (w^3/3 + w^5/5 + ...), all terms of one sign; for |x| <= 1/2, |w| <= 1/3 and
    20 terms leave w^43 < 1e-20 relative. Beyond, log1p(x) - x loses less than a factor 3."""
    x = np.asarray(x, dtype=float)
    near = np.abs(x) <= 0.5
    xn = np.where(near, x, 0.0)
    w = xn / (2.0 + xn)
    w2 = w * w
    acc = np.zeros_like(w)
    for k in range(20, 0, -1):  # sum_k w^(2k)/(2k+1), Horner from the small end
        acc = w2 * (1.0 / (2 * k + 1) + acc)
    series = -xn * xn / (2.0 + xn) + 2.0 * w * acc
    with np.errstate(divide="ignore"):
        return np.where(near, series, np.log1p(np.where(near, 0.0, x)) - np.where(near, 0.0, x))


def _series_L(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L(nu, x) from the power series (used for x <= 2 sqrt(nu + 1)). The head ``-nu log 2 - log Gamma(nu + 1)``
    uses :func:`lgamma1p`, so that at tiny orders (nu = 1e-20: log Gamma(1 + nu) = -gamma nu) L keeps the term
    that ``gammaln(nu + 1.0)`` rounds away; log I = L + nu log x is then relative-accurate as nu -> 0 too."""
    return -nu * np.log(2.0) - lgamma1p(nu) + _series_log1p_tail(nu, x)


def _series_log1p_tail(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log sum_k (x^2/4)^k / (k! (nu+1)_k) = log 0F1(; nu + 1; x^2/4), the power series without its head."""
    y = 0.25 * x * x
    term = np.ones(np.broadcast(nu, x).shape)
    tail = np.zeros_like(term)
    for k in range(1, N_SERIES_TERMS + 1):
        term = term * y / (k * (nu + k))
        tail = tail + term
    return np.log1p(tail)


def _reduced(nu: np.ndarray, x: np.ndarray, kind: str) -> np.ndarray:
    """``log I_nu(x)`` (kind "log_iv"), ``L(nu, x)`` ("L") or ``R(nu, x) = I_{nu+1}(x)/I_nu(x)`` ("ratio") for 1-D
    float arrays nu >= 0, finite x >= 0 of equal length.

    The recurrence variable is Q = R/x for x < 1 and R itself for x >= 1:

    * ``Q(n-1) = 1/(2n + x^2 Q(n))`` needs x^2, which overflows from x ~ 1.3e154 (inf * Q = inf, Q(n-1) = 0,
      log 0: log I was NaN from x ~ 1e155), and Q ~ 1/x is subnormal near the largest float;
    * ``R(n-1) = 1/(2n/x + R(n))`` (the same identity divided by x) has only O(1) terms for x >= 1, and its start
      ``log R(nu + M)`` comes from the ``minus_x`` Debye form, which is relative-accurate as R -> 1. So R is returned
      directly: ``x exp(log Q)`` carried the absolute error eps |log Q| ~ eps log x of log Q as a relative error of
      R (50 ulps at x = 1e150, where it gave 1.0000000000000118 > 1). Every step is a sum of positive terms, so R
      stays <= 1.

    For x >= 1 the logarithm carried down is ``log Ive = log I - x`` (``minus_x`` Debye form), with
    ``log Ive_{n-1} = log Ive_n - log R(n-1)`` and no log x at all: then ``log I = log Ive + x`` and
    ``L = log I - nu log x``. For x < 1, ``L(n-1) = L(n) - log Q(n-1)`` as before.
    """
    # Shift every order below the Debye threshold up by an integer M, then recur down (M = 0 above it).
    shift = np.where(nu < NU_DEBYE, np.ceil(NU_DEBYE - nu), 0.0)
    top = nu + shift
    big = x >= 1.0
    head = np.empty_like(x)  # log Ive where big, L elsewhere
    v = np.empty_like(x)  # R where big, Q = R/x elsewhere
    if np.any(big):
        head[big], log_r = _debye_L_logQ(top[big], x[big], minus_x=True)
        v[big] = np.exp(log_r)
    if not np.all(big):
        head[~big], log_q = _debye_L_logQ(top[~big], x[~big])
        v[~big] = np.exp(log_q)
    if np.any(shift > 0):
        xs = np.where(big, x, 1.0)  # keep each branch finite where it is not used
        xq = np.where(big, 0.0, x)
        acc_log = np.zeros_like(x)  # sum of log v(n-1) over the steps taken
        for step in range(int(shift.max()), 0, -1):
            active = shift >= step
            # n runs from nu + shift down to nu + 1 for the active elements.
            n = nu + step
            # R(n-1) < 1 exactly (2n/x > 1 - R(n)), but when R(n) rounds to within an ulp of 1 the rounded
            # sum 2n/x + R(n) can fall below 1: clamping to 1 only removes rounding error
            v_new = np.where(big, np.minimum(1.0 / (2.0 * n / xs + v), 1.0), 1.0 / (2.0 * n + xq * xq * v))
            v = np.where(active, v_new, v)
            acc_log = acc_log + np.where(active, np.log(v_new), 0.0)
        head = head - acc_log
    if kind == "ratio":
        return np.where(big, v, x * v)
    with np.errstate(divide="ignore", invalid="ignore"):  # nu log x at x = 0 is only used where nu > 0
        nu_log_x = np.where(nu == 0.0, 0.0, nu * np.log(x))
    series_region = x <= 2.0 * np.sqrt(nu + 1.0)
    L_series = _series_L(nu, np.where(series_region, x, 0.0)) if np.any(series_region) else head
    if kind == "log_iv":
        return np.where(series_region, L_series + nu_log_x, np.where(big, head + x, head + nu_log_x))
    return np.where(series_region, L_series, np.where(big, (head + x) - nu_log_x, head))


def _log_0f1_minus_x(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``J(nu, x) - x`` for 1-D arrays, where ``J = L(nu, x) - L(nu, 0) = log[Gamma(nu + 1) (2/x)^nu I_nu(x)]``
    (the log of the normalised Bessel function 0F1(; nu + 1; x^2/4), 0 at x = 0), without the O(nu log nu) parts
    that L(nu, x) and L(nu, 0) share.

    * series region: J = log1p(tail) of the power series (module docstring, step 1);
    * nu >= NU_DEBYE: with w = s - nu = x^2/(s + nu) and log Gamma(nu + 1) = (nu + 1/2) log nu - nu + log(2 pi)/2
      + c(nu) (Stirling, c from :func:`_stirling_corrections`), the Debye L minus L(nu, 0) = -nu log 2 -
      log Gamma(nu + 1) is ``J = w - nu log1p(w/(2 nu)) - log1p(w/nu)/2 + log sum_k U_k(p)/nu^k + c(nu)``, since
      (nu + s)/(2 nu) = 1 + w/(2 nu) and s/nu = 1 + w/nu; and ``w - x = -x nu (1 + nu/(s + x))/(s + nu)``
      (s - x = nu^2/(s + x)), so J - x is a sum of terms of one sign but for the last two (which cancel only as
      x -> 0, to an absolute error ~ eps/(12 nu));
    * otherwise (nu < NU_DEBYE, the recurrence): (L - x) - L(nu, 0), each O(nu log nu) <= 100 at nu < 25.
    """
    out = np.zeros_like(x)
    series = x <= 2.0 * np.sqrt(nu + 1.0)
    debye = ~series & (nu >= NU_DEBYE)
    recur = ~series & ~debye
    if np.any(series):
        n, xs = nu[series], x[series]
        out[series] = _series_log1p_tail(n, xs) - xs
    if np.any(debye):
        n, xd = nu[debye], x[debye]
        s = np.hypot(n, xd)
        with np.errstate(over="ignore"):  # s + x and s + nu at x ~ 1e308: halve before adding
            w = 0.5 * xd * (xd / (0.5 * s + 0.5 * n))
            w_minus_x = -xd * (n / (0.5 * s + 0.5 * n)) * 0.5 * (1.0 + n / (s + xd))
        out[debye] = (w_minus_x - n * np.log1p(w / (2.0 * n)) - 0.5 * np.log1p(w / n)
                      + _debye_log_sum(n, n / s) + _stirling_corrections(n, "lgamma"))
    if np.any(recur):
        n, xr = nu[recur], x[recur]
        out[recur] = _ratio_complement_and_L_minus_x(n, xr)[1] - (-n * np.log(2.0) - lgamma1p(n))
    return out


def _vmf_cosine_log_head(dim, kappa) -> np.ndarray:
    """log C_d(kappa) + kappa + log omega_{d-1}, the constant of the vMF cosine law's log density
    ``log f_T(t) = [this] - kappa (1 - t) + (d-3)/2 log(1 - t^2)`` (d and kappa broadcast, kappa finite >= 0).

    log C_d(kappa) ~ +(d/2) log d and log omega_{d-1} ~ -(d/2) log d meet in a result ~ log d (the log density of a
    law of width 1/sqrt(d)), which their sum kept only to ~eps d log d absolutely (1.6e-10 at d = 1e5). Here
    ``log C_d(0) + log omega_{d-1} = log(omega_{d-1}/omega_d) = log Gamma(d/2) - log Gamma((d-1)/2) - log(pi)/2``
    comes from :func:`_log_gamma_ratio`, and ``log C_d(kappa) + kappa - log C_d(0) = -(J - kappa)`` from
    :func:`_log_0f1_minus_x`: no two large terms meet.
    """
    d, kappa = np.broadcast_arrays(np.asarray(dim, dtype=float), np.asarray(kappa, dtype=float))
    shape = d.shape
    d, kappa = d.ravel(), kappa.ravel()
    head = _log_gamma_ratio(0.5 * (d - 1.0), np.full_like(d, 0.5)) - 0.5 * np.log(np.pi)
    pos = kappa > 0
    if np.any(pos):
        head[pos] = head[pos] - _log_0f1_minus_x(0.5 * d[pos] - 1.0, kappa[pos])
    return head.reshape(shape)


def _prepare(nu, x, nu_name: str = "nu", x_name: str = "x"):
    nu = np.asarray(nu, dtype=float)
    x = np.asarray(x, dtype=float)
    _check_nonneg_finite(nu, nu_name)
    _check_nonneg(x, x_name)
    return np.broadcast_arrays(nu, x)


def _check_nonneg_finite(a: np.ndarray, name: str) -> None:
    bad = ~(np.isfinite(a) & (a >= 0))
    if np.any(bad):
        raise ValueError(f"'{name}' must be finite and >= 0, got {float(a[bad].flat[0])!r}.")


def _check_nonneg(a: np.ndarray, name: str) -> None:
    bad = np.isnan(a) | (a < 0)
    if np.any(bad):
        raise ValueError(f"'{name}' must be >= 0, got {float(a[bad].flat[0])!r}.")


def _evaluate(nu: np.ndarray, x: np.ndarray, kind: str) -> np.ndarray:
    """Evaluate on finite x; the caller fills x = inf."""
    shape = nu.shape
    nu_f, x_f = nu.ravel(), x.ravel()
    out = np.empty(x_f.shape)
    finite = np.isfinite(x_f)
    if np.any(finite):
        out[finite] = _reduced(nu_f[finite], x_f[finite], kind)
    if np.any(~finite):
        out[~finite] = {"log_iv": np.inf, "ratio": 1.0, "L": np.inf}[kind]
    return out.reshape(shape)


def _scalar_or_array(a: np.ndarray):
    return a[()] if a.ndim == 0 else a


def log_bessel_iv(nu: ArrayLike, x: ArrayLike) -> float | np.ndarray:
    r"""Natural logarithm of the modified Bessel function of the first kind, :math:`\log I_\nu(x)`.

    Parameters
    ----------
    nu : array_like
        Order, finite and >= 0.
    x : array_like
        Argument, >= 0 (``inf`` gives ``inf``). Broadcast against `nu`.

    Returns
    -------
    ndarray or float
        :math:`\log I_\nu(x)`; ``-inf`` at ``x = 0`` for ``nu > 0`` and ``0`` at ``x = 0`` for ``nu = 0``.

    Notes
    -----
    For ``nu`` in [0, 1e5] and every ``x`` up to the largest float (``scipy.special.iv`` overflows from x ~ 700):
    error below 1e-13 relative where :math:`|\log I_\nu(x)| \ge 1` and absolute below, i.e. the relative error of
    :math:`I_\nu(x)` itself (in practice a few ulps; the relative error of :math:`\log I_\nu` is meaningless at
    its zeros). Tiny orders keep their digits: the error is also below 1e-13 of
    :math:`\nu(1 + |\log x|) + x^2/4`, the size of the terms of the power series. See the module docstring for the
    algorithm. Near a zero of :math:`\log I_\nu(x)` at large order the absolute error is a few ulps of
    :math:`\sqrt{\nu^2 + x^2}`, which is the error any float64 input ``x`` already carries there.

    Examples
    --------
    >>> from sawdist.special import log_bessel_iv
    >>> float(log_bessel_iv(1535.0, 500.0))
    -1215.1735099170994
    >>> float(log_bessel_iv(0.5, 1e7))  # scipy.special.iv(0.5, 1e7) is inf
    9999991.022013642
    """
    nu, x = _prepare(nu, x)
    return _scalar_or_array(_evaluate(nu, x, "log_iv"))


def bessel_ratio(nu: ArrayLike, x: ArrayLike) -> float | np.ndarray:
    r"""Ratio :math:`I_{\nu+1}(x) / I_\nu(x)`, computed without forming :math:`I_\nu`.

    Parameters
    ----------
    nu : array_like
        Order, finite and >= 0.
    x : array_like
        Argument, >= 0 (``inf`` gives 1). Broadcast against `nu`.

    Returns
    -------
    ndarray or float
        The ratio, in [0, 1] (it rounds to 1 only where 1 - ratio < 1.1e-16), relative error below 1e-13 for every
        ``x`` up to the largest float. For the von Mises–Fisher distribution on :math:`S^{d-1}`,
        ``bessel_ratio(d/2 - 1, kappa)`` is the mean resultant length :math:`A_d(\kappa)`.

    Examples
    --------
    >>> from sawdist.special import bessel_ratio
    >>> float(bessel_ratio(0.0, 1.0))  # I_1(1) / I_0(1)
    0.4463899658965345
    """
    nu, x = _prepare(nu, x)
    return _scalar_or_array(_evaluate(nu, x, "ratio"))


def bessel_ratio_complement(nu: ArrayLike, x: ArrayLike) -> float | np.ndarray:
    r"""One minus the Bessel ratio, :math:`1 - I_{\nu+1}(x)/I_\nu(x)`, accurate where the ratio is close to 1.

    For the von Mises–Fisher distribution this is :math:`1 - A_d(\kappa)`, which at large concentration is
    :math:`\approx (d-1)/(2\kappa)`; ``1 - bessel_ratio(nu, x)`` would keep only ~8 digits of it at kappa = 1e7.

    Parameters
    ----------
    nu : array_like
        Order, finite and >= 0.
    x : array_like
        Argument, >= 0 (0 gives 1, ``inf`` gives 0).

    Examples
    --------
    >>> from sawdist.special import bessel_ratio_complement
    >>> print(f"{bessel_ratio_complement(0.5, 1e7):.12e}")  # 1 - coth(x) + 1/x = 1e-7 (1 - ratio: 1.00000002e-07)
    1.000000000000e-07
    """
    nu, x = _prepare(nu, x)
    shape = nu.shape
    nu_f, x_f = nu.ravel(), x.ravel()
    out = np.ones(x_f.shape)
    out[np.isinf(x_f)] = 0.0
    pos = (x_f > 0) & np.isfinite(x_f)
    if np.any(pos):
        out[pos] = _ratio_complement_and_L_minus_x(nu_f[pos], x_f[pos])[0]
    return _scalar_or_array(out.reshape(shape))


def vmf_entropy(dim: ArrayLike, kappa: ArrayLike) -> float | np.ndarray:
    r"""Differential entropy of the von Mises–Fisher distribution on :math:`S^{d-1}`.

    :math:`H = -\log C_d(\kappa) - \kappa A_d(\kappa)`, evaluated as
    :math:`(d/2)\log 2\pi + [L(\nu,\kappa) - \kappa] + \kappa\,[1 - A_d(\kappa)]` with both brackets formed
    without cancellation, so that the two O(kappa) terms never meet numerically (at kappa = 1e7 the direct form
    keeps only ~9 digits).

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.special import vmf_entropy
    >>> bool(np.isclose(vmf_entropy(3, 1e6), np.log(2 * np.pi / 1e6) + 1, rtol=1e-15))
    True
    """
    d = _check_dim(dim)
    nu, kappa = _prepare(d / 2.0 - 1.0, kappa, "dim", "kappa")
    if np.any(np.isinf(kappa)):
        raise ValueError(f"'kappa' must be finite, got {np.inf!r}.")
    shape = nu.shape
    nu_f, k_f = nu.ravel(), kappa.ravel()
    out = np.empty(k_f.shape)
    pos = k_f > 0
    d_f = 2.0 * (nu_f + 1.0)
    # kappa = 0: uniform, H = log omega_d = (d/2) log 2 pi + L(nu, 0)
    out[~pos] = 0.5 * d_f[~pos] * _LOG_2PI + _series_L(nu_f[~pos], np.zeros((~pos).sum()))
    if np.any(pos):
        delta, Lmx = _ratio_complement_and_L_minus_x(nu_f[pos], k_f[pos])
        out[pos] = 0.5 * d_f[pos] * _LOG_2PI + Lmx + k_f[pos] * delta
    return _scalar_or_array(out.reshape(shape))


def _check_dim(dim) -> np.ndarray:
    dim_arr = np.asarray(dim)
    if dim_arr.dtype.kind not in "iuf" or np.any(~np.isfinite(dim_arr)) or np.any(dim_arr != np.round(dim_arr)):
        raise ValueError(f"'dim' must be an integer >= 2, got {dim!r}.")
    if np.any(dim_arr < 2):
        raise ValueError(f"'dim' must be an integer >= 2, got {dim_arr[dim_arr < 2].flat[0].item()!r}.")
    return dim_arr.astype(float)


def vmf_log_normalizer(dim: ArrayLike, kappa: ArrayLike, *, scaled: bool = False) -> float | np.ndarray:
    r"""Log of the von Mises–Fisher normalising constant on the sphere :math:`S^{d-1} \subset \mathbb{R}^d`.

    :math:`\log C_d(\kappa) = (d/2 - 1)\log\kappa - (d/2)\log 2\pi - \log I_{d/2-1}(\kappa)`, so that the density
    with respect to surface measure is :math:`C_d(\kappa)\exp(\kappa\mu^\top x)`.

    Parameters
    ----------
    dim : int or array_like of int
        Ambient dimension d >= 2.
    kappa : array_like
        Concentration, finite and >= 0. At ``kappa = 0`` the value is :math:`-\log\omega_d`, the uniform density.
    scaled : bool
        Return :math:`\log C_d(\kappa) + \kappa`, the log normaliser of :math:`e^{\kappa(\mu^\top x - 1)}` (the
        log density at the mode), built from the exponentially scaled :math:`\log I_\nu(\kappa) - \kappa`
        (scipy's ``ive``) as in :func:`vmf_entropy`. ``vmf_log_normalizer(d, k) + k`` loses the digits of a result
        of size ~ (d/2) log k to the cancellation of two terms of size k: 2e-10 relative at d = 2, k = 1e7,
        everything at k = 1e100.

    Returns
    -------
    ndarray or float

    Notes
    -----
    Computed as ``-(d/2) log(2 pi) - L(d/2 - 1, kappa)`` with the reduced logarithm
    ``L = log I_nu - nu log kappa`` of the module docstring, so the two large terms never cancel numerically;
    with ``scaled``, as ``-(d/2) log(2 pi) - (L - kappa)`` with ``L - kappa`` formed by the ``minus_x`` Debye form
    (``s - kappa = nu^2 / (s + kappa)``) and its recurrence, so the O(kappa) parts cancel analytically.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.special import vmf_log_normalizer
    >>> bool(np.isclose(vmf_log_normalizer(3, 1.0), -np.log(4 * np.pi * np.sinh(1.0)), rtol=1e-15))
    True
    >>> print(f"{vmf_log_normalizer(3, 1e100, scaled=True):.12f}")  # log(kappa / (2 pi (1 - e^{-2 kappa})))
    228.420632232995
    """
    d = _check_dim(dim)
    nu, kappa = _prepare(d / 2.0 - 1.0, kappa, "dim", "kappa")
    d = 2.0 * (nu + 1.0)
    if np.any(np.isinf(kappa)):
        raise ValueError(f"'kappa' must be finite, got {np.inf!r}.")
    if not scaled:
        return _scalar_or_array(-0.5 * d * _LOG_2PI - _evaluate(nu, kappa, "L"))
    shape = nu.shape
    nu_f, k_f, d_f = nu.ravel(), kappa.ravel(), d.ravel()
    Lmx = np.empty(k_f.shape)
    pos = k_f > 0
    Lmx[~pos] = _series_L(nu_f[~pos], np.zeros((~pos).sum()))  # L(nu, 0) - 0
    if np.any(pos):
        Lmx[pos] = _ratio_complement_and_L_minus_x(nu_f[pos], k_f[pos])[1]
    return _scalar_or_array((-0.5 * d_f * _LOG_2PI - Lmx).reshape(shape))


def vmf_mean_resultant_length(dim: ArrayLike, kappa: ArrayLike) -> float | np.ndarray:
    r"""Mean resultant length :math:`A_d(\kappa) = I_{d/2}(\kappa)/I_{d/2-1}(\kappa) = E[\mu^\top x]` of the vMF.

    Examples
    --------
    >>> from sawdist.special import vmf_mean_resultant_length
    >>> round(float(vmf_mean_resultant_length(3072, 500.0)), 6)
    0.158666
    """
    d = _check_dim(dim)
    return bessel_ratio(d / 2.0 - 1.0, kappa)


def vmf_kappa_from_mean_resultant_length(dim: ArrayLike, mean_resultant_length: ArrayLike, *,
                                         max_iter: int = 100) -> float | np.ndarray:
    r"""Invert the mean resultant length: the :math:`\kappa` with :math:`A_d(\kappa) = m`.

    At the plug-in mean resultant length of a sample, :math:`m = \bar R = \lVert\sum_i x_i\rVert / n`, this is the
    maximum-likelihood concentration of a von Mises–Fisher sample.

    Parameters
    ----------
    dim : int or array_like of int
        Ambient dimension d >= 2.
    mean_resultant_length : array_like
        Mean resultant length in [0, 1). ``0`` gives ``kappa = 0``; ``1`` (identical points) has no finite
        solution and raises.
    max_iter : int
        Iteration cap of the safeguarded Newton solver (it converges in fewer than 10 in practice).

    Returns
    -------
    ndarray or float

    Notes
    -----
    Starts from the approximation of Banerjee et al. (2005), :math:`\kappa_0 = m(d - m^2)/(1 - m^2)`,
    and takes Newton steps on :math:`A_d(\kappa) - m` with :math:`A_d'(\kappa) = 1 - A_d^2 - (d-1)A_d/\kappa`,
    kept inside a bracket that shrinks with every evaluation (bisection where Newton leaves it). The residual is
    computed from :func:`bessel_ratio`, so the root is exact to a few ulps of :math:`m` in any dimension; the
    relative error of :math:`\kappa` is that times the condition number :math:`m / (\kappa A_d'(\kappa))`,
    which grows like :math:`2\kappa/(d-1)` as :math:`m \to 1` (about 1e-8 at d = 2, kappa = 1e7).

    Examples
    --------
    >>> from sawdist.special import vmf_kappa_from_mean_resultant_length, vmf_mean_resultant_length
    >>> m = vmf_mean_resultant_length(3072, 500.0)
    >>> round(float(vmf_kappa_from_mean_resultant_length(3072, m)), 9)
    500.0
    """
    d = _check_dim(dim)
    m = np.asarray(mean_resultant_length, dtype=float)
    bad = ~(np.isfinite(m) & (m >= 0) & (m < 1))
    if np.any(bad):
        raise ValueError(
            f"'mean_resultant_length' must be in [0, 1), got {float(m[bad].flat[0])!r} "
            "(1 means identical points, whose concentration is infinite)."
        )
    d, m = np.broadcast_arrays(d, m)
    nu = d / 2.0 - 1.0
    shape = m.shape
    d, m, nu = d.ravel(), m.ravel(), nu.ravel()
    kappa = m * (d - m**2) / (1.0 - m**2)
    lo = np.zeros_like(kappa)
    # A_d(k) <= k / (nu + 1/2 + sqrt((nu + 3/2)^2 + k^2))... is awkward to invert; the Banerjee value is within a
    # factor ~2 in every regime, so bracket generously and let bisection repair any overshoot.
    hi = np.maximum(4.0 * kappa, 1.0)
    a = _evaluate(nu, hi, "ratio")
    while np.any(grow := a < m):
        hi = np.where(grow, hi * 4.0, hi)
        a = _evaluate(nu, hi, "ratio")
    zero = m == 0.0
    kappa = np.where(zero, 0.0, kappa)
    eps = np.finfo(float).eps
    for _ in range(max_iter):
        a = _evaluate(nu, kappa, "ratio")
        f = a - m
        lo = np.where(f <= 0, kappa, lo)
        hi = np.where(f >= 0, kappa, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A' = 1 - A^2 - (d-1) A / kappa is a difference of two terms ~ (d-1)/kappa that leaves ~ (d-1)/(2 kappa^2)
            # as kappa grows: its rounding error, ~ 4 eps (1 + (d-1) A / kappa), then exceeds it (from kappa ~ 1e8 at
            # d = 3), and a Newton step with it is noise small enough to pass for convergence (d = 38,
            # kappa = 1.25e13 came back as 1.10e13). It is trusted only while 10 times its rounding error; otherwise
            # the step bisects the bracket.
            deriv = 1.0 - a * a - (d - 1.0) * a / kappa
            trusted = np.abs(deriv) > 40.0 * eps * (1.0 + (d - 1.0) * a / kappa)
            step = kappa - f / deriv
        newton = trusted & np.isfinite(step) & (step > lo) & (step < hi)
        # bisection in log scale once the bracket is off 0 (kappa spans 600 decades; 45 halvings of log(hi/lo))
        mid = np.where(lo > 0, np.sqrt(lo) * np.sqrt(hi), 0.5 * (lo + hi))
        new = np.where(newton, step, mid)
        new = np.where(zero, 0.0, new)
        done = (newton & (np.abs(new - kappa) <= 4 * eps * np.abs(kappa))) | (hi - lo <= 4 * eps * hi) | (f == 0)
        kappa = new
        if np.all(done | zero):
            break
    return _scalar_or_array(kappa.reshape(shape))
