r"""Hyperspherical distributions for PyMC: :class:`VonMisesFisher`, :class:`PowerSpherical`, and the laws of their
cosine ``t = mu'u`` (:class:`VonMisesFisherCosine`, :class:`PowerSphericalCosine`) for one-dimensional models.

Each is the usual PyMC pair: a :class:`~pytensor.tensor.random.op.RandomVariable` whose ``rng_fn`` draws with the
samplers of :mod:`sawdist.distributions` (Wood's algorithm for the vMF cosine, a Beta draw for the power spherical
one, and the O(d) tangent-normal construction), and a :class:`pymc.Continuous` subclass with ``logp``,
``support_point`` and parameter checks. Densities are with respect to the surface measure of :math:`S^{d-1}`
(cosine laws: Lebesgue measure on [-1, 1]); the vMF normaliser comes from :mod:`.special_ops` and is accurate for
d up to 2e5.

The dimension d is the length of the last axis of ``mu``; ``kappa`` broadcasts against ``mu.shape[:-1]``.
Values off the sphere have log density ``-inf``: beyond :func:`sawdist.checks.unit_tolerance` of float32 data,
``|‖x‖ - 1| > 10 eps32 sqrt(d)`` (about ``1.2e-6 sqrt(d)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytensor.tensor as pt
from pymc.distributions.continuous import Continuous
from pymc.distributions.dist_math import check_parameters
from pymc.distributions.shape_utils import rv_size_is_none
from pymc.distributions.transforms import Interval, Transform, _default_transform
from pytensor.graph.basic import Constant, Variable
from pytensor.tensor.random.op import RandomVariable

from .. import distributions as _sd
from ..checks import check_kappa, check_unit_vectors, unit_tolerance
from .special_ops import _f64, log_sphere_area, vmf_log_normalizer

if TYPE_CHECKING:
    from .special_ops import TensorLike

__all__ = ["PowerSpherical", "PowerSphericalCosine", "SphereTransform", "VonMisesFisher", "VonMisesFisherCosine",
           "sphere"]

#: The precision whose unit-norm tolerance a value must meet. PyMC casts observed data to float64, so a value may be
#: float32 data (a saliency file) that the NumPy distributions would check at float32's tolerance: the graph cannot
#: see that, and accepts what they accept. (Before the one tolerance, this was 1e-6, below float32's at every d.)
_VALUE_PRECISION = np.float32


def _broadcast_params(mu, kappa, size):
    """mu (..., d) and kappa (...) broadcast to the full batch shape ``size`` (when given)."""
    mu = np.asarray(mu, dtype=np.float64)
    kappa = np.asarray(kappa, dtype=np.float64)
    if size is None:
        batch = np.broadcast_shapes(mu.shape[:-1], kappa.shape)
    else:
        batch = tuple(size)
    return np.broadcast_to(mu, batch + mu.shape[-1:]), np.broadcast_to(kappa, batch)


class _SphereRV(RandomVariable):
    signature = "(d),()->(d)"
    dtype = "floatX"
    _generator = None

    @classmethod
    def rng_fn(cls, rng, mu, kappa, size):
        mu, kappa = _broadcast_params(mu, kappa, size)
        if kappa.ndim == 0:
            # sawdist's samplers fail on an empty batch shape with size=None (reported upstream); draw one and drop
            # the sample axis.
            return cls._generator.rvs(mu, kappa, size=1, rng=rng)[0]
        return cls._generator.rvs(mu, kappa, rng=rng)


class VonMisesFisherRV(_SphereRV):
    name = "vonmises_fisher"
    _print_name = ("VonMisesFisher", "\\operatorname{VonMisesFisher}")
    _generator = _sd.vonmises_fisher


class PowerSphericalRV(_SphereRV):
    name = "power_spherical"
    _print_name = ("PowerSpherical", "\\operatorname{PowerSpherical}")
    _generator = _sd.power_spherical


vonmises_fisher = VonMisesFisherRV()
power_spherical = PowerSphericalRV()


class SphereTransform(Transform):
    r"""Unconstrained parametrisation of the sphere for sampling: ``u = z / ‖z‖`` with z in :math:`\mathbb{R}^d`.

    The map is not one-to-one (every ray maps to one point), so the "Jacobian" term is a density for the radius
    that makes the joint law of z proper and leaves the law of u untouched:
    :math:`\log J(z) = -‖z‖^2/2 - (d/2)\log 2\pi + \log\omega_d`. With it, z has density
    :math:`f(z/‖z‖)\,\omega_d\,\phi_d(z)` (``phi_d`` the standard normal density), whose direction has density
    f and whose radius is chi-distributed and independent of it — the construction of Stan's ``unit_vector``.
    A uniform prior (kappa = 0) gives exactly ``z ~ N(0, I)``, the "normalised Gaussian".
    """

    name = "sphere"
    ndim_supp = 1

    def forward(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        return pt.as_tensor_variable(value)

    def backward(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        return value / pt.sqrt(pt.sum(value * value, axis=-1, keepdims=True))

    def log_jac_det(self, value: pt.TensorVariable, *inputs: Variable) -> pt.TensorVariable:
        d = pt.cast(value.shape[-1], "float64")
        return -0.5 * pt.sum(value * value, axis=-1) - 0.5 * d * np.log(2.0 * np.pi) + log_sphere_area(d)


sphere = SphereTransform()


def _on_sphere(value):
    d = pt.cast(value.shape[-1], "float64")
    return pt.le(pt.abs(pt.sqrt(pt.sum(value * value, axis=-1)) - 1.0), unit_tolerance(d, _VALUE_PRECISION))


def _known(value):
    """The value of a parameter known when the graph is built (a number, an array or a constant), else None."""
    if isinstance(value, Constant):
        return value.data
    if isinstance(value, Variable):
        return None
    return value


def _check_parameters(res, kappa, mu=None, dim=None):
    """``check_parameters`` on the parameters, as the NumPy distributions check them: kappa >= 0 and finite (NaN
    fails both; inf gave a NaN density), mu of unit norm within ``10 eps sqrt(d)`` of its dtype (a non-unit or zero
    mu silently changed the density: 2 e_1 gave 0.1646 instead of -1.957), dim >= 2 for the cosine laws.

    Conditions are graph nodes, so symbolic parameters are checked at evaluation (ParameterValueError). Where a
    parameter is known when the graph is built and fails, the message also carries the one-sentence error of the
    NumPy distributions, which names the argument and the value."""
    conditions = [pt.ge(kappa, 0.0), pt.lt(kappa, np.inf)]
    msg = "kappa >= 0, kappa finite"
    if mu is not None:
        norm = pt.sqrt(pt.sum(mu * mu, axis=-1))
        tol = unit_tolerance(pt.cast(mu.shape[-1], "float64"), mu.dtype)  # the NumPy distributions' check of mu
        conditions.append(pt.le(pt.abs(norm - 1.0), tol))
        msg += ", mu a unit vector (|norm - 1| <= 10 eps sqrt(d))"
    if dim is not None:
        conditions.append(pt.ge(dim, 2))
        msg += ", dim >= 2"
    try:
        if mu is not None and (value := _known(mu)) is not None:
            check_unit_vectors(value, "mu", renormalize=False)
        if (value := _known(kappa)) is not None:
            check_kappa(value, "kappa")
    except ValueError as exc:
        msg = f"{msg}: {exc}"
    return check_parameters(res, *conditions, msg=msg)


def _sphere_support_point(rv, size, mu, kappa):
    point = mu / pt.sqrt(pt.sum(mu * mu, axis=-1, keepdims=True)) + pt.zeros_like(kappa)[..., None]
    if not rv_size_is_none(size):
        point = pt.broadcast_to(point, pt.concatenate([size, [mu.shape[-1]]]))
    return point


def power_spherical_log_normalizer(dim: TensorLike, kappa: TensorLike) -> pt.TensorVariable:
    r"""log c of the power spherical law (De Cao & Aziz 2020):
    :math:`-\{(\alpha+\beta)\log 2 + \beta\log\pi + \log\Gamma(\alpha) - \log\Gamma(\alpha+\beta)\}`,
    :math:`\alpha = (d-1)/2 + \kappa`, :math:`\beta = (d-1)/2`."""
    dim = _f64(dim)
    beta = 0.5 * (dim - 1.0)
    alpha = beta + kappa
    return -((alpha + beta) * np.log(2.0) + beta * np.log(np.pi) + pt.gammaln(alpha) - pt.gammaln(alpha + beta))


class VonMisesFisher(Continuous):
    r"""Von Mises–Fisher distribution on :math:`S^{d-1}`: :math:`f(u) = C_d(\kappa) e^{\kappa\mu^\top u}`.

    Parameters
    ----------
    mu : tensor_like, shape (..., d)
        Mean direction(s), unit vectors (d >= 2, known when the graph is built or from the value).
    kappa : tensor_like
        Concentration >= 0; ``kappa = 0`` is the uniform distribution.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from sawdist.bayes import VonMisesFisher
    >>> with pm.Model() as model:
    ...     z = pm.Normal("z", size=64)
    ...     mu = z / pm.math.sqrt(pm.math.sum(z**2))
    ...     u = VonMisesFisher("u", mu=mu, kappa=50.0, size=3)
    >>> pm.draw(u, random_seed=0).shape
    (3, 64)
    """

    rv_op = vonmises_fisher
    rv_type = VonMisesFisherRV

    @classmethod
    def dist(cls, mu: TensorLike, kappa: TensorLike, **kwargs: Any) -> pt.TensorVariable:
        return super().dist([pt.as_tensor_variable(mu), pt.as_tensor_variable(kappa)], **kwargs)

    def support_point(rv: pt.TensorVariable, size: pt.TensorVariable | None, mu: pt.TensorVariable,
                      kappa: pt.TensorVariable) -> pt.TensorVariable:
        return _sphere_support_point(rv, size, mu, kappa)

    def logp(value: pt.TensorVariable, mu: pt.TensorVariable, kappa: pt.TensorVariable) -> pt.TensorVariable:
        dim = pt.cast(value.shape[-1], "float64")
        t = pt.sum(value * mu, axis=-1)
        res = pt.switch(_on_sphere(value), kappa * t + vmf_log_normalizer(dim, kappa), -np.inf)
        return _check_parameters(res, kappa, mu)


class PowerSpherical(Continuous):
    r"""Power spherical distribution on :math:`S^{d-1}`: :math:`f(u) = c\,(1 + \mu^\top u)^\kappa` (De Cao & Aziz 2020).

    Parameters
    ----------
    mu : tensor_like, shape (..., d)
        Mean direction(s), unit vectors.
    kappa : tensor_like
        Concentration >= 0; ``kappa = 0`` is the uniform distribution.
    """

    rv_op = power_spherical
    rv_type = PowerSphericalRV

    @classmethod
    def dist(cls, mu: TensorLike, kappa: TensorLike, **kwargs: Any) -> pt.TensorVariable:
        return super().dist([pt.as_tensor_variable(mu), pt.as_tensor_variable(kappa)], **kwargs)

    def support_point(rv: pt.TensorVariable, size: pt.TensorVariable | None, mu: pt.TensorVariable,
                      kappa: pt.TensorVariable) -> pt.TensorVariable:
        return _sphere_support_point(rv, size, mu, kappa)

    def logp(value: pt.TensorVariable, mu: pt.TensorVariable, kappa: pt.TensorVariable) -> pt.TensorVariable:
        dim = pt.cast(value.shape[-1], "float64")
        t = pt.clip(pt.sum(value * mu, axis=-1), -1.0, 1.0)
        # kappa log(1 + t), with 0 log 0 = 0 at kappa = 0
        shape_term = pt.switch(pt.eq(kappa, 0.0), 0.0, kappa * pt.log1p(t))
        res = pt.switch(_on_sphere(value), shape_term + power_spherical_log_normalizer(dim, kappa), -np.inf)
        return _check_parameters(res, kappa, mu)


# --- cosine laws ---------------------------------------------------------------------------------------------------


class _CosineRV(RandomVariable):
    signature = "(),()->()"
    dtype = "floatX"
    _generator = None

    @classmethod
    def rng_fn(cls, rng, dim, kappa, size):
        dim = np.asarray(dim)
        if dim.ndim and np.any(dim != dim.flat[0]):
            raise ValueError(f"'dim' must be one integer for all draws, got {dim!r}.")
        d = int(dim.flat[0])
        batch = tuple(size) if size is not None else np.broadcast_shapes(dim.shape, np.shape(kappa))
        mu = np.zeros(d)
        mu[0] = 1.0
        return cls._generator(mu, np.broadcast_to(np.asarray(kappa, dtype=np.float64), batch)).cosine.rvs(rng=rng)


class VonMisesFisherCosineRV(_CosineRV):
    name = "vonmises_fisher_cosine"
    _print_name = ("VonMisesFisherCosine", "\\operatorname{VonMisesFisherCosine}")
    _generator = _sd.vonmises_fisher


class PowerSphericalCosineRV(_CosineRV):
    name = "power_spherical_cosine"
    _print_name = ("PowerSphericalCosine", "\\operatorname{PowerSphericalCosine}")
    _generator = _sd.power_spherical


def _log1m_t2(t):
    return pt.log1p(-t) + pt.log1p(t)


class VonMisesFisherCosine(Continuous):
    r"""Law of the cosine :math:`t = \mu^\top u` of a vMF on :math:`S^{d-1}`, on [-1, 1]:
    :math:`f_T(t) = C_d(\kappa)\,\omega_{d-1}\,e^{\kappa t}(1 - t^2)^{(d-3)/2}`.

    Parameters
    ----------
    dim : int
        Ambient dimension d >= 2 (not a random quantity).
    kappa : tensor_like
        Concentration >= 0.
    """

    rv_op = VonMisesFisherCosineRV()
    rv_type = VonMisesFisherCosineRV

    @classmethod
    def dist(cls, dim: TensorLike, kappa: TensorLike, **kwargs: Any) -> pt.TensorVariable:
        return super().dist([pt.cast(pt.as_tensor_variable(dim), "int64"), pt.as_tensor_variable(kappa)], **kwargs)

    def support_point(rv: pt.TensorVariable, size: pt.TensorVariable | None, dim: pt.TensorVariable,
                      kappa: pt.TensorVariable) -> pt.TensorVariable:
        from .special_ops import vmf_mean_resultant_length

        point = vmf_mean_resultant_length(dim, kappa)
        if not rv_size_is_none(size):
            point = pt.full(size, point)
        return point

    def logp(value: pt.TensorVariable, dim: pt.TensorVariable, kappa: pt.TensorVariable) -> pt.TensorVariable:
        d = pt.cast(dim, "float64")
        inside = pt.and_(pt.gt(value, -1.0), pt.lt(value, 1.0))
        t = pt.switch(inside, value, 0.0)
        log_base = pt.switch(pt.eq(d, 3.0), 0.0, 0.5 * (d - 3.0) * _log1m_t2(t))
        res = kappa * t + log_base + vmf_log_normalizer(d, kappa) + log_sphere_area(d - 1.0)
        res = pt.switch(inside, res, -np.inf)
        return _check_parameters(res, kappa, dim=dim)


class PowerSphericalCosine(Continuous):
    r"""Law of the cosine of a power spherical law on :math:`S^{d-1}`: :math:`(1+t)/2 \sim
    \mathrm{Beta}((d-1)/2 + \kappa, (d-1)/2)`.

    Parameters
    ----------
    dim : int
        Ambient dimension d >= 2.
    kappa : tensor_like
        Concentration >= 0.
    """

    rv_op = PowerSphericalCosineRV()
    rv_type = PowerSphericalCosineRV

    @classmethod
    def dist(cls, dim: TensorLike, kappa: TensorLike, **kwargs: Any) -> pt.TensorVariable:
        return super().dist([pt.cast(pt.as_tensor_variable(dim), "int64"), pt.as_tensor_variable(kappa)], **kwargs)

    def support_point(rv: pt.TensorVariable, size: pt.TensorVariable | None, dim: pt.TensorVariable,
                      kappa: pt.TensorVariable) -> pt.TensorVariable:
        d = pt.cast(dim, "float64")
        a = 0.5 * (d - 1.0) + kappa
        point = 2.0 * a / (a + 0.5 * (d - 1.0)) - 1.0  # mean of t
        if not rv_size_is_none(size):
            point = pt.full(size, point)
        return point

    def logp(value: pt.TensorVariable, dim: pt.TensorVariable, kappa: pt.TensorVariable) -> pt.TensorVariable:
        d = pt.cast(dim, "float64")
        b = 0.5 * (d - 1.0)
        a = b + kappa
        inside = pt.and_(pt.gt(value, -1.0), pt.lt(value, 1.0))
        t = pt.switch(inside, value, 0.0)
        y = 0.5 * (1.0 + t)
        res = ((a - 1.0) * pt.log(y) + (b - 1.0) * pt.log1p(-y) - (pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b))
               - np.log(2.0))
        res = pt.switch(inside, res, -np.inf)
        return _check_parameters(res, kappa, dim=dim)


@_default_transform.register(VonMisesFisher)
@_default_transform.register(PowerSpherical)
def _sphere_default_transform(op, rv):
    return sphere


@_default_transform.register(VonMisesFisherCosine)
@_default_transform.register(PowerSphericalCosine)
def _cosine_default_transform(op, rv):
    return Interval(-1.0, 1.0)
