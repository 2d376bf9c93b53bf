r"""Special functions for directional statistics in high dimension.

Everything here works in log space and in float64, vectorised over broadcast arguments, without warnings, with
relative error below 1e-12 against 50-digit mpmath for orders ``nu`` in [0, 1e5] and arguments ``x`` in [0, 1e7]
(``tests/reference/bessel_reference.py`` keeps the script behind the reference values).

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
   reduced form reads ``Q(n-1) = 1 / (2n + x^2 Q(n))`` and ``L(n-1) = L(n) - log Q(n-1)``. Downward recurrence of
   the ratio is the stable direction for I (it is the minimal-solution direction of the continued fraction), and
   all terms are positive, so no digit is lost.

The ratio never forms I_nu, so it is exact to a few ulps even where I_nu overflows (x = 1e7) or underflows
(nu = 1e5, x = 1e-5).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy.special import gammaln

__all__ = [
    "bessel_ratio",
    "bessel_ratio_complement",
    "vmf_entropy",
    "log_bessel_iv",
    "vmf_kappa_from_mrl",
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
    """(L(nu, x), s, log sum_k U_k/nu^k) from the Debye expansion; nu >= NU_DEBYE, x >= 0. With `minus_x`, L - x
    instead, with s - x = nu^2 / (s + x) so that the O(x) parts cancel analytically."""
    s = np.hypot(nu, x)
    lead = nu * nu / (s + x) if minus_x else s
    log_sum = _debye_log_sum(nu, nu / s)
    L = lead - nu * np.log(nu + s) - 0.5 * (_LOG_2PI + np.log(s)) + log_sum
    return L, s, log_sum


def _debye_L_logQ(nu: np.ndarray, x: np.ndarray, minus_x: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(L(nu, x), log Q(nu, x)) from the Debye expansion at nu and nu + 1, cancellation-free (module docstring).
    With `minus_x`: (L - x, log R) where R = x Q = I_{nu+1}/I_nu, log R formed as
    ``-log1p((nu + 1 + (nu+1)^2/(s1 + x)) / x) + ...`` so that 1 - R = -expm1(log R) keeps its digits as R -> 1."""
    L0, s0, log_sum0 = _debye_L(nu, x, minus_x)
    nu1 = nu + 1.0
    s1 = np.hypot(nu1, x)
    ds = (2.0 * nu + 1.0) / (s1 + s0)  # s1 - s0
    if minus_x:  # log x - log(nu1 + s1), with s1 - x = nu1^2 / (s1 + x)
        with np.errstate(divide="ignore"):
            head = -np.log1p((nu1 + nu1 * nu1 / (s1 + x)) / x)
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
    difference 2n/x - delta(n) ~ (2n - 1)/(2x) loses at most a factor ~2, and L - x follows L's recurrence.
    """
    shift = np.where(nu < NU_DEBYE, np.ceil(NU_DEBYE - nu), 0.0)
    Lmx, log_r = _debye_L_logQ(nu + shift, x, minus_x=True)
    delta = -np.expm1(log_r)
    if np.any(shift > 0):
        for step in range(int(shift.max()), 0, -1):
            active = shift >= step
            n = nu + step
            c = 2.0 * n / x
            new = (c - delta) / (c + 1.0 - delta)
            # log Q(n-1) = log R(n-1) - log x = log1p(-delta(n-1)) - log x (delta rounds to 1 only for tiny x,
            # where the series below replaces L)
            with np.errstate(divide="ignore"):
                Lmx = np.where(active, Lmx - (np.log1p(-new) - np.log(x)), Lmx)
            delta = np.where(active, new, delta)
    small = x <= 2.0 * np.sqrt(nu + 1.0)
    if np.any(small):
        Lmx = np.where(small, _series_L(nu, np.where(small, x, 0.0)) - x, Lmx)
    return delta, Lmx


def _series_L(nu: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L(nu, x) from the power series (used for x <= 2 sqrt(nu + 1))."""
    y = 0.25 * x * x
    term = np.ones(np.broadcast(nu, x).shape)
    tail = np.zeros_like(term)
    for k in range(1, N_SERIES_TERMS + 1):
        term = term * y / (k * (nu + k))
        tail = tail + term
    return -nu * np.log(2.0) - gammaln(nu + 1.0) + np.log1p(tail)


def _reduced(nu: np.ndarray, x: np.ndarray, want_L: bool = True, want_Q: bool = True):
    """L(nu, x) and log Q(nu, x) for 1-D float arrays nu >= 0, x >= 0 of equal length."""
    L = np.empty_like(x)
    log_q = np.empty_like(x)
    # Shift every order below the Debye threshold up by an integer M, then recur down (M = 0 above it).
    shift = np.where(nu < NU_DEBYE, np.ceil(NU_DEBYE - nu), 0.0)
    top = nu + shift
    if not want_Q and not np.any(shift > 0):  # L alone needs no second order
        L_top, logq_top = _debye_L(top, x)[0], log_q
    else:
        L_top, logq_top = _debye_L_logQ(top, x)
    if np.any(shift > 0):
        q = np.exp(logq_top)
        acc_log = np.zeros_like(x)  # sum of log Q(n-1) over the steps taken
        x2 = x * x
        for step in range(int(shift.max()), 0, -1):
            active = shift >= step
            # n runs from nu + shift down to nu + 1 for the active elements.
            n = nu + step
            q_new = 1.0 / (2.0 * n + x2 * q)
            q = np.where(active, q_new, q)
            acc_log = acc_log + np.where(active, np.log(q_new), 0.0)
        log_q = np.log(q) if want_Q else log_q
        L = L_top - acc_log
    else:
        L, log_q = L_top, logq_top
    if want_L:
        small = x <= 2.0 * np.sqrt(nu + 1.0)
        if np.any(small):
            L = np.where(small, _series_L(nu, np.where(small, x, 0.0)), L)
    return L, log_q


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
        L, log_q = _reduced(nu_f[finite], x_f[finite], want_L=kind != "ratio", want_Q=kind == "ratio")
        xf = x_f[finite]
        if kind == "log_iv":
            with np.errstate(divide="ignore", invalid="ignore"):
                val = L + np.where(nu_f[finite] == 0.0, 0.0, nu_f[finite] * np.log(xf))
        elif kind == "ratio":
            val = xf * np.exp(log_q)
        else:  # "L"
            val = L
        out[finite] = val
    if np.any(~finite):
        out[~finite] = {"log_iv": np.inf, "ratio": 1.0, "L": np.inf}[kind]
    return out.reshape(shape)


def _scalar_or_array(a: np.ndarray):
    return a[()] if a.ndim == 0 else a


def log_bessel_iv(nu, x):
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
    Accurate to a relative error of 1e-12 (in practice a few ulps) for ``nu`` up to 1e5 and ``x`` up to 1e7, where
    ``scipy.special.iv`` overflows or underflows. See the module docstring for the algorithm. Near a zero of
    :math:`\log I_\nu(x)` at large order the absolute error is a few ulps of :math:`\sqrt{\nu^2 + x^2}`, which is
    the error any float64 input ``x`` already carries there.

    Examples
    --------
    >>> from sawdist.special import log_bessel_iv
    >>> float(log_bessel_iv(1535.0, 500.0))
    -1215.173509917102
    >>> float(log_bessel_iv(0.5, 1e7))  # scipy.special.iv(0.5, 1e7) is inf
    9999991.022013642
    """
    nu, x = _prepare(nu, x)
    return _scalar_or_array(_evaluate(nu, x, "log_iv"))


def bessel_ratio(nu, x):
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
        The ratio, in [0, 1). For the von Mises–Fisher distribution on :math:`S^{d-1}`,
        ``bessel_ratio(d/2 - 1, kappa)`` is the mean resultant length :math:`A_d(\kappa)`.

    Examples
    --------
    >>> from sawdist.special import bessel_ratio
    >>> float(bessel_ratio(0.0, 1.0))  # I_1(1) / I_0(1)
    0.4463899658965345
    """
    nu, x = _prepare(nu, x)
    return _scalar_or_array(_evaluate(nu, x, "ratio"))


def bessel_ratio_complement(nu, x):
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


def vmf_entropy(dim, kappa):
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


def vmf_log_normalizer(dim, kappa):
    r"""Log of the von Mises–Fisher normalising constant on the sphere :math:`S^{d-1} \subset \mathbb{R}^d`.

    :math:`\log C_d(\kappa) = (d/2 - 1)\log\kappa - (d/2)\log 2\pi - \log I_{d/2-1}(\kappa)`, so that the density
    with respect to surface measure is :math:`C_d(\kappa)\exp(\kappa\mu^\top x)`.

    Parameters
    ----------
    dim : int or array_like of int
        Ambient dimension d >= 2.
    kappa : array_like
        Concentration, finite and >= 0. At ``kappa = 0`` the value is :math:`-\log\omega_d`, the uniform density.

    Returns
    -------
    ndarray or float

    Notes
    -----
    Computed as ``-(d/2) log(2 pi) - L(d/2 - 1, kappa)`` with the reduced logarithm
    ``L = log I_nu - nu log kappa`` of the module docstring, so the two large terms never cancel numerically.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.special import vmf_log_normalizer
    >>> bool(np.isclose(vmf_log_normalizer(3, 1.0), -np.log(4 * np.pi * np.sinh(1.0)), rtol=1e-15))
    True
    """
    d = _check_dim(dim)
    nu, kappa = _prepare(d / 2.0 - 1.0, kappa, "dim", "kappa")
    d = 2.0 * (nu + 1.0)
    if np.any(np.isinf(kappa)):
        raise ValueError(f"'kappa' must be finite, got {np.inf!r}.")
    return _scalar_or_array(-0.5 * d * _LOG_2PI - _evaluate(nu, kappa, "L"))


def vmf_mean_resultant_length(dim, kappa):
    r"""Mean resultant length :math:`A_d(\kappa) = I_{d/2}(\kappa)/I_{d/2-1}(\kappa) = E[\mu^\top x]` of the vMF.

    Examples
    --------
    >>> from sawdist.special import vmf_mean_resultant_length
    >>> round(float(vmf_mean_resultant_length(3072, 500.0)), 6)
    0.158666
    """
    d = _check_dim(dim)
    return bessel_ratio(d / 2.0 - 1.0, kappa)


def vmf_kappa_from_mrl(dim, rbar, *, max_iter: int = 100):
    r"""Invert the mean resultant length: the :math:`\kappa` with :math:`A_d(\kappa) = \bar R`.

    This is the maximum-likelihood concentration of a von Mises–Fisher sample with mean resultant length
    :math:`\bar R = \lVert\sum_i x_i\rVert / n`.

    Parameters
    ----------
    dim : int or array_like of int
        Ambient dimension d >= 2.
    rbar : array_like
        Mean resultant length in [0, 1). ``0`` gives ``kappa = 0``; ``1`` (identical points) has no finite
        solution and raises.
    max_iter : int
        Iteration cap of the safeguarded Newton solver (it converges in fewer than 10 in practice).

    Returns
    -------
    ndarray or float

    Notes
    -----
    Starts from the approximation of Banerjee et al. (2005), :math:`\kappa_0 = \bar R(d - \bar R^2)/(1 - \bar R^2)`,
    and takes Newton steps on :math:`A_d(\kappa) - \bar R` with :math:`A_d'(\kappa) = 1 - A_d^2 - (d-1)A_d/\kappa`,
    kept inside a bracket that shrinks with every evaluation (bisection where Newton leaves it). The residual is
    computed from :func:`bessel_ratio`, so the root is exact to a few ulps of :math:`\bar R` in any dimension; the
    relative error of :math:`\kappa` is that times the condition number :math:`\bar R / (\kappa A_d'(\kappa))`,
    which grows like :math:`2\kappa/(d-1)` as :math:`\bar R \to 1` (about 1e-8 at d = 2, kappa = 1e7).

    Examples
    --------
    >>> from sawdist.special import vmf_kappa_from_mrl, vmf_mean_resultant_length
    >>> rbar = vmf_mean_resultant_length(3072, 500.0)
    >>> round(float(vmf_kappa_from_mrl(3072, rbar)), 9)
    500.0
    """
    d = _check_dim(dim)
    rbar = np.asarray(rbar, dtype=float)
    bad = ~(np.isfinite(rbar) & (rbar >= 0) & (rbar < 1))
    if np.any(bad):
        raise ValueError(
            f"'rbar' must be in [0, 1), got {float(rbar[bad].flat[0])!r} "
            "(1 means identical points, whose concentration is infinite)."
        )
    d, rbar = np.broadcast_arrays(d, rbar)
    nu = d / 2.0 - 1.0
    shape = rbar.shape
    d, rbar, nu = d.ravel(), rbar.ravel(), nu.ravel()
    kappa = rbar * (d - rbar**2) / (1.0 - rbar**2)
    lo = np.zeros_like(kappa)
    # A_d(k) <= k / (nu + 1/2 + sqrt((nu + 3/2)^2 + k^2))... is awkward to invert; the Banerjee value is within a
    # factor ~2 in every regime, so bracket generously and let bisection repair any overshoot.
    hi = np.maximum(4.0 * kappa, 1.0)
    a = _evaluate(nu, hi, "ratio")
    while np.any(grow := a < rbar):
        hi = np.where(grow, hi * 4.0, hi)
        a = _evaluate(nu, hi, "ratio")
    zero = rbar == 0.0
    kappa = np.where(zero, 0.0, kappa)
    for _ in range(max_iter):
        a = _evaluate(nu, kappa, "ratio")
        f = a - rbar
        lo = np.where(f <= 0, kappa, lo)
        hi = np.where(f >= 0, kappa, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            deriv = 1.0 - a * a - (d - 1.0) * a / kappa
            step = kappa - f / deriv
        inside = np.isfinite(step) & (step > lo) & (step < hi)
        new = np.where(inside, step, 0.5 * (lo + hi))
        new = np.where(zero, 0.0, new)
        done = np.abs(new - kappa) <= 4 * np.finfo(float).eps * np.abs(kappa)
        kappa = new
        if np.all(done | zero):
            break
    return _scalar_or_array(kappa.reshape(shape))
