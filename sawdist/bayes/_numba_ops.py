r"""Numba implementations of the custom Ops, for PyTensor's Numba linker (``mode="NUMBA"``, nutpie).

Importing this module registers, with :func:`pytensor.link.numba.dispatch.numba_funcify` (through PyTensor's
``register_funcify_default_op_cache_key``, so that compiled graphs are cached on disk), an implementation of

* :class:`~.special_ops.FixedOrderBesselLogRatio` (``x -> (L, R)`` at a constant order: every model here),
* :class:`~.special_ops.BesselLogRatio` (``(nu, x) -> (L, R)``, the order a tensor),
* :class:`~.special_ops.KappaFromMeanResultantLength` (``(dim, m) -> kappa``, the inverse of the ratio, by Newton's
  method),
* :class:`~._collapsed_op.CollapsedSharedLoglik` (the shared-mean likelihood and its gradient in one loop).

Their gradients are graphs of PyTensor's own elementwise Ops (``L_op`` of each Op: ``dL/dx = R``,
``dR/dx = 1 - R^2 - (2 nu + 1) R/x``, ``dkappa/dm = 1/A_d'(kappa)``, and the collapsed Op's second output), which the
Numba linker already compiles, so these four are all a model graph needs. Nothing to call: :mod:`sawdist.bayes`
imports this module as soon as PyTensor's Numba dispatch is imported (:mod:`._backends`).

The kernel is that of :class:`._kernels.FixedOrderBessel` and of the C code of
:func:`~.special_ops.bessel_c_source`, one scalar at a time: the collapsed Debye expansion at ``top = nu + shift``
(``shift = ceil(NU_DEBYE - nu)`` below ``NU_DEBYE``), the downward recurrence on ``R/x`` (x < 1) or ``R`` (x >= 1)
from there, and the power series where ``x <= 2 sqrt(nu + 1)``. The functions are compiled with ``fastmath=False``
(PyTensor's default for its own Ops is fast-math, whose reassociation and approximate functions this expansion
is not written for). For a constant order the coefficients are compile-time constants of the kernel; for a
tensor order they are rebuilt, per element, from :func:`sawdist.special.debye_polynomials` whenever the order
changes. Agreement with the C Ops: ``tests/bayes/test_numba_jax_ops.py``.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numba
import numpy as np
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key
from scipy.special import zeta

from ..special import N_SERIES_TERMS, NU_DEBYE, debye_polynomials
from ._collapsed_op import CollapsedSharedLoglik
from ._kernels import _DEBYE_CUTOFF, _LOG_EVERY, fixed_order
from .special_ops import BesselLogRatio, FixedOrderBesselLogRatio, KappaFromMeanResultantLength

__all__ = ["bessel_kernel", "fixed_order_kernel", "kappa_from_mean_resultant_length_kernel", "order_parameters"]

#: Bumped whenever the code below changes what it computes (it enters PyTensor's on-disk cache key).
_VERSION = 4
_LOG_2PI = float(np.log(2.0 * np.pi))
_LOG_2 = float(np.log(2.0))

# Debye polynomials U_1 .. U_{N-1} (increasing powers, zero-padded), their bounds sum_j |u_kj| (the cut-off test of
# _kernels.FixedOrderBessel) and lengths.
_POLYS_LIST = debye_polynomials()
_N_POLYS = len(_POLYS_LIST)
_MAX_DEGREE = max(len(u) for u in _POLYS_LIST)
_POLYS = np.zeros((_N_POLYS, _MAX_DEGREE))
for _k, _u in enumerate(_POLYS_LIST):
    _POLYS[_k, : len(_u)] = _u
_POLY_LEN = np.array([len(u) for u in _POLYS_LIST], dtype=np.int64)
_POLY_BOUND = np.array([float(np.abs(u).sum()) for u in _POLYS_LIST])
# log Gamma(1 + nu) = -gamma nu + sum_{k>=2} (-1)^k zeta(k) nu^k / k for nu < 0.2 (as sawdist.special.lgamma1p)
_LGAMMA1P_SERIES_MAX = 0.2
_LGAMMA1P_COEFFS = np.array([(-1.0) ** k * c for k, c in enumerate(zeta(np.arange(2.0, 32.0), 1.0)
                                                                   / np.arange(2.0, 32.0))])
_EULER_GAMMA = float(np.euler_gamma)
_NU_DEBYE = float(NU_DEBYE)
_N_SERIES = int(N_SERIES_TERMS)
_CUTOFF = float(_DEBYE_CUTOFF)
_LOG_EVERY_N = int(_LOG_EVERY)

_jit = numba.njit(fastmath=False, cache=False)


@_jit
def _horner(c, n, p):
    if n == 0:
        return 0.0
    out = c[0]
    for i in range(1, n):
        out = out * p + c[i]
    return out


@_jit
def _hypot(top, x):
    # as the C code: sqrt(top^2 + x^2) (math.hypot is slow), x sqrt(1 + (top/x)^2) where x^2 would overflow
    return math.sqrt(top * top + x * x) if x < 1e150 else x * math.sqrt(1.0 + (top / x) ** 2)


@_jit
def _finish(x, s, p, tail, dtail, nu, top, shift, series_head):
    """(L, R, R/x) at x from the Debye parts at ``top``: s = hypot(top, x), p = top/s and the collapsed tail and its
    derivative at p; then the downward recurrence (shift > 0) and the power series (small x)."""
    if not (x >= 0.0):
        return np.nan, np.nan, np.nan
    if math.isinf(x):
        return np.inf, 1.0, 0.0
    L = s - top * math.log(top + s) - 0.5 * (_LOG_2PI + math.log(s)) + math.log1p(tail)
    q = 1.0 / (top + s) - (0.5 + p * dtail / (1.0 + tail)) / s / s
    R = x * q
    if shift > 0:
        big = x >= 1.0
        x2 = 0.0 if big else x * x
        v = x * q if big else q
        prod = 1.0
        acc = 0.0
        for i in range(shift):
            n2 = 2.0 * (nu + (shift - i))
            if big:
                v = min(1.0 / (n2 / x + v), 1.0)
            else:
                v = 1.0 / (n2 + x2 * v)
            prod *= v
            if (i + 1) % _LOG_EVERY_N == 0:
                acc += math.log(prod)
                prod = 1.0
        L = L - (acc + math.log(prod))
        if big:
            L = L + shift * math.log(x)
            R = v
            q = v / x
        else:
            q = v
            R = x * v
    if x <= 2.0 * math.sqrt(nu + 1.0):
        y = 0.25 * x * x
        term = 1.0
        series = 0.0
        for j in range(1, _N_SERIES + 1):
            term *= y / (j * (nu + j))
            series += term
        L = series_head + math.log1p(series)
    return L, R, q


@_jit
def bessel_kernel(x, nu, top, shift, c, nc, dc, ndc, series_head):
    """``(L(nu, x), R(nu, x), R/x)`` at one argument, given the order's parameters (:func:`order_parameters`):
    ``c[:nc]`` and ``dc[:ndc]`` the collapsed Debye tail and its derivative, highest power first."""
    s = _hypot(top, x)
    p = top / s
    return _finish(x, s, p, _horner(c, nc, p), _horner(dc, ndc, p), nu, top, shift, series_head)


@_jit
def _debye_parts(x, top, c, nc, dc, ndc):
    """s, p, tail and dtail of :func:`bessel_kernel` for a 1-d array of arguments, one coefficient at a time over
    all arguments: the same operations per element as the scalar Horner sum, in loops that vectorise (the scalar
    sum is a chain of dependent multiply-adds; this halves the time of the Bessel Ops)."""
    n = x.size
    s = np.empty(n)
    p = np.empty(n)
    tail = np.empty(n)
    dtail = np.empty(n)
    for i in range(n):
        si = _hypot(top, x[i])
        s[i] = si
        p[i] = top / si
        tail[i] = c[0] if nc > 0 else 0.0
        dtail[i] = dc[0] if ndc > 0 else 0.0
    for j in range(1, nc):
        cj = c[j]
        for i in range(n):
            tail[i] = tail[i] * p[i] + cj
    for j in range(1, ndc):
        cj = dc[j]
        for i in range(n):
            dtail[i] = dtail[i] * p[i] + cj
    return s, p, tail, dtail


@_jit
def _lgamma1p(nu):
    if nu < _LGAMMA1P_SERIES_MAX:
        acc = 0.0
        for k in range(_LGAMMA1P_COEFFS.size - 1, -1, -1):
            acc = _LGAMMA1P_COEFFS[k] + nu * acc
        return nu * (-_EULER_GAMMA + nu * acc)
    return math.lgamma(nu + 1.0)


@_jit
def order_parameters(nu, c, dc):
    """Fill ``c`` and ``dc`` (length >= the longest Debye polynomial) for order ``nu`` >= 0 as
    :class:`._kernels.FixedOrderBessel` does, and return ``(top, shift, nc, ndc, series_head)``."""
    shift = int(math.ceil(_NU_DEBYE - nu)) if nu < _NU_DEBYE else 0
    top = nu + shift
    coeffs = np.zeros(_MAX_DEGREE)
    degree = 0
    for k in range(1, _N_POLYS):
        scale = math.pow(top, -k)
        if _POLY_BOUND[k] * scale < _CUTOFF:
            break
        for j in range(_POLY_LEN[k]):
            coeffs[j] += _POLYS[k, j] * scale
        degree = _POLY_LEN[k]
    for j in range(degree):
        c[j] = coeffs[degree - 1 - j]
    for j in range(degree - 1):
        dc[j] = coeffs[degree - 1 - j] * (degree - 1 - j)
    return top, shift, degree, max(degree - 1, 0), -nu * _LOG_2 - _lgamma1p(nu)


def fixed_order_kernel(nu: float):
    """The scalar kernel ``x -> (L, R, R/x)`` of order ``nu`` with the coefficients compiled in (a Numba function)."""
    return _fixed_kernel(float(nu))[0]


@lru_cache(maxsize=64)
def _fixed_kernel(nu: float):
    """(scalar kernel, batch kernel, cache salt) of order ``nu``: compiled once per order and process."""
    k = fixed_order(nu)
    nu, top, shift, head = float(k.nu), float(k.top), int(k.shift), float(k._series_head)
    c = np.ascontiguousarray(k._c, dtype=np.float64)
    dc = np.ascontiguousarray(k._dc, dtype=np.float64)
    nc, ndc = c.size, dc.size
    if nc == 0:
        c = np.zeros(1)
    if ndc == 0:
        dc = np.zeros(1)

    @_jit
    def kernel(x):
        return bessel_kernel(x, nu, top, shift, c, nc, dc, ndc, head)

    @_jit
    def batch(x, L, R, Q):
        """L, R and R/x at the 1-d array x, into L, R and Q."""
        s, p, tail, dtail = _debye_parts(x, top, c, nc, dc, ndc)
        for i in range(x.size):
            L[i], R[i], Q[i] = _finish(x[i], s[i], p[i], tail[i], dtail[i], nu, top, shift, head)

    return kernel, batch, _salt(nu, top, shift, head, c, dc)


def _salt(*parts) -> int:
    """An integer that changes with the kernel's constants and this module's version (PyTensor's cache key)."""
    # the module's name too: Numba's cached code re-imports the module it was compiled in
    h = hashlib.sha256(repr((__name__, _VERSION, _CUTOFF, _LOG_EVERY_N, _N_SERIES)).encode())
    for part in parts:
        h.update(np.asarray(part, dtype=np.float64).tobytes())
    return int(h.hexdigest()[:12], 16)


@_jit
def _general_pair(nu, x):
    """(L, R) for broadcast arrays of orders and arguments; the order's parameters are rebuilt when it changes."""
    nu_b, x_b = np.broadcast_arrays(nu, x)
    L = np.empty(x_b.shape)
    R = np.empty(x_b.shape)
    Lf = L.reshape(L.size)
    Rf = R.reshape(R.size)
    nuf = np.ascontiguousarray(nu_b).reshape(L.size)
    xf = np.ascontiguousarray(x_b).reshape(L.size)
    c = np.zeros(_MAX_DEGREE)
    dc = np.zeros(_MAX_DEGREE)
    last = np.nan
    top, shift, nc, ndc, head = 0.0, 0, 0, 0, 0.0
    for i in range(xf.size):
        n = nuf[i]
        if not (n >= 0.0 and math.isfinite(n)):
            Lf[i] = np.nan
            Rf[i] = np.nan
            continue
        if n != last:
            top, shift, nc, ndc, head = order_parameters(n, c, dc)
            last = n
        Lf[i], Rf[i], _ = bessel_kernel(xf[i], n, top, shift, c, nc, dc, ndc, head)
    return L, R


@_jit
def kappa_from_mean_resultant_length_kernel(dim, m):
    """``kappa`` with ``A_d(kappa) = m`` for broadcast arrays ``dim`` and ``m`` (NaN for m outside [0, 1) or
    d < 2): Newton's method from Banerjee et al.'s start, as :func:`._kernels.kappa_from_mean_resultant_length`,
    element by element (each stops once its relative step is below 1e-12)."""
    dim_b, m_b = np.broadcast_arrays(dim, m)
    out = np.empty(m_b.shape)
    of = out.reshape(out.size)
    df = np.ascontiguousarray(dim_b).reshape(out.size)
    mf = np.ascontiguousarray(m_b).reshape(out.size)
    c = np.zeros(_MAX_DEGREE)
    dc = np.zeros(_MAX_DEGREE)
    last = np.nan
    top, shift, nc, ndc, head = 0.0, 0, 0, 0, 0.0
    for i in range(mf.size):
        d_i = df[i]
        mm = mf[i]
        if not (math.isfinite(d_i) and d_i >= 2.0 and math.isfinite(mm) and mm >= 0.0 and mm < 1.0):
            of[i] = np.nan
            continue
        nu = 0.5 * d_i - 1.0
        if nu != last:
            top, shift, nc, ndc, head = order_parameters(nu, c, dc)
            last = nu
        d = 2.0 * nu + 2.0
        x = mm * (d - mm * mm) / (1.0 - mm * mm)
        for it in range(100):
            _, R, _ = bessel_kernel(x, nu, top, shift, c, nc, dc, ndc, head)
            slope = 1.0 - R * R - (2.0 * nu + 1.0) * R / x if x > 0 else 1.0 / d
            step = (mm - R) / slope
            x = max(x + step, 0.0)
            if it > 0 and abs(step) <= 1e-12 * max(x, 1e-300):
                break
        of[i] = x
    return out


@register_funcify_default_op_cache_key(FixedOrderBesselLogRatio)
def numba_funcify_FixedOrderBesselLogRatio(op, node=None, **kwargs):
    _, batch, salt = _fixed_kernel(float(op.nu))

    @_jit
    def fixed_order_bessel_log_ratio(x):
        L = np.empty(x.shape)
        R = np.empty(x.shape)
        batch(np.ascontiguousarray(x).reshape(L.size), L.reshape(L.size), R.reshape(R.size), np.empty(L.size))
        return L, R

    return fixed_order_bessel_log_ratio, salt


@register_funcify_default_op_cache_key(BesselLogRatio)
def numba_funcify_BesselLogRatio(op, node=None, **kwargs):
    return _general_pair, _salt()


@register_funcify_default_op_cache_key(KappaFromMeanResultantLength)
def numba_funcify_KappaFromMeanResultantLength(op, node=None, **kwargs):
    return kappa_from_mean_resultant_length_kernel, _salt()


@register_funcify_default_op_cache_key(CollapsedSharedLoglik)
def numba_funcify_CollapsedSharedLoglik(op, node=None, **kwargs):
    _, batch, salt = _fixed_kernel(float(op.nu))
    const = float(op.const)
    log_omega = float(op.log_omega)

    @_jit
    def collapsed_shared_loglik(kappa, gram, count):
        J = kappa.shape[-1]
        if gram.shape[:-1] != kappa.shape or gram.shape[-1] != J or count.shape != kappa.shape:
            raise ValueError("CollapsedSharedLoglik: kappa, gram and count shapes differ")
        value = np.empty(kappa.shape[:-1])
        grad = np.empty(kappa.shape)
        B = value.size
        vf = value.reshape(B)
        df = grad.reshape(B * J)
        kf = np.ascontiguousarray(kappa).reshape(B * J)
        gf = np.ascontiguousarray(gram).reshape(B * J * J)
        cf = np.ascontiguousarray(count).reshape(B * J)
        # G kappa and ||S|| = sqrt(kappa' G kappa) of every input, then the Bessel quantities of all
        # concentrations and of all ||S|| at once, then the loop of the C code
        gk = np.empty(B * J)
        s = np.empty(B)
        for b in range(B):
            s2 = 0.0
            for j in range(J):
                t = 0.0
                for i in range(J):
                    t += gf[(b * J + j) * J + i] * kf[b * J + i]
                gk[b * J + j] = t
                s2 += kf[b * J + j] * t
            s[b] = math.sqrt(s2 if s2 > 0.0 else 0.0)
            if not math.isfinite(s2):
                # kappa' G kappa overflowed past kappa ~ 1e153 (_collapsed_op's docstring): scaled by the largest
                m = 0.0
                for j in range(J):
                    m = max(m, kf[b * J + j])
                t2 = 0.0
                for j in range(J):
                    t2 += (kf[b * J + j] / m) * (gk[b * J + j] / m)
                s[b] = m * math.sqrt(t2 if t2 > 0.0 else 0.0)
        Lk = np.empty(B * J)
        Rk = np.empty(B * J)
        Qk = np.empty(B * J)
        batch(kf, Lk, Rk, Qk)
        Ls = np.empty(B)
        Rs = np.empty(B)
        Qs = np.empty(B)
        batch(s, Ls, Rs, Qs)
        for b in range(B):
            n = 0.0
            acc = 0.0
            for j in range(J):
                cj = cf[b * J + j]
                n += cj
                acc -= cj * Lk[b * J + j]
            vf[b] = const * (n - 1.0) + acc + Ls[b] - log_omega
            for j in range(J):
                df[b * J + j] = -cf[b * J + j] * Rk[b * J + j] + Qs[b] * gk[b * J + j]
        return value, grad

    return collapsed_shared_loglik, _salt(salt, const, log_omega)
