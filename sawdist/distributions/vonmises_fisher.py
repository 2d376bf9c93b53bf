r"""The von Mises–Fisher distribution on S^{d-1}: f(u) = C_d(kappa) exp(kappa mu'u)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import special
from .._validation import as_unit_rows
from ._base import ConcentrationFrozen, SawGen
from ._cosine import NumericCosine, log1m_t2
from ._estimation import mean_direction_and_mean_resultant_length

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
    The normaliser comes from :func:`sawdist.special.vmf_log_normalizer`, accurate for d up to 1e5 and every
    kappa up to the largest float (``scipy.stats.vonmises_fisher`` returns ``inf`` there from d ~ 1000); the log
    density is formed as ``[log C + kappa] - kappa (1 - mu'x)``, so that it keeps its digits at the mode. Draws use
    Wood's (1994) rejection sampler for t = mu'u (written in 1 - t, so that it works at every kappa; its acceptance
    rate stays high in every dimension) and a Householder reflection for the tangent part: O(d) per draw.
    Accuracy of every method: docs/distributions.md, "Supported range and accuracy".

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

    def _log_density(self, frozen, t):
        # log f = log C + kappa t = [log C + kappa] - kappa (1 - t). The bracket is the log density at the mode,
        # log C + kappa = nu log kappa - (d/2) log 2 pi - (log I_nu(kappa) - kappa), from the exponentially scaled
        # Bessel function (special.vmf_log_normalizer(scaled=True)); kappa (1 - t) >= 0 carries the digits of 1 - t
        # (exact for t >= 1/2). log C ~ -kappa plus kappa t ~ +kappa left a result ~ (d/2) log kappa with the
        # absolute error eps kappa: 2e-10 relative at d = 2, kappa = 1e7, 0.0 instead of 456.8 at d = 5,
        # kappa = 1e100, NaN from 1e155.
        (kappa,) = frozen._params
        mode = frozen._cached("log_norm_mode", lambda: np.broadcast_to(
            special.vmf_log_normalizer(frozen.dim, kappa, scaled=True), frozen.batch_shape))
        with np.errstate(over="ignore"):  # kappa (1 - t) = inf only where the density underflows to 0 anyway
            return mode - kappa * (1.0 - t)

    def _mean_t(self, dim, kappa):
        return special.bessel_ratio(dim / 2.0 - 1.0, kappa)

    def _entropy(self, dim, kappa):
        return special.vmf_entropy(dim, kappa)

    def _cosine(self, dim, kappa):
        # Cosine law: f_T(t) = C_d(kappa) omega_{d-1} e^{kappa t} (1 - t^2)^((d-3)/2)
        #                    = [C_d(kappa) e^kappa omega_{d-1}] e^{-kappa (1 - t)} (1 - t^2)^((d-3)/2).
        # The bracket is formed whole (special._vmf_cosine_log_head): as log C + kappa + log omega_{d-1} its parts
        # ~ +-(d/2) log d and ~ kappa cancelled (1.6e-10 absolute at d = 1e5, everything at kappa = 1e100).
        log_const = special._vmf_cosine_log_head(dim, kappa)

        def exact_logpdf(t):
            inside = (t >= -1) & (t <= 1)
            tc = np.where(inside, t, 0.0)
            with np.errstate(over="ignore"):
                val = log_const - kappa * (1.0 - tc)
            if dim != 3:
                val = val + (dim - 3) / 2.0 * log1m_t2(tc)
            return np.where(inside, val, -np.inf)

        # The tables take log psi in the angle, kappa cos(theta) = kappa - 2 kappa sin^2(theta/2), offset kappa:
        # exact as theta -> 0, where kappa cos(theta) is kappa times the rounding of cos theta.
        return NumericCosine(dim, lambda t, k: k * t, (kappa,), log_shape_name="kappa",
                             exact_mean=lambda: self._mean_t(dim, kappa), exact_logpdf=exact_logpdf,
                             log_shape_theta=lambda th, k: -k * (2.0 * np.sin(0.5 * th) ** 2),
                             log_shape_offset=lambda k: k)

    def _sample_t(self, dim, params, shape, rng):
        """(t, 1 - t) by Wood's (1994) sampler, :func:`vmf_cosines`."""
        (kappa,) = params
        return vmf_cosines(dim, np.broadcast_to(kappa, shape), rng)

    def fit(self, x: ArrayLike) -> tuple[np.ndarray, float]:
        r"""Maximum-likelihood estimates ``(mu, kappa)`` from unit vectors `x` of shape (n, d).

        :math:`\hat\mu = R/\lVert R\rVert` and :math:`\hat\kappa = A_d^{-1}(\lVert R\rVert / n)` with
        :math:`R = \sum_i x_i`, solved by :func:`sawdist.special.vmf_kappa_from_mean_resultant_length` — correct in
        any dimension. For NaN handling, xarray input and a result object use :func:`sawdist.fit`.

        Raises
        ------
        ValueError
            Fewer than 2 rows, non-unit rows, all rows identical (the MLE of kappa is then infinite), or rows so
            close that 1 - ||R||/n < 1e-10 (float64 then no longer resolves kappa ~ (d - 1) / (2 (1 - ||R||/n))).
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
    mu, m = mean_direction_and_mean_resultant_length(x, name)
    kappa = float(special.vmf_kappa_from_mean_resultant_length(dim, m))
    return mu, kappa, float(n * (special.vmf_log_normalizer(dim, kappa) + kappa * m))


def vmf_cosines(dim: int, kappa: ArrayLike, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""``(t, 1 - t)`` of cosines t = mu'u drawn from vMF laws on S^{d-1} of concentrations ``kappa`` (any shape):
    Wood (1994), Algorithm VM*, written in y = 1 - w so that it holds up to the largest kappa.

    Wood's algorithm, with b = (d-1)/(2 kappa + sqrt(4 kappa^2 + (d-1)^2)), x0 = (1-b)/(1+b) and
    c = kappa x0 + (d-1) log(1 - x0^2): draw z ~ Beta((d-1)/2, (d-1)/2), w = (1 - (1+b) z)/(1 - (1-b) z),
    u ~ U(0, 1), and accept w when kappa w + (d-1) log(1 - x0 w) - c >= log u. As kappa grows, x0 and w both
    tend to 1 and 1 - x0 ~ (d-1)/(2 kappa) underflows against 1 (from kappa ~ 1e18 at d = 3072, ~ 1e20 at
    d = 5): kappa (w - x0) is then kappa times rounding noise and no draw is ever accepted (rvs() hung).

    In y = 1 - w and y0 = 1 - x0 = 2b/(1+b) every quantity is small and relative-accurate:
    y = 2 b z / ((1 - z) + b z) (from 1 - w = 2 b z / (1 - (1-b) z)), w - x0 = y0 - y,
    1 - x0 w = 1 - (1 - y0)(1 - y) = y0 + y x0, and 1 - x0^2 = y0 (2 - y0) = 4b/(1+b)^2, so the test reads

        kappa (y0 - y) + (d-1) [log(y0 + x0 y) - log(4b) + 2 log1p(b)] >= log u,

    with kappa y0 ~ (d-1)/2 = O(d) for every kappa: no cancellation, no overflow. b itself is
    r / (1 + hypot(1, r)) with r = ((d-1)/2)/kappa (the same number; 4 kappa^2 overflowed from 1e154), and b = 1
    at kappa = 0 (then y = 2z, the uniform law). The same z and u are drawn as before, so the stream and the
    acceptance rate (high in every regime, Wood 1994) are unchanged; t = 1 - y and 1 - t = y are returned, the
    latter for the tangent radius.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    flat = kappa.ravel()  # flat, so that a scalar batch works the same way
    dm1 = dim - 1.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = 0.5 * dm1 / flat
        b = r / (1.0 + np.hypot(1.0, r))
    b = np.where(np.isinf(r), 1.0, b)  # kappa = 0 (or subnormal): b -> 1, the uniform limit (inf/inf is NaN)
    y0 = 2.0 * b / (1.0 + b)
    x0 = (1.0 - b) / (1.0 + b)
    log1m_x02 = np.log(4.0 * b) - 2.0 * np.log1p(b)
    out = np.empty(flat.shape)
    todo = np.arange(flat.size)
    while todo.size:
        bb, yy0, xx0, kk, ll = b[todo], y0[todo], x0[todo], flat[todo], log1m_x02[todo]
        z = rng.beta(dm1 / 2.0, dm1 / 2.0, size=todo.size)
        y = 2.0 * bb * z / ((1.0 - z) + bb * z)
        u = rng.random(todo.size)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            crit = kk * (yy0 - y) + dm1 * (np.log(yy0 + xx0 * y) - ll)
            accept = crit >= np.log(u)
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    y = out.reshape(kappa.shape)
    return 1.0 - y, y
