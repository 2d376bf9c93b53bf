r"""JAX implementations of the custom Ops, for PyTensor's JAX linker (``mode="JAX"``, numpyro, blackjax, nutpie's JAX
backend).

Importing this module registers, with :func:`pytensor.link.jax.dispatch.jax_funcify`, an implementation of

* :class:`~.special_ops.FixedOrderBesselLogRatio` (``x -> (L, R)`` at a constant order: every model here),
* :class:`~.special_ops.BesselLogRatio` (``(nu, x) -> (L, R)``, the order a tensor),
* :class:`~.special_ops.KappaFromMeanResultantLength` (``(dim, m) -> kappa``, Newton's method in a ``lax.while_loop``),
* :class:`~._collapsed_op.CollapsedSharedLoglik` (the shared-mean likelihood and its gradient).

Two kinds of gradient meet here. A graph differentiated by PyTensor (``pytensor.grad``, then compiled with
``mode="JAX"``) holds the gradient as PyTensor's own Ops (each Op's ``L_op``), which PyTensor's JAX backend already
converts. NumPyro and BlackJAX instead differentiate the *jaxified* log-density with ``jax.grad``; for them every
function here is a :func:`jax.custom_jvp` with the exact derivative of the Op: ``dL = R dx``,
``dR = (1 - R^2 - (2 nu + 1) R/x) dx``, ``dkappa = dm / A_d'(kappa)``, and for the collapsed likelihood
``d loglik = grad . dkappa`` and ``d grad = H dkappa`` (the Hessian-vector product, so second derivatives exist
too). Orders, dimensions, Gram matrices and counts are constants of the model: their tangents are ignored
(PyTensor raises for those gradients instead).

The kernel is that of :class:`._kernels.FixedOrderBessel`, written with ``jnp.where`` over both branches: the
collapsed Debye expansion at ``top = nu + shift``, the downward recurrence for orders below ``NU_DEBYE`` and the
power series where ``x <= 2 sqrt(nu + 1)``. For a constant order the coefficients and the number of recurrence
steps are Python constants; for a tensor order they are built per element (the recurrence then runs its largest
length with finished elements held). Float64 needs ``jax.config.update("jax_enable_x64", True)`` (PyTensor's JAX
backend sets it when ``floatX`` is float64, the default). Agreement with the C Ops:
``tests/bayes/test_numba_jax_ops.py``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln
from pytensor.graph.basic import Constant
from pytensor.link.jax.dispatch import jax_funcify
from scipy.special import zeta

from ..special import N_SERIES_TERMS, NU_DEBYE, debye_polynomials
from ._collapsed_op import CollapsedSharedLoglik
from ._kernels import _DEBYE_CUTOFF, _LOG_EVERY, fixed_order
from .special_ops import BesselLogRatio, FixedOrderBesselLogRatio, KappaFromMeanResultantLength

__all__ = ["bessel_pair", "collapsed_shared_loglik", "fixed_order_pair", "kappa_from_mean_resultant_length"]

_LOG_2PI = float(np.log(2.0 * np.pi))
_LOG_2 = float(np.log(2.0))
_POLYS = debye_polynomials()
_MAX_DEGREE = max(len(u) for u in _POLYS)
_POLY_BOUND = [float(np.abs(u).sum()) for u in _POLYS]
_MAX_SHIFT = int(math.ceil(NU_DEBYE))
_LGAMMA1P_SERIES_MAX = 0.2
_LGAMMA1P_COEFFS = [(-1.0) ** k * float(c)
                    for k, c in enumerate(zeta(np.arange(2.0, 32.0), 1.0) / np.arange(2.0, 32.0))]


def _horner(c, p):
    """``c[0] p^(n-1) + ... + c[n-1]``; ``c`` a list of constants or an array whose last axis holds the coefficients."""
    n = len(c) if isinstance(c, (list, tuple, np.ndarray)) else c.shape[-1]
    if n == 0:
        return jnp.zeros_like(p)
    if isinstance(c, (list, tuple, np.ndarray)):
        out = jnp.full_like(p, float(c[0]))
        for a in c[1:]:
            out = out * p + float(a)
        return out
    out = c[..., 0]
    for j in range(1, n):
        out = out * p + c[..., j]
    return out


def _kernel(x, nu, top, shift, c, dc, head, max_shift):
    """(L, R, R/x) elementwise; ``nu, top, shift, head`` scalars or arrays like ``x``; ``c, dc`` highest power first."""
    x = jnp.asarray(x, dtype=jnp.float64)
    bad = ~(x >= 0.0)
    inf = x == jnp.inf
    xs = jnp.where(bad | inf, 1.0, x)
    # as the C code: sqrt(top^2 + x^2) (hypot is slow), x sqrt(1 + (top/x)^2) where x^2 would overflow
    s = jnp.where(xs < 1e150, jnp.sqrt(top * top + xs * xs), xs * jnp.sqrt(1.0 + (top / xs) ** 2))
    p = top / s
    tail = _horner(c, p)
    dtail = _horner(dc, p)
    L = s - top * jnp.log(top + s) - 0.5 * (_LOG_2PI + jnp.log(s)) + jnp.log1p(tail)
    q = 1.0 / (top + s) - (0.5 + p * dtail / (1.0 + tail)) / s / s
    R = xs * q
    if max_shift > 0:
        static = isinstance(shift, int)
        big = xs >= 1.0
        xb = jnp.where(big, xs, 1.0)
        x2 = jnp.where(big, 0.0, xs * xs)
        v = jnp.where(big, xs * q, q)
        prod = jnp.ones_like(xs)
        acc = jnp.zeros_like(xs)
        for i in range(max_shift):
            n2 = 2.0 * (nu + (shift - i))
            new = jnp.where(big, jnp.minimum(1.0 / (n2 / xb + v), 1.0), 1.0 / (n2 + x2 * v))
            if static:
                v = new
                prod = prod * v
            else:
                active = i < shift
                v = jnp.where(active, new, v)
                prod = jnp.where(active, prod * v, prod)
            if (i + 1) % _LOG_EVERY == 0:
                if static:
                    acc = acc + jnp.log(prod)
                    prod = jnp.ones_like(prod)
                else:
                    acc = jnp.where(active, acc + jnp.log(prod), acc)
                    prod = jnp.where(active, 1.0, prod)
        L_s = L - (acc + jnp.log(prod)) + jnp.where(big, shift * jnp.log(xb), 0.0)
        R_s = jnp.where(big, v, xs * v)
        q_s = jnp.where(big, v / xb, v)
        if static:
            L, R, q = L_s, R_s, q_s
        else:
            has = shift > 0
            L, R, q = jnp.where(has, L_s, L), jnp.where(has, R_s, R), jnp.where(has, q_s, q)
    small = xs <= 2.0 * jnp.sqrt(nu + 1.0)

    def with_series(L):
        y = 0.25 * xs * xs
        term = jnp.ones_like(xs)
        series = jnp.zeros_like(xs)
        for j in range(1, N_SERIES_TERMS + 1):
            term = term * (y / (j * (nu + j)))
            series = series + term
        return jnp.where(small, head + jnp.log1p(series), L)

    # the power series only when some argument needs it (rarely, in a sampler: it costs 24 divisions per element)
    L = jax.lax.cond(jnp.any(small), with_series, lambda L: L, L)
    nan = jnp.nan
    L = jnp.where(bad, nan, jnp.where(inf, jnp.inf, L))
    R = jnp.where(bad, nan, jnp.where(inf, 1.0, R))
    q = jnp.where(bad, nan, jnp.where(inf, 0.0, q))
    return L, R, q


def _lgamma1p(nu):
    small = nu < _LGAMMA1P_SERIES_MAX
    ns = jnp.where(small, nu, 0.0)
    acc = jnp.zeros_like(ns)
    for k in range(len(_LGAMMA1P_COEFFS) - 1, -1, -1):
        acc = _LGAMMA1P_COEFFS[k] + ns * acc
    series = ns * (-float(np.euler_gamma) + ns * acc)
    return jnp.where(small, series, gammaln(jnp.where(small, 1.0, nu + 1.0)))


def _order_parameters(nu):
    """Per-element (top, shift, c, dc, head) of orders ``nu`` (an array) as :class:`._kernels.FixedOrderBessel`."""
    shift = jnp.where(nu < NU_DEBYE, jnp.ceil(NU_DEBYE - nu), 0.0)
    top = nu + shift
    coeffs = jnp.zeros(nu.shape + (_MAX_DEGREE,))
    included = jnp.ones(nu.shape, dtype=bool)
    for k in range(1, len(_POLYS)):
        scale = top ** (-float(k))
        included = included & (_POLY_BOUND[k] * scale >= _DEBYE_CUTOFF)
        u = np.zeros(_MAX_DEGREE)
        u[: len(_POLYS[k])] = _POLYS[k]
        coeffs = coeffs + jnp.where(included[..., None], u * scale[..., None], 0.0)
    # highest power first; the zero coefficients above an order's degree lead and leave Horner's sum exact
    c = coeffs[..., ::-1]
    dc = (coeffs[..., 1:] * np.arange(1.0, _MAX_DEGREE))[..., ::-1]
    head = -nu * _LOG_2 - _lgamma1p(nu)
    return top, shift, c, dc, head


def _general(nu, x):
    nu, x = jnp.broadcast_arrays(jnp.asarray(nu, jnp.float64), jnp.asarray(x, jnp.float64))
    ok = (nu >= 0.0) & jnp.isfinite(nu)
    nu_s = jnp.where(ok, nu, 1.0)
    top, shift, c, dc, head = _order_parameters(nu_s)
    L, R, q = _kernel(x, nu_s, top, shift, c, dc, head, _MAX_SHIFT)
    return jnp.where(ok, L, jnp.nan), jnp.where(ok, R, jnp.nan), jnp.where(ok, q, jnp.nan), nu_s


def _ratio_slope(nu, x, R):
    """dR/dx = 1 - R^2 - (2 nu + 1) R/x, with R/x -> 1/(2 nu + 2) at x = 0 (as the Ops' ``L_op``)."""
    positive = x > 0.0
    q = jnp.where(positive, R / jnp.where(positive, x, 1.0), 1.0 / (2.0 * nu + 2.0))
    return 1.0 - R * R - (2.0 * nu + 1.0) * q


@lru_cache(maxsize=64)
def _fixed(nu: float):
    """The elementwise kernel ``x -> (L, R, R/x)`` of order ``nu`` with its constants in Python."""
    k = fixed_order(nu)
    args = (float(k.nu), float(k.top), int(k.shift), [float(a) for a in k._c], [float(a) for a in k._dc],
            float(k._series_head), int(k.shift))
    return lambda x: _kernel(x, *args)


def fixed_order_pair(nu: float):
    """``x -> (L(nu, x), R(nu, x))`` at a constant order, differentiable by :func:`jax.custom_jvp`."""
    return _fixed_pair(float(nu))


@lru_cache(maxsize=64)
def _fixed_pair(nu: float):
    kernel = _fixed(nu)

    @jax.custom_jvp
    def pair(x):
        L, R, _ = kernel(x)
        return L, R

    @pair.defjvp
    def pair_jvp(primals, tangents):
        (x,), (dx,) = primals, tangents
        L, R, _ = kernel(x)
        return (L, R), (R * dx, _ratio_slope(nu, x, R) * dx)

    return pair


@jax.custom_jvp
def bessel_pair(nu, x):
    """``(L(nu, x), R(nu, x))`` for broadcast arrays; the order is not differentiated."""
    L, R, _, _ = _general(nu, x)
    return L, R


@bessel_pair.defjvp
def _bessel_pair_jvp(primals, tangents):
    nu, x = primals
    _, dx = tangents
    L, R, _, nu_s = _general(nu, x)
    x = jnp.broadcast_to(jnp.asarray(x, jnp.float64), R.shape)
    return (L, R), (R * dx, _ratio_slope(nu_s, x, R) * dx)


def _newton(nu, m, kernel):
    """kappa with R(nu, kappa) = m (m in [0, 1)): every element iterates until all relative steps are <= 1e-12."""
    d = 2.0 * nu + 2.0
    x0 = m * (d - m * m) / (1.0 - m * m)

    def cond(state):
        it, _, done = state
        return (~done) & (it < 100)

    def body(state):
        it, x, _ = state
        R = kernel(x)[1]
        positive = x > 0.0
        slope = jnp.where(positive, 1.0 - R * R - (2.0 * nu + 1.0) * R / jnp.where(positive, x, 1.0), 1.0 / d)
        step = (m - R) / slope
        x = jnp.maximum(x + step, 0.0)
        done = (it > 0) & jnp.all(jnp.abs(step) <= 1e-12 * jnp.maximum(x, 1e-300))
        return it + 1, x, done

    return jax.lax.while_loop(cond, body, (0, x0, jnp.array(False)))[1]


def kappa_from_mean_resultant_length(dim, m, *, constant_dim: float | None = None):
    """``kappa = A_d^{-1}(m)`` for broadcast arrays (NaN for m outside [0, 1) or d < 2), differentiable in ``m``.
    ``constant_dim``: the dimension when it is a constant (then the order's coefficients are constants too)."""
    return _kappa_from_mean_resultant_length_fn(constant_dim)(dim, m)


@lru_cache(maxsize=64)
def _kappa_from_mean_resultant_length_fn(constant_dim):
    def solve(dim, m):
        dim, m = jnp.broadcast_arrays(jnp.asarray(dim, jnp.float64), jnp.asarray(m, jnp.float64))
        ok = jnp.isfinite(dim) & (dim >= 2.0) & jnp.isfinite(m) & (m >= 0.0) & (m < 1.0)
        ms = jnp.where(ok, m, 0.5)
        if constant_dim is not None:
            nu = 0.5 * constant_dim - 1.0
            x = _newton(nu, ms, _fixed(nu))
        else:
            nu = 0.5 * jnp.where(ok, dim, 3.0) - 1.0
            top, shift, c, dc, head = _order_parameters(nu)
            x = _newton(nu, ms, lambda v: _kernel(v, nu, top, shift, c, dc, head, _MAX_SHIFT))
        return jnp.where(ok, x, jnp.nan), dim, m

    @jax.custom_jvp
    def kappa(dim, m):
        return solve(dim, m)[0]

    @kappa.defjvp
    def kappa_jvp(primals, tangents):
        k, dim, m = solve(*primals)
        dm = jnp.broadcast_to(tangents[1], k.shape)
        positive = k > 0.0
        slope = jnp.where(positive, 1.0 - m * m - (dim - 1.0) * m / jnp.where(positive, k, 1.0), 1.0 / dim)
        return k, dm / slope

    return kappa


def collapsed_shared_loglik(dim: int):
    """``(kappa (..., J), gram (..., J, J), count (..., J)) -> (loglik (...), dloglik/dkappa (..., J))`` at
    dimension ``dim`` (the function of :class:`~._collapsed_op.CollapsedSharedLoglik`), differentiable in kappa."""
    return _collapsed(int(dim))


@lru_cache(maxsize=64)
def _collapsed(dim: int):
    op = CollapsedSharedLoglik(dim)
    nu, const, log_omega = float(op.nu), float(op.const), float(op.log_omega)
    kernel = _fixed(nu)

    def parts(kappa, gram, count):
        L, R, _ = kernel(kappa)
        gk = jnp.einsum("...ji,...i->...j", gram, kappa)
        s2 = jnp.sum(kappa * gk, axis=-1)
        # past kappa ~ 1e153 the square overflows (_collapsed_op's docstring): scaled by the largest concentration
        m = jnp.max(kappa, axis=-1, keepdims=True)
        m = jnp.where(m > 0.0, m, 1.0)
        scaled = m[..., 0] * jnp.sqrt(jnp.maximum(jnp.sum((kappa / m) * (gk / m), axis=-1), 0.0))
        s = jnp.where(jnp.isfinite(s2), jnp.sqrt(jnp.maximum(s2, 0.0)), scaled)
        Ls, Rs, qs = kernel(s)
        n = jnp.sum(count, axis=-1)
        value = const * (n - 1.0) - jnp.sum(count * L, axis=-1) + Ls - log_omega
        grad = -count * R + qs[..., None] * gk
        return value, grad, R, gk, s, Rs, qs

    @jax.custom_jvp
    def loglik(kappa, gram, count):
        return parts(kappa, gram, count)[:2]

    @loglik.defjvp
    def loglik_jvp(primals, tangents):
        kappa, gram, count = primals
        dk = tangents[0]
        value, grad, R, gk, s, Rs, qs = parts(kappa, gram, count)
        g_dk = jnp.sum(gk * dk, axis=-1)
        positive = s > 0.0
        s_safe = jnp.where(positive, s, 1.0)
        # q(s) = R(s)/s: q' = (R'(s) - q)/s and ds = (G kappa . dk)/s
        dq = jnp.where(positive, (1.0 - Rs * Rs - (2.0 * nu + 1.0) * qs - qs) * g_dk / (s_safe * s_safe), 0.0)
        d_grad = (-count * _ratio_slope(nu, kappa, R) * dk + dq[..., None] * gk
                  + qs[..., None] * jnp.einsum("...ji,...i->...j", gram, dk))
        return (value, grad), (jnp.sum(grad * dk, axis=-1), d_grad)

    return loglik


def _constant_value(var):
    """The single value of a constant tensor input (all elements equal), else None."""
    if isinstance(var, Constant):
        data = np.asarray(var.data, dtype=np.float64)
        if data.size and np.all(data == data.flat[0]):
            return float(data.flat[0])
    return None


@jax_funcify.register(FixedOrderBesselLogRatio)
def jax_funcify_FixedOrderBesselLogRatio(op, node=None, **kwargs):
    pair = fixed_order_pair(op.nu)

    def fixed_order_bessel_log_ratio(x):
        return pair(x)

    return fixed_order_bessel_log_ratio


@jax_funcify.register(BesselLogRatio)
def jax_funcify_BesselLogRatio(op, node=None, **kwargs):
    def bessel_log_ratio(nu, x):
        return bessel_pair(nu, x)

    return bessel_log_ratio


@jax_funcify.register(KappaFromMeanResultantLength)
def jax_funcify_KappaFromMeanResultantLength(op, node=None, **kwargs):
    dim = _constant_value(node.inputs[0]) if node is not None else None
    if dim is not None and not (np.isfinite(dim) and dim >= 2.0):
        dim = None
    fn = _kappa_from_mean_resultant_length_fn(dim)

    def kappa_from_mean_resultant_length_op(dim_, m):
        return fn(dim_, m)

    return kappa_from_mean_resultant_length_op


@jax_funcify.register(CollapsedSharedLoglik)
def jax_funcify_CollapsedSharedLoglik(op, node=None, **kwargs):
    fn = collapsed_shared_loglik(op.dim)

    def collapsed_shared_loglik_op(kappa, gram, count):
        return fn(kappa, gram, count)

    return collapsed_shared_loglik_op
