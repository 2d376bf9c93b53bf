r"""Penalised log-spline estimation of a Saw shape from cosines: the one-dimensional core of the semi-parametric fit.

Model (docs/theory/saw_family.md, docs/theory/semiparametric.md). Cosines t_1..t_n in (-1, 1) of a Saw distribution
on S^{d-1} have the density

    f_T(t; theta) = exp(s_theta(t)) (1 - t^2)^((d-3)/2) / Z(theta),
    Z(theta) = int_{-1}^{1} e^{s_theta(t)} (1-t^2)^((d-3)/2) dt,

with log psi = s_theta a natural cubic spline: cubic between knots xi_1 < ... < xi_K placed at quantiles of the t_i
(the ends at the smallest and largest t_i), linear outside them. Outside the data log psi is not identified (in high d
the t_i fill a band of width ~1/sqrt(d)), and linear extrapolation is the choice that adds no curvature there; in
particular the spline nests the von Mises–Fisher shape log psi = kappa t.

Parametrisation. s_theta(t) = sum_k f_k N_k(t) with N_k the *cardinal* natural splines (N_k(xi_j) = delta_kj), so the
coefficients are the values of log psi at the knots: well conditioned, and local. log psi is defined up to a constant
(absorbed in Z), so the value at one reference knot is fixed at 0 and theta holds the other K - 1 values.

Likelihood. This is an exponential family in theta with sufficient statistic B(t) = (N_k(t))_k:

    l(theta)  = theta' sum_i B(t_i) - n log Z(theta) + const,
    grad l    = sum_i B(t_i) - n E_theta[B],       Hessian = -n Cov_theta[B]   (negative semi-definite),

so the penalised log-likelihood l(theta) - (lam/2) theta' P theta, with P the Gram matrix of the roughness
int (s_theta'')^2 dz, is concave and Newton's method with backtracking converges from any start. The penalty does
not see linear functions, so the penalised fit still matches the first moment: E_theta[t] = mean(t_i) exactly.

Quadrature. Z and the moments of B are integrals over the angle phi = arccos t, where
f_T(t) dt = psi(cos phi) sin(phi)^(d-2) dphi / Z is bounded for every d >= 2. Composite 8-point Gauss–Legendre on
panels that (i) cover [0, pi] at spacing <= 1.5/sqrt(d) (1.5 standard deviations of the base measure's peak) and (ii)
resolve the data band at a quarter of its spread, with every knot a panel edge (the spline is a polynomial on each
panel, so the rule is near-exact there). Sums over the nodes are taken in log space (log-sum-exp).

Smoothing. lam is chosen on a grid by Akaike's criterion with effective degrees of freedom,
AIC(lam) = -2 l(theta_lam) + 2 edf(lam),  edf = tr[(n C + lam P)^{-1} n C]  (C = Cov_theta[B]; Hastie & Tibshirani
1990, §6.8; Gu 2013, §7.3), i.e. an estimate of the expected out-of-sample log-likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from .distributions._cosine import log1m_t2

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


def logsumexp(x):
    """log sum exp(x) for a finite 1-D array (a lean version of scipy.special.logsumexp for the Newton loop)."""
    m = np.max(x)
    return float(m + np.log(np.sum(np.exp(x - m))))


def default_n_knots(n: int) -> int:
    """K = round(n^(1/3)) + 2, between 3 and 12: 5 knots for 20 draws, 7 for 100, 12 from 1000 on."""
    return int(np.clip(round(n ** (1.0 / 3.0)) + 2, 3, 12))


class NaturalSplineBasis:
    """Cardinal natural cubic splines on ``knots``, extended linearly outside them."""

    def __init__(self, knots):
        self.knots = np.asarray(knots, dtype=np.float64)
        K = self.knots.size
        self._cs = CubicSpline(self.knots, np.eye(K), bc_type="natural") if K > 2 else None
        if K > 2:
            self._slope_lo = self._cs(self.knots[0], 1)
            self._slope_hi = self._cs(self.knots[-1], 1)
        else:  # two knots: the natural spline is the straight line through them
            h = self.knots[1] - self.knots[0]
            self._slope_lo = self._slope_hi = np.array([-1.0, 1.0]) / h

    @property
    def size(self) -> int:
        return self.knots.size

    def __call__(self, t) -> np.ndarray:
        """Basis matrix, shape ``t.shape + (K,)``."""
        t = np.asarray(t, dtype=np.float64)
        lo, hi = self.knots[0], self.knots[-1]
        K = self.size
        tc = np.clip(t, lo, hi)
        if self._cs is not None:
            inside = self._cs(tc)
        else:
            w = (tc - lo) / (hi - lo)
            inside = np.stack([1.0 - w, w], axis=-1)
        below = np.minimum(t - lo, 0.0)[..., None]
        above = np.maximum(t - hi, 0.0)[..., None]
        out = inside + below * self._slope_lo + above * self._slope_hi
        return out.reshape(t.shape + (K,))

    def penalty(self) -> np.ndarray:
        """P with f' P f = int (s'')^2 over the knot range (zero outside: the extension is linear).

        s'' is linear between knots, so on [xi_j, xi_{j+1}] of width h the integral of s_a'' s_b'' is
        h/6 (2 a_l b_l + a_l b_r + a_r b_l + 2 a_r b_r) (exact).
        """
        K = self.size
        if self._cs is None:
            return np.zeros((K, K))
        M = self._cs(self.knots, 2)  # (knot, basis)
        h = np.diff(self.knots)
        L, R = M[:-1], M[1:]
        P = np.einsum("j,ja,jb->ab", h / 6.0, 2 * L, L) + np.einsum("j,ja,jb->ab", h / 6.0, L, R)
        P += np.einsum("j,ja,jb->ab", h / 6.0, R, L) + np.einsum("j,ja,jb->ab", h / 6.0, 2 * R, R)
        return 0.5 * (P + P.T)


class SplineLogShape:
    """log psi(t) as a natural cubic spline through ``(knots, values)``, linear outside the knots.

    A vectorised callable ``t -> log psi(t)``, usable as the ``log_shape`` of :func:`sawdist.saw`.

    Examples
    --------
    >>> from sawdist._logspline import SplineLogShape
    >>> f = SplineLogShape([0.0, 0.5, 1.0], [0.0, 1.0, 2.0])
    >>> f([-1.0, 0.25, 2.0])
    array([-2. ,  0.5,  4. ])
    """

    def __init__(self, knots, values):
        self.knots = np.asarray(knots, dtype=np.float64)
        self.values = np.asarray(values, dtype=np.float64)
        if self.knots.size > 2:
            self._cs = CubicSpline(self.knots, self.values, bc_type="natural")
            self._slopes = (float(self._cs(self.knots[0], 1)), float(self._cs(self.knots[-1], 1)))
        else:
            slope = (self.values[-1] - self.values[0]) / (self.knots[-1] - self.knots[0])
            self._cs = None
            self._slopes = (slope, slope)

    def __call__(self, t):
        t = np.asarray(t, dtype=np.float64)
        lo, hi = self.knots[0], self.knots[-1]
        tc = np.clip(t, lo, hi)
        if self._cs is not None:
            inside = self._cs(tc)
        else:
            inside = self.values[0] + self._slopes[0] * (tc - lo)
        return inside + np.minimum(t - lo, 0.0) * self._slopes[0] + np.maximum(t - hi, 0.0) * self._slopes[1]

    def derivative(self, t):
        """d log psi / dt."""
        t = np.asarray(t, dtype=np.float64)
        lo, hi = self.knots[0], self.knots[-1]
        inside = self._cs(np.clip(t, lo, hi), 1) if self._cs is not None else np.full(t.shape, self._slopes[0])
        return np.where(t < lo, self._slopes[0], np.where(t > hi, self._slopes[1], inside))

    def __repr__(self):
        return f"SplineLogShape(knots={np.array2string(self.knots, precision=4)}, values=...)"


class _Quadrature:
    """Gauss–Legendre nodes in the angle phi = arccos t; log weights include sin(phi)^(d-2) (see module docstring)."""

    def __init__(self, t, dim, knots):
        phi_data = np.arccos(np.clip(t, -1.0, 1.0))
        spread = np.std(phi_data)
        q75, q25 = np.quantile(phi_data, [0.75, 0.25])
        if q75 > q25:
            spread = min(spread, (q75 - q25) / 1.349)
        lo, hi = phi_data.min(), phi_data.max()
        spread = max(spread, (hi - lo) / max(t.size, 1), 1e-12 * max(hi, 1e-300), 1e-300)
        dense_lo, dense_hi = max(lo - 12 * spread, 0.0), min(hi + 12 * spread, np.pi)
        n_dense = int(min(np.ceil((dense_hi - dense_lo) / (spread / 4)), 600))
        n_out = int(np.ceil(np.pi / min(np.pi / 64, 1.5 / np.sqrt(dim))))
        edges = np.concatenate(
            [
                np.linspace(0.0, np.pi, n_out + 1),
                np.linspace(dense_lo, dense_hi, max(n_dense, 1) + 1),
                np.arccos(np.clip(knots, -1.0, 1.0)),
            ]
        )
        edges = np.unique(edges)
        left, span = edges[:-1], np.diff(edges)
        keep = span > 0
        left, span = left[keep], span[keep]
        phi = (left[:, None] + span[:, None] * (_GL_NODES + 1.0) / 2.0).ravel()
        w = (span[:, None] * _GL_WEIGHTS / 2.0).ravel()
        with np.errstate(divide="ignore"):
            self.log_w = np.log(w) + (dim - 2) * np.log(np.sin(phi)) if dim > 2 else np.log(w)
        finite = np.isfinite(self.log_w)
        self.t = np.cos(phi[finite])
        self.log_w = self.log_w[finite]


@dataclass
class LogSplineFit:
    """Result of :func:`fit_log_spline` (all on the cosine scale)."""

    log_shape: SplineLogShape
    knots: np.ndarray
    values: np.ndarray
    lam: float
    edf: float
    aic: float
    loglik: float  # sum_i log f_T(t_i), the cosine-law log-likelihood of the fitted t_i
    log_z: float  # log int psi(t) (1-t^2)^((d-3)/2) dt by the fit's own quadrature
    mean: float  # E[t] under the fit
    n: int
    dim: int
    n_iter: int
    converged: bool
    path: dict = field(default_factory=dict)  # lam grid -> (edf, aic)


class LogSplineProblem:
    """The penalised exponential-family likelihood in theta = values at the non-reference knots (used by
    :func:`fit_log_spline` and, one per capacity, by :func:`sawdist.capacity.fit_family`).

    Internally the parameter is gamma = U' theta with U the eigenvectors of P; methods take and return gamma.
    """

    def __init__(self, t, dim, knots, weights=None, ref=None, scale=None, rotation=None):
        self.dim = dim
        self.basis = NaturalSplineBasis(knots)
        self.ref = int(np.argmin(np.abs(knots - np.median(t)))) if ref is None else int(ref)
        keep = np.arange(knots.size) != self.ref
        self.keep = keep
        self.quad = _Quadrature(t, dim, knots)
        # Roughness in the standardised coordinate z = (t - c)/s: int s''(z)^2 dz = s^3 int s''(t)^2 dt, so lam is
        # dimensionless (comparable across d and across concentrations).
        if scale is None:
            scale = np.std(t) if np.std(t) > 0 else 1.0
        P = self.basis.penalty()[np.ix_(keep, keep)] * scale**3
        # Work in the eigenbasis of P (gamma = U' theta): the penalty is then sum_j e_j gamma_j^2 with the null space
        # (straight lines) exactly unpenalised, so lam * P theta carries no rounding error from the line component
        # even for lam ~ 1e12. A capacity family passes one shared U (its P is the same in z units).
        e, U = np.linalg.eigh(0.5 * (P + P.T))
        e[e < 1e-10 * max(e.max(), 1e-300)] = 0.0
        if rotation is not None:
            U = rotation
            e = np.where(np.abs(np.diag(U.T @ P @ U)) < 1e-10 * max(e.max(), 1e-300), 0.0, np.diag(U.T @ P @ U))
        self.U, self.pen = U, e
        self.Bq = self.basis(self.quad.t)[:, keep] @ U
        self.set_data(t, weights)

    def set_data(self, t, weights=None):
        """(Re)load the data sums; the quadrature (built for the first data) is kept, e.g. for bootstrap refits."""
        B_data = self.basis(t)[:, self.keep] @ self.U
        lt = log1m_t2(t)
        self.n = float(t.size if weights is None else weights.sum())
        self.sB = B_data.sum(axis=0) if weights is None else weights @ B_data
        self.base_data = (self.dim - 3) / 2.0 * (lt.sum() if weights is None else weights @ lt)

    def mean_t(self, theta):
        """E[t] under the fitted cosine law."""
        eta = self.quad.log_w + self.Bq @ theta
        p = np.exp(eta - logsumexp(eta))
        return float(p @ self.quad.t)

    def log_z(self, theta):
        return logsumexp(self.quad.log_w + self.Bq @ theta)

    def loglik(self, theta):
        """Unpenalised cosine-law log-likelihood."""
        return self.sB @ theta + self.base_data - self.n * self.log_z(theta)

    def objective(self, theta, lam):
        return self.loglik(theta) - 0.5 * lam * np.sum(self.pen * theta**2)

    def moments(self, theta):
        eta = self.quad.log_w + self.Bq @ theta
        lz = logsumexp(eta)
        p = np.exp(eta - lz)
        EB = p @ self.Bq
        Bc = self.Bq - EB
        C = (Bc * p[:, None]).T @ Bc
        return lz, EB, 0.5 * (C + C.T)

    def newton(self, theta, lam, max_iter=100, tol=1e-22):
        """Maximise the penalised log-likelihood; returns (theta, n_iter, converged)."""
        obj = self.objective(theta, lam)
        for it in range(1, max_iter + 1):
            _, EB, C = self.moments(theta)
            g = self.sB - self.n * EB - lam * self.pen * theta
            H = self.n * C + lam * np.diag(self.pen)
            step = solve_psd(H, g)
            dec = g @ step  # Newton decrement^2: twice the predicted gain
            if not np.isfinite(dec):
                return theta, it, False
            if dec <= tol * max(1.0, self.n):
                return theta, it, True
            if dec < 1e-6 * max(1.0, self.n):
                # Quadratic-convergence region: the full step is taken without a line search, whose Armijo test
                # would compare objective values differing by less than their rounding error.
                cand = theta + step
                new = self.objective(cand, lam)
                if np.isfinite(new):
                    theta, obj = cand, new
                    continue
            a = 1.0
            while True:
                cand = theta + a * step
                new = self.objective(cand, lam)
                if np.isfinite(new) and new >= obj + 1e-4 * a * dec:
                    break
                a *= 0.5
                if a < 1e-12:
                    return theta, it, dec < 1e-6 * max(1.0, self.n)
            theta, obj = cand, new
        return theta, max_iter, False

    def edf(self, theta, lam):
        _, _, C = self.moments(theta)
        F = self.n * C
        return float(np.trace(solve_psd(F + lam * np.diag(self.pen), F)))


def solve_psd(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve H x = g for symmetric positive semi-definite H (Cholesky; tiny ridge if singular)."""
    ridge = 0.0
    scale = max(np.max(np.abs(np.diag(H))), 1e-300)
    for _ in range(6):
        try:
            c = cho_factor(H + ridge * np.eye(H.shape[0]), lower=True, check_finite=False)
            x = cho_solve(c, g, check_finite=False)
            if np.all(np.isfinite(x)):
                return x
        except LinAlgError:
            pass
        ridge = scale * (1e-14 if ridge == 0 else ridge / scale * 1e3)
    return np.linalg.lstsq(H, g, rcond=None)[0]


def kappa_start(t: np.ndarray, dim: int) -> float:
    """vMF-like start log psi = kappa t, kappa from Banerjee et al. (2005): kappa = m (d - m^2)/(1 - m^2).

    For d >= 3 a sharper start matches the mode: the log density kappa t + (d-3)/2 log(1-t^2) peaks where
    kappa = (d-3) t/(1-t^2); we take the larger of the two at the sample mean so the first quadrature sees the data.
    """
    m = float(np.clip(np.mean(t), -1 + 1e-12, 1 - 1e-12))
    k1 = m * (dim - m * m) / (1.0 - m * m)
    k2 = (dim - 3) * m / (1.0 - m * m)
    return k1 if abs(k1) >= abs(k2) else k2


LAM_GRID = 10.0 ** np.arange(-4.0, 6.01, 0.5)


def fit_log_spline(t: np.ndarray, dim: int, *, n_knots: int | None = None, lam: float | None = None,
                   weights: np.ndarray | None = None, max_iter: int = 100,
                   lam_grid: np.ndarray | None = None) -> LogSplineFit:
    """Penalised maximum-likelihood log-spline fit of the cosine law (see the module docstring).

    Parameters
    ----------
    t : ndarray, shape (n,)
        Cosines in (-1, 1), at least 2 distinct values.
    dim : int
        Ambient dimension d >= 2 of the sphere.
    n_knots : int, optional
        Number of knots K (default :func:`default_n_knots`); placed at the quantiles 0, 1/(K-1), ..., 1 of ``t``.
    lam : float, optional
        Smoothing parameter; by default chosen on :data:`LAM_GRID` by AIC.
    weights : ndarray, optional
        Non-negative weights of the t_i (frequency weights).
    lam_grid : ndarray, optional
        The grid searched by AIC when ``lam`` is None (default :data:`LAM_GRID`).

    Returns
    -------
    LogSplineFit
        The fitted log shape (``log_shape``, a :class:`SplineLogShape`), the smoothing ``lam`` chosen, its AIC and
        log-likelihood, and whether the Newton iterations converged.
    """
    t = np.asarray(t, dtype=np.float64)
    K = default_n_knots(t.size) if n_knots is None else int(n_knots)
    knots = np.unique(np.quantile(t, np.linspace(0.0, 1.0, K)))
    if knots.size < 2:
        raise ValueError(f"'directions' must give at least 2 distinct cosines, got {knots.size}.")
    prob = LogSplineProblem(t, dim, knots, weights)
    # Start: the straight line kappa (t - xi_ref), i.e. a vMF shape, at the reference-knot convention.
    kappa = kappa_start(t, dim)
    theta = prob.U.T @ (kappa * (knots - knots[prob.ref])[prob.keep])  # internal coordinates gamma
    path = {}
    if lam is not None:
        grid = [float(lam)]
    elif knots.size <= 2:
        grid = [0.0]  # a straight line: nothing to smooth
    else:
        grid = list(np.sort(LAM_GRID if lam_grid is None else np.asarray(lam_grid, dtype=np.float64))[::-1])
        # from smooth to rough, warm-started
    best = None
    total_iter = 0
    for lam_j in grid:
        theta, it, ok = prob.newton(theta, lam_j, max_iter=max_iter)
        total_iter += it
        ll = prob.loglik(theta)
        edf = prob.edf(theta, lam_j)
        aic = -2.0 * ll + 2.0 * edf
        path[lam_j] = (edf, aic)
        if best is None or aic < best[0]:
            best = (aic, lam_j, theta.copy(), ll, edf, ok)
    aic, lam_best, theta, ll, edf, ok = best
    values = np.zeros(knots.size)
    values[prob.keep] = prob.U @ theta
    lz = prob.log_z(theta)
    mean = prob.mean_t(theta)
    return LogSplineFit(
        log_shape=SplineLogShape(knots, values),
        knots=knots,
        values=values,
        lam=lam_best,
        edf=edf,
        aic=aic,
        loglik=float(ll),
        log_z=float(lz),
        mean=mean,
        n=t.size,
        dim=int(dim),
        n_iter=total_iter,
        converged=bool(ok),
        path=path,
    )
