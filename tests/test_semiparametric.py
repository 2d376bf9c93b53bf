"""Tests of the semi-parametric Saw fit (sawdist.semiparametric, sawdist._logspline).

References are independent of the code under test: closed forms (natural splines, Beta cosine laws), direct
quadrature with scipy.integrate.quad, samplers from tests/_saw_reference.py, and fixed-seed statistical tests with one
attempt at alpha = 1e-3.
"""

import numpy as np
import pytest
import xarray as xr
from scipy import integrate
from scipy import stats as sps
from scipy.interpolate import CubicSpline

import sawdist
from sawdist._logspline import NaturalSplineBasis, SplineLogShape, fit_log_spline
from sawdist.semiparametric import corrected_cosines, fit_semiparametric

from ._saw_reference import cosine_cdf, directions_from_cosines, draw_cosines, draw_directions, log_sphere_area

ALPHA = 1e-3
Z_CRIT = sps.norm.isf(ALPHA / 2)


def e1(d):
    mu = np.zeros(d)
    mu[0] = 1.0
    return mu


# --- the spline -----------------------------------------------------------------------------------------------------


def test_cardinal_basis_and_linear_extension():
    knots = np.array([-0.3, 0.0, 0.1, 0.5])
    B = NaturalSplineBasis(knots)
    np.testing.assert_allclose(B(knots), np.eye(4), atol=1e-15)
    values = np.array([1.0, -2.0, 0.5, 3.0])
    ref = CubicSpline(knots, values, bc_type="natural")
    x = np.linspace(-0.3, 0.5, 101)
    np.testing.assert_allclose(B(x) @ values, ref(x), rtol=1e-13, atol=1e-13)
    f = SplineLogShape(knots, values)
    np.testing.assert_allclose(f(x), ref(x), rtol=1e-13, atol=1e-13)
    # Outside: straight lines with the end slopes.
    out = np.array([-1.0, -0.5, 0.7, 1.0])
    want = np.where(
        out < 0, values[0] + ref(knots[0], 1) * (out - knots[0]), values[-1] + ref(knots[-1], 1) * (out - knots[-1])
    )
    np.testing.assert_allclose(f(out), want, rtol=1e-13)
    np.testing.assert_allclose(B(out) @ values, want, rtol=1e-13)


def test_two_knot_spline_is_a_line():
    f = SplineLogShape([0.0, 1.0], [1.0, 3.0])
    np.testing.assert_allclose(f([-1.0, 0.5, 2.0]), [-1.0, 2.0, 5.0], rtol=1e-15)


def test_penalty_is_integrated_squared_second_derivative():
    knots = np.array([-1.0, -0.2, 0.3, 0.4, 1.5])
    B = NaturalSplineBasis(knots)
    values = np.array([0.3, -1.0, 2.0, 0.0, 1.0])
    ref = CubicSpline(knots, values, bc_type="natural")
    want = integrate.quad(lambda x: ref(x, 2) ** 2, knots[0], knots[-1], points=knots[1:-1], epsabs=0, epsrel=1e-13)[0]
    np.testing.assert_allclose(values @ B.penalty() @ values, want, rtol=1e-12)
    # Straight lines are not penalised.
    np.testing.assert_allclose(B.penalty() @ (2.0 * knots - 1.0), 0.0, atol=1e-12)


# --- the cosine-law fit ----------------------------------------------------------------------------------------------


def test_log_spline_fit_matches_first_moment_and_is_stationary():
    rng = np.random.default_rng(1)
    d, kappa = 64, 20.0
    t = 2 * rng.beta((d - 1) / 2 + kappa, (d - 1) / 2, 3000) - 1
    fit = fit_log_spline(t, d)
    assert fit.converged
    # The roughness penalty ignores straight lines, so E_fit[t] = mean(t) at the penalised optimum.
    np.testing.assert_allclose(fit.mean, t.mean(), rtol=1e-8)
    # Normalizer against an independent quadrature of psi(t) (1 - t^2)^((d-3)/2).
    lo, hi = t.min() - 0.3, min(t.max() + 0.3, 1.0)
    def f(s):
        return np.exp(fit.log_shape(np.array(s)) + (d - 3) / 2 * np.log1p(-s * s) - fit.log_z)

    total = integrate.quad(f, lo, hi, points=list(fit.knots), limit=400, epsabs=0, epsrel=1e-12)[0]
    tails = integrate.quad(f, -1, lo, epsabs=1e-14)[0] + (integrate.quad(f, hi, 1, epsabs=1e-14)[0] if hi < 1 else 0)
    np.testing.assert_allclose(total + tails, 1.0, rtol=1e-9)


def test_huge_penalty_gives_the_vmf_mle():
    # With lam -> oo the spline is a straight line, log psi = kappa t: the vMF. On the in-sample cosines its MLE is
    # the vMF MLE, kappa = A_d^{-1}(||R||/n) (computed by sawdist.special, an independent code path).
    rng = np.random.default_rng(2)
    d = 50
    x = draw_directions(lambda t: 30.0 * t, e1(d), 800, rng)
    res = fit_semiparametric(x, lam=1e12, bias_correction=False)
    slope = res.log_shape.derivative(np.array([0.0, 0.3, 0.9]))
    kappa = float(sawdist.special.vmf_kappa_from_mean_resultant_length(d, np.linalg.norm(x.sum(0)) / 800))
    np.testing.assert_allclose(slope, kappa, rtol=1e-6)


# --- recovery of known shapes by KS against fresh draws ------------------------------------------------------------

SHAPES = {
    "vmf-d3072": (lambda t: 1000.0 * t, 3072),
    "power-spherical-d64": (lambda t: 20.0 * np.log1p(t), 64),
    "cubic-d10": (lambda t: 2.0 * t + 6.0 * t**3, 10),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_recovers_known_shape_ks_against_fresh_draws(name):
    log_shape, d = SHAPES[name]
    rng = np.random.default_rng(3)
    x = draw_directions(log_shape, e1(d), 5000, rng)
    res = fit_semiparametric(x)
    fresh = draw_cosines(log_shape, d, 1000, rng)
    assert sps.kstest(fresh, res.cosine.cdf).pvalue > ALPHA
    # The test has power: the fitted cosine law is not the true one for a different shape (t -> 2t shift).
    assert sps.kstest(fresh, cosine_cdf(lambda t: 1.1 * log_shape(t), d)).pvalue < ALPHA


def test_cubic_shape_is_not_vmf():
    # The same KS test rejects the vMF MLE on the cubic shape: the semi-parametric fit sees what vMF cannot.
    log_shape, d = SHAPES["cubic-d10"]
    rng = np.random.default_rng(3)
    x = draw_directions(log_shape, e1(d), 5000, rng)
    fresh = draw_cosines(log_shape, d, 1000, rng)
    assert sps.kstest(fresh, sawdist.fit(x, distribution="vonmises_fisher").cosine.cdf).pvalue < ALPHA


# --- normalization ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [3, 3072])
def test_fitted_density_integrates_to_one(d):
    # int_{S^{d-1}} f = omega_{d-1} int_{-1}^{1} c psi(t) (1 - t^2)^((d-3)/2) dt (tangent-normal decomposition).
    rng = np.random.default_rng(4)
    x = draw_directions(lambda t: 0.5 * d * t**2 + 2 * t, e1(d), 2000, rng)
    res = fit_semiparametric(x)
    log_c = float(res.distribution.log_normalizer)
    la = log_sphere_area(d - 1)

    def f(s):
        s = np.asarray(s)
        return np.exp(la + log_c + res.log_shape(s) + (d - 3) / 2 * np.log1p(-s * s))

    knots = res.smoothing["knots"]
    lo, hi = max(knots[0] - 0.5, -1.0), min(knots[-1] + 0.5, 1.0)
    total = integrate.quad(f, lo, hi, points=list(knots), limit=500, epsabs=0, epsrel=1e-12)[0]
    if lo > -1:
        total += integrate.quad(f, -1, lo, epsabs=1e-15)[0]
    if hi < 1:
        total += integrate.quad(f, hi, 1, epsabs=1e-15)[0]
    np.testing.assert_allclose(total, 1.0, rtol=1e-8)


def test_density_integrates_to_one_monte_carlo_d3():
    # A second, cruder check on S^2 that does not use the 1-D reduction: omega_3 * mean of f at uniform points.
    rng = np.random.default_rng(5)
    res = fit_semiparametric(draw_directions(lambda t: 1.5 * t + t**3, e1(3), 2000, rng))
    g = rng.standard_normal((200_000, 3))
    u = g / np.linalg.norm(g, axis=1, keepdims=True)
    vals = 4 * np.pi * res.pdf(u)
    assert abs(vals.mean() - 1.0) < Z_CRIT * vals.std(ddof=1) / np.sqrt(vals.size)


# --- comparison with the vMF MLE on vMF data ------------------------------------------------------------------------


@pytest.mark.parametrize("bias_correction", [False, True])
def test_loglik_within_chi_square_margin_of_vmf_mle(bias_correction):
    # The spline nests the vMF; on in-sample cosines l_sp >= l_vMF exactly (a line has zero penalty), and
    # 2 (l_sp - l_vMF) <= 2 (l_unpenalised - l_vMF) ~ chi2 with K - 2 degrees of freedom under vMF data.
    rng = np.random.default_rng(6)
    d, n = 10, 3000
    x = draw_directions(lambda t: 8.0 * t, e1(d), n, rng)
    res = fit_semiparametric(x, bias_correction=bias_correction)
    vmf = sawdist.fit(x, distribution="vonmises_fisher")
    df = res.smoothing["knots"].size - 2
    margin = sps.chi2.isf(ALPHA, df) / 2
    diff = res.loglik - vmf.loglik
    assert diff <= margin
    if bias_correction:
        assert diff >= -margin  # the corrected cosines move the fit by O(1/n) only, at this n and d
    else:
        assert diff >= -1e-6 * abs(vmf.loglik)


# --- the high-dimensional bias --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_corrected_mean_resultant_length_unbiased_at_d3072_n20_plugin_is_not():
    d, n, reps, kappa = 3072, 20, 150, 1000.0
    m_true = float(sawdist.special.vmf_mean_resultant_length(d, kappa))  # 0.2969
    rng = np.random.default_rng(7)
    t = draw_cosines(lambda s: kappa * s, d, (reps, n), rng)
    x = directions_from_cosines(t, e1(d), rng)
    m_sp = np.array([sawdist.fit(xi).mean_resultant_length for xi in x])
    m_plug = np.linalg.norm(x.sum(1), axis=1) / n
    assert abs(m_sp.mean() - m_true) < Z_CRIT * m_sp.std(ddof=1) / np.sqrt(reps)
    assert abs(m_plug.mean() - m_true) > 50 * m_plug.std(ddof=1) / np.sqrt(reps)  # +23 %
    # The vMF MLE's mean resultant length is the plug-in ||R||/n.
    np.testing.assert_allclose(sawdist.fit(x[0], distribution="vonmises_fisher").mean_resultant_length, m_plug[0],
                               rtol=1e-12)


def test_corrected_cosines_moments_in_high_d():
    # Mean of the corrected cosines = unbiased m_hat (exact); their variance estimates Var t, which the LOO
    # cosines misstate (attenuation rho^2 and added noise). Averaged over replicates.
    d, n, reps, kappa = 3072, 40, 60, 1000.0
    rng = np.random.default_rng(8)
    t = draw_cosines(lambda s: kappa * s, d, (reps, n), rng)
    x = directions_from_cosines(t, e1(d), rng)
    var_c, var_true, mean_loo = [], [], []
    for xi, ti in zip(x, t):
        c = corrected_cosines(xi, d)
        R = xi.sum(0)
        np.testing.assert_allclose(c["t_c"].mean(), np.sqrt((R @ R - n) / (n * (n - 1))), rtol=1e-12)
        var_c.append(c["t_c"].var(ddof=1))
        mean_loo.append(c["t_loo"].mean())
        var_true.append(ti.var(ddof=1))
    var_c, var_true, mean_loo = map(np.array, (var_c, var_true, mean_loo))
    diff = var_c - var_true
    assert abs(diff.mean()) < Z_CRIT * diff.std(ddof=1) / np.sqrt(reps)
    # Uncorrected, the LOO cosines are attenuated: E t~ = rho m with rho^2 ~ (n-1) m^2 / (1 + (n-2) m^2) ~ 0.79.
    m_true = float(sawdist.special.vmf_mean_resultant_length(d, kappa))
    assert m_true - mean_loo.mean() > 10 * mean_loo.std(ddof=1) / np.sqrt(reps)


# --- NaN rows, xarray, rotation --------------------------------------------------------------------------------------


def test_nan_rows_skipped_and_counted():
    rng = np.random.default_rng(9)
    x = draw_directions(lambda t: 5.0 * t, e1(8), 300, rng)
    bad = x.copy()
    bad[[3, 100, 250]] = np.nan
    clean = np.delete(x, [3, 100, 250], axis=0)
    for res in (fit_semiparametric(bad), sawdist.fit(bad)):
        ref = fit_semiparametric(clean)
        assert (res.n, res.n_skipped) == (297, 3)
        # Equal up to the summation order (zeroed NaN rows change the pairwise-summation blocks).
        np.testing.assert_allclose(res.mu, ref.mu, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res.loglik, ref.loglik, rtol=1e-11)
        np.testing.assert_allclose(res.mean_resultant_length, ref.mean_resultant_length, rtol=1e-10)


def test_xarray_input():
    rng = np.random.default_rng(10)
    x = draw_directions(lambda t: 5.0 * t, e1(8), (30, 10), rng)
    da = xr.DataArray(x, dims=("seed", "input", "feature"))
    res = fit_semiparametric(da.transpose("feature", "input", "seed"))
    ref = fit_semiparametric(x.reshape(-1, 8))
    assert res.n == 300
    np.testing.assert_allclose(res.mu, ref.mu, rtol=1e-12, atol=1e-15)  # summation order differs
    np.testing.assert_allclose(res.mean_resultant_length, ref.mean_resultant_length, rtol=1e-10)


def test_rotation_equivariance():
    rng = np.random.default_rng(11)
    d = 6
    x = draw_directions(lambda t: 4.0 * t + t**3, e1(d), 500, rng)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a, b = fit_semiparametric(x), fit_semiparametric(x @ Q.T)
    np.testing.assert_allclose(b.mu, Q @ a.mu, atol=1e-13)
    np.testing.assert_allclose(b.loglik, a.loglik, rtol=1e-10)
    u = x[:5]
    np.testing.assert_allclose(b.logpdf(u @ Q.T), a.logpdf(u), rtol=1e-10)


def test_result_interface():
    rng = np.random.default_rng(12)
    x = draw_directions(lambda t: 5.0 * t, e1(8), 400, rng)
    res = sawdist.fit(x)
    assert res.distribution_name == "semiparametric" and res.kappa is None and (res.n, res.dim) == (400, 8)
    assert res.rvs(size=3, rng=0).shape == (3, 8)
    np.testing.assert_allclose(res.mean(), res.mean_resultant_length * res.mu, rtol=1e-12)
    np.testing.assert_allclose(res.mean_resultant_length, res.cosine.mean(), rtol=1e-12)
    text = res.summary()
    assert "semiparametric" in text and "bias correction" in text and "AIC" in text
    assert res.bias_correction["m_plugin"] > res.bias_correction["m_unbiased"]


# --- errors ---------------------------------------------------------------------------------------------------------


def test_error_too_few_rows():
    with pytest.raises(ValueError, match=r"'directions' must have at least 2 valid rows, got 1\."):
        fit_semiparametric(np.array([[1.0, 0.0], [np.nan, np.nan]]))


def test_error_one_dimensional_input():
    with pytest.raises(ValueError, match=r"'directions' must have shape \(n, d\) \(rows are directions\), got shape"):
        fit_semiparametric(np.array([1.0, 0.0]))


def test_error_identical_cosines():
    with pytest.raises(ValueError, match=r"'directions' must give at least 2 distinct cosines, got 1\."):
        fit_semiparametric(np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_error_zero_resultant():
    with pytest.raises(ValueError, match=r"'directions' must have a nonzero resultant, got R = 0"):
        fit_semiparametric(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))


def test_error_lam_not_a_number(capfd):
    # lam = nan once reached LAPACK: a LinAlgError, and "On entry to DLASCL ..." written to the terminal
    x = sawdist.vonmises_fisher(e1(5), 20.0).rvs(size=30, rng=0)
    with pytest.raises(ValueError, match=r"^'lam' must be a finite number >= 0, got nan\.$"):
        fit_semiparametric(x, lam=float("nan"))
    assert capfd.readouterr() == ("", "")


def test_error_lam_negative():
    x = sawdist.vonmises_fisher(e1(5), 20.0).rvs(size=30, rng=0)
    with pytest.raises(ValueError, match=r"^'lam' must be a finite number >= 0, got -1\.$"):
        fit_semiparametric(x, lam=-1)


@pytest.mark.parametrize("n_knots", [1, -3, 2.5])
def test_error_n_knots(n_knots):
    x = sawdist.vonmises_fisher(e1(5), 20.0).rvs(size=30, rng=0)
    with pytest.raises(ValueError, match=rf"^'n_knots' must be an integer >= 2, got {n_knots}\.$"):
        fit_semiparametric(x, n_knots=n_knots)


def test_two_knots_fit_a_straight_line():
    x = sawdist.vonmises_fisher(e1(5), 20.0).rvs(size=30, rng=0)
    assert fit_semiparametric(x, n_knots=2).smoothing["knots"].size == 2


def test_error_two_rows_without_bias_correction():
    # the 2 in-sample cosines are equal (1 + u1'u2)/||R||: the message named 'log_shape', which the user never passed
    x = sawdist.vonmises_fisher(e1(64), 20.0).rvs(size=2, rng=1)
    with pytest.raises(ValueError, match=r"^'directions' must have at least 3 valid rows with bias_correction=False, "
                                         r"got 2 \(the in-sample cosines of 2 rows are equal"):
        fit_semiparametric(x, bias_correction=False)


def test_error_cosines_equal_up_to_rounding():
    # 3 rows placed symmetrically about their mean, rotated at random in d = 64: the in-sample cosines are 0.8 each,
    # apart from rounding, and a spline through them would be fitted to that rounding
    a = 2 * np.pi * np.arange(3) / 3
    x = np.zeros((3, 64))
    x[:, 0], x[:, 1], x[:, 2] = 0.8, 0.6 * np.cos(a), 0.6 * np.sin(a)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))
    with pytest.raises(ValueError, match=r"^'directions' must give at least 2 distinct cosines, got 3 that differ by "
                                         r"\S+ only, within rounding\.$"):
        fit_semiparametric(x @ q.T, bias_correction=False)

