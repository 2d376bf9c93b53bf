"""Generic and member-specific tests of the hyperspherical distributions.

The registry ``MEMBERS`` drives the generic tests: add a distribution there and it gets them.
"""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

import sawdist
from sawdist import power_spherical, saw, uniform_direction, vonmises_fisher

mp.mp.dps = 50

MEMBERS = {
    "vonmises_fisher": lambda mu, kappa: vonmises_fisher(mu, kappa),
    "power_spherical": lambda mu, kappa: power_spherical(mu, kappa),
    "saw_cubic": lambda mu, kappa: saw(mu, lambda t: kappa * (t + 0.5 * t**3)),
}


def unit(d, seed):
    v = np.random.default_rng(seed).standard_normal(d)
    return v / np.linalg.norm(v)


def e1(d, sign=1.0):
    v = np.zeros(d)
    v[0] = sign
    return v


def random_rotation(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def sphere_integral_s2(f, n=160):
    """Integral over S^2 of f(u) by Gauss–Legendre in z = cos(theta) and the trapezoid rule in phi (both
    exponentially convergent for smooth periodic integrands)."""
    z, wz = np.polynomial.legendre.leggauss(n)
    phi = np.arange(2 * n) * np.pi / n
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - zz**2)
    u = np.stack([r * np.cos(pp), r * np.sin(pp), zz], axis=-1)
    return float(np.sum(f(u) * wz[:, None]) * (np.pi / n))


# ---------------------------------------------------------------------------------------------------------------
# normalisation, invariances, limits


def _smooth_kappa(name, kappa):
    """(1 + t)^kappa is singular at u = -mu for fractional kappa, where grid quadrature converges only
    algebraically; the grid tests use integer kappa for the power spherical (fractional kappa is covered by
    test_power_spherical_normaliser_fractional_kappa)."""
    return float(round(kappa)) if name == "power_spherical" else kappa


@pytest.mark.parametrize("name", MEMBERS)
@settings(max_examples=15, deadline=None)
@given(kappa=st.floats(0.0, 40.0), seed=st.integers(0, 2**16))
def test_density_integrates_to_one_on_s2(name, kappa, seed):
    dist = MEMBERS[name](unit(3, seed), _smooth_kappa(name, kappa))
    assert abs(sphere_integral_s2(dist.pdf) - 1.0) < 1e-10


@pytest.mark.parametrize("name", MEMBERS)
@settings(max_examples=15, deadline=None)
@given(kappa=st.floats(0.0, 40.0), seed=st.integers(0, 2**16))
def test_density_integrates_to_one_on_the_circle(name, kappa, seed):
    dist = MEMBERS[name](unit(2, seed), _smooth_kappa(name, kappa))
    phi = np.arange(4000) * 2 * np.pi / 4000
    u = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    assert abs(np.sum(dist.pdf(u)) * 2 * np.pi / 4000 - 1.0) < 1e-10


@pytest.mark.parametrize("name", MEMBERS)
@settings(max_examples=10, deadline=None)
@given(kappa=st.floats(0.0, 1e4), seed=st.integers(0, 2**16), d=st.sampled_from([3, 7, 64]))
def test_rotation_invariance(name, kappa, seed, d):
    q = random_rotation(d, seed)
    mu = unit(d, seed + 1)
    x = uniform_direction(d).rvs(size=5, rng=seed)
    a = MEMBERS[name](mu, kappa).logpdf(x)
    b = MEMBERS[name](q @ mu, kappa).logpdf(x @ q.T)
    np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-11 * max(1.0, kappa))


@pytest.mark.parametrize("name", MEMBERS)
@pytest.mark.parametrize("d", [2, 3, 64, 3072])
def test_kappa_to_zero_is_uniform(name, d):
    x = uniform_direction(d).rvs(size=4, rng=1)
    ref = uniform_direction(d).logpdf(x)
    mu = unit(d, 2)
    np.testing.assert_allclose(MEMBERS[name](mu, 0.0).logpdf(x), ref, rtol=1e-13)
    np.testing.assert_allclose(MEMBERS[name](mu, 1e-9).logpdf(x), ref, rtol=1e-8)
    assert MEMBERS[name](mu, 0.0).mean_resultant_length() == pytest.approx(0.0, abs=1e-14)


@pytest.mark.parametrize("d", [2, 3, 64, 3072])
@pytest.mark.parametrize("kappa", ["0.5", "7.25", "1000.5"])
def test_power_spherical_normaliser_fractional_kappa(d, kappa):
    # c omega_{d-1} int (1+t)^kappa (1-t^2)^((d-3)/2) dt = 1, the integral by mpmath's tanh-sinh (which handles
    # the endpoint singularities) in log form: int = 2^(a+b-1) B(a, b) is *not* used, to stay independent
    k, half = mp.mpf(kappa), mp.mpf(d - 3) / 2
    if half > 0:  # interior mode of (1+t)^k (1-t^2)^half
        m = (k - half) / (k + half)
        lpeak = k * mp.log1p(m) + half * mp.log(1 - m * m)
        pts = [-1, m - (1 + m) / 2, m, m + (1 - m) / 2, 1]
    else:  # increasing towards t = 1 (or singular there, d = 2): scale by the t = 1 value of (1+t)^k
        lpeak = k * mp.log(2)
        pts = [-1, 0, 1 - mp.mpf(1) / (1 + k), 1]
    integral = mp.quad(lambda t: mp.exp(k * mp.log1p(t) + half * mp.log((1 - t) * (1 + t)) - lpeak), pts)
    log_omega = mp.log(2) + mp.mpf(d - 1) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(d - 1) / 2)
    expected = -(log_omega + lpeak + mp.log(integral))
    assert power_spherical(e1(d), float(k)).log_normalizer == pytest.approx(float(expected), rel=1e-13)


def test_uniform_logpdf_is_minus_log_area():
    # omega_3 = 4 pi, omega_2 = 2 pi, and log omega_d from mpmath at d = 3072
    assert uniform_direction(3).logpdf(e1(3)) == pytest.approx(-np.log(4 * np.pi), rel=1e-15)
    assert uniform_direction(2).logpdf(e1(2)) == pytest.approx(-np.log(2 * np.pi), rel=1e-15)
    ref = -(mp.log(2) + 1536 * mp.log(mp.pi) - mp.loggamma(1536))
    assert uniform_direction(3072).logpdf(e1(3072)) == pytest.approx(float(ref), rel=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# special cases of the general Saw class


@pytest.mark.parametrize("d", [2, 3, 64, 3072, 100000])
@pytest.mark.parametrize("kappa", [0.5, 30.0, 2000.0, 1e6])
def test_saw_with_linear_shape_is_vmf(d, kappa):
    mu = e1(d)
    vmf, gen = vonmises_fisher(mu, kappa), saw(mu, lambda t: kappa * t)
    x = vmf.rvs(size=3, rng=0)
    # log c ~ -kappa and kappa t ~ +kappa cancel in the logpdf: rounding of either is ~eps * kappa absolutely
    np.testing.assert_allclose(gen.logpdf(x), vmf.logpdf(x), rtol=1e-12, atol=1e-15 * kappa)
    assert gen.mean_resultant_length() == pytest.approx(vmf.mean_resultant_length(), rel=1e-12)
    assert gen.entropy() == pytest.approx(vmf.entropy(), rel=1e-10, abs=1e-9)
    t = vmf.cosine.ppf(np.array([0.01, 0.5, 0.99]))
    np.testing.assert_allclose(gen.cosine.cdf(t), [0.01, 0.5, 0.99], rtol=1e-10)
    np.testing.assert_allclose(gen.cosine.logpdf(t), vmf.cosine.logpdf(t), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3, 64, 3072])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 30.0, 2000.0])
def test_saw_with_log1p_shape_is_power_spherical(d, kappa):
    mu = unit(d, 5)
    ps, gen = power_spherical(mu, kappa), saw(mu, lambda t: special.xlog1py(kappa, t))
    x = ps.rvs(size=3, rng=0)
    np.testing.assert_allclose(gen.logpdf(x), ps.logpdf(x), rtol=1e-12)
    assert gen.mean_resultant_length() == pytest.approx(ps.mean_resultant_length(), rel=1e-12, abs=1e-15)
    assert gen.entropy() == pytest.approx(ps.entropy(), rel=1e-11)
    assert gen.cosine.var() == pytest.approx(ps.cosine.var(), rel=1e-10)
    q = np.array([1e-6, 0.01, 0.5, 0.99, 1 - 1e-6])
    t = ps.cosine.ppf(q)
    np.testing.assert_allclose(gen.cosine.ppf(q), t, rtol=1e-9, atol=1e-13)
    # compare both tails at the same t (at d = 2, kappa = 2000 the top quantiles are within 1e-15 of t = 1,
    # where t itself cannot resolve the probability: only the tail function can)
    np.testing.assert_allclose(gen.cosine.cdf(t), ps.cosine.cdf(t), rtol=1e-9)
    np.testing.assert_allclose(gen.cosine.sf(t), ps.cosine.sf(t), rtol=1e-9)


@pytest.mark.parametrize("d", [2, 3, 3072])
def test_saw_with_constant_shape_is_uniform(d):
    x = uniform_direction(d).rvs(size=3, rng=0)
    np.testing.assert_allclose(saw(unit(d, 0), lambda t: 0.0 * t).logpdf(x), uniform_direction(d).logpdf(x),
                               rtol=1e-13)


# ---------------------------------------------------------------------------------------------------------------
# agreement with scipy where scipy is accurate, and with closed forms


@pytest.mark.parametrize("d", [3, 5, 20, 50])
@pytest.mark.parametrize("kappa", [0.1, 5.0, 100.0])
def test_vmf_matches_scipy_in_low_dimension(d, kappa):
    mu = unit(d, d)
    x = uniform_direction(d).rvs(size=5, rng=3)
    ref = stats.vonmises_fisher(mu, kappa)
    np.testing.assert_allclose(vonmises_fisher(mu, kappa).logpdf(x), ref.logpdf(x), rtol=1e-12)
    assert vonmises_fisher(mu, kappa).entropy() == pytest.approx(ref.entropy(), rel=1e-10)


@pytest.mark.parametrize("kappa", [0.01, 1.0, 20.0, 700.0])
def test_vmf_on_the_circle_is_scipy_vonmises(kappa):
    phi_mu = 0.7
    mu = np.array([np.cos(phi_mu), np.sin(phi_mu)])
    phi = np.linspace(-np.pi, np.pi, 13)
    x = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    np.testing.assert_allclose(vonmises_fisher(mu, kappa).logpdf(x), stats.vonmises.logpdf(phi, kappa, loc=phi_mu),
                               rtol=1e-12, atol=1e-12)
    # cosine law: P(T <= t) = P(|angle| >= arccos t) = 2 F_vonmises(-arccos t); scipy's vonmises.cdf is accurate
    # only absolutely (~1e-14: it returns 8e-15 where the probability is 2e-17), so compare with that tolerance
    t = np.array([-0.9, -0.2, 0.3, 0.95])
    cdf = vonmises_fisher(mu, kappa).cosine.cdf(t)
    np.testing.assert_allclose(cdf, 2 * stats.vonmises.cdf(-np.arccos(t), kappa), rtol=1e-9, atol=5e-14)
    # and relative accuracy in the far tail against mpmath: P(|angle| >= a) = int_a^pi e^{k cos} / int_0^pi e^{k cos}
    k = mp.mpf(kappa)
    for tv in t:
        a = mp.acos(mp.mpf(tv))
        ref = mp.quad(lambda p: mp.exp(k * (mp.cos(p) - 1)), [a, mp.pi]) / mp.quad(
            lambda p: mp.exp(k * (mp.cos(p) - 1)), [0, a, mp.pi])
        assert vonmises_fisher(mu, kappa).cosine.cdf(tv) == pytest.approx(float(ref), rel=1e-10)


@pytest.mark.parametrize("kappa", ["1e-3", "2.5", "80", "1e4"])
def test_vmf_cosine_law_at_d3_matches_closed_form(kappa):
    # d = 3: f_T(t) = kappa e^{kappa t} / (2 sinh kappa), F(t) = expm1(kappa (t+1)) / expm1(2 kappa)
    k = mp.mpf(kappa)
    law = vonmises_fisher(e1(3), float(k)).cosine
    for q in ["1e-8", "0.01", "0.3", "0.5", "0.99", "0.99999"]:
        q = mp.mpf(q)
        t_ref = mp.log1p(q * mp.expm1(2 * k)) / k - 1
        assert law.ppf(float(q)) == pytest.approx(float(t_ref), rel=1e-11, abs=1e-15)
        t = float(t_ref)
        f_ref = mp.expm1(k * (mp.mpf(t) + 1)) / mp.expm1(2 * k)
        assert law.cdf(t) == pytest.approx(float(f_ref), rel=1e-11)
        assert law.sf(t) == pytest.approx(float(1 - f_ref), rel=1e-11)
    mean_ref = mp.coth(k) - 1 / k
    var_ref = 1 / k**2 - 1 / mp.sinh(k) ** 2
    assert law.mean() == pytest.approx(float(mean_ref), rel=1e-13)
    assert law.var() == pytest.approx(float(var_ref), rel=1e-9)


@pytest.mark.parametrize("d", [3, 64, 3072])
def test_power_spherical_cosine_law_is_beta(d):
    kappa = 40.0
    law = power_spherical(e1(d), kappa).cosine
    beta = stats.beta((d - 1) / 2 + kappa, (d - 1) / 2)
    t = np.array([-0.5, 0.0, 0.02, 0.3, 0.8])
    np.testing.assert_allclose(law.cdf(t), beta.cdf((1 + t) / 2), rtol=1e-12)
    # the log density against 50-digit mpmath: scipy's beta.logpdf is itself 1.8e-12 off at d = 3072, t = 0 (a
    # result ~3 from terms ~2000: (a-1) log1p(t) against (a+b-1) log 2 + betaln(a, b))
    a, b = mp.mpf(d - 1) / 2 + mp.mpf(kappa), mp.mpf(d - 1) / 2
    ref = [(a - 1) * mp.log((1 + mp.mpf(v)) / 2) + (b - 1) * mp.log((1 - mp.mpf(v)) / 2) - mp.log(2)
           - mp.log(mp.beta(a, b)) for v in t]
    np.testing.assert_allclose(law.logpdf(t), [float(r) for r in ref], rtol=1e-12)
    assert law.mean() == pytest.approx(2 * beta.mean() - 1, rel=1e-12)
    assert law.var() == pytest.approx(4 * beta.var(), rel=1e-12)


def test_extreme_parameters_are_finite_and_silent():
    # pytest turns warnings into errors: any overflow or invalid-value warning fails this test
    for d, kappa in [(100000, 1e7), (100000, 0.0), (3072, 1e-300), (2, 1e7), (12288, 2000.0)]:
        for name in ("vonmises_fisher", "power_spherical"):
            dist = MEMBERS[name](e1(d), kappa)
            x = dist.rvs(size=3, rng=0)
            assert np.all(np.isfinite(dist.logpdf(x)))
            assert np.isfinite(dist.entropy())
            assert np.all(np.abs(np.linalg.norm(x, axis=-1) - 1) < 10 * np.finfo(float).eps * np.sqrt(d))


# ---------------------------------------------------------------------------------------------------------------
# sampling


def _ks(sample, cdf):
    return stats.kstest(sample, cdf).pvalue


@pytest.mark.parametrize("d", [3, 64, 3072])
def test_vmf_sampler_cosine_law_ks(d):
    kappa = {3: 4.0, 64: 50.0, 3072: 500.0}[d]
    dist = vonmises_fisher(unit(d, 11), kappa)
    t = dist.rvs(size=2000, rng=2024) @ dist.mu
    if d == 3:  # independent closed form
        cdf = lambda s: np.expm1(kappa * (s + 1)) / np.expm1(2 * kappa)  # noqa: E731
    else:  # scipy quadrature of e^{kappa t}(1 - t^2)^{(d-3)/2}, independent of our angle-space tables
        cdf = _quad_cdf(lambda s: kappa * s, d, dist.cosine.mean(), dist.cosine.std())
    assert _ks(t, cdf) > 1e-3


@pytest.mark.parametrize("d", [3, 64, 3072])
def test_power_spherical_sampler_cosine_law_ks(d):
    dist = power_spherical(unit(d, 12), 100.0)
    t = dist.rvs(size=2000, rng=2025) @ dist.mu
    beta = stats.beta((d - 1) / 2 + 100.0, (d - 1) / 2)
    assert _ks((1 + t) / 2, beta.cdf) > 1e-3


@pytest.mark.parametrize("d", [3, 64, 3072])
def test_saw_sampler_cosine_law_ks(d):
    a, b = {3: (2.0, 3.0), 64: (20.0, 30.0), 3072: (300.0, 400.0)}[d]
    shape = lambda s: a * s + b * s**3  # noqa: E731  neither vMF nor power spherical
    dist = saw(unit(d, 13), shape)
    t = dist.rvs(size=2000, rng=2026) @ dist.mu
    cdf = _quad_cdf(shape, d, dist.cosine.mean(), dist.cosine.std())
    assert _ks(t, cdf) > 1e-3


def _quad_cdf(log_shape, d, center, scale):
    """CDF of f_T by scipy.integrate.quad on a t-grid around the band (independent reference)."""
    lo, hi = max(-1.0, center - 40 * scale), min(1.0, center + 40 * scale)
    grid = np.linspace(lo, hi, 801)
    peak = max(log_shape(s) + (d - 3) / 2 * np.log1p(-s * s) for s in grid[1:-1])

    def dens(s):
        return np.exp(log_shape(s) + (d - 3) / 2 * np.log((1 - s) * (1 + s)) - peak) if -1 < s < 1 else 0.0

    pieces = np.array([integrate.quad(dens, grid[i], grid[i + 1], epsabs=0, epsrel=1e-12)[0]
                       for i in range(len(grid) - 1)])
    cum = np.concatenate([[0.0], np.cumsum(pieces)]) / pieces.sum()
    return lambda s: np.interp(s, grid, cum)


@pytest.mark.parametrize("name", MEMBERS)
def test_sampler_is_stable_at_the_poles(name):
    for sign in (1.0, -1.0):
        mu = e1(500, sign)
        x = MEMBERS[name](mu, 300.0).rvs(size=500, rng=1)
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-14)
        # the tangent part is isotropic: its coordinates have equal variance (1 - E t^2)/(d - 1)
        t = x @ mu
        assert abs(np.mean(t) - MEMBERS[name](mu, 300.0).mean_resultant_length()) < 5 * np.std(t) / np.sqrt(500)


def test_frozen_unfrozen_and_seeded_draws_are_identical():
    mu, kappa = unit(40, 1), 25.0
    for gen in (vonmises_fisher, power_spherical):
        a = gen(mu, kappa).rvs(size=7, rng=123)
        b = gen.rvs(mu, kappa, size=7, rng=123)
        c = gen(mu, kappa).rvs(size=7, rng=np.random.default_rng(123))
        assert np.array_equal(a, b) and np.array_equal(a, c)
        assert np.array_equal(gen(mu, kappa).logpdf(a), gen.logpdf(a, mu, kappa))
    f = lambda t: 3 * t  # noqa: E731
    assert np.array_equal(saw(mu, f).rvs(size=4, rng=5), saw.rvs(mu, f, size=4, rng=5))


def test_scipy_keywords_random_state_and_frozen_seed_give_the_same_draws_as_rng():
    mu, kappa = unit(40, 1), 25.0
    for gen in (vonmises_fisher, power_spherical):
        a = gen(mu, kappa).rvs(size=7, rng=123)
        assert np.array_equal(a, gen(mu, kappa).rvs(size=7, random_state=123))
        assert np.array_equal(a, gen.rvs(mu, kappa, size=7, random_state=np.random.default_rng(123)))
        # a frozen seed is one Generator consumed across calls, as in scipy
        frozen, reference = gen(mu, kappa, seed=123), np.random.default_rng(123)
        assert np.array_equal(frozen.rvs(size=3), gen(mu, kappa).rvs(size=3, rng=reference))
        assert np.array_equal(frozen.rvs(size=4), gen(mu, kappa).rvs(size=4, rng=reference))
        # an explicit rng overrides the frozen seed
        assert np.array_equal(gen(mu, kappa, seed=7).rvs(size=7, rng=123), a)
        assert np.array_equal(gen(mu, kappa).cosine.rvs(5, random_state=4), gen(mu, kappa).cosine.rvs(5, rng=4))
    f = lambda t: 3 * t  # noqa: E731
    assert np.array_equal(saw(mu, f, seed=5).rvs(size=4), saw.rvs(mu, f, size=4, random_state=5))
    assert np.array_equal(uniform_direction(6, seed=2).rvs(3), uniform_direction.rvs(6, 3, random_state=2))
    x = vonmises_fisher(mu, kappa).rvs(size=30, rng=0)
    fitted = sawdist.fit(x, distribution="vonmises_fisher")
    assert np.array_equal(fitted.rvs(2, random_state=1), fitted.rvs(2, rng=1))


def test_the_cosine_law_of_a_frozen_distribution_draws_from_its_seed():
    """Two identically seeded frozen distributions draw the same cosines, from the seed's one Generator."""
    mu = unit(40, 1)
    laws = [(vonmises_fisher, (25.0,)), (power_spherical, (25.0,)), (saw, (lambda t: 3 * t,))]
    for gen, params in laws:
        a, b = gen(mu, *params, seed=11).cosine, gen(mu, *params, seed=11).cosine
        first = a.rvs(5)
        assert np.array_equal(first, b.rvs(5))
        assert np.array_equal(first, gen(mu, *params).cosine.rvs(5, rng=11))
        assert not np.array_equal(a.rvs(5), first)  # the Generator is consumed across calls, as in scipy
        assert np.array_equal(gen(mu, *params, seed=11).cosine.rvs(5, rng=3), gen(mu, *params).cosine.rvs(5, rng=3))
    assert np.array_equal(uniform_direction(6, seed=2).cosine.rvs(4), uniform_direction(6).cosine.rvs(4, rng=2))
    assert not np.array_equal(vonmises_fisher(mu, 25.0).cosine.rvs(5), vonmises_fisher(mu, 25.0).cosine.rvs(5))


def test_rng_errors_name_the_keyword_and_the_value():
    dist = vonmises_fisher(unit(4, 1), 2.0)
    with pytest.raises(ValueError, match=r"^pass 'rng' or its scipy spelling 'random_state', not both; got 1 and 2\.$"):
        dist.rvs(rng=1, random_state=2)
    with pytest.raises(ValueError, match=r"^'rng' must be a numpy.random.Generator, a non-negative int seed or None, "
                                         r"got -1\.$"):
        dist.rvs(rng=-1)
    with pytest.raises(ValueError, match=r"^'random_state' must be .* got 'a'\.$"):
        dist.rvs(random_state="a")
    with pytest.raises(ValueError, match=r"^'seed' must be .* got 1\.5\.$"):
        vonmises_fisher(unit(4, 1), 2.0, seed=1.5)


def test_mean_identity_e_u_equals_mean_resultant_length_times_mu():
    d = 5
    dist = vonmises_fisher(unit(d, 3), 2.0)
    x = dist.rvs(size=40000, rng=9)
    se = x.std(axis=0) / np.sqrt(len(x))
    assert np.all(np.abs(x.mean(axis=0) - dist.mean()) < 4.5 * se)


def test_second_moment_identity():
    # E[u u'] = E[t^2] mu mu' + (1 - E[t^2]) (I - mu mu') / (d - 1)   (docs/theory/identities.md, identity 6)
    d = 4
    dist = power_spherical(unit(d, 4), 3.0)
    x = dist.rvs(size=40000, rng=10)
    law = dist.cosine
    et2 = law.var() + law.mean() ** 2
    mu = dist.mu
    expected = et2 * np.outer(mu, mu) + (1 - et2) * (np.eye(d) - np.outer(mu, mu)) / (d - 1)
    emp = x.T @ x / len(x)
    assert np.max(np.abs(emp - expected)) < 4.5 / np.sqrt(len(x))


# ---------------------------------------------------------------------------------------------------------------
# batching


def test_parameters_broadcast_numpyro_style():
    d = 6
    mu = np.stack([unit(d, 0), unit(d, 1)])  # batch (2,)
    kappa = np.array([[1.0], [10.0], [100.0]])  # batch (3, 1)
    dist = vonmises_fisher(mu, kappa)
    assert dist.batch_shape == (3, 2)
    x = dist.rvs(size=4, rng=0)
    assert x.shape == (4, 3, 2, d)
    lp = dist.logpdf(x)
    assert lp.shape == (4, 3, 2)
    loop = np.array([[[vonmises_fisher(mu[j], kappa[i, 0]).logpdf(x[s, i, j]) for j in range(2)] for i in range(3)]
                     for s in range(4)])
    np.testing.assert_allclose(lp, loop, rtol=1e-14)
    assert dist.mean().shape == (3, 2, d)
    # the cosine law depends on the shape parameters only: its batch shape is theirs
    assert dist.cosine.cdf(0.1).shape == (3, 1)
    assert power_spherical(mu, kappa).cosine.ppf(0.5).shape == (3, 1)
    assert dist.cosine.rvs(size=5, rng=0).shape == (5, 3, 1)


@pytest.mark.parametrize("name", MEMBERS)
def test_single_draw_without_size(name):
    dist = MEMBERS[name](e1(4), 3.0)
    assert dist.rvs(rng=0).shape == (4,)
    assert dist.rvs(size=(), rng=0).shape == (4,)
    assert np.array_equal(dist.rvs(rng=7), dist.rvs(size=1, rng=7)[0])
    assert dist.cosine.rvs(rng=0).shape == ()
    assert uniform_direction(4).rvs(rng=0).shape == (4,)


def test_scalar_results_are_python_floats_or_0d():
    dist = vonmises_fisher(e1(3), 2.0)
    assert np.ndim(dist.logpdf(e1(3))) == 0
    assert np.ndim(dist.mean_resultant_length()) == 0
    assert np.ndim(dist.entropy()) == 0


# ---------------------------------------------------------------------------------------------------------------
# errors: one sentence that names the argument and the bad value


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: vonmises_fisher(np.array([1.0, 1.0]), 1.0),
         r"'mu' must contain unit vectors along its last axis \(\|norm - 1\| <= .*\), got norm 1\.414"),
        (lambda: vonmises_fisher(np.array([1.0]), 1.0), r"'mu' must have at least 2 coordinates"),
        (lambda: vonmises_fisher(np.array([np.nan, 1.0]), 1.0), r"'mu' must be finite, got nan at index \(0,\)"),
        (lambda: vonmises_fisher(e1(3), -1.0), r"'kappa' must be >= 0, got -1\.0\."),
        (lambda: vonmises_fisher(e1(3), np.inf), r"'kappa' must be finite, got inf\."),
        (lambda: power_spherical(e1(3), np.nan), r"'kappa' must be >= 0, got nan\."),
        (lambda: vonmises_fisher(e1(3), 1.0).logpdf(e1(4)), r"'x' must have a last axis of length d = 3, got 4\."),
        (lambda: vonmises_fisher(e1(3), 1.0).logpdf(np.array([0.0, 0.0, 2.0])),
         r"'x' must contain unit vectors .* got norm 2\.0"),
        (lambda: vonmises_fisher(e1(3), 1.0).logpdf(np.array(["a", "b", "c"])),
         r"'x' must be array-like of real numbers, got dtype <U1\."),
        (lambda: vonmises_fisher(e1(3), 1.0).rvs(rng="seed"),
         r"'rng' must be a numpy.random.Generator, a non-negative int seed or None, got 'seed'\."),
        (lambda: vonmises_fisher(e1(3), 1.0).rvs(size=-2), r"'size' must not contain negative entries, got -2\."),
        (lambda: vonmises_fisher(e1(3), 1.0).rvs(size="big"), r"'size' must be None, an int or a tuple of ints"),
        (lambda: saw(e1(3), 3.0), r"'log_shape' must be callable, got 3\.0\."),
        (lambda: saw(e1(3), lambda t: 1.0), r"'log_shape' must return an array of the same shape as its input"),
        (lambda: saw(e1(3), lambda t: np.log(t)), r"'log_shape' must return finite values or -inf, got nan at t = "),
        (lambda: uniform_direction(1), r"'dim' must be an integer >= 2, got 1\."),
        (lambda: uniform_direction(2.5), r"'dim' must be an integer >= 2, got 2\.5\."),
    ],
)
def test_error_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_public_names():
    for name in ("vonmises_fisher", "power_spherical", "saw", "uniform_direction", "fit", "special"):
        assert hasattr(sawdist, name)


# ---------------------------------------------------------------------------------------------------------------
# the hardening issue: regressions (the property-based tests in tests/test_distributions_properties.py cover the
# whole range)


def _vmf_logpdf_mp(d, kappa, t):
    """log C_d(kappa) + kappa t at 50 digits (mpmath's besseli; t taken exactly)."""
    nu, k = mp.mpf(d) / 2 - 1, mp.mpf(kappa)
    return nu * mp.log(k) - mp.mpf(d) / 2 * mp.log(2 * mp.pi) - mp.log(mp.besseli(nu, k)) + k * mp.mpf(t)


@pytest.mark.parametrize("d, kappa, t", [(2, 1e7, 1.0), (5, 2000.0, float(np.sqrt(0.8))), (100, 1e5, 1.0),
                                         (3, 1e100, 1.0), (5, 1e100, 1.0), (3, 1e300, 0.5)])
def test_vmf_density_keeps_its_digits_at_large_kappa(d, kappa, t):
    # log C ~ -kappa and kappa t ~ kappa used to cancel: 2.1e-10 relative at d = 2, kappa = 1e7 (t = 1); the pdf at
    # d = 5, kappa = 2000, t = sqrt(0.8) 1.8e-13 relative (scipy: 4e-14); 0.0 at kappa = 1e100 (truth 456.8 at
    # d = 5); NaN from kappa = 1e155. Now within a few ulps of log f, i.e. of the pdf's relative error.
    x = np.zeros(d)
    x[0], x[1] = t, np.sqrt((1 - t) * (1 + t))
    got = vonmises_fisher(e1(d), kappa).logpdf(x)
    if kappa > 1e10:  # Hankel: log I_nu(k) - k = -log(2 pi k)/2 + log(1 - (4nu^2 - 1)/(8k) + ...)
        nu, k = mp.mpf(d) / 2 - 1, mp.mpf(kappa)
        ref = (nu * mp.log(k) - mp.mpf(d) / 2 * mp.log(2 * mp.pi) + mp.log(2 * mp.pi * k) / 2
               - mp.log(1 - (4 * nu**2 - 1) / (8 * k)) - k * (1 - mp.mpf(t)))
    else:
        ref = _vmf_logpdf_mp(d, kappa, t)
    assert abs(mp.mpf(float(got)) - ref) <= 8 * np.finfo(float).eps * max(1, abs(ref)), (got, ref)


def test_vmf_pdf_at_large_kappa_is_as_accurate_as_scipy():
    # the reported case: relative error 1.8e-13 (the log normaliser and kappa t cancelled, and x was renormalised,
    # moving t by an ulp: kappa eps ~ 4e-13); scipy reaches 4e-14
    mu, x = e1(5), np.zeros(5)
    x[0], x[1] = np.sqrt(0.8), np.sqrt(0.2)
    ref = mp.exp(_vmf_logpdf_mp(5, 2000.0, x @ mu))
    assert abs(vonmises_fisher(mu, 2000.0).pdf(x) - ref) / ref <= 2e-14


@pytest.mark.parametrize("d, kappa", [(2, 1e7), (64, 1e6), (3072, 1e9)])
def test_power_spherical_density_keeps_its_digits_at_the_mode(d, kappa):
    # log C + kappa log 2 from gammaln(a) - gammaln(a + b): 4.8e-10 relative at d = 2, kappa = 1e7
    a, b = mp.mpf(d - 1) / 2 + mp.mpf(kappa), mp.mpf(d - 1) / 2
    with mp.workdps(80):
        ref = -(2 * b * mp.log(2) + b * mp.log(mp.pi)) + mp.loggamma(a + b) - mp.loggamma(a)
    assert power_spherical(e1(d), kappa).logpdf(e1(d)) == pytest.approx(float(ref), rel=4 * np.finfo(float).eps)


@pytest.mark.parametrize("d, kappa", [(3072, 1e18), (5, 1e20), (3, 1e30), (2, np.finfo(float).max)])
def test_vmf_sampler_returns_at_huge_kappa(d, kappa):
    # Wood's test kappa (w - x0) was rounding noise once 1 - x0 ~ (d-1)/(2 kappa) < eps: rvs() never returned
    x = vonmises_fisher(e1(d), kappa).rvs(size=200, rng=3)
    assert np.all(np.isfinite(x))
    assert np.all(np.abs(np.linalg.norm(x, axis=-1) - 1) < 10 * np.finfo(float).eps * np.sqrt(d))
    # the tangent part keeps 1 - t ~ 1/kappa: its squared length s (2 - s) ~ chi2(d - 1) / kappa
    r2 = np.einsum("ij,ij->i", x[:, 1:], x[:, 1:])
    assert 0.2 < np.median(r2) * kappa / (d - 1) < 5


def test_bayes_distributions_check_their_parameters():
    pm = pytest.importorskip("pymc")
    pt = pytest.importorskip("pytensor.tensor")
    from pymc.logprob.utils import ParameterValueError

    from sawdist.bayes import PowerSpherical, VonMisesFisher, VonMisesFisherCosine

    x = e1(3)
    for dist in (VonMisesFisher, PowerSpherical):
        # a non-unit or zero mu changed the density silently (2 e_1: 0.1646 instead of -1.957), kappa = inf gave NaN
        for mu, kappa, message in [(2 * e1(3), 1.0, r"'mu' must contain unit vectors .* got norm 2\.0\."),
                                   (np.zeros(3), 1.0, r"'mu' must contain unit vectors .* got norm 0\.0\."),
                                   (e1(3), np.inf, r"'kappa' must be finite, got inf\."),
                                   (e1(3), -1.0, r"kappa >= 0.*'kappa' must be >= 0, got -1\.0\.")]:
            with pytest.raises(ParameterValueError, match=message):
                pm.logp(dist.dist(mu=mu, kappa=kappa), x).eval(mode="FAST_COMPILE")
        # symbolic parameters: checked in the graph
        m, k = pt.dvector("m"), pt.dscalar("k")
        logp = pm.logp(dist.dist(mu=m, kappa=k), x)
        for mv, kv in [(2 * e1(3), 1.0), (e1(3), np.inf), (e1(3), np.nan)]:
            # the graph forms inf - inf before its check raises; PyTensor 2.28 (with the PyMC 5.21.1 floor) lets
            # NumPy warn about it, which the test configuration would turn into an error of its own
            with pytest.raises(ParameterValueError, match="kappa finite, mu a unit vector"), \
                    np.errstate(invalid="ignore"):
                logp.eval({m: mv, k: kv}, mode="FAST_COMPILE")
        assert np.isfinite(logp.eval({m: e1(3), k: 2.0}, mode="FAST_COMPILE"))
    with pytest.raises(ParameterValueError, match=r"'kappa' must be finite, got inf\."):
        pm.logp(VonMisesFisherCosine.dist(dim=3, kappa=np.inf), 0.5).eval(mode="FAST_COMPILE")
