r"""The collapsed shared-mean log-likelihood and its gradient in one Op (the inner loop of the convergence model).

Per batch element (architecture, input) with concentrations :math:`\kappa \in \mathbb{R}^J`, Gram matrix G and
counts n:

.. math:: \ell = -\tfrac{d}{2}\log(2\pi)(n_\cdot - 1) - \sum_j n_j L(\nu, \kappa_j) + L(\nu, s) - \log\omega_d,
          \qquad s = \sqrt{\kappa^\top G\kappa},

.. math:: \partial\ell/\partial\kappa_j = -n_j R(\nu, \kappa_j) + \frac{R(\nu, s)}{s} (G\kappa)_j

(:math:`\partial L/\partial x = R`, :math:`\partial s/\partial\kappa = G\kappa/s`, and R/x -> 1/(2nu + 2) at
x = 0). As a graph this is a dozen elementwise and reduction nodes, each materialising (inputs, J, J) arrays for
the value and again for the gradient; one C loop computes both with one Bessel evaluation per concentration and
one per input, O(inputs x J^2) arithmetic and nothing else. The gradient output is what ``L_op`` returns, so
NUTS pays for one pass per leapfrog step. The NumPy ``perform`` (Python linker) is the reference.

:math:`\kappa^\top G\kappa` overflows once the concentrations pass about 1e153 (G's diagonal is up to the squared
seed count), far out where a NUTS trajectory can wander. There s is computed as
:math:`m\sqrt{(\kappa/m)^\top (G\kappa/m)}`, m the largest concentration: the plain square made L(s) = inf and the
value +inf, a point NUTS accepted with infinite weight, after which PyMC stopped the fit on "bad initial energy".
The value there is finite and very negative (:math:`s \le \sum_j n_j\kappa_j` while L(x) ~ x).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.link.c.op import COp
from scipy.special import gammaln

from ._kernels import fixed_order, resultant_concentration
from .special_ops import _c_float, _f64, bessel_c_source

_LOG_2PI = float(np.log(2.0 * np.pi))


class CollapsedSharedLoglik(COp):
    """Op ``(kappa (..., J), gram (..., J, J), count (..., J)) -> (loglik (...), dloglik/dkappa (..., J))`` at a
    fixed dimension ``dim`` (module docstring). Leading shapes must be equal (no broadcasting)."""

    __props__ = ("dim",)

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.nu = 0.5 * self.dim - 1.0
        self.const = -0.5 * self.dim * _LOG_2PI
        self.log_omega = float(np.log(2.0) + 0.5 * self.dim * np.log(np.pi) - gammaln(0.5 * self.dim))

    def make_node(self, kappa, gram, count):
        kappa, gram, count = _f64(kappa), _f64(gram), _f64(count)
        if not (kappa.type.ndim >= 1 and gram.type.ndim == kappa.type.ndim + 1 and count.type.ndim == kappa.type.ndim):
            raise ValueError(f"CollapsedSharedLoglik needs kappa (..., J), gram (..., J, J) and count (..., J), got "
                             f"ndims {kappa.type.ndim}, {gram.type.ndim} and {count.type.ndim}.")
        out = pt.tensor(dtype="float64", shape=(None,) * (kappa.type.ndim - 1))
        return Apply(self, [kappa, gram, count], [out, kappa.type()])

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0][:-1], input_shapes[0]]

    def perform(self, node, inputs, output_storage):
        kappa, gram, count = (np.asarray(v, dtype=np.float64) for v in inputs)
        if gram.shape != kappa.shape + kappa.shape[-1:] or count.shape != kappa.shape:
            raise ValueError(f"CollapsedSharedLoglik got shapes {kappa.shape}, {gram.shape}, {count.shape}.")
        kernel = fixed_order(self.nu)
        L, R = kernel(kappa)
        gk = np.einsum("...ji,...i->...j", gram, kappa)
        s = resultant_concentration(kappa, gk)
        Ls, Rs = kernel(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            qs = np.where(s > 0, Rs / np.where(s > 0, s, 1.0), 1.0 / (2.0 * self.nu + 2.0))
        n = count.sum(axis=-1)
        output_storage[0][0] = np.asarray(self.const * (n - 1.0) - np.sum(count * L, axis=-1) + Ls - self.log_omega)
        output_storage[1][0] = -count * R + qs[..., None] * gk

    def connection_pattern(self, node):
        return [[True, True], [True, True], [True, True]]

    def L_op(self, inputs, outputs, output_grads):
        kappa, gram, count = inputs
        g_value, g_grad = output_grads
        if not isinstance(g_grad.type, DisconnectedType):
            g_kappa = grad_not_implemented(self, 0, kappa, "second derivatives of the collapsed likelihood")
        elif isinstance(g_value.type, DisconnectedType):
            g_kappa = pt.zeros_like(kappa)
        else:
            g_kappa = g_value[..., None] * outputs[1]
        return [g_kappa,
                grad_not_implemented(self, 1, gram, "the Gram matrices are data"),
                grad_not_implemented(self, 2, count, "the counts are data")]

    def c_headers(self, **kwargs):
        return ["<math.h>", "<stdlib.h>"]

    def c_code_cache_version(self):
        return (2,)

    def c_support_code_apply(self, node, name):
        return bessel_c_source(self.nu, f"sawdist_collapsed_bessel_{name}")

    def c_code(self, node, name, inputs, outputs, sub):
        kappa, gram, count = inputs
        value, grad = outputs
        fail = sub["fail"]
        bessel = f"sawdist_collapsed_bessel_{name}"
        return f"""
{{
    PyArrayObject *kc = PyArray_GETCONTIGUOUS({kappa});
    PyArrayObject *gc = PyArray_GETCONTIGUOUS({gram});
    PyArrayObject *cc = PyArray_GETCONTIGUOUS({count});
    double *gk = NULL;
    int ok = kc && gc && cc;
    int nd = ok ? PyArray_NDIM(kc) : 0;
    npy_intp J = ok ? PyArray_DIMS(kc)[nd - 1] : 0;
    if (ok) {{
        for (int i = 0; i < nd; ++i) {{
            if (PyArray_DIMS(gc)[i] != PyArray_DIMS(kc)[i] || PyArray_DIMS(cc)[i] != PyArray_DIMS(kc)[i]) ok = 0;
        }}
        if (PyArray_DIMS(gc)[nd] != J) ok = 0;
        if (!ok) PyErr_SetString(PyExc_ValueError, "CollapsedSharedLoglik: kappa, gram and count shapes differ");
    }}
    if (ok) {{
        Py_XDECREF({value});
        Py_XDECREF({grad});
        {value} = (PyArrayObject *)PyArray_EMPTY(nd - 1, PyArray_DIMS(kc), NPY_FLOAT64, 0);
        {grad} = (PyArrayObject *)PyArray_EMPTY(nd, PyArray_DIMS(kc), NPY_FLOAT64, 0);
        gk = (double *)malloc((J > 0 ? J : 1) * sizeof(double));
        ok = {value} && {grad} && gk;
    }}
    if (ok) {{
        const double *kp = (const double *)PyArray_DATA(kc);
        const double *gp = (const double *)PyArray_DATA(gc);
        const double *cp = (const double *)PyArray_DATA(cc);
        double *vp = (double *)PyArray_DATA({value});
        double *dp = (double *)PyArray_DATA({grad});
        npy_intp B = J > 0 ? PyArray_SIZE(kc) / J : PyArray_SIZE({value});
        for (npy_intp b = 0; b < B; ++b) {{
            const double *k = kp + b * J, *G = gp + b * J * J, *c = cp + b * J;
            double *d = dp + b * J;
            double n = 0.0, acc = 0.0, s2 = 0.0, L, R, q;
            for (npy_intp j = 0; j < J; ++j) {{
                {bessel}(k[j], &L, &R, &q);
                n += c[j];
                acc -= c[j] * L;
                d[j] = -c[j] * R;
                double t = 0.0;
                for (npy_intp i = 0; i < J; ++i) t += G[j * J + i] * k[i];
                gk[j] = t;
                s2 += k[j] * t;
            }}
            double s = sqrt(s2 > 0.0 ? s2 : 0.0);
            if (!isfinite(s2)) {{
                /* kappa' G kappa overflowed (module docstring): m sqrt((kappa/m)' (G kappa/m)) */
                double m = 0.0, t2 = 0.0;
                for (npy_intp j = 0; j < J; ++j) if (k[j] > m) m = k[j];
                for (npy_intp j = 0; j < J; ++j) t2 += (k[j] / m) * (gk[j] / m);
                s = m * sqrt(t2 > 0.0 ? t2 : 0.0);
            }}
            {bessel}(s, &L, &R, &q);
            vp[b] = {_c_float(self.const)} * (n - 1.0) + acc + L - {_c_float(self.log_omega)};
            for (npy_intp j = 0; j < J; ++j) d[j] += q * gk[j];
        }}
    }}
    free(gk);
    Py_XDECREF(kc);
    Py_XDECREF(gc);
    Py_XDECREF(cc);
    if (!ok) {{
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_MemoryError, "CollapsedSharedLoglik: allocation failed");
        {fail};
    }}
}}
"""
