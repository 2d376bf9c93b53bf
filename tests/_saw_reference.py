"""Reference samplers for tests, independent of sawdist.distributions.

Cosines are drawn by inverting the CDF of f_T(t) ~ psi(t) (1 - t^2)^((d-3)/2) tabulated on a fine grid around its
mass (trapezoid rule on 200 001 points, linear interpolation of the inverse); directions by the tangent-normal
construction u = t mu + sqrt(1 - t^2) v with v a normalized Gaussian projected orthogonally to mu.
"""

import numpy as np
from scipy.special import gammaln


def cosine_grid(log_shape, dim, n_grid=200_001):
    """(t, log f_T(t)) on a grid covering the mass (log f within 60 of its max), normalized by the trapezoid rule."""
    t = np.linspace(-1.0, 1.0, 400_001)[1:-1]
    g = log_shape(t) + (dim - 3) / 2.0 * np.log1p(-(t**2))
    keep = np.nonzero(g > g.max() - 60.0)[0]
    lo, hi = t[max(keep[0] - 1, 0)], t[min(keep[-1] + 1, t.size - 1)]
    t = np.linspace(lo, hi, n_grid)
    g = log_shape(t) + (dim - 3) / 2.0 * np.log1p(-(t**2))
    f = np.exp(g - g.max())
    z = np.trapezoid(f, t)
    return t, g - g.max() - np.log(z)


def draw_cosines(log_shape, dim, size, rng):
    t, logf = cosine_grid(log_shape, dim)
    f = np.exp(logf)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(t))])
    cdf /= cdf[-1]
    return np.interp(rng.random(size), cdf, t)


def cosine_cdf(log_shape, dim):
    t, logf = cosine_grid(log_shape, dim)
    f = np.exp(logf)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(t))])
    cdf /= cdf[-1]
    return lambda x: np.interp(x, t, cdf)


def directions_from_cosines(t, mu, rng):
    t = np.asarray(t)
    g = rng.standard_normal(t.shape + mu.shape)
    g -= np.einsum("...i,i->...", g, mu)[..., None] * mu
    v = g / np.linalg.norm(g, axis=-1, keepdims=True)
    return t[..., None] * mu + np.sqrt(1.0 - t**2)[..., None] * v


def draw_directions(log_shape, mu, size, rng):
    return directions_from_cosines(draw_cosines(log_shape, mu.size, size, rng), mu, rng)


def log_sphere_area(dim):
    """log omega_d = log(2 pi^(d/2) / Gamma(d/2))."""
    return np.log(2.0) + dim / 2.0 * np.log(np.pi) - gammaln(dim / 2.0)
