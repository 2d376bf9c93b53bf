r"""Fast NumPy kernels for the Bessel quantities of one fixed order, for the PyTensor Ops of :mod:`.special_ops`.

A sampler evaluates the reduced logarithm ``L(nu, x) = log I_nu(x) - nu log x`` and the ratio
``R(nu, x) = I_{nu+1}(x) / I_nu(x)`` thousands of times at the *same* order (nu = d/2 - 1 is fixed by the
dimension) and at a few thousand arguments. :mod:`sawdist.special` evaluates the general case; here the work that
depends on nu alone is done once per order:

* the Debye sum ``sum_k U_k(p) / nu^k`` (DLMF 10.41.3, polynomials from :func:`sawdist.special.debye_polynomials`)
  is collapsed into one polynomial in ``p`` with coefficients ``c_j = sum_k u_{kj} nu^{-k}``, keeping only the
  orders k whose bound ``sum_j |u_{kj}| nu^{-k}`` exceeds 1e-18 (7 terms at nu = 1535 instead of 14);
* the ratio is the x-derivative of L (``dL/dx = I_nu'/I_nu - nu/x = I_{nu+1}/I_nu``), so it comes from the same
  expansion: with ``s = sqrt(nu^2 + x^2)``, ``p = nu/s`` and ``T(p)`` the Debye tail,
  ``L = s - nu log(nu + s) - log(2 pi s)/2 + log1p(T)`` and
  ``Q = R/x = 1/(nu + s) - 1/(2 s^2) - nu T'(p) / (s^3 (1 + T))``, every term positive or small: no cancellation;
* orders below ``NU_DEBYE`` start the expansion at ``nu + M`` and recur down with ``Q(n-1) = 1/(2n + x^2 Q(n))``,
  ``L(n-1) = L(n) - log Q(n-1)`` (the stable direction, as in :mod:`sawdist.special`), in the form
  ``R(n-1) = 1/(2n/x + R(n))``, ``L(n-1) = L(n) - log R(n-1) + log x`` for x >= 1 (x^2 overflows from 1.3e154);
  arguments ``x <= 2 sqrt(nu + 1)`` take L from the power series, as there.

Agreement with :mod:`sawdist.special` is tested to 1e-13 relative (``tests/bayes/test_special_ops.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..special import N_SERIES_TERMS, NU_DEBYE, debye_polynomials, lgamma1p

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Debye orders whose coefficient bound falls below this are dropped.
_DEBYE_CUTOFF = 1e-18
#: Recurrence steps between two logarithms of the running product of Q (keeps the product far from underflow).
_LOG_EVERY = 8


class FixedOrderBessel:
    """L(nu, x) and R(nu, x) for one order ``nu >= 0`` and arrays of ``x``; see the module docstring."""

    def __init__(self, nu: float):
        self.nu = float(nu)
        self.shift = int(np.ceil(NU_DEBYE - self.nu)) if self.nu < NU_DEBYE else 0
        top = self.nu + self.shift
        self.top = top
        polys = debye_polynomials()
        degree = 0
        coeffs = np.zeros(len(polys[-1]))
        for k, u in enumerate(polys[1:], start=1):
            scale = top ** (-k)
            if np.abs(u).sum() * scale < _DEBYE_CUTOFF:
                break
            coeffs[: len(u)] += u * scale
            degree = len(u)
        self._c = coeffs[:degree][::-1].copy()  # highest power first, for Horner
        self._dc = (coeffs[1:degree] * np.arange(1, degree))[::-1].copy()
        # lgamma1p, not gammaln(nu + 1.0), which rounds 1 + nu and loses -gamma nu at tiny orders
        self._series_head = -self.nu * np.log(2.0) - float(lgamma1p(self.nu))

    @staticmethod
    def _horner(c, p):
        out = np.full_like(p, c[0])
        for a in c[1:]:
            out *= p
            out += a
        return out

    def _finite(self, x: np.ndarray):
        top = self.top
        s = np.hypot(top, x)
        p = top / s
        tail = self._horner(self._c, p)
        dtail = self._horner(self._dc, p)
        L = s - top * np.log(top + s) - 0.5 * (_LOG_2PI + np.log(s)) + np.log1p(tail)
        q = 1.0 / (top + s) - (0.5 + p * dtail / (1.0 + tail)) / s / s  # no s^3: s may reach 1e300
        if self.shift:
            # Recur on v = Q = R/x for x < 1 and on v = R for x >= 1 (as in sawdist.special._reduced): the Q step
            # 1/(2n + x^2 Q) overflows from x ~ 1.3e154 (L was inf, then NaN), the R step 1/(2n/x + R) has O(1)
            # terms; L(nu) = L(top) - sum log v + [x >= 1] M log x.
            big = x >= 1.0
            xs = np.where(big, x, 1.0)
            xq = np.where(big, 0.0, x)
            x2 = xq * xq
            v = np.where(big, x * q, q)
            prod = np.ones_like(x)
            acc = np.zeros_like(x)
            for i, step in enumerate(range(self.shift, 0, -1)):
                n2 = 2.0 * (self.nu + step)
                # R(n-1) < 1 exactly; the clamp removes a rounding of 2n/x + R(n) to just below 1
                v = np.where(big, np.minimum(1.0 / (n2 / xs + v), 1.0), 1.0 / (n2 + x2 * v))
                prod *= v
                if (i + 1) % _LOG_EVERY == 0:
                    acc += np.log(prod)
                    prod[...] = 1.0
            L = L - (acc + np.log(prod)) + np.where(big, self.shift * np.log(xs), 0.0)
            return self._series(x, L), np.where(big, v, xq * v)
        return self._series(x, L), x * q

    def _series(self, x: np.ndarray, L: np.ndarray) -> np.ndarray:
        """L from the power series where x <= 2 sqrt(nu + 1)."""
        small = x <= 2.0 * np.sqrt(self.nu + 1.0)
        if np.any(small):
            xs = x[small]
            y = 0.25 * xs * xs
            term = np.ones_like(xs)
            series = np.zeros_like(xs)
            for k in range(1, N_SERIES_TERMS + 1):
                term *= y / (k * (self.nu + k))
                series += term
            L[small] = self._series_head + np.log1p(series)
        return L

    def __call__(self, x):
        """(L, R) at ``x`` (any shape, float64); NaN for negative or NaN x, (inf, 1) at x = inf."""
        x = np.asarray(x, dtype=np.float64)
        flat = x.ravel()
        L = np.full(flat.shape, np.nan)
        R = np.full(flat.shape, np.nan)
        ok = np.isfinite(flat) & (flat >= 0)
        if ok.all():
            L, R = self._finite(flat)
        else:
            if ok.any():
                L[ok], R[ok] = self._finite(flat[ok])
            inf = flat == np.inf
            L[inf], R[inf] = np.inf, 1.0
        return L.reshape(x.shape), R.reshape(x.shape)


@lru_cache(maxsize=64)
def fixed_order(nu: float) -> FixedOrderBessel:
    """The (cached) kernel of order ``nu``."""
    return FixedOrderBessel(nu)


def bessel_L_R(nu, x):
    """(L(nu, x), R(nu, x)) for broadcast arrays; one cached kernel per distinct order."""
    nu, x = np.broadcast_arrays(np.asarray(nu, dtype=np.float64), np.asarray(x, dtype=np.float64))
    if nu.size == 0:
        return np.empty(x.shape), np.empty(x.shape)
    first = nu.flat[0]
    if np.all(nu == first):
        if not (np.isfinite(first) and first >= 0):
            return np.full(x.shape, np.nan), np.full(x.shape, np.nan)
        return fixed_order(float(first))(x)
    L = np.full(x.shape, np.nan)
    R = np.full(x.shape, np.nan)
    for value in np.unique(nu[np.isfinite(nu) & (nu >= 0)]):
        sel = nu == value
        L[sel], R[sel] = fixed_order(float(value))(x[sel])
    return L, R


def resultant_concentration(kappa, g_kappa):
    """s = sqrt(kappa' G kappa) over the last axis, from kappa and G kappa, without the overflow of the square.

    Past concentrations of about 1e153 (where a NUTS trajectory can wander) the square overflows to inf, which made
    L(s) and with it the collapsed likelihood +inf; there s is computed as m sqrt((kappa/m)' (G kappa/m)), m the
    largest concentration (the same number in exact arithmetic). Elsewhere the plain square, so that the value is
    the same to the last bit as before.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    g_kappa = np.asarray(g_kappa, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        s2 = np.sum(kappa * g_kappa, axis=-1)
        s = np.asarray(np.sqrt(np.maximum(s2, 0.0)))
        over = ~np.isfinite(s2)
        if np.any(over):
            m = np.max(kappa[over], axis=-1, keepdims=True)
            t2 = np.sum((kappa[over] / m) * (g_kappa[over] / m), axis=-1)
            s[over] = m[..., 0] * np.sqrt(np.maximum(t2, 0.0))
    return s


def kappa_from_mean_resultant_length(nu: float, m):
    """The x with R(nu, x) = m, for m in [0, 1) (NaN elsewhere), by Newton's method on the increasing, concave
    ``R(nu, .)``: after the first step every iterate lies left of the root and increases to it (the tangent of a
    concave function lies above it), so the iteration needs no bracket; it stops when every relative step is below
    1e-12 (quadratic convergence: the error is then at the rounding floor).
    Start: Banerjee et al. (2005), ``x0 = m (d - m^2) / (1 - m^2)`` with d = 2 nu + 2; R'(x) = 1 - R^2 - (2nu+1) R/x.
    """
    m = np.asarray(m, dtype=np.float64)
    out = np.full(m.shape, np.nan)
    ok = np.isfinite(m) & (m >= 0) & (m < 1)
    kernel = fixed_order(float(nu))
    mm = m[ok]
    d = 2.0 * nu + 2.0
    x = mm * (d - mm * mm) / (1.0 - mm * mm)
    for it in range(100):
        _, R = kernel(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(x > 0, 1.0 - R * R - (2.0 * nu + 1.0) * R / x, 1.0 / d)
        step = (mm - R) / slope
        new = np.maximum(x + step, 0.0)
        x = new
        # Convergence is quadratic, so after a relative step below 1e-12 the error is at the rounding floor
        # (a few ulps of m times the condition number m / (x R'(x))).
        if it > 0 and np.all(np.abs(step) <= 1e-12 * np.maximum(x, 1e-300)):
            break
    out[ok] = x
    return out
