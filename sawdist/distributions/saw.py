r"""The general Saw distribution f(u) = c psi(mu'u) with a user-supplied shape, and the uniform distribution."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._validation import as_generator, as_size, check_dim, check_unit_vectors, seeded_generator
from ._base import SawFrozen, SawGen, log_sphere_area
from ._cosine import BetaCosine, NumericCosine

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

    RandomLike = np.random.Generator | int | None


class saw_gen(SawGen):
    r"""Rotationally symmetric (Saw 1978) distribution on :math:`S^{d-1}` with an arbitrary shape.

    .. math:: f(u; \mu, \psi) = c\,\psi(\mu^\top u),\qquad c^{-1} = \omega_{d-1}\int_{-1}^{1}\psi(t)(1-t^2)^{(d-3)/2}dt.

    Parameters
    ----------
    mu : array_like, shape (..., d)
        Mean direction(s), unit vectors, d >= 2.
    log_shape : callable
        Vectorised ``t -> log psi(t)`` on [-1, 1]: takes a float array, returns an array of the same shape, finite
        or ``-inf``. It is evaluated once at freezing to build the quadrature tables of the cosine law.

    Notes
    -----
    ``log_shape = lambda t: kappa * t`` gives the von Mises–Fisher distribution, ``kappa * np.log1p(t)`` the power
    spherical, ``0 * t`` the uniform distribution; the tests check that each agrees. The normaliser, moments and
    quantiles come from angle-space quadrature (:mod:`sawdist.distributions._cosine`), which resolves the band of
    width ~1/sqrt(d) in which the mass of t sits in high dimension. Draws invert the cosine CDF (Newton in angle
    space) and add a uniform tangent direction by a Householder reflection.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import saw
    >>> mu = np.array([1.0, 0.0, 0.0, 0.0])
    >>> dist = saw(mu, lambda t: 3.0 * t + 2.0 * t**3)
    >>> round(float(dist.mean_resultant_length()), 6)
    0.726835
    """

    _param_names = ("log_shape",)

    def _check_param(self, name, value):
        if not callable(value):
            raise ValueError(f"'log_shape' must be callable, got {value!r}.")
        return value

    def _process_parameters(self, mu, log_shape):
        mu = check_unit_vectors(mu, "mu")
        return mu, (self._check_param("log_shape", log_shape),), mu.shape[-1], mu.shape[:-1]

    def _log_shape(self, t, log_shape):
        with np.errstate(divide="ignore"):
            return np.asarray(log_shape(t), dtype=float)

    def _cosine(self, dim, log_shape):
        return NumericCosine(dim, lambda t: log_shape(t), (), log_shape_name="log_shape")


class saw_frozen(SawFrozen):
    """A frozen Saw distribution; the cosine law (built once) supplies normaliser, moments and draws."""

    def __init__(self, gen: saw_gen, mu: ArrayLike, log_shape: Callable[[np.ndarray], ArrayLike], *,
                 seed: RandomLike = None) -> None:
        super().__init__(gen, mu, log_shape, seed=seed)
        self.cosine  # noqa: B018  build the tables now, so that a bad log_shape fails at freezing

    def __repr__(self):
        return f"saw(dim={self.dim}, batch_shape={self.batch_shape}, log_shape={self.log_shape!r})"

    @property
    def log_shape(self) -> Callable[[np.ndarray], ArrayLike]:
        """The shape function t -> log psi(t)."""
        return self._params[0]

    @property
    def log_normalizer(self) -> np.ndarray:
        return self._cached("log_norm", lambda: np.broadcast_to(
            -log_sphere_area(self.dim - 1) - self.cosine.log_normalizer(), self.batch_shape))

    def rvs(self, size: int | tuple[int, ...] | None = None, rng: RandomLike = None,
            random_state: RandomLike = None) -> np.ndarray:
        size = as_size(size)
        rng = as_generator(rng, random_state, default=self._seed_rng)
        from ._base import tangent_normal_sample

        t = self.cosine.rvs(size + self.batch_shape, rng=rng)
        return tangent_normal_sample(t, np.broadcast_to(self.mu, self.batch_shape + (self.dim,)), rng)

    def mean_resultant_length(self) -> np.ndarray | float:
        return np.broadcast_to(self.cosine.mean(), self.batch_shape)[()]

    def entropy(self) -> np.ndarray | float:
        # -E[log f] = -log c - E[log psi(t)]
        value = -self.log_normalizer - self.cosine.expect_log_shape()
        return np.broadcast_to(value, self.batch_shape)[()]


saw_gen._frozen_class = saw_frozen
saw = saw_gen()


class uniform_direction_gen:
    r"""Uniform distribution on the sphere :math:`S^{d-1}`: density :math:`1/\omega_d`,
    :math:`\omega_d = 2\pi^{d/2}/\Gamma(d/2)`.

    Call ``uniform_direction(dim)`` to freeze it. The cosine with any fixed unit vector has
    :math:`(1+t)/2 \sim \mathrm{Beta}((d-1)/2, (d-1)/2)`.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import uniform_direction
    >>> u = uniform_direction(3)
    >>> bool(np.isclose(u.pdf(np.array([0.0, 0.0, 1.0])), 1 / (4 * np.pi)))
    True
    """

    def __call__(self, dim: int, *, seed: RandomLike = None) -> uniform_direction_frozen:
        return uniform_direction_frozen(dim, seed=seed)

    def logpdf(self, x: ArrayLike, dim: int) -> np.ndarray | float:
        """Log density at `x`."""
        return uniform_direction_frozen(dim).logpdf(x)

    def rvs(self, dim: int, size: int | tuple[int, ...] | None = None, rng: RandomLike = None,
            random_state: RandomLike = None) -> np.ndarray:
        """Draws of shape ``size + (dim,)``."""
        return uniform_direction_frozen(dim).rvs(size=size, rng=rng, random_state=random_state)


class uniform_direction_frozen:
    """A frozen uniform distribution on S^{d-1}."""

    def __init__(self, dim: int, *, seed: RandomLike = None) -> None:
        self.dim = check_dim(dim)
        self._seed_rng = seeded_generator(seed)
        self.batch_shape = ()
        self.event_shape = (self.dim,)
        self.cosine = BetaCosine(self.dim, 0.0)
        self.cosine._seed_rng = self._seed_rng  # the frozen seed= draws the cosines too

    def __repr__(self):
        return f"uniform_direction(dim={self.dim})"

    @property
    def log_normalizer(self) -> float:
        """log(1/omega_d)."""
        return -log_sphere_area(self.dim)

    def logpdf(self, x: ArrayLike) -> np.ndarray | float:
        from .._validation import check_unit_vectors

        x = check_unit_vectors(x, "x", self.dim)
        return np.full(x.shape[:-1], self.log_normalizer)[()]

    def pdf(self, x: ArrayLike) -> np.ndarray | float:
        return np.exp(self.logpdf(x))

    def rvs(self, size: int | tuple[int, ...] | None = None, rng: RandomLike = None,
            random_state: RandomLike = None) -> np.ndarray:
        """Normalised isotropic Gaussians, shape ``size + (dim,)``."""
        size = as_size(size)
        rng = as_generator(rng, random_state, default=self._seed_rng)
        z = rng.standard_normal(size + (self.dim,))
        z /= np.linalg.norm(z, axis=-1, keepdims=True)
        return z

    def mean(self) -> np.ndarray:
        return np.zeros(self.dim)

    def mean_resultant_length(self) -> float:
        return 0.0

    def entropy(self) -> float:
        return log_sphere_area(self.dim)


uniform_direction = uniform_direction_gen()
