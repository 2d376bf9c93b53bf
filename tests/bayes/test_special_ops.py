import mpmath as mp
import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.gradient import NullTypeGradError, verify_grad

from sawdist import special
from sawdist.bayes import special_ops as so
from sawdist.bayes._kernels import bessel_L_R, kappa_from_mean_resultant_length

# FAST_COMPILE: these small graphs need no C code, and compiling it would dominate the test time.
MODE = "FAST_COMPILE"
NUS = [0.0, 0.5, 1.5, 3.0, 24.5, 25.0, 30.0, 1535.0, 1e4, 1e5]
XS = np.concatenate([[0.0, 1e-300, 1e-10, 1e-3], np.logspace(-1, 7, 200)])


@pytest.mark.parametrize("nu", NUS)
def test_kernels_match_sawdist_special(nu):
    L, R = bessel_L_R(nu, XS)
    L_ref = special.log_bessel_iv(nu, XS) - np.where(XS > 0, nu * np.log(np.where(XS > 0, XS, 1.0)), 0.0)
    L_ref[XS == 0] = -nu * np.log(2.0) - float(mp.loggamma(nu + 1))
    np.testing.assert_allclose(L, L_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(R, special.bessel_ratio(nu, XS), rtol=1e-13, atol=0)


@pytest.mark.parametrize("nu, x", [(0.0, 0.3), (1.5, 7.0), (10.0, 40.0), (1535.0, 500.0), (1535.0, 3000.0)])
def test_log_bessel_iv_graph_against_mpmath(nu, x):
    mp.mp.dps = 50
    ref = float(mp.log(mp.besseli(nu, x)))
    ratio = float(mp.besseli(nu + 1, x) / mp.besseli(nu, x))
    xv = pt.dscalar("x")
    val, grad = (so.log_bessel_iv(nu, xv).eval({xv: x}, mode=MODE),
                 pt.grad(so.log_bessel_iv(nu, xv), xv).eval({xv: x}, mode=MODE))
    assert abs(val - ref) <= 1e-13 * max(1.0, abs(ref))
    assert grad == pytest.approx(ratio + nu / x, rel=1e-13)


def test_special_values():
    x = np.array([0.0, 1.0])
    np.testing.assert_array_equal(so.log_bessel_iv(0.0, x).eval(mode=MODE)[:1], [0.0])
    assert so.log_bessel_iv(1.0, 0.0).eval(mode=MODE) == -np.inf
    assert so.bessel_ratio(2.0, np.inf).eval(mode=MODE) == 1.0
    assert np.isnan(so.bessel_ratio(2.0, -1.0).eval(mode=MODE))
    assert so.vmf_log_normalizer(3, 1.0).eval(mode=MODE) == pytest.approx(-np.log(4 * np.pi * np.sinh(1.0)), rel=1e-14)
    assert so.log_sphere_area(3).eval(mode=MODE) == pytest.approx(np.log(4 * np.pi), rel=1e-15)


@pytest.mark.parametrize("nu", [0.0, 1.5, 1535.0])
def test_gradients_verify_grad(nu):
    rng = np.random.default_rng(0)
    x = np.array([0.2, 3.0, 60.0, 4000.0])
    verify_grad(lambda v: so.log_bessel_iv(nu, v), [x], rng=rng, mode=MODE)
    verify_grad(lambda v: so.bessel_ratio(nu, v), [x], rng=rng, mode=MODE)  # second derivative of L


def test_ratio_gradient_at_zero():
    x = pt.dvector("x")
    g = pt.grad(so.bessel_ratio(1.5, x).sum(), x).eval({x: np.array([0.0])}, mode=MODE)
    assert g[0] == pytest.approx(1.0 / 5.0, rel=1e-15)  # R ~ x / (2 nu + 2)


def test_order_is_not_differentiable():
    nu = pt.dscalar("nu")
    with pytest.raises(NullTypeGradError):
        pt.grad(so.log_bessel_iv(nu, 2.0), nu)


@pytest.mark.parametrize("dim", [3, 5, 64, 3072])
def test_kappa_from_mean_resultant_length_inverts_the_ratio(dim):
    m = np.concatenate([[0.0, 1e-8, 1e-3], np.linspace(0.01, 0.99, 40), [0.999999]])
    kappa = so.vmf_kappa_from_mean_resultant_length(dim, m).eval(mode=MODE)
    np.testing.assert_allclose(special.bessel_ratio(dim / 2 - 1, kappa), m, rtol=0, atol=4e-15)
    np.testing.assert_allclose(kappa_from_mean_resultant_length(dim / 2 - 1, m), kappa, rtol=0)
    assert np.isnan(so.vmf_kappa_from_mean_resultant_length(dim, 1.0).eval(mode=MODE))


def test_kappa_from_mean_resultant_length_gradient():
    verify_grad(lambda m: so.vmf_kappa_from_mean_resultant_length(64.0, m), [np.array([0.01, 0.3, 0.9])],
                rng=np.random.default_rng(1), mode=MODE)


def test_op_rejects_mismatched_ndim():
    with pytest.raises(ValueError, match="BesselLogRatio needs 'nu' and 'x' of equal ndim, got 0 and 1."):
        so.BesselLogRatio()(pt.dscalar(), pt.dvector())


@pytest.mark.parametrize("nu", NUS)
def test_fixed_order_op_c_code_matches_the_numpy_kernel(nu):
    # Models build the Op with a constant order; in the default mode it runs its C code (the NumPy perform in
    # FAST_COMPILE): both must give the kernel's values, special values included.
    import pytensor

    x = pt.dvector("x")
    L, R = so._pair(nu, x)
    assert isinstance(L.owner.op, so.FixedOrderBesselLogRatio)
    xs = np.concatenate([XS, [np.inf, -1.0, np.nan]])
    L_ref, R_ref = bessel_L_R(nu, xs)
    for mode in ("FAST_RUN", "FAST_COMPILE"):
        f = pytensor.function([x], [L, R], mode=mode)
        L_c, R_c = f(xs)
        np.testing.assert_allclose(L_c, L_ref, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(R_c, R_ref, rtol=1e-13, atol=0)
    assert so._pair(pt.dscalar("nu"), x)[0].owner.op is so._bessel_log_ratio  # a variable order: the general Op
