r"""Laws of the cosine t = mu'u of a rotationally symmetric (Saw) distribution on S^{d-1}.

The cosine has density f_T(t) = psi(t) (1 - t^2)^((d-3)/2) / Z on [-1, 1] (docs/theory/saw_family.md). Two
implementations:

* :class:`BetaCosine` — psi(t) = (1 + t)^kappa, for which (1 + t)/2 ~ Beta((d-1)/2 + kappa, (d-1)/2) exactly
  (power spherical; kappa = 0 is the uniform distribution).
* :class:`NumericCosine` — any psi given as log psi, by quadrature in the angle theta = arccos t. There
  ``f_T(t) dt = psi(cos theta) sin(theta)^(d-2) dtheta / Z``: the integrand is bounded for every d >= 2 (no endpoint
  singularity at d = 2) and resolves t = 1 - 1e-9 as theta ~ 4e-5 rather than as a difference of numbers near 1.
  The mass sits in a band of width ~1/sqrt(d) (or ~1/sqrt(kappa)); the band is found on a coarse grid, refined on a
  fine one, and integrated with composite 16-point Gauss–Legendre on 128 panels, where the integrand is smooth and
  each panel a fraction of its width, so the quadrature error is at rounding level. Mass where log f is more than
  ``_DROP`` below its maximum (e^-730 ~ 1e-317 relative) is neglected: a tail probability down to the smallest
  normal double (e^-708) then misses at most e^-22 ~ 3e-10 of itself, and one above 1e-300 at most 1e-17 (at
  e^-700, a vMF cdf of 2.6e-305 at d = 2 was 10 % low). With the former e^-45 (and 64 panels), cdf and sf were only
  absolutely accurate (~1e-20) in the far tails (9e-7 relative at d = 3, kappa = 20, t = -0.9) and the ppf of q below
  ~1e-19 returned the edge of the band instead of the quantile.

Both are batched: parameters broadcast to ``batch_shape``; every method broadcasts its argument against it.
"""

from __future__ import annotations

import numpy as np
from scipy import special as sc

from .._validation import as_generator, as_size
from ..special import _log1pmx, _log_gamma_ratio, _stirling_corrections

_DROP = 730.0
_N_PANELS = 128
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def log1m_t2(t: np.ndarray) -> np.ndarray:
    """log(1 - t^2) without cancellation near t = +-1."""
    with np.errstate(divide="ignore"):
        return np.log1p(-t) + np.log1p(t)


class _CosineBase:
    """Shared scipy-style surface: pdf, cdf, sf, ppf, rvs, std."""

    batch_shape: tuple[int, ...]
    #: The Generator that rvs() draws from when given no rng: the frozen distribution's ``seed=`` (set by the
    #: frozen distribution that owns this law, so that its cosines are reproducible as its directions are).
    _seed_rng: np.random.Generator | None = None

    def pdf(self, t):
        """Density of t at `t` (zero outside [-1, 1])."""
        return np.exp(self.logpdf(t))

    def std(self):
        """Standard deviation of t."""
        return np.sqrt(self.var())

    def rvs(self, size=None, rng=None, random_state=None):
        """Draw cosines; the result has shape ``size + batch_shape``."""
        size = as_size(size)
        rng = as_generator(rng, random_state, default=self._seed_rng)
        u = rng.random(size + self.batch_shape)
        return self.ppf(u)

    def _check_t(self, t):
        t = np.asarray(t, dtype=float)
        return t


class BetaCosine(_CosineBase):
    """Cosine law of the power spherical distribution: (1 + t)/2 ~ Beta((d-1)/2 + kappa, (d-1)/2)."""

    def __init__(self, dim: int, kappa):
        self.dim = dim
        self.kappa = np.asarray(kappa, dtype=float)
        self.batch_shape = self.kappa.shape
        self.a = (dim - 1) / 2.0 + self.kappa
        self.b = np.full_like(self.kappa, (dim - 1) / 2.0)

    def __repr__(self):
        return f"BetaCosine(dim={self.dim}, kappa={self.kappa!r})"

    def logpdf(self, t):
        """Log density: log of (1+t)^(a-1) (1-t)^(b-1) / (2^(a+b-1) B(a, b)); -inf outside [-1, 1].

        Formed as ``(a-1) log((1+t)/2) + (b-1) log((1-t)/2) - log 2 - log B(a, b)`` with
        ``log B(a, b) = log Gamma(b) - [log Gamma(a + b) - log Gamma(a)]`` (the bracket from
        :func:`sawdist.special._log_gamma_ratio`): the form with ``(a-1) log1p(t) - (a+b-1) log 2 - betaln(a, b)`` let
        terms ~ a log 2 cancel (and scipy's betaln itself loses ~ a/b ulps: 7e-12 at a = 1e5, b = 1).
        """
        t = self._check_t(t)
        inside = (t >= -1) & (t <= 1)
        tc = np.where(inside, t, 0.0)
        a, b = self.a, self.b
        # over: (a - 1) log((1+t)/2) passes -1.8e308 for kappa near the largest float, and -inf is the answer there
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # log((1+t)/2) and log((1-t)/2), each from the argument that is exact near its own pole
            log_up = np.where(tc >= 0, np.log1p(-0.5 * (1.0 - tc)), np.log(0.5 * (1.0 + tc)))
            log_down = np.where(tc <= 0, np.log1p(-0.5 * (1.0 + tc)), np.log(0.5 * (1.0 - tc)))
            val = (
                np.where(a == 1, 0.0, (a - 1) * log_up)
                + np.where(b == 1, 0.0, (b - 1) * log_down)
                - np.log(2.0)
                - sc.gammaln(b)
                + _log_gamma_ratio(a, b)
            )
            # Near the mode in high dimension that sum is ~ log sqrt(n) from terms ~ n log 2 (n = a + b): 2e-12
            # relative at d = 3072. There, with u = (1+t)/2 = p + delta, v = (1-t)/2 = q - delta, p = a/n, q = b/n,
            # and Stirling's log Gamma(z) = (z - 1/2) log z - z + log(2 pi)/2 + c(z) for a, b >= 10,
            #   log f = (a-1) log u + (b-1) log v - log 2 - log B(a, b)
            #         = a log(u/p) + b log(v/q) - log(u v) + log(a b/(2 pi n))/2 - log 2 - [c(a) + c(b) - c(n)],
            # and a log(1 + delta/p) + b log(1 - delta/q) = a log1pmx(delta/p) + b log1pmx(-delta/q) exactly, as
            # a delta/p = b delta/q = n delta: two terms <= 0 ~ -n delta^2/(2pq). delta = q - v for t >= 0 and
            # u - p below (v = (1 - t)/2 and u = (1 + t)/2 exact there; (t - E t)/2 would round q ~ 1e-227 away).
            # Used where |delta| <= min(p, q)/2 (away from the poles, where log u and log v keep their digits).
            n = a + b
            p, q = a / n, b / n
            delta = np.where(tc >= 0, q - 0.5 * (1.0 - tc), 0.5 * (1.0 + tc) - p)
            deviance = (a >= 10) & (b >= 10) & (np.abs(delta) <= 0.5 * np.minimum(p, q))
            if np.any(deviance):
                ab = np.where(deviance, a, 10.0)
                bb = np.where(deviance, b, 10.0)
                nb = ab + bb
                corr = (_stirling_corrections(ab, "lgamma") + _stirling_corrections(bb, "lgamma")
                        - _stirling_corrections(nb, "lgamma"))
                dev = (ab * _log1pmx(delta / p) + bb * _log1pmx(-delta / q) - (log_up + log_down)
                       + 0.5 * (np.log(ab) + np.log(bb) - np.log(nb) - np.log(2.0 * np.pi)) - np.log(2.0) - corr)
                val = np.where(deviance, dev, val)
        return np.where(inside, val, -np.inf)

    def _tails(self, t):
        """(P(T <= t), P(T > t)). The Beta argument is (1 + t)/2 for t < 0 and 1 - that = (1 - t)/2 for t >= 0,
        so it never rounds: near t = 1, (1 + t)/2 would lose every digit of 1 - t."""
        t = np.clip(self._check_t(t), -1.0, 1.0)
        low = (1.0 + t) / 2.0
        high = (1.0 - t) / 2.0
        upper = t >= 0
        cdf = np.where(upper, sc.betaincc(self.b, self.a, high), sc.betainc(self.a, self.b, low))
        sf = np.where(upper, sc.betainc(self.b, self.a, high), sc.betaincc(self.a, self.b, low))
        return cdf, sf

    def cdf(self, t):
        """P(T <= t)."""
        return self._tails(t)[0]

    def sf(self, t):
        """P(T > t), accurate in the upper tail."""
        return self._tails(t)[1]

    def ppf(self, q):
        """Quantile function, by safeguarded Newton steps on the Beta tail (:func:`_beta_tail_inverse`).

        The unknown is X = (1 - t)/2 ~ Beta(b, a) where t >= 0 and B = (1 + t)/2 ~ Beta(a, b) where t < 0 (each
        <= 1/2, so 1 -+ t keeps its digits near the pole it measures), and the tail solved for is the smaller one:
        P(T <= t) = P(X >= x) = q, or P(X <= x) = 1 - q for q > 1/2 (1 - q is exact there), or P(B <= x) = q.
        scipy's betaincinv alone returned NaN (b = 2, a = 1e10; a > 1e155) or quantiles whose probability was off
        by orders of magnitude (b = 0.5, a = 1e150) where a >> b, i.e. for large kappa."""
        q = np.asarray(q, dtype=float)
        shape = np.broadcast_shapes(q.shape, self.batch_shape)
        qf = np.broadcast_to(q, shape).ravel()
        a = np.broadcast_to(self.a, shape).ravel()
        b = np.broadcast_to(self.b, shape).ravel()
        out = np.full(qf.shape, np.nan)
        out[qf == 0] = -1.0
        out[qf == 1] = 1.0
        inner = np.nonzero((qf > 0) & (qf < 1))[0]
        if inner.size:
            qi, ai, bi = qf[inner], a[inner], b[inner]
            # t >= 0 iff q >= P(T < 0) = P(B < 1/2)
            t_pos = qi >= sc.betainc(ai, bi, 0.5)
            high = t_pos & (qi > 0.5)
            alpha = np.where(t_pos, bi, ai)
            beta = np.where(t_pos, ai, bi)
            p = np.where(high, 1.0 - qi, qi)
            upper = t_pos & ~high  # P(X > x) = q
            x = _beta_tail_inverse(alpha, beta, p, upper)
            out[inner] = np.where(t_pos, 1.0 - 2.0 * x, 2.0 * x - 1.0)
        return out.reshape(shape)[()]

    def rvs(self, size=None, rng=None, random_state=None):
        """Draw cosines as 2B - 1 with B ~ Beta, computing 1 - t from the complementary Beta variate."""
        size = as_size(size)
        rng = as_generator(rng, random_state, default=self._seed_rng)
        return self._draw(size + self.batch_shape, rng)[0]

    def rvs_t_and_complement(self, rng):
        """(t, 1 - t) for draws of shape ``batch_shape``; 1 - t keeps its digits where t rounds to 1 (kappa = 1e30:
        1 - t ~ 1e-30), which the tangent radius sqrt((1 - t)(1 + t)) needs."""
        return self._draw(self.batch_shape, rng)

    def _draw(self, shape, rng):
        # 1 - B ~ Beta(b, a); drawing it directly keeps 1 - t = 2 (1 - B) relative-accurate when t is near 1.
        one_minus_b = rng.beta(np.broadcast_to(self.b, shape), np.broadcast_to(self.a, shape))
        s = np.asarray(2.0 * one_minus_b)
        return np.asarray(1.0 - s), s

    def mean(self):
        """E[t] = (a - b)/(a + b) = kappa / (d - 1 + kappa)."""
        return self.kappa / (self.dim - 1.0 + self.kappa)

    def var(self):
        """Var[t] = 4ab / ((a + b)^2 (a + b + 1)), as 4 (a/(a+b)) (b/(a+b)) / (a+b+1): (a+b)^2 (a+b+1) overflows
        from a ~ 5e102 (giving 0 where the variance is ~ 4b/a^2, e.g. 2e-300 at a = 1e150)."""
        s = self.a + self.b
        return 4.0 * (self.a / s) * (self.b / s) / (s + 1.0)


def _log_beta(alpha, beta):
    """log B(alpha, beta) = log Gamma(s) - [log Gamma(l + s) - log Gamma(l)], s = min, l = max (no cancellation)."""
    small, large = np.minimum(alpha, beta), np.maximum(alpha, beta)
    return sc.gammaln(small) - _log_gamma_ratio(large, small)


def _beta_tail_inverse(alpha, beta, p, upper):
    """x in (0, 1/2] with P(X <= x) = p (``upper`` False) or P(X > x) = p (True), X ~ Beta(alpha, beta); 1-D arrays.

    Newton's method on F(u) = log P_tail(e^u) - log p in u = log x: F is monotone in u and, for a tail
    ~ x^alpha, nearly linear, with F'(u) = +-x f(x) / P_tail(x) (f the Beta density, formed in logs). The start
    is scipy's betaincinv (or betainccinv) where that is finite and in (0, 1), else the gamma limit
    (X ~ Gamma(alpha)/beta as beta -> inf); every step is kept inside a bracket [lo, hi] of u that shrinks with each
    evaluation (bisection in u where Newton leaves it), so it converges whatever the start. It stops when the step
    in u (the relative change of x) is below 4 eps, or after 100 evaluations.
    """
    sign = np.where(upper, -1.0, 1.0)
    log_p = np.log(p)
    log_b = _log_beta(alpha, beta)
    with np.errstate(all="ignore"):
        guess = np.where(upper, sc.betainccinv(alpha, beta, p), sc.betaincinv(alpha, beta, p))
        gamma_guess = np.where(upper, sc.gammainccinv(alpha, p), sc.gammaincinv(alpha, p)) / (beta + alpha)
        guess = np.where(np.isfinite(guess) & (guess > 0) & (guess < 1), guess, gamma_guess)
        lo = np.full(p.shape, np.log(np.finfo(float).smallest_subnormal))
        hi = np.full(p.shape, np.log(0.5))
        u = np.clip(np.log(guess), lo, hi)
        u = np.where(np.isfinite(u), u, 0.5 * (lo + hi))
        done = np.zeros(p.shape, dtype=bool)
        for _ in range(100):
            x = np.exp(u)
            tail = np.where(upper, sc.betaincc(alpha, beta, x), sc.betainc(alpha, beta, x))
            f = sign * (np.log(tail) - log_p)  # increasing in u
            lo = np.where(f <= 0, u, lo)
            hi = np.where(f >= 0, u, hi)
            log_density = (alpha - 1.0) * np.log(x) + (beta - 1.0) * np.log1p(-x) - log_b
            slope = np.exp(u + log_density - np.log(tail))  # d f / d u > 0
            step = -f / slope
            new = u + step
            ok = np.isfinite(new) & (new >= lo) & (new <= hi)
            new = np.where(ok, new, 0.5 * (lo + hi))
            conv = np.abs(new - u) <= 4.0 * np.finfo(float).eps * np.maximum(1.0, np.abs(u))
            u = np.where(done, u, new)
            done |= conv | (f == 0)
            if np.all(done):
                break
    return np.exp(u)


class _OneNumericCosine:
    """Quadrature tables for one scalar parameter set (see the module docstring)."""

    def __init__(self, dim: int, log_shape, log_shape_name: str = "log_shape", log_shape_theta=None,
                 offset: float = 0.0):
        self.dim = dim
        self.log_shape = log_shape
        self._name = log_shape_name
        # log_shape_theta(theta) = log psi(cos theta) - offset, when the family can write it without forming
        # cos theta (vMF: kappa (cos theta - 1) = -2 kappa sin^2(theta/2)): kappa cos theta carries the absolute
        # error kappa eps, 2e-9 at kappa = 1e7 (cdf errors ~1e-10), and at kappa ~ 1e16 no information at all.
        self._log_shape_theta = log_shape_theta
        # Coarse grid: uniform in theta plus geometric grids towards both poles, for peaks of width down to 1e-10
        # (down to 1e-160 for a shape given in theta: the vMF band has width ~sqrt(d/kappa), 1e-154 at the largest
        # kappa; a shape of t cannot resolve angles below ~1e-8 anyway, where cos theta rounds to 1).
        poles = np.geomspace(1e-10, 0.05, 240) if log_shape_theta is None else np.geomspace(1e-160, 0.05, 4000)
        grid = np.unique(np.concatenate([np.linspace(0.0, np.pi, 4097), poles, np.pi - poles]))
        g = self.log_integrand(grid)
        lo, hi = self._bracket(grid, g, margin=_DROP + 40.0)
        fine = np.linspace(lo, hi, 4097)
        gf = self.log_integrand(fine)
        lo, hi = self._bracket(fine, gf, margin=_DROP)
        # A band ending within 1e-6 of a pole is extended to it: there t = cos(theta) rounds to +-1, so psi may
        # read -inf although its mass is only negligible, not zero; the graded panels below then resolve it.
        lo = 0.0 if lo < 1e-6 else lo
        hi = np.pi if hi > np.pi - 1e-6 else hi
        self.gmax = float(np.max(gf))
        edges = np.linspace(lo, hi, _N_PANELS + 1)
        # Where the band reaches a pole (t = +-1), psi or the base measure may be singular there ((1 + t)^kappa
        # with fractional kappa at d = 2, log psi in the entropy): grade the end panel geometrically towards the
        # pole, so each sub-panel sees a smooth function and the singularity costs no accuracy.
        grading = 2.0 ** -np.arange(1, 41)
        if lo == 0.0:
            edges = np.concatenate([[0.0], edges[1] * grading[::-1], edges[1:]])
        if hi == np.pi:
            edges = np.concatenate([edges[:-1], np.pi - (np.pi - edges[-2]) * grading, [np.pi]])
        self.edges = edges
        left, width = self.edges[:-1], np.diff(self.edges)
        self.nodes = (left[:, None] + width[:, None] * (_GL_NODES + 1.0) / 2.0)  # (panels, 16)
        self.weights = width[:, None] * _GL_WEIGHTS / 2.0 * np.exp(self.log_integrand(self.nodes) - self.gmax)
        panel_mass = self.weights.sum(axis=1)
        total = panel_mass.sum()
        if not (np.isfinite(total) and total > 0):
            raise ValueError(f"'{self._name}' gives a density that cannot be normalised (integral {total!r}).")
        self.scale = total
        self.weights = self.weights / total
        # cum_left[j] = mass of theta < edges[j]; cum_right[j] = mass of theta > edges[j]
        self.cum_left = np.concatenate([[0.0], np.cumsum(panel_mass / total)])
        self.cum_right = np.concatenate([np.cumsum((panel_mass / total)[::-1])[::-1], [0.0]])
        self.log_z = self.gmax + np.log(total) + offset

    def log_integrand(self, theta):
        theta = np.asarray(theta, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # -inf where psi underflows
            if self._log_shape_theta is not None:
                val = np.asarray(self._log_shape_theta(theta), dtype=float)
            else:
                val = np.asarray(self.log_shape(np.cos(theta)), dtype=float)
        if val.shape != theta.shape:
            raise ValueError(
                f"'{self._name}' must return an array of the same shape as its input, "
                f"got {val.shape} for {theta.shape}."
            )
        bad = np.isnan(val) | (val == np.inf)
        if np.any(bad):
            t = float(np.cos(theta[bad].flat[0]))
            raise ValueError(
                f"'{self._name}' must return finite values or -inf, got {val[bad].flat[0].item()!r} at t = {t!r}.")
        if self.dim > 2:
            with np.errstate(divide="ignore"):
                val = val + (self.dim - 2) * np.log(np.sin(theta))
        return val

    @staticmethod
    def _bracket(grid, g, margin):
        gmax = np.max(g)
        if not np.isfinite(gmax):
            raise ValueError("the cosine density is zero everywhere on [-1, 1].")
        keep = np.nonzero(g >= gmax - margin)[0]
        i, j = max(keep[0] - 1, 0), min(keep[-1] + 1, len(grid) - 1)
        return float(grid[i]), float(grid[j])

    def _mass_between(self, a, b):
        """Normalised mass of theta in [a, b] for a, b in one panel (16-point Gauss–Legendre)."""
        x = a[..., None] + (b - a)[..., None] * (_GL_NODES + 1.0) / 2.0
        w = (b - a)[..., None] * _GL_WEIGHTS / 2.0
        return np.sum(w * np.exp(self.log_integrand(x) - self.gmax), axis=-1) / self.scale

    def mass_below_above(self, theta):
        """(mass of angles < theta, mass of angles > theta), each accurate on its own (no 1 - x)."""
        theta = np.clip(np.asarray(theta, dtype=float), self.edges[0], self.edges[-1])
        j = np.clip(np.searchsorted(self.edges, theta, side="right") - 1, 0, len(self.edges) - 2)
        part_left = self._mass_between(self.edges[j], theta)
        part_right = self._mass_between(theta, self.edges[j + 1])
        return self.cum_left[j] + part_left, self.cum_right[j + 1] + part_right

    def expect(self, fn_theta):
        # nodes of zero weight (log psi = -inf where t rounds to a pole) contribute nothing, not 0 * inf
        with np.errstate(invalid="ignore"):
            values = self.weights * fn_theta(self.nodes)
        return float(np.sum(np.where(self.weights > 0, values, 0.0)))

    def mean_var(self):
        """E[t] and Var[t]; the variance is formed from s = 1 - t = 2 sin^2(theta/2) (or 1 + t) for precision."""
        mean = self.expect(np.cos)
        if mean >= 0:
            s = lambda th: 2.0 * np.sin(th / 2.0) ** 2  # noqa: E731
        else:
            s = lambda th: 2.0 * np.cos(th / 2.0) ** 2  # noqa: E731
        ms = self.expect(s)
        var = self.expect(lambda th: (s(th) - ms) ** 2)
        return mean, var

    def ppf(self, q):
        """Angle-space Newton iterations on the cumulative mass, started from the tabulated nodes."""
        q = np.asarray(q, dtype=float)
        target_right = q  # P(T <= t) = P(theta >= arccos t) = mass above theta
        nodes = self.nodes.ravel()
        # approximate mass above each node, summed from the far end: 1 - cumsum(weights) rounded every mass below
        # ~1e-16 to 0, so the start for q = 1e-18 was far off, and 30 steps (bisecting where Newton left the bracket)
        # ended 1% from the quantile
        w = self.weights.ravel()
        cum_nodes_right = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])
        # Initial guess by interpolation in the monotone table (decreasing in theta).
        theta = np.interp(-target_right, -np.concatenate([[1.0], cum_nodes_right, [0.0]]),
                          np.concatenate([[self.edges[0]], nodes, [self.edges[-1]]]))
        lo = np.full_like(theta, self.edges[0])
        hi = np.full_like(theta, self.edges[-1])
        for _ in range(100):
            below, above = self.mass_below_above(theta)
            # f(theta) = above(theta) - q, decreasing in theta.
            # Both branches decrease in theta; each uses the tail that is < 1/2, so neither loses digits.
            f = np.where(q > 0.5, (1.0 - q) - below, above - q)
            lo = np.where(f > 0, theta, lo)
            hi = np.where(f <= 0, theta, hi)
            dens = np.exp(self.log_integrand(theta) - self.gmax) / self.scale
            with np.errstate(divide="ignore", invalid="ignore"):
                step = theta + f / dens
            # non-strict: at convergence the Newton step returns theta itself, which is also a bracket end
            ok = np.isfinite(step) & (step >= lo) & (step <= hi)
            new = np.where(ok, step, 0.5 * (lo + hi))
            converged = np.abs(new - theta) <= 4e-16 * np.maximum(theta, 1e-300) + 1e-300
            theta = new
            if np.all(converged):
                break
        return theta


class NumericCosine(_CosineBase):
    """Cosine law for any shape, given log psi(t, *params) vectorised in t, by angle-space quadrature.

    Parameters
    ----------
    dim : int
        Ambient dimension d >= 2.
    log_shape : callable
        ``log_shape(t, *params)`` -> log psi(t); broadcasting over t only (parameters are scalars here).
    params : tuple of array_like
        Parameters broadcast to the batch shape; one quadrature table is built per batch element.
    log_shape_name : str
        Name used in error messages.
    log_shape_theta, log_shape_offset : callable, optional
        ``log_shape_theta(theta, *params) = log psi(cos theta) - log_shape_offset(*params)``, an angle-space form
        of the shape that the tables use instead of ``log_shape(cos(theta))`` (for shapes whose log is large and
        nearly constant near a pole, where cos theta rounds).
    """

    def __init__(self, dim: int, log_shape, params=(), log_shape_name: str = "log_shape", exact_mean=None,
                 exact_logpdf=None, log_shape_theta=None, log_shape_offset=None):
        self.dim = dim
        self._log_shape = log_shape
        self._params = tuple(np.asarray(p, dtype=float) for p in params)
        self.batch_shape = np.broadcast_shapes(*(p.shape for p in self._params)) if self._params else ()
        bparams = [np.broadcast_to(p, self.batch_shape) for p in self._params]
        self._tables = np.empty(self.batch_shape, dtype=object)
        for idx in np.ndindex(self.batch_shape):
            args = tuple(float(p[idx]) for p in bparams)
            theta_fn, offset = None, 0.0
            if log_shape_theta is not None:
                theta_fn = lambda th, a=args: log_shape_theta(th, *a)  # noqa: E731
                offset = float(log_shape_offset(*args))
            self._tables[idx] = _OneNumericCosine(dim, lambda t, a=args: log_shape(t, *a), log_shape_name,
                                                  theta_fn, offset)
        self._exact_mean = exact_mean
        self._exact_logpdf = exact_logpdf

    def __repr__(self):
        return f"NumericCosine(dim={self.dim}, batch_shape={self.batch_shape})"

    def log_normalizer(self):
        """log Z = log int psi(t) (1 - t^2)^((d-3)/2) dt, shape ``batch_shape``."""
        return np.vectorize(lambda tab: tab.log_z, otypes=[float])(self._tables)

    def _map(self, fn, arg):
        """Apply fn(table, values) per batch element; `arg` broadcast to (..., *batch_shape)."""
        arg = np.asarray(arg, dtype=float)
        shape = np.broadcast_shapes(arg.shape, self.batch_shape)
        arg = np.broadcast_to(arg, shape)
        out = np.empty(shape)
        nb = len(self.batch_shape)
        for idx in np.ndindex(self.batch_shape):
            sl = (Ellipsis,) + idx if nb else (Ellipsis,)
            out[sl] = fn(self._tables[idx], arg[sl])
        return out

    def logpdf(self, t):
        """Log density of t; -inf outside [-1, 1]."""
        if self._exact_logpdf is not None:
            return self._exact_logpdf(np.asarray(t, dtype=float))
        t = np.asarray(t, dtype=float)

        def one(tab, tt):
            inside = (tt >= -1) & (tt <= 1)
            tc = np.where(inside, tt, 0.0)
            val = np.asarray(tab.log_shape(tc), dtype=float) - tab.log_z
            if self.dim != 3:  # the base measure (1 - t^2)^((d-3)/2); at d = 3 it is 1, also at t = +-1
                val = val + (self.dim - 3) / 2.0 * log1m_t2(tc)
            return np.where(inside, val, -np.inf)

        return self._map(one, t)

    def cdf(self, t):
        """P(T <= t) = mass of angles >= arccos t."""
        return self._map(lambda tab, tt: tab.mass_below_above(np.arccos(np.clip(tt, -1, 1)))[1], t)

    def sf(self, t):
        """P(T > t), computed directly (accurate in the upper tail)."""
        return self._map(lambda tab, tt: tab.mass_below_above(np.arccos(np.clip(tt, -1, 1)))[0], t)

    def ppf(self, q):
        """Quantile function (Newton in angle space, bracketed); -1 at q = 0 and 1 at q = 1 (the ends of the support,
        which the tables, ending where the density is e^-730 of its peak, do not reach), NaN outside [0, 1]."""
        q = np.asarray(q, dtype=float)
        inner = self._map(lambda tab, qq: np.cos(tab.ppf(np.clip(qq, 0.0, 1.0))), q)
        return np.where(q == 0, -1.0, np.where(q == 1, 1.0, np.where((q > 0) & (q < 1), inner, np.nan)))[()]

    def mean(self):
        """E[t] (closed form where the family has one)."""
        if self._exact_mean is not None:
            return self._exact_mean()
        return np.vectorize(lambda tab: tab.mean_var()[0], otypes=[float])(self._tables)

    def var(self):
        """Var[t] by quadrature of (s - E s)^2 with s = 1 -+ t (no cancellation near t = +-1)."""
        return np.vectorize(lambda tab: tab.mean_var()[1], otypes=[float])(self._tables)

    def expect_log_shape(self):
        """E[log psi(t)], used for the entropy."""
        return np.vectorize(lambda tab: tab.expect(lambda th: tab.log_shape(np.cos(th))), otypes=[float])(self._tables)
