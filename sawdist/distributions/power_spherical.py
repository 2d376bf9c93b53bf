r"""The power spherical distribution (De Cao & Aziz 2020): f(u) = C (1 + mu'u)^kappa."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import special as sc

from .._validation import as_unit_rows
from ..special import _digamma_difference, _log_gamma_ratio
from ._base import ConcentrationFrozen, SawGen
from ._cosine import BetaCosine
from ._estimation import mean_direction_and_mean_resultant_length

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

_LOG2 = float(np.log(2.0))
_LOG_PI = float(np.log(np.pi))


def _alpha_beta(dim, kappa):
    """The Beta parameters of (1 + t)/2: alpha = (d-1)/2 + kappa, beta = (d-1)/2."""
    beta = (dim - 1) / 2.0
    return beta + kappa, beta


def _log_normalizer(dim, kappa, scaled=False):
    """log C_d(kappa) = -((alpha + beta) log 2 + beta log pi + log Gamma(alpha) - log Gamma(alpha + beta)); with
    `scaled`, log C_d(kappa) + kappa log 2, the log density at the mode (t = 1, where (1 + t)^kappa = 2^kappa).

    With alpha + beta = 2 beta + kappa: log C + kappa log 2 = -(2 beta log 2 + beta log pi) + G, where
    G = log Gamma(alpha + beta) - log Gamma(alpha) comes from :func:`_log_gamma_ratio` (no cancellation); the
    unscaled value subtracts kappa log 2 from it, a single rounding."""
    a, b = _alpha_beta(dim, kappa)
    mode = -(2.0 * b * _LOG2 + b * _LOG_PI) + _log_gamma_ratio(a, b)
    return mode if scaled else mode - kappa * _LOG2


def _xmul(kappa, value):
    """kappa * value with 0 * (-inf) = 0 (kappa = 0 is the uniform law, whose density is finite at t = -1)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(kappa == 0, 0.0, kappa * value)


def _log_half_1p(t):
    """log((1 + t)/2) for t in [-1, 1]: log1p(-(1 - t)/2) for t >= 0 (1 - t is exact for t >= 1/2, so the density
    near the mode keeps the digits of 1 - t), log((1 + t)/2) below (1 + t is exact for t <= -1/2)."""
    with np.errstate(divide="ignore"):
        return np.where(t >= 0, np.log1p(-0.5 * (1.0 - t)), np.log(0.5 * (1.0 + t)))


class power_spherical_gen(SawGen):
    r"""Power spherical distribution on :math:`S^{d-1}` (De Cao & Aziz 2020).

    .. math:: f(u; \mu, \kappa) = C_d(\kappa) (1 + \mu^\top u)^\kappa,\qquad
              C_d(\kappa)^{-1} = 2^{\alpha+\beta}\pi^\beta \frac{\Gamma(\alpha)}{\Gamma(\alpha+\beta)},\quad
              \alpha = \frac{d-1}{2} + \kappa,\ \beta = \frac{d-1}{2}.

    The cosine law is exact: :math:`(1 + t)/2 \sim \mathrm{Beta}(\alpha, \beta)`, so sampling needs no rejection
    and every moment has a closed form. ``kappa = 0`` is the uniform distribution.

    Parameters
    ----------
    mu : array_like, shape (..., d)
        Mean direction(s), unit vectors, d >= 2.
    kappa : array_like
        Concentration(s) >= 0, broadcast against ``mu.shape[:-1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import power_spherical
    >>> mu = np.array([0.0, 0.0, 1.0])
    >>> ps = power_spherical(mu, 10.0)
    >>> float(ps.mean_resultant_length())  # kappa / (d - 1 + kappa)
    0.8333333333333334
    """

    def _log_shape(self, t, kappa):
        return sc.xlog1py(kappa, t)

    def _log_norm(self, dim, kappa):
        return _log_normalizer(dim, kappa)

    def _log_density(self, frozen, t):
        # log f = log C + kappa log(1 + t) = [log C + kappa log 2] + kappa log((1 + t)/2): the bracket is the log
        # density at the mode, formed without its two O(kappa log kappa) parts meeting (_log_normalizer), and the
        # second term is <= 0 and exact to the digits of 1 - t. log C and kappa log(1 + t), of size ~kappa, left
        # a result ~ (d/2) log kappa with a relative error ~ kappa eps / log kappa (5e-10 at d = 2, kappa = 1e7).
        (kappa,) = frozen._params
        mode = frozen._cached("log_norm_mode", lambda: np.broadcast_to(
            _log_normalizer(frozen.dim, kappa, scaled=True), frozen.batch_shape))
        return mode + _xmul(kappa, _log_half_1p(t))

    def _cosine(self, dim, kappa):
        return BetaCosine(dim, kappa)

    def _sample_t(self, dim, params, shape, rng):
        (kappa,) = params
        return BetaCosine(dim, np.broadcast_to(kappa, shape)).rvs_t_and_complement(rng)

    def _mean_t(self, dim, kappa):
        return kappa / (dim - 1.0 + kappa)

    def _entropy(self, dim, kappa):
        # -E[log f] = -log C - kappa E[log(1 + t)],  E[log(1 + t)] = log 2 + digamma(a) - digamma(a + b), so
        # H = -(log C + kappa log 2) + kappa (digamma(a + b) - digamma(a)): the scaled normaliser and the digamma
        # difference (both without cancellation) instead of -log C ~ kappa log 2 against kappa (log 2 - ~b/a).
        a, b = _alpha_beta(dim, kappa)
        return -_log_normalizer(dim, kappa, scaled=True) + _xmul(kappa, _digamma_difference(a, b))

    def fit(self, x: ArrayLike, *, max_iter: int = 200) -> tuple[np.ndarray, float]:
        r"""Maximum-likelihood estimates ``(mu, kappa)`` from unit vectors `x` of shape (n, d).

        The log-likelihood is :math:`n \log C_d(\kappa) + \kappa \sum_i \log(1 + \mu^\top x_i)`, so for every
        kappa > 0 the best mu maximises :math:`S(\mu) = \frac1n\sum_i \log(1 + \mu^\top x_i)` alone. Its stationarity
        condition :math:`\sum_i x_i/(1 + \mu^\top x_i) \parallel \mu` is solved by fixed-point iteration from the
        mean direction (with step halving whenever S would decrease). Then kappa solves
        :math:`\psi(\alpha+\beta) - \psi(\alpha) = \log 2 - S` (the score equation; the left side decreases in
        kappa), by bracketed Newton steps with the trigamma derivative; kappa = 0 if S is at most its uniform
        expectation.
        """
        mu, kappa, _ = power_spherical_mle(as_unit_rows(x, "x"), max_iter=max_iter)
        return mu, kappa


class power_spherical_frozen(ConcentrationFrozen):
    """A frozen power spherical distribution; see :class:`power_spherical_gen`."""

power_spherical_gen._frozen_class = power_spherical_frozen
power_spherical = power_spherical_gen()


def power_spherical_mle(x: np.ndarray, name: str = "x", max_iter: int = 200) -> tuple[np.ndarray, float, float]:
    """(mu, kappa, loglik) on validated unit rows (n, d), as in :meth:`power_spherical_gen.fit`;
    loglik = n (log C_d(kappa) + kappa S(mu))."""
    n, dim = x.shape
    mu, _ = mean_direction_and_mean_resultant_length(x, name)

    def score(m):
        with np.errstate(divide="ignore"):
            return float(np.mean(np.log1p(x @ m)))

    s = score(mu)
    for _ in range(max_iter):
        w = 1.0 / (1.0 + x @ mu)
        cand = x.T @ w
        cand /= np.linalg.norm(cand)
        step = 1.0
        while True:
            trial = mu + step * (cand - mu)
            trial /= np.linalg.norm(trial)
            s_trial = score(trial)
            if s_trial >= s or step < 1e-8:
                break
            step /= 2.0
        moved = np.linalg.norm(trial - mu)
        mu, s = trial, max(s, s_trial)
        if moved <= 1e-14:
            break
    kappa = _kappa_from_score(dim, s)
    return mu, kappa, float(n * (_log_normalizer(dim, kappa) + kappa * s))


def _kappa_from_score(dim, s):
    """Solve digamma(a + b) - digamma(a) = log 2 - s for kappa >= 0 (a = b + kappa, b = (d-1)/2)."""
    b = (dim - 1) / 2.0
    target = _LOG2 - s

    def g(k):
        return float(_digamma_difference(b + k, b)) - target

    if not np.isfinite(s) or g(0.0) <= 0:
        return 0.0
    lo, hi = 0.0, 1.0
    while g(hi) > 0:
        lo, hi = hi, hi * 4.0
    k = 0.5 * (lo + hi)
    for _ in range(200):
        val = g(k)
        if val > 0:
            lo = k
        else:
            hi = k
        deriv = sc.polygamma(1, 2 * b + k) - sc.polygamma(1, b + k)  # < 0
        step = k - val / deriv
        new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(new - k) <= 4 * np.finfo(float).eps * k:
            k = new
            break
        k = new
    return float(k)
