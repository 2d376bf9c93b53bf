"""Machinery shared by every rotationally symmetric distribution: generator/frozen classes (scipy.stats style),
parameter broadcasting (NumPyro style: sample_shape + batch_shape + event_shape) and the tangent-normal sampler.

A member subclasses :class:`SawGen` and supplies the private kernels ``_log_shape``, ``_log_norm``, ``_cosine``,
``_sample_t`` (t, or (t, 1 - t)), ``_mean_t`` and ``_entropy``, and may override ``_log_density`` (the log density
at given cosines) where log psi and log c are both large; public methods validate once and call the kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import gammaln

from .._validation import as_generator, as_size, check_kappa, check_unit_vectors, seeded_generator

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

    from ._cosine import BetaCosine, NumericCosine

    #: a shape parameter after mu: a concentration (array_like) or, for the Saw distribution, t -> log psi(t)
    ShapeParam = ArrayLike | Callable[[np.ndarray], ArrayLike]
    RandomLike = np.random.Generator | int | None

_LOG_PI = float(np.log(np.pi))


def log_sphere_area(dim: int) -> float:
    """log omega_d, the surface area of S^{d-1} in R^d: omega_d = 2 pi^(d/2) / Gamma(d/2)."""
    return float(np.log(2.0) + 0.5 * dim * _LOG_PI - gammaln(0.5 * dim))


def householder_to(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(v, v1) such that H = I - v v'/v1 is the reflection with H e_1 = mu (v1 = 1 - mu_1, v = e_1 - mu).

    v1 = 1 - mu_1 is formed as sum_{i>1} mu_i^2 / (1 + mu_1) when mu_1 > 0, so mu close to e_1 loses no digits;
    mu = e_1 exactly gives v1 = 0 and H = I (handled by the caller), mu = -e_1 gives v1 = 2.
    """
    mu1 = mu[..., 0]
    rest = np.sum(mu[..., 1:] ** 2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        v1 = np.where(mu1 > 0, rest / (1.0 + mu1), 1.0 - mu1)
    v = -mu.copy()
    v[..., 0] = v1
    return v, v1


def tangent_normal_sample(t: np.ndarray, mu: np.ndarray, rng: np.random.Generator,
                          one_minus_t: np.ndarray | None = None) -> np.ndarray:
    """u = t mu + sqrt(1 - t^2) v with v uniform on the unit sphere of mu's orthogonal complement.

    O(d) per draw: draw in the frame where mu = e_1 (first coordinate t, the rest an isotropic Gaussian scaled to
    length sqrt(1 - t^2)), then apply the Householder reflection taking e_1 to mu. No d x d matrix is formed.
    `t` has shape sample_shape + batch_shape; `mu` batch_shape + (d,). `one_minus_t`, when the sampler has it
    (s = 1 - t drawn directly), gives the radius as sqrt(s (2 - s)): at kappa = 1e30, t rounds to 1 and
    (1 - t)(1 + t) would be 0, while the tangent part has length ~ sqrt(2s) ~ 1e-15.
    """
    d = mu.shape[-1]
    out = rng.standard_normal(t.shape + (d,))
    tail = out[..., 1:]
    norm2 = np.einsum("...i,...i->...", tail, tail)
    if one_minus_t is None:
        radius = np.sqrt(np.clip((1.0 - t) * (1.0 + t), 0.0, None))
    else:
        radius = np.sqrt(np.clip(one_minus_t * (2.0 - one_minus_t), 0.0, None))
    tail *= (radius / np.sqrt(norm2))[..., None]
    out[..., 0] = t
    v, v1 = householder_to(mu)
    if np.all(v1 == 0):
        return out
    # one BLAS matrix-vector product when mu is a single vector; a broadcast contraction otherwise
    proj = out @ v if v.ndim == 1 else np.einsum("...i,...i->...", out, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        coef = np.where(v1 == 0, 0.0, proj / v1)
    out -= coef[..., None] * v
    return out


class SawGen:
    """Base generator: a family of rotationally symmetric distributions f(u) = c psi(mu'u) on S^{d-1}."""

    #: names of the shape parameters after mu, in order
    _param_names: tuple[str, ...] = ("kappa",)
    _frozen_class: type

    # -- parameters -------------------------------------------------------------------------------------------
    def _process_parameters(self, mu, *params):
        mu = check_unit_vectors(mu, "mu")
        params = tuple(self._check_param(name, p) for name, p in zip(self._param_names, params))
        batch_shape = np.broadcast_shapes(mu.shape[:-1], *(p.shape for p in params))
        return mu, params, mu.shape[-1], batch_shape

    def _check_param(self, name, value):
        return check_kappa(value, name)

    def _log_density(self, frozen, t):
        """log f at cosines `t` (in [-1, 1]) for a frozen distribution: log psi(t) + log c. Members whose
        log psi and log c are both O(kappa) override this with a form in which they do not cancel."""
        with np.errstate(divide="ignore"):
            return self._log_shape(t, *frozen._params) + frozen.log_normalizer

    def __call__(self, mu: ArrayLike, *params: ShapeParam, **kwargs: ShapeParam | RandomLike) -> SawFrozen:
        """Freeze the distribution at the given parameters (see the class docstring)."""
        return self._frozen_class(self, mu, *params, **kwargs)

    # -- public methods (validate, then call kernels) ---------------------------------------------------------
    def _frozen(self, mu, params):
        return self._frozen_class(self, mu, *params)

    def logpdf(self, x: ArrayLike, mu: ArrayLike, *params: ShapeParam) -> np.ndarray | float:
        """Log density at `x` with respect to the surface measure on S^{d-1}."""
        return self._frozen(mu, params).logpdf(x)

    def pdf(self, x: ArrayLike, mu: ArrayLike, *params: ShapeParam) -> np.ndarray | float:
        """Density at `x` with respect to the surface measure on S^{d-1}."""
        return self._frozen(mu, params).pdf(x)

    def rvs(self, mu: ArrayLike, *params: ShapeParam, size: int | tuple[int, ...] | None = None,
            rng: RandomLike = None, random_state: RandomLike = None) -> np.ndarray:
        """Random draws of shape ``size + batch_shape + (d,)``; `rng` (or scipy's `random_state`): a Generator, an
        int seed or None."""
        return self._frozen(mu, params).rvs(size=size, rng=rng, random_state=random_state)

    def mean(self, mu: ArrayLike, *params: ShapeParam) -> np.ndarray:
        """E[u] = E[t] mu."""
        return self._frozen(mu, params).mean()

    def mean_resultant_length(self, mu: ArrayLike, *params: ShapeParam) -> np.ndarray | float:
        """E[mu'u], the mean resultant length."""
        return self._frozen(mu, params).mean_resultant_length()

    def entropy(self, mu: ArrayLike, *params: ShapeParam) -> np.ndarray | float:
        """Differential entropy with respect to the surface measure."""
        return self._frozen(mu, params).entropy()

    def cosine(self, mu: ArrayLike, *params: ShapeParam) -> BetaCosine | NumericCosine:
        """The law of t = mu'u (pdf, logpdf, cdf, sf, ppf, rvs, mean, var)."""
        return self._frozen(mu, params).cosine


class SawFrozen:
    """Frozen distribution: parameters validated once; methods call the generator's kernels."""

    def __init__(self, gen: SawGen, mu: ArrayLike, *params: ShapeParam, seed: RandomLike = None,
                 **named: ShapeParam) -> None:
        self._gen = gen
        # scipy's frozen `seed=`: the Generator that rvs() draws from when it is given no rng of its own
        self._seed_rng = seeded_generator(seed)
        params = list(params)
        for name in gen._param_names[len(params):]:
            if name not in named:
                raise TypeError(f"missing parameter '{name}'.")
            params.append(named.pop(name))
        if named:
            raise TypeError(f"unexpected parameter(s) {', '.join(map(repr, named))}; expected {gen._param_names}.")
        self.mu, self._params, self.dim, self.batch_shape = gen._process_parameters(mu, *params)
        self.event_shape = (self.dim,)
        self._cache = {}

    def __repr__(self):
        params = ", ".join(f"{n}={np.asarray(p)!r}" if np.ndim(p) else f"{n}={float(p)!r}"
                           for n, p in zip(self._gen._param_names, self._params))
        name = type(self._gen).__name__.removesuffix("_gen")
        return f"{name}(dim={self.dim}, batch_shape={self.batch_shape}, {params})"

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def log_normalizer(self) -> np.ndarray:
        """log c, where the density is c psi(mu'u); shape ``batch_shape``."""
        return self._cached("log_norm", lambda: np.broadcast_to(
            self._gen._log_norm(self.dim, *self._params), self.batch_shape))

    @property
    def cosine(self) -> BetaCosine | NumericCosine:
        """The law of the cosine t = mu'u, a batched univariate distribution."""
        return self._cached("cosine", self._seeded_cosine)

    def _seeded_cosine(self) -> BetaCosine | NumericCosine:
        law = self._gen._cosine(self.dim, *self._params)
        law._seed_rng = self._seed_rng  # scipy's frozen seed=: one Generator for the directions and their cosines
        return law

    def logpdf(self, x: ArrayLike) -> np.ndarray | float:
        """Log density at `x` (unit vectors, shape (..., d), broadcast against the batch shape)."""
        # float64 points are not renormalized: x / ||x|| moves t = mu'x by up to ~eps, i.e. the density by kappa eps
        # relative (2e-13 at kappa = 2000), more than its own rounding; lower-precision input still is (its norm may
        # be 1e-7 off).
        x = check_unit_vectors(x, "x", self.dim, renormalize=None)
        t = np.clip(np.einsum("...i,...i->...", x, self.mu), -1.0, 1.0)
        return self._gen._log_density(self, t)

    def pdf(self, x: ArrayLike) -> np.ndarray | float:
        """Density at `x`."""
        return np.exp(self.logpdf(x))

    def rvs(self, size: int | tuple[int, ...] | None = None, rng: RandomLike = None,
            random_state: RandomLike = None) -> np.ndarray:
        """Draw unit vectors, shape ``size + batch_shape + (d,)``. `rng` (or scipy's `random_state`): a Generator,
        an int seed or None (the frozen ``seed=`` Generator, else fresh entropy)."""
        size = as_size(size)
        rng = as_generator(rng, random_state, default=self._seed_rng)
        # a member's sampler returns t, or (t, 1 - t) with 1 - t accurate where t rounds to 1
        draw = self._gen._sample_t(self.dim, self._params, size + self.batch_shape, rng)
        t, one_minus_t = draw if isinstance(draw, tuple) else (draw, None)
        mu = np.broadcast_to(self.mu, self.batch_shape + (self.dim,))
        return tangent_normal_sample(t, mu, rng, one_minus_t)

    def mean_resultant_length(self) -> np.ndarray | float:
        """E[t] = E[mu'u]; shape ``batch_shape``."""
        return np.broadcast_to(self._gen._mean_t(self.dim, *self._params), self.batch_shape)[()]

    def mean(self) -> np.ndarray:
        """E[u] = E[t] mu (identity 1 of docs/theory/identities.md); shape ``batch_shape + (d,)``."""
        return np.asarray(self.mean_resultant_length())[..., None] * self.mu

    def entropy(self) -> np.ndarray | float:
        """Differential entropy -E[log f(u)] with respect to surface measure; shape ``batch_shape``."""
        return np.broadcast_to(self._gen._entropy(self.dim, *self._params), self.batch_shape)[()]


class ConcentrationFrozen(SawFrozen):
    """Frozen distribution of a family with one concentration parameter ``kappa``."""

    @property
    def kappa(self) -> np.ndarray:
        """The concentration parameter(s), broadcastable to ``batch_shape``."""
        return self._params[0]
