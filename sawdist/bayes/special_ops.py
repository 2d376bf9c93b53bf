r"""Bessel-function quantities of directional statistics as PyTensor graphs with exact gradients.

One Op, :class:`BesselLogRatio`, evaluates in NumPy (``perform``) the pair

* ``L(nu, x) = log I_nu(x) - nu log x``, the *reduced* logarithm of the modified Bessel function, and
* ``R(nu, x) = I_{nu+1}(x) / I_nu(x)``, the Bessel ratio (the vMF mean resultant length ``A_d`` at nu = d/2 - 1),

with the accuracy of :mod:`sawdist.special` (orders up to 1e5, arguments up to the largest float), using the
fixed-order kernels of :mod:`._kernels`. Its gradient is exact, from the identities

.. math:: \frac{\partial L}{\partial x} = \frac{I_\nu'(x)}{I_\nu(x)} - \frac{\nu}{x} = R(\nu, x), \qquad
          \frac{\partial R}{\partial x} = 1 - R^2 - \frac{2\nu + 1}{x} R

(DLMF 10.29.2), and the second one is again a graph in R, so derivatives of every order exist. The order is not
differentiated (it is a constant of the model, d/2 - 1); asking for its gradient raises.

Public graph functions: :func:`log_bessel_iv`, :func:`bessel_ratio`, :func:`vmf_log_normalizer`,
:func:`vmf_mean_resultant_length`, :func:`vmf_kappa_from_mean_resultant_length` and :func:`log_sphere_area`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.c.op import COp

from ..special import N_SERIES_TERMS
from ._kernels import _LOG_EVERY, bessel_L_R, fixed_order, kappa_from_mean_resultant_length

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike
    from pytensor.graph.basic import Variable
    from pytensor.graph.fg import FunctionGraph

    #: what the graph functions take: a number, an array or a PyTensor variable
    TensorLike = ArrayLike | Variable
    #: PyTensor's ``output_storage`` of :meth:`Op.perform`: one cell per output
    OutputStorage = list[list[np.ndarray | None]]

__all__ = [
    "BesselLogRatio",
    "FixedOrderBesselLogRatio",
    "bessel_ratio",
    "log_bessel_iv",
    "log_sphere_area",
    "reduced_log_bessel_iv",
    "vmf_kappa_from_mean_resultant_length",
    "vmf_log_normalizer",
    "vmf_mean_resultant_length",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _f64(value):
    """``value`` as a float64 tensor (Python numbers would otherwise become float32 constants where exact)."""
    return pt.cast(pt.as_tensor_variable(value), "float64")


class BesselLogRatio(Op):
    """Op ``(nu, x) -> (L(nu, x), R(nu, x))`` on broadcast float64 tensors of equal shape (see the module docstring).

    Negative or NaN arguments give NaN; ``x = inf`` gives ``(inf, 1)``.
    """

    __props__ = ()

    def make_node(self, nu: TensorLike, x: TensorLike) -> Apply:
        nu = _f64(nu)
        x = _f64(x)
        if nu.type.ndim != x.type.ndim:
            raise ValueError(f"BesselLogRatio needs 'nu' and 'x' of equal ndim, got {nu.type.ndim} and {x.type.ndim}.")
        return Apply(self, [nu, x], [x.type(), x.type()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], output_storage: OutputStorage) -> None:
        nu, x = inputs
        L, R = bessel_L_R(nu, x)
        output_storage[0][0] = L
        output_storage[1][0] = R

    def infer_shape(self, fgraph: FunctionGraph, node: Apply,
                    input_shapes: Sequence[tuple[Variable, ...]]) -> list[tuple[Variable, ...]]:
        return [input_shapes[1], input_shapes[1]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        return [[True, True], [True, True]]

    def L_op(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
             output_grads: Sequence[Variable]) -> list[Variable]:
        nu, x = inputs
        _, R = outputs
        g_L, g_R = output_grads
        # R/x -> 1/(2 nu + 2) as x -> 0 (leading term of the series); x_safe keeps 0/0 out of both branches.
        g_x = _ratio_grad(nu, x, R, g_L, g_R)
        return [grad_not_implemented(self, 0, nu, "the order nu is a constant of the model"), g_x]


_bessel_log_ratio = BesselLogRatio()


def _ratio_grad(nu, x, R, g_L, g_R):
    """The x-gradient shared by both Ops: ``g_L * R + g_R * dR/dx``."""
    g_x = pt.zeros_like(x)
    if not isinstance(g_L.type, DisconnectedType):
        g_x = g_x + g_L * R
    if not isinstance(g_R.type, DisconnectedType):
        positive = pt.gt(x, 0.0)
        x_safe = pt.switch(positive, x, 1.0)
        q = pt.switch(positive, R / x_safe, 1.0 / (2.0 * nu + 2.0))
        g_x = g_x + g_R * (1.0 - R * R - (2.0 * nu + 1.0) * q)
    return g_x


def _c_float(value: float) -> str:
    """A C double literal that round-trips ``value`` exactly (C99 hexadecimal float)."""
    return float(value).hex()


def bessel_c_source(nu: float, fname: str) -> str:
    """C source of ``static void fname(double x, double *L, double *R, double *q)``: the kernel of
    :class:`._kernels.FixedOrderBessel` at order ``nu`` (L(nu, x), R(nu, x) and q = R/x, finite at x = 0)."""
    k = fixed_order(float(nu))

    def horner(coeffs):
        if len(coeffs) == 0:
            return "0.0"
        return "".join("(" for _ in coeffs[1:]) + _c_float(coeffs[0]) + "".join(
            f" * p + {_c_float(a)})" for a in coeffs[1:])

    shift = ""
    if k.shift:
        # as in _kernels.FixedOrderBessel: recur on Q = R/x for x < 1 and on R for x >= 1 (x * x overflows from
        # x ~ 1.3e154), L(nu) = L(top) - sum log v + [x >= 1] M log x
        shift = f"""
    {{
        const int big = x >= 1.0;
        const double x2 = big ? 0.0 : x * x;
        double v = big ? x * q : q;
        double prod = 1.0, acc = 0.0;
        int i = 0;
        for (int step = {k.shift}; step > 0; --step, ++i) {{
            const double n2 = 2.0 * ({_c_float(k.nu)} + step);
            v = big ? fmin(1.0 / (n2 / x + v), 1.0) : 1.0 / (n2 + x2 * v);
            prod *= v;
            if ((i + 1) % {_LOG_EVERY} == 0) {{ acc += log(prod); prod = 1.0; }}
        }}
        L -= acc + log(prod);
        if (big) {{ L += {k.shift}.0 * log(x); R = v; q = v / x; }} else {{ q = v; R = x * v; }}
    }}"""
    return f"""
static void {fname}(double x, double *L_out, double *R_out, double *q_out) {{
    if (!(x >= 0.0)) {{ *L_out = NAN; *R_out = NAN; *q_out = NAN; return; }}
    if (isinf(x)) {{ *L_out = INFINITY; *R_out = 1.0; *q_out = 0.0; return; }}
    const double top = {_c_float(k.top)};
    const double s = x < 1e150 ? sqrt(top * top + x * x) : hypot(top, x);
    const double p = top / s;
    const double tail = {horner(k._c)};
    const double dtail = {horner(k._dc)};
    double L = s - top * log(top + s) - 0.5 * ({_c_float(_LOG_2PI)} + log(s)) + log1p(tail);
    double q = 1.0 / (top + s) - (0.5 + p * dtail / (1.0 + tail)) / s / s;
    double R = x * q;{shift}
    if (x <= {_c_float(2.0 * np.sqrt(k.nu + 1.0))}) {{
        const double y = 0.25 * x * x;
        double term = 1.0, series = 0.0;
        for (int j = 1; j <= {N_SERIES_TERMS}; ++j) {{
            term *= y / (j * ({_c_float(k.nu)} + j));
            series += term;
        }}
        L = {_c_float(k._series_head)} + log1p(series);
    }}
    *L_out = L;
    *R_out = R;
    *q_out = q;
}}
"""


class FixedOrderBesselLogRatio(COp):
    r"""Op ``x -> (L(nu, x), R(nu, x))`` for one order ``nu`` fixed when the graph is built (a model constant).

    The same kernel as :class:`BesselLogRatio` (:class:`._kernels.FixedOrderBessel`), with the order-dependent
    work done once: the collapsed Debye coefficients are compiled into C code as constants, so one evaluation costs
    a few floating-point operations per element and no Python (the NumPy ``perform`` serves the Python linker,
    e.g. ``mode="FAST_COMPILE"``). Same special values: NaN for negative or NaN x, (inf, 1) at x = inf.
    """

    __props__ = ("nu",)

    def __init__(self, nu: float) -> None:
        nu = float(nu)
        if not (np.isfinite(nu) and nu >= 0):
            raise ValueError(f"'nu' must be a finite order >= 0, got {nu!r}.")
        self.nu = nu

    def make_node(self, x: TensorLike) -> Apply:
        x = _f64(x)
        return Apply(self, [x], [x.type(), x.type()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], output_storage: OutputStorage) -> None:
        L, R = fixed_order(self.nu)(inputs[0])
        output_storage[0][0] = L
        output_storage[1][0] = R

    def infer_shape(self, fgraph: FunctionGraph, node: Apply,
                    input_shapes: Sequence[tuple[Variable, ...]]) -> list[tuple[Variable, ...]]:
        return [input_shapes[0], input_shapes[0]]

    def L_op(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
             output_grads: Sequence[Variable]) -> list[Variable]:
        (x,) = inputs
        return [_ratio_grad(self.nu, x, outputs[1], *output_grads)]

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<math.h>"]

    def c_code_cache_version(self) -> tuple[int, ...]:
        return (5,)

    def c_support_code_apply(self, node: Apply, name: str) -> str:
        return bessel_c_source(self.nu, f"sawdist_bessel_{name}")

    def c_code(self, node: Apply, name: str, inputs: Sequence[str], outputs: Sequence[str],
               sub: dict[str, str]) -> str:
        (x,) = inputs
        L, R = outputs
        fail = sub["fail"]
        return f"""
{{
    PyArrayObject *xc = PyArray_GETCONTIGUOUS({x});
    if (!xc) {fail};
    int nd = PyArray_NDIM(xc);
    npy_intp *dims = PyArray_DIMS(xc);
    Py_XDECREF({L});
    Py_XDECREF({R});
    {L} = (PyArrayObject *)PyArray_EMPTY(nd, dims, NPY_FLOAT64, 0);
    {R} = (PyArrayObject *)PyArray_EMPTY(nd, dims, NPY_FLOAT64, 0);
    if (!{L} || !{R}) {{ Py_DECREF(xc); {fail}; }}
    const double *xp = (const double *)PyArray_DATA(xc);
    double *Lp = (double *)PyArray_DATA({L});
    double *Rp = (double *)PyArray_DATA({R});
    npy_intp n = PyArray_SIZE(xc);
    double q;
    for (npy_intp i = 0; i < n; ++i) sawdist_bessel_{name}(xp[i], Lp + i, Rp + i, &q);
    Py_DECREF(xc);
}}
"""


def _constant_order(nu):
    """The order as a Python float when it is a 0-d constant (the case of every model here), else None."""
    if isinstance(nu, (int, float, np.integer, np.floating)):
        return float(nu)
    if isinstance(nu, np.ndarray):
        return float(nu) if nu.ndim == 0 else None
    nu = pt.as_tensor_variable(nu)
    if nu.type.ndim != 0:
        return None
    try:
        return float(pt.get_underlying_scalar_constant_value(nu))
    except Exception:  # noqa: BLE001 - not a constant: the general Op
        return None


def _pair(nu, x):
    order = _constant_order(nu)
    if order is not None and np.isfinite(order) and order >= 0:
        return FixedOrderBesselLogRatio(order)(x)
    nu = _f64(nu)
    x = _f64(x)
    nu_b, x_b = pt.broadcast_arrays(nu, x)
    return _bessel_log_ratio(nu_b, x_b)


def reduced_log_bessel_iv(nu: TensorLike, x: TensorLike) -> pt.TensorVariable:
    r""":math:`L(\nu, x) = \log I_\nu(x) - \nu \log x`, finite at x = 0, with gradient :math:`R(\nu, x)`."""
    return _pair(nu, x)[0]


def log_bessel_iv(nu: TensorLike, x: TensorLike) -> pt.TensorVariable:
    r""":math:`\log I_\nu(x)` as a PyTensor graph (``-inf`` at x = 0 for nu > 0, ``0`` for nu = 0).

    Parameters
    ----------
    nu : tensor_like
        Order >= 0 (not differentiated).
    x : tensor_like
        Argument >= 0.

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from sawdist.bayes.special_ops import log_bessel_iv
    >>> x = pt.dscalar("x")
    >>> round(float(log_bessel_iv(1535.0, x).eval({x: 500.0})), 8)  # mpmath: -1215.1735099170992...
    -1215.17350992
    >>> round(float(pt.grad(log_bessel_iv(1535.0, x), x).eval({x: 500.0})), 12)  # R + nu/x
    3.228665500505
    """
    nu = _f64(nu)
    x = _f64(x)
    # nu log x with 0 log 0 = 0, and no NaN gradient at x = 0 for nu = 0
    nu_log_x = pt.switch(pt.eq(nu, 0.0), 0.0, nu * pt.log(pt.switch(pt.eq(nu, 0.0), 1.0, x)))
    return reduced_log_bessel_iv(nu, x) + nu_log_x


def bessel_ratio(nu: TensorLike, x: TensorLike) -> pt.TensorVariable:
    r""":math:`I_{\nu+1}(x) / I_\nu(x)` as a PyTensor graph, with :math:`\partial_x R = 1 - R^2 - (2\nu+1)R/x`."""
    return _pair(nu, x)[1]


def log_sphere_area(dim: TensorLike) -> pt.TensorVariable:
    r""":math:`\log \omega_d = \log 2 + (d/2)\log\pi - \log\Gamma(d/2)`, the log surface area of :math:`S^{d-1}`."""
    dim = _f64(dim)
    return np.log(2.0) + 0.5 * dim * np.log(np.pi) - pt.gammaln(0.5 * dim)


def vmf_log_normalizer(dim: TensorLike, kappa: TensorLike) -> pt.TensorVariable:
    r""":math:`\log C_d(\kappa) = -(d/2)\log 2\pi - L(d/2 - 1, \kappa)`, the vMF log-normaliser, as a graph.

    Its gradient in kappa is ``-A_d(kappa)`` (minus the mean resultant length).

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.bayes.special_ops import vmf_log_normalizer
    >>> bool(np.isclose(vmf_log_normalizer(3, 1.0).eval(), -np.log(4 * np.pi * np.sinh(1.0)), rtol=1e-14))
    True
    """
    dim = _f64(dim)
    return -0.5 * dim * _LOG_2PI - reduced_log_bessel_iv(0.5 * dim - 1.0, kappa)


def vmf_mean_resultant_length(dim: TensorLike, kappa: TensorLike) -> pt.TensorVariable:
    r""":math:`A_d(\kappa) = I_{d/2}(\kappa) / I_{d/2-1}(\kappa)` as a graph."""
    dim = _f64(dim)
    return bessel_ratio(0.5 * dim - 1.0, kappa)


def _kappa_from_mean_resultant_length_numpy(dim, m):
    dim, m = np.broadcast_arrays(np.asarray(dim, dtype=np.float64), np.asarray(m, dtype=np.float64))
    out = np.full(m.shape, np.nan)
    for value in np.unique(dim[np.isfinite(dim) & (dim >= 2)]):
        sel = dim == value
        out[sel] = kappa_from_mean_resultant_length(0.5 * value - 1.0, m[sel])
    return out


class KappaFromMeanResultantLength(Op):
    r"""Op ``(dim, m) -> kappa`` with :math:`A_d(\kappa) = m` (Newton's method on the fixed-order kernel).

    Gradient by the implicit-function theorem: :math:`d\kappa/dm = 1 / A_d'(\kappa)` with
    :math:`A_d' = 1 - A_d^2 - (d-1) A_d / \kappa` (-> 1/d as kappa -> 0). ``m`` outside [0, 1) gives NaN.
    """

    __props__ = ()

    def make_node(self, dim: TensorLike, m: TensorLike) -> Apply:
        dim = _f64(dim)
        m = _f64(m)
        if dim.type.ndim != m.type.ndim:
            raise ValueError(f"KappaFromMeanResultantLength needs 'dim' and 'm' of equal ndim, got {dim.type.ndim} "
                             f"and {m.type.ndim}.")
        return Apply(self, [dim, m], [m.type()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], output_storage: OutputStorage) -> None:
        dim, m = inputs
        output_storage[0][0] = _kappa_from_mean_resultant_length_numpy(dim, m)

    def infer_shape(self, fgraph: FunctionGraph, node: Apply,
                    input_shapes: Sequence[tuple[Variable, ...]]) -> list[tuple[Variable, ...]]:
        return [input_shapes[1]]

    def L_op(self, inputs: Sequence[Variable], outputs: Sequence[Variable],
             output_grads: Sequence[Variable]) -> list[Variable]:
        dim, m = inputs
        (kappa,) = outputs
        (g,) = output_grads
        positive = pt.gt(kappa, 0.0)
        kappa_safe = pt.switch(positive, kappa, 1.0)
        slope = pt.switch(positive, 1.0 - m * m - (dim - 1.0) * m / kappa_safe, 1.0 / dim)
        return [grad_not_implemented(self, 0, dim, "the dimension is a constant of the model"), g / slope]


_kappa_from_mean_resultant_length = KappaFromMeanResultantLength()


def vmf_kappa_from_mean_resultant_length(dim: TensorLike, mean_resultant_length: TensorLike) -> pt.TensorVariable:
    r"""The concentration :math:`\kappa = A_d^{-1}(m)` of a mean resultant length m as a graph, with gradient
    :math:`1/A_d'(\kappa)`."""
    dim = _f64(dim)
    m = _f64(mean_resultant_length)
    dim_b, m_b = pt.broadcast_arrays(dim, m)
    return _kappa_from_mean_resultant_length(dim_b, m_b)
