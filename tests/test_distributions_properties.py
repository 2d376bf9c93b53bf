"""Property-based tests of the von Mises–Fisher and power spherical distributions over their whole documented
domain (d from 2 to 1e5, kappa from 0 to the largest float, t = mu'x from -1 to 1) against mpmath.

The accuracy asserted is the one of the table "Supported range and accuracy" in docs/distributions.md; references
from tests/reference/mpmath_reference.py. Hypothesis runs derandomized (the same points every run); the statistical
tests use fixed seeds and one attempt.
"""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from sawdist import power_spherical, vonmises_fisher

from .reference import mpmath_reference as ref

DPS = 30
MAX = float(np.finfo(float).max)
EPS = float(np.finfo(float).eps)
TOL = 1e-13

PROPERTY = settings(derandomize=True, max_examples=150, deadline=None)


def log_uniform(lo_exp, hi_exp):
    """Floats spread evenly over the decades 10^lo_exp .. 10^hi_exp (hypothesis' own floats favour the ends)."""
    return st.floats(lo_exp, hi_exp).map(lambda e: min(float(10.0**e), MAX))


dims = st.one_of(st.integers(2, 100000), st.integers(2, 40), st.sampled_from([3072, 12288, 100000]))
kappas = st.one_of(st.floats(0.0, MAX), log_uniform(-320, 308.25), log_uniform(-3, 8))
cosines = st.one_of(st.floats(-1.0, 1.0), log_uniform(-17, 0).map(lambda s: 1.0 - s), st.sampled_from([-1.0, 1.0]))
families = st.sampled_from(["vonmises_fisher", "power_spherical"])
GEN = {"vonmises_fisher": vonmises_fisher, "power_spherical": power_spherical}


def _point(d, t):
    """(mu, x) with mu = e_1 and mu'x = t exactly (x[1] = sqrt((1 - t)(1 + t)) makes |x| = 1 to an ulp)."""
    mu = np.zeros(d)
    mu[0] = 1.0
    x = np.zeros(d)
    x[0], x[1] = t, np.sqrt((1.0 - t) * (1.0 + t))
    return mu, x


def _reference_logpdf(name, d, kappa, t):
    """(log f, the two terms it is the sum of): log f = [log density at the mode] + [log psi(t) - log psi(1)]."""
    if name == "vonmises_fisher":
        mode = ref.vmf_log_normalizer(d, kappa, scaled=True, dps=DPS)
        shape = -mp.mpf(kappa) * (1 - mp.mpf(t))
    else:
        mode = ref.power_spherical_log_normalizer(d, kappa, scaled=True, dps=DPS)
        shape = 0 if kappa == 0 else (mp.mpf(kappa) * mp.log((1 + mp.mpf(t)) / 2) if t > -1 else mp.ninf)
    return mode + shape, mode, shape


@PROPERTY
@given(name=families, d=dims, kappa=kappas, t=cosines)
@example(name="vonmises_fisher", d=2, kappa=1e7, t=1.0)  # 2.1e-10 relative before (log C and kappa t cancelled)
@example(name="power_spherical", d=2, kappa=1e7, t=1.0)  # 4.8e-10
@example(name="vonmises_fisher", d=5, kappa=1e100, t=1.0)  # 0.0 instead of 456.8
@example(name="vonmises_fisher", d=3, kappa=1e155, t=1.0)  # NaN
@example(name="vonmises_fisher", d=5, kappa=2000.0, t=float(np.sqrt(0.8)))  # pdf 1.8e-13 relative
@example(name="power_spherical", d=100000, kappa=MAX, t=-1.0)
def test_logpdf(name, d, kappa, t):
    mu, x = _point(d, t)
    got = GEN[name](mu, kappa).logpdf(x)
    with mp.workdps(DPS):
        exact, mode, shape = _reference_logpdf(name, d, kappa, t)
        if mp.isinf(exact) or abs(exact) > MAX:  # the density is 0 (t = -1) or below the smallest float
            assert got == -np.inf, (name, d, kappa, t, got)
            return
        # relative to the larger of the two terms: relative error of the density wherever log f is not near 0
        scale = max(1, abs(mode), abs(shape))
        assert abs(mp.mpf(float(got)) - exact) <= TOL * scale, (name, d, kappa, t, got, exact)


@PROPERTY
@given(name=families, d=dims, kappa=kappas)
@example(name="power_spherical", d=2, kappa=1e7)  # the digamma difference lost 7e-8 relative
@example(name="vonmises_fisher", d=100000, kappa=MAX)
def test_entropy_and_mean_resultant_length(name, d, kappa):
    mu, _ = _point(d, 0.0)
    dist = GEN[name](mu, kappa)
    with mp.workdps(DPS):
        if name == "vonmises_fisher":
            exact_h = ref.vmf_entropy(d, kappa, DPS)
            exact_m = ref.ratio(mp.mpf(d) / 2 - 1, kappa, DPS) if kappa > 0 else mp.mpf(0)
        else:
            exact_h = ref.power_spherical_entropy(d, kappa, DPS)
            exact_m = mp.mpf(kappa) / (d - 1 + mp.mpf(kappa))
        got_h, got_m = dist.entropy(), dist.mean_resultant_length()
        assert abs(mp.mpf(float(got_h)) - exact_h) <= TOL * max(1, abs(exact_h)), (name, d, kappa, got_h, exact_h)
        assert abs(mp.mpf(float(got_m)) - exact_m) <= TOL * max(exact_m, 1e-300), (name, d, kappa, got_m, exact_m)


@PROPERTY
@given(name=families, d=dims, kappa=kappas, t=cosines)
@example(name="vonmises_fisher", d=100000, kappa=9.0, t=0.0)
@example(name="power_spherical", d=3072, kappa=40.0, t=0.0)  # scipy's beta.logpdf: 1.8e-12
@example(name="power_spherical", d=2, kappa=8.645076569019993e307, t=-0.75)  # (a-1) log((1+t)/2) overflows
@example(name="power_spherical", d=2, kappa=8.645076569019992e307, t=-0.75)  # exact is 1e-16 past the largest float
def test_cosine_logpdf(name, d, kappa, t):
    got = float(GEN[name](_point(d, 0.0)[0], kappa).cosine.logpdf(t))
    with mp.workdps(DPS):
        exact = (ref.vmf_cosine_logpdf if name == "vonmises_fisher" else ref.power_spherical_cosine_logpdf)(
            d, kappa, t, DPS
        )
        if mp.isinf(exact) or abs(exact) > MAX:
            # Past the largest float the answer is +-inf, but a value within TOL of it is held to the same TOL as
            # everywhere else: a sum of rounded terms cannot tell on which side of the overflow threshold a result
            # 1e-16 beyond it falls (kappa = 8.6e307, d = 2, t = -0.75: exact -1.797693134862315813e308, got
            # -1.797693134862315708e308, the largest float).
            if np.isfinite(got) and not mp.isinf(exact):
                assert abs(mp.mpf(got) - exact) <= TOL * abs(exact), (name, d, kappa, t, got, exact)
            else:
                assert got == (np.inf if exact > 0 else -np.inf), (name, d, kappa, t, got, exact)
            return
        # (the normaliser and the base measure, each ~ (d/2) log d, used to meet in a result ~ log d: 1.6e-10 off at
        # d = 1e5, kappa = 9, t = 0.) The base-measure term (d-3)/2 log(1 - t^2) is formed in double precision, so
        # its own rounding, 2 eps times its size, is the documented floor: near t = +-1 at large d and kappa it
        # exceeds 1e-13 of the result (d = 16371, kappa = 1e8, t = 0.9999: a term of 7e4 in a result of -163).
        base = 2 * EPS * abs((d - 3) / 2 * float(mp.log1p(-mp.mpf(t) ** 2))) if abs(t) < 1 else 0.0
        assert abs(mp.mpf(got) - exact) <= TOL * max(1, abs(exact)) + base, (name, d, kappa, t, got, exact)


def _closed_form_d3(name, kappa, t):
    """(P(T <= t), P(T > t)) at d = 3, exactly: vMF F(t) = expm1(k (1 + t)) / expm1(2k); power spherical
    (1 + t)/2 ~ Beta(1 + k, 1), F(t) = ((1 + t)/2)^(1 + k)."""
    k, t = mp.mpf(kappa), mp.mpf(t)
    if name == "vonmises_fisher":
        if k == 0:
            return (1 + t) / 2, (1 - t) / 2
        return mp.expm1(k * (1 + t)) / mp.expm1(2 * k), -mp.expm1(-k * (1 - t)) / -mp.expm1(-2 * k)
    if t == -1:
        return mp.mpf(0), mp.mpf(1)
    log_f = (1 + k) * mp.log((1 + t) / 2)
    return mp.exp(log_f), -mp.expm1(log_f)


def _quantile_d3(name, kappa, q):
    """The q-quantile at d = 3 as (t, 1 - t), each exact."""
    k, q = mp.mpf(kappa), mp.mpf(q)
    if name == "vonmises_fisher":
        # F(t) = q: s = -log(q + (1 - q) e^{-2k}) / k, a sum of positive terms (log1p form near q = 1)
        if k == 0:
            s = 2 * (1 - q)
        elif q < 0.5 and k >= 1:
            s = -mp.log(q + (1 - q) * mp.exp(-2 * k)) / k
        elif q < 0.5:  # = 2 - log1p(q expm1(2k)) / k, where e^{-2k} rounds to 1
            s = 2 - mp.log1p(q * mp.expm1(2 * k)) / k
        else:
            s = -mp.log1p((1 - q) * mp.expm1(-2 * k)) / k
    else:
        s = -2 * mp.expm1(mp.log(q) / (1 + k)) if q > 0 else mp.mpf(2)
    return 1 - s, s


@PROPERTY
@given(name=families, kappa=kappas, t=cosines, q=st.one_of(st.floats(0.0, 1.0), log_uniform(-300, 0)))
@example(name="vonmises_fisher", kappa=1e7, t=1 - 1e-7, q=0.5)  # the tables formed kappa cos(theta): cdf 1.5e-10 off
@example(name="vonmises_fisher", kappa=1e16, t=1.0, q=0.3)
@example(name="power_spherical", kappa=1e10, t=0.5, q=0.3)  # scipy's betaincinv gave NaN (b = 2 at d = 5)
def test_cosine_cdf_sf_ppf_at_d3(name, kappa, t, q):
    law = GEN[name](_point(3, 0.0)[0], kappa).cosine
    with mp.workdps(DPS + 20):
        cdf, sf = _closed_form_d3(name, kappa, t)
        # relative, down to the smallest normal float (below it the value itself has fewer digits); the vMF tables
        # resolve angles near pi (t -> -1) only to ulp(pi), ~ eps / sqrt(1 + t) relative (documented)
        near_south = name == "vonmises_fisher" and 0 < 1 + t < 1e-6
        rel = 1e-12 + (1e-15 / np.sqrt(1 + t) if near_south else 0.0)
        for got, exact in ((law.cdf(t), cdf), (law.sf(t), sf)):
            assert abs(mp.mpf(float(got)) - exact) <= rel * max(exact, 1e-300), (name, kappa, t, got, exact)
        # variance: vMF 1/k^2 - 1/sinh(k)^2; power spherical 4ab/((a+b)^2 (a+b+1)), a = 1 + k, b = 1
        k = mp.mpf(kappa)
        if name == "vonmises_fisher":  # (1/k^2 - 1/sinh^2 k cancels to 1/3 as k -> 0: digits raised by 2 |log10 k|)
            with mp.workdps(mp.mp.dps + (int(-2 * mp.log10(k)) if 0 < k < 1 else 0)):
                var = mp.mpf(1) / 3 if k == 0 else 1 / k**2 - 1 / mp.sinh(k) ** 2
        else:
            var = 4 * (1 + k) / ((2 + k) ** 2 * (3 + k))
        got_var = float(law.var())
        assert abs(mp.mpf(got_var) - var) <= 1e-12 * max(var, 1e-300) or (var < 1e-300 and got_var < 1e-300), (
            name, kappa, got_var, var)
        got = float(law.ppf(q))
        t_ref, s_ref = _quantile_d3(name, kappa, q)
        # to 1e-12 of the distance to the nearer pole, plus the rounding of t itself
        allowed = 1e-12 * min(s_ref, 2 - s_ref) + 2 * EPS * max(abs(t_ref), 1e-300)
        assert abs(mp.mpf(got) - t_ref) <= allowed, (name, kappa, q, got, t_ref)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(name=families, d=st.one_of(st.integers(2, 3072), st.integers(2, 12)), kappa=log_uniform(-3, 4),
       t=st.floats(-0.999999, 1.0))
@example(name="vonmises_fisher", d=2, kappa=100.0, t=0.0)  # 2.96476125512145e-45 = (I_0 - L_0)(100) / (2 I_0(100))
@example(name="vonmises_fisher", d=2, kappa=697.8305848598663, t=0.0)  # 2.6e-305; 10 % low at a drop of e^-700
def test_cosine_cdf_in_any_dimension(name, d, kappa, t):
    """cdf and sf against mpmath quadrature of the cosine law in the angle theta = arccos t, where the density
    psi(cos theta) sin(theta)^(d-2) is smooth for every d >= 2 (the t-density is singular at t = +-1 for d = 2),
    with its value at the mode factored out; and cdf + sf = 1."""
    law = GEN[name](_point(d, 0.0)[0], kappa).cosine
    cdf, sf = float(law.cdf(t)), float(law.sf(t))
    assert abs(cdf + sf - 1.0) <= 1e-12
    k = mp.mpf(kappa)
    with mp.workdps(DPS):
        mean, sd = float(law.mean()), float(law.std())

        def log_g(theta):
            c = mp.cos(theta)
            log_psi = k * (c - 1) if name == "vonmises_fisher" else k * mp.log((1 + c) / 2)
            return log_psi + ((d - 2) * mp.log(mp.sin(theta)) if d > 2 else 0)

        ts = {min(1.0, max(-1.0, mean + j * sd)) for j in (-40, -8, -3, -1, 0, 1, 3, 8, 40)}
        # cuts around the band, and geometric ones towards theta = 0 and evenly over (0, pi), so that tanh-sinh sees a
        # smooth piece everywhere (with few cuts it returned 2.9607e-45 for the example below, 1.4e-3 off)
        grid = [mp.mpf(10) ** e for e in range(-8, 1)] + [mp.pi * j / 32 for j in range(1, 32)]
        cuts = sorted({mp.mpf(0), mp.pi, mp.acos(mp.mpf(t)), *(mp.acos(mp.mpf(v)) for v in ts), *grid})
        split = mp.acos(mp.mpf(t))

        def integral(pieces):
            """log of the integral over the pieces, each scaled by the largest value at the cuts: mp.quad's
            tolerance is absolute, so an unscaled tail ~ 1e-46 would be taken as converged at once."""
            if len(pieces) < 2:
                return mp.ninf
            top = max(log_g(c) for c in pieces if 0 < c < mp.pi) if len(pieces) > 2 else log_g(
                (pieces[0] + pieces[-1]) / 2)
            value = mp.quad(lambda th: mp.exp(log_g(th) - top) if 0 < th < mp.pi else mp.mpf(0), pieces)
            return top + mp.log(value) if value > 0 else mp.ninf

        log_above = integral([c for c in cuts if c <= split])  # theta < arccos t: T > t
        log_below = integral([c for c in cuts if c >= split])
        above = 1 / (1 + mp.exp(log_below - log_above))
        below = 1 / (1 + mp.exp(log_above - log_below))
        for got, exact in ((cdf, below), (sf, above)):
            assert abs(mp.mpf(got) - exact) <= 1e-12 * max(exact, 1e-300), (name, d, kappa, t, got, exact)


# ---------------------------------------------------------------------------------------------------------------
# sampling: fixed seeds, one attempt


@pytest.mark.parametrize("name", ["vonmises_fisher", "power_spherical"])
@pytest.mark.parametrize("d", [3, 3072])
@pytest.mark.parametrize("kappa", [1e18, 1e20, 1e100, MAX])
def test_rvs_at_huge_kappa_follows_the_chi2_limit(name, d, kappa):
    """rvs() never returned for kappa >~ 1e18 at d = 3072 (vMF: Wood's acceptance test in w, x0 ~ 1 - 1e-19).

    As kappa -> inf both cosine laws put 1 - t ~ 1/kappa: vMF 2 kappa (1 - t) -> chi2(d - 1) (the density
    e^{-kappa s} s^{(d-3)/2} (2 - s)^{(d-3)/2} of s = 1 - t); power spherical (1 - t)/2 ~ Beta(b, a) with
    a = (d-1)/2 + kappa, so 2 a (1 - t)/2 -> chi2(d - 1). Both corrections are O(d/kappa) < 1e-14 here, far below
    what 2000 draws resolve. t itself rounds to 1, so 1 - t is read from the tangent part:
    |x - t mu|^2 = (1 - t)(1 + t) = s (2 - s)."""
    mu = np.zeros(d)
    mu[0] = 1.0
    x = GEN[name](mu, kappa).rvs(size=2000, rng=20240)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=10 * EPS * np.sqrt(d))
    r2 = np.einsum("ij,ij->i", x[:, 1:], x[:, 1:])  # s (2 - s), s = 1 - t
    s = r2 / (1.0 + np.sqrt(1.0 - r2))  # = 1 - sqrt(1 - r2), without cancellation
    rate = kappa if name == "vonmises_fisher" else (d - 1) / 2 + kappa
    with np.errstate(over="ignore"):
        scaled = 2.0 * rate * s if name == "vonmises_fisher" else rate * s
    if kappa == MAX:  # 2 kappa overflows: scale in two steps
        scaled = (rate * s) * (2.0 if name == "vonmises_fisher" else 1.0)
    assert stats.kstest(scaled, stats.chi2(d - 1).cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", ["vonmises_fisher", "power_spherical"])
@pytest.mark.parametrize("kappa", [1e7, 1e12])
def test_rvs_at_large_kappa_follows_the_exact_law_at_d3(name, kappa):
    """KS against the exact d = 3 law of s = 1 - t (vMF: P(S <= s) = -expm1(-kappa s) / -expm1(-2 kappa);
    power spherical: 1 - ((1 - s/2))^(1 + kappa)), s from the tangent part as above."""
    mu = np.array([1.0, 0.0, 0.0])
    x = GEN[name](mu, kappa).rvs(size=2000, rng=7)
    r2 = np.einsum("ij,ij->i", x[:, 1:], x[:, 1:])
    s = r2 / (1.0 + np.sqrt(1.0 - r2))
    if name == "vonmises_fisher":
        cdf = lambda v: -np.expm1(-kappa * v) / -np.expm1(-2 * kappa)  # noqa: E731
    else:
        cdf = lambda v: -np.expm1((1 + kappa) * np.log1p(-v / 2))  # noqa: E731
    assert stats.kstest(s, cdf).pvalue > 1e-3
