"""Property-based tests of sawdist.special over its whole documented domain against mpmath.

The domain and the accuracy asserted here are those of the table "Supported range and accuracy" in
docs/distributions.md: orders nu in [0, 1e5] (tiny ones included), arguments x from 0 to the largest float,
dimensions d from 2 to 1e5 and concentrations kappa from 0 to the largest float. The references come from
tests/reference/mpmath_reference.py (mpmath at 30+ digits, by methods independent of sawdist's). Hypothesis runs
derandomized, so every run checks the same points; the @example points are the reported failures.
"""

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sawdist import special

from .reference import mpmath_reference as ref

DPS = 30
MAX = float(np.finfo(float).max)
EPS = float(np.finfo(float).eps)

#: Documented accuracies (docs/distributions.md): |error| <= TOL * scale, the scale named at each test.
TOL_LOG = 1e-13  # logarithms: relative where |value| >= 1, absolute below (= relative error of I or C itself)
TOL_RATIO = 1e-13  # the ratio and its complement: relative

PROPERTY = settings(derandomize=True, max_examples=150, deadline=None)


def log_uniform(lo_exp, hi_exp):
    """Floats spread evenly over the decades 10^lo_exp .. 10^hi_exp (hypothesis' own floats favour the ends)."""
    return st.floats(lo_exp, hi_exp).map(lambda e: min(float(10.0**e), MAX))


# each: hypothesis' floats (0, subnormals, the largest float, ...), every decade evenly, and the switch points
orders = st.one_of(st.floats(0.0, 1e5), log_uniform(-320, 5), st.sampled_from([0.5, 1.0, 24.5, 25.0, 1535.0, 1e5]))
arguments = st.one_of(st.floats(0.0, MAX), log_uniform(-320, 308.25))
dims = st.one_of(st.integers(2, 100000), st.integers(2, 40), st.sampled_from([3072, 12288, 100000]))
kappas = st.one_of(st.floats(0.0, MAX), log_uniform(-320, 308.25))


def _err(got, exact):
    return abs(mp.mpf(float(got)) - exact)


@PROPERTY
@given(nu=orders, x=arguments)
@example(nu=1.0, x=1e300)  # was NaN from x ~ 1e155 (x * x overflowed in the recurrence)
@example(nu=1.0, x=MAX)
@example(nu=1e-20, x=1e-10)  # was 2.5e-2 off relative (gammaln(1 + nu) rounded 1 + nu)
@example(nu=1e-8, x=1e-4)
@example(nu=1e5, x=1e7)
def test_log_bessel_iv(nu, x):
    with mp.workdps(DPS):
        exact = ref.log_iv(nu, x, DPS)
        got = special.log_bessel_iv(nu, x)
        if mp.isinf(exact):
            assert got == -np.inf
            return
        assert _err(got, exact) <= TOL_LOG * max(1, abs(exact)), (nu, x, got, exact)


@PROPERTY
@given(nu=st.floats(0.0, 1e-3), x=st.floats(0.0, 1.0))
@example(nu=1e-20, x=1e-10)
@example(nu=1e-8, x=1e-4)
@example(nu=1e-300, x=1e-300)
def test_log_bessel_iv_tiny_orders_keep_their_digits(nu, x):
    # log I_nu(x) = nu log(x/2) - log Gamma(1 + nu) + log(1 + x^2/(4(nu+1)) + ...): relative to the size of those
    # terms, not only to max(1, |log I|) (which a value ~1e-19 passes with any error below 1e-13)
    with mp.workdps(DPS):
        exact = ref.log_iv(nu, x, DPS)
        got = special.log_bessel_iv(nu, x)
        if mp.isinf(exact):
            assert got == -np.inf
            return
        scale = nu * (abs(mp.log(mp.mpf(x) / 2)) + 1) + mp.mpf(x) ** 2 / 4 if x > 0 else 0
        assert _err(got, exact) <= TOL_LOG * scale + 1e-320, (nu, x, got, exact)


@PROPERTY
@given(nu=orders, x=arguments)
@example(nu=1.0, x=1e150)  # was 1.0000000000000118 (> 1)
@example(nu=0.0, x=MAX)
@example(nu=1e5, x=1e-300)
def test_bessel_ratio_and_complement(nu, x):
    got, comp = special.bessel_ratio(nu, x), special.bessel_ratio_complement(nu, x)
    assert 0.0 <= got <= 1.0 and 0.0 <= comp <= 1.0
    if x == 0:
        assert got == 0.0 and comp == 1.0
        return
    with mp.workdps(DPS):
        exact = ref.ratio(nu, x, DPS)
        exact_comp = ref.ratio_complement(nu, x, DPS)
        # below the smallest normal float the value itself has fewer digits: compare absolutely there
        assert _err(got, exact) <= TOL_RATIO * max(exact, 1e-300), (nu, x, got, exact)
        assert _err(comp, exact_comp) <= TOL_RATIO * max(exact_comp, 1e-300), (nu, x, comp, exact_comp)


@PROPERTY
@given(dim=dims, kappa=kappas)
@example(dim=2, kappa=1e7)
@example(dim=5, kappa=1e100)
@example(dim=3, kappa=1e155)  # was NaN
@example(dim=100000, kappa=MAX)
@example(dim=3072, kappa=5e-324)
def test_vmf_log_normalizer_scaled_and_entropy(dim, kappa):
    with mp.workdps(DPS):
        for scaled in (False, True):
            exact = ref.vmf_log_normalizer(dim, kappa, scaled=scaled, dps=DPS)
            got = special.vmf_log_normalizer(dim, kappa, scaled=scaled)
            assert _err(got, exact) <= TOL_LOG * max(1, abs(exact)), (dim, kappa, scaled, got, exact)
        exact = ref.vmf_entropy(dim, kappa, DPS)
        got = special.vmf_entropy(dim, kappa)
        assert _err(got, exact) <= TOL_LOG * max(1, abs(exact)), (dim, kappa, got, exact)


@PROPERTY
@given(nu=orders)
@example(nu=1e-20)
@example(nu=5e-324)
@example(nu=0.19999999999999998)
@example(nu=1.0)
def test_lgamma1p(nu):
    with mp.workdps(DPS):
        exact = ref.lgamma1p(nu, DPS)
        got = special.lgamma1p(nu)
        # relative below 0.2 (where gammaln(1 + nu) loses it); log Gamma(2) = 0 makes it absolute near nu = 1
        scale = abs(exact) if nu < 0.2 else max(1, abs(exact))
        assert _err(got, exact) <= 1e-14 * scale + 5e-324, (nu, got, exact)  # + subnormal rounding


@settings(derandomize=True, max_examples=40, deadline=None)
@given(dim=dims, kappa=st.floats(0.0, 1e14))
@example(dim=2, kappa=1e14)
@example(dim=100000, kappa=0.0)
def test_vmf_kappa_from_mean_resultant_length_is_the_inverse(dim, kappa):
    m = special.vmf_mean_resultant_length(dim, kappa)
    back = special.vmf_kappa_from_mean_resultant_length(dim, m)
    # exact to the conditioning of the inverse, m / (kappa A'(kappa)) (as in tests/test_special.py)
    if kappa == 0:
        assert back == 0
        return
    deriv = 1 - m * m - (dim - 1) * m / kappa
    cond = max(m / (kappa * abs(deriv)), 1.0) if deriv != 0 else np.inf
    assert abs(back - kappa) <= 64 * EPS * cond * kappa or abs(special.vmf_mean_resultant_length(dim, back) - m) \
        <= 32 * EPS, (dim, kappa, back)


@pytest.mark.parametrize("nu, x", [(0.5, 1e200), (1.0, MAX), (1e5, 1e300), (0.0, 1e-320)])
def test_no_warnings_nan_or_values_above_one_at_the_ends(nu, x):
    # pytest turns warnings into errors: an overflow in an intermediate fails here
    assert np.isfinite(special.log_bessel_iv(nu, x))
    assert 0 <= special.bessel_ratio(nu, x) <= 1
    assert 0 <= special.bessel_ratio_complement(nu, x) <= 1


def test_bayes_kernels_agree_with_special():
    """sawdist.bayes._kernels (the PyTensor Ops' NumPy kernels; the C kernel is the same code) share these
    numerics: the same values over the whole range (a fixed grid and 400 points spread over every decade, seeded;
    not hypothesis, whose recursion-limit check trips on importing PyMC)."""
    pytest.importorskip("pymc")
    from sawdist.bayes._kernels import bessel_L_R

    rng = np.random.default_rng(2024)
    nus = np.concatenate([[0.0, 1e-300, 1e-20, 0.5, 1.0, 24.5, 25.0, 1535.0, 1e5], 10 ** rng.uniform(-300, 5, 40)])
    xs = np.concatenate([[0.0, 5e-324, 1e-10, 1.0, 2.0, 1e7, 1e155, 1e200, MAX], 10 ** rng.uniform(-300, 308, 40)])
    for nu in nus:
        L, R = bessel_L_R(nu, xs)
        L_ref = special._evaluate(np.full_like(xs, nu), xs, "L")
        R_ref = special.bessel_ratio(nu, xs)
        assert np.all((R >= 0) & (R <= 1)), nu
        np.testing.assert_allclose(L, L_ref, rtol=1e-13, atol=1e-13, err_msg=f"nu={nu}")
        np.testing.assert_allclose(R, R_ref, rtol=1e-13, atol=0, err_msg=f"nu={nu}")
