r"""The von Mises–Fisher distribution on S^{d-1}: f(u) = C_d(kappa) exp(kappa mu'u)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import special
from .._validation import as_unit_rows
from ._base import ConcentrationFrozen, SawGen, log_sphere_area
from ._cosine import NumericCosine, log1m_t2
from ._estimation import mean_direction_and_rbar

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


class vonmises_fisher_gen(SawGen):
    r"""Von Mises–Fisher distribution on the sphere :math:`S^{d-1} \subset \mathbb{R}^d`.

    .. math:: f(u; \mu, \kappa) = C_d(\kappa)\, e^{\kappa \mu^\top u},\qquad
              C_d(\kappa) = \frac{\kappa^{d/2-1}}{(2\pi)^{d/2} I_{d/2-1}(\kappa)}.

    Call ``vonmises_fisher(mu, kappa)`` to freeze it; the methods below also accept the parameters directly.

    Parameters
    ----------
    mu : array_like, shape (..., d)
        Mean direction(s), unit vectors along the last axis, d >= 2.
    kappa : array_like
        Concentration(s) >= 0, broadcast against ``mu.shape[:-1]``. ``kappa = 0`` is the uniform distribution.

    Notes
    -----
    The normaliser comes from :func:`sawdist.special.vmf_log_normalizer`, accurate for d up to 1e5 and kappa up
    to 1e7 (``scipy.stats.vonmises_fisher`` returns ``inf`` there from d ~ 1000). Draws use Wood's (1994) rejection
    sampler for t = mu'u, whose acceptance rate stays high in every dimension, and a Householder reflection for
    the tangent part: O(d) per draw.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import vonmises_fisher
    >>> mu = np.zeros(3072); mu[0] = 1.0
    >>> vmf = vonmises_fisher(mu, 500.0)
    >>> x = vmf.rvs(size=4, rng=0)
    >>> x.shape
    (4, 3072)
    >>> bool(np.all(np.isfinite(vmf.logpdf(x))))
    True
    """

    def _log_shape(self, t, kappa):
        return kappa * t

    def _log_norm(self, dim, kappa):
        return special.vmf_log_normalizer(dim, kappa)

    def _mean_t(self, dim, kappa):
        return special.bessel_ratio(dim / 2.0 - 1.0, kappa)

    def _entropy(self, dim, kappa):
        return special.vmf_entropy(dim, kappa)

    def _cosine(self, dim, kappa):
        # Cosine law: f_T(t) = C_d(kappa) omega_{d-1} e^{kappa t} (1 - t^2)^((d-3)/2).
        log_const = self._log_norm(dim, kappa) + log_sphere_area(dim - 1)

        def exact_logpdf(t):
            inside = (t >= -1) & (t <= 1)
            tc = np.where(inside, t, 0.0)
            val = kappa * tc + log_const
            if dim != 3:
                val = val + (dim - 3) / 2.0 * log1m_t2(tc)
            return np.where(inside, val, -np.inf)

        return NumericCosine(dim, lambda t, k: k * t, (kappa,), log_shape_name="kappa",
                             exact_mean=lambda: self._mean_t(dim, kappa), exact_logpdf=exact_logpdf)

    def _sample_t(self, dim, params, shape, rng):
        """Wood (1994), Algorithm VM*, with 1 - x0^2 formed as 4b/(1+b)^2 so that kappa >> d loses nothing."""
        (kappa,) = params
        kappa = np.broadcast_to(kappa, shape).ravel()  # flat, so that a scalar batch works the same way
        dm1 = dim - 1.0
        b = dm1 / (2.0 * kappa + np.sqrt(4.0 * kappa * kappa + dm1 * dm1))
        x0 = (1.0 - b) / (1.0 + b)
        log1m_x02 = np.log(4.0 * b) - 2.0 * np.log1p(b)
        out = np.empty(kappa.shape)
        todo = np.arange(kappa.size)
        while todo.size:
            bb, xx, kk, ll = b[todo], x0[todo], kappa[todo], log1m_x02[todo]
            z = rng.beta(dm1 / 2.0, dm1 / 2.0, size=todo.size)
            denom = 1.0 - (1.0 - bb) * z
            w = 1.0 - 2.0 * bb * z / denom  # = (1 - (1+b) z) / (1 - (1-b) z)
            u = rng.random(todo.size)
            # kappa w + (d-1) log(1 - x0 w) - c with c = kappa x0 + (d-1) log(1 - x0^2)
            with np.errstate(divide="ignore"):
                crit = kk * (w - xx) + dm1 * (np.log1p(-xx * w) - ll)
                accept = crit >= np.log(u)
            out[todo[accept]] = w[accept]
            todo = todo[~accept]
        out = out.reshape(shape)
        return out

    def fit(self, x: ArrayLike) -> tuple[np.ndarray, float]:
        r"""Maximum-likelihood estimates ``(mu, kappa)`` from unit vectors `x` of shape (n, d).

        :math:`\hat\mu = R/\lVert R\rVert` and :math:`\hat\kappa = A_d^{-1}(\lVert R\rVert / n)` with
        :math:`R = \sum_i x_i`, solved by :func:`sawdist.special.vmf_kappa_from_mrl` — correct in any
        dimension. For NaN handling, xarray input and a result object use :func:`sawdist.fit`.

        Raises
        ------
        ValueError
            Fewer than 2 rows, non-unit rows, or all rows identical (the MLE of kappa is then infinite).
        """
        mu, kappa, _ = vmf_mle(as_unit_rows(x, "x"))
        return mu, kappa


class vonmises_fisher_frozen(ConcentrationFrozen):
    """A frozen von Mises–Fisher distribution; see :class:`vonmises_fisher_gen`."""

vonmises_fisher_gen._frozen_class = vonmises_fisher_frozen
vonmises_fisher = vonmises_fisher_gen()


def vmf_mle(x: np.ndarray, name: str = "x") -> tuple[np.ndarray, float, float]:
    """(mu, kappa, loglik) on validated unit rows (n, d); loglik = n log C_d(kappa) + kappa ||R|| in closed form."""
    n, dim = x.shape
    mu, rbar = mean_direction_and_rbar(x, name)
    kappa = float(special.vmf_kappa_from_mrl(dim, rbar))
    return mu, kappa, float(n * (special.vmf_log_normalizer(dim, kappa) + kappa * rbar))
