"""sawdist.special against 50-digit mpmath values (tests/reference/bessel_reference.py made them)."""

import csv
import os

import mpmath as mp
import numpy as np
import pytest
from scipy import special as sc

from sawdist.special import (
    bessel_ratio,
    bessel_ratio_complement,
    log_bessel_iv,
    vmf_entropy,
    vmf_kappa_from_mean_resultant_length,
    vmf_log_normalizer,
    vmf_mean_resultant_length,
)

mp.mp.dps = 50
REF = os.path.join(os.path.dirname(__file__), "reference", "bessel_reference.csv")
RTOL = 1e-12


def _reference():
    with open(REF, newline="") as fh:
        rows = list(csv.DictReader(fh))
    nu = np.array([float(r["nu"]) for r in rows])
    x = np.array([float(r["x"]) for r in rows])
    log_iv = [mp.mpf(r["log_iv"]) for r in rows]
    ratio = [mp.mpf(r["ratio"]) for r in rows]
    return nu, x, log_iv, ratio


NU, X, LOG_IV, RATIO = _reference()


def test_reference_grid_covers_the_promised_range():
    assert NU.min() == 0 and NU.max() == 1e5
    assert X.min() == 0 and X.max() == 1e7
    assert len(NU) >= 250


def test_log_bessel_iv_matches_mpmath():
    got = log_bessel_iv(NU, X)
    for g, ref, nu, x in zip(got, LOG_IV, NU, X):
        if mp.isinf(ref):
            assert g == -np.inf, (nu, x)
            continue
        err = abs(mp.mpf(float(g)) - ref) / max(1, abs(ref))
        assert err <= RTOL, (nu, x, g, ref)


def test_bessel_ratio_matches_mpmath():
    got = bessel_ratio(NU, X)
    for g, ref, nu, x in zip(got, RATIO, NU, X):
        if ref == 0:
            assert g == 0.0
            continue
        assert abs(mp.mpf(float(g)) - ref) / ref <= RTOL, (nu, x, g, ref)


def test_bessel_ratio_complement_matches_mpmath():
    got = bessel_ratio_complement(NU, X)
    for g, ref, nu, x in zip(got, RATIO, NU, X):
        ref = 1 - ref
        assert abs(mp.mpf(float(g)) - ref) / ref <= RTOL, (nu, x, g, ref)


@pytest.mark.parametrize("kappa", ["1e-9", "0.5", "30", "1e4", "1e7"])
def test_vmf_entropy_at_d3_matches_closed_form(kappa):
    # d = 3: H = log(4 pi sinh(k) / k) - k (coth k - 1/k)
    k = mp.mpf(kappa)
    ref = mp.log(4 * mp.pi * mp.sinh(k) / k) - k * (mp.coth(k) - 1 / k)
    assert vmf_entropy(3, float(k)) == pytest.approx(float(ref), rel=1e-13)


@pytest.mark.parametrize("dim", [2, 64, 3072, 100000])
def test_vmf_entropy_matches_mpmath(dim):
    nu = dim / 2 - 1
    sel = np.nonzero(NU == nu)[0]
    got = vmf_entropy(dim, X[sel])
    for g, i in zip(got, sel):
        x = mp.mpf(X[i])
        if x == 0:
            ref = mp.log(2) + mp.mpf(dim) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(dim) / 2)
        else:  # -log C - kappa A
            ref = -(nu * mp.log(x) - mp.mpf(dim) / 2 * mp.log(2 * mp.pi) - LOG_IV[i]) - x * RATIO[i]
        assert abs(mp.mpf(float(g)) - ref) / max(1, abs(ref)) <= RTOL, (dim, X[i], g, ref)


@pytest.mark.parametrize("dim", [2, 3, 64, 3072, 12288, 100000])
def test_vmf_log_normalizer_matches_mpmath(dim):
    nu = dim / 2 - 1
    sel = NU == nu
    assert sel.sum() == len(set(X)), "reference grid must contain this order"
    got = vmf_log_normalizer(dim, X[sel])
    for g, x, ref_iv in zip(got, X[sel], [v for v, s in zip(LOG_IV, sel) if s]):
        if x == 0:
            # -log omega_d = log Gamma(d/2) - log 2 - (d/2) log pi
            ref = mp.loggamma(mp.mpf(dim) / 2) - mp.log(2) - mp.mpf(dim) / 2 * mp.log(mp.pi)
        else:
            ref = nu * mp.log(mp.mpf(x)) - mp.mpf(dim) / 2 * mp.log(2 * mp.pi) - ref_iv
        assert abs(mp.mpf(float(g)) - ref) / max(1, abs(ref)) <= RTOL, (dim, x, g, ref)


def test_tiny_kappa_is_continuous_at_zero():
    for dim in (2, 3, 3072, 100000):
        at0 = vmf_log_normalizer(dim, 0.0)
        assert vmf_log_normalizer(dim, 1e-300) == at0
        assert abs(vmf_log_normalizer(dim, 1e-8) - at0) <= 1e-15 * max(1, abs(at0)) + 1e-15


def test_agrees_with_scipy_ive_where_that_is_accurate():
    nu = np.array([0.0, 0.5, 3.0, 10.5, 40.0])[:, None]
    x = np.array([0.3, 1.0, 7.0, 50.0, 300.0])[None, :]
    np.testing.assert_allclose(log_bessel_iv(nu, x), np.log(sc.ive(nu, x)) + x, rtol=1e-13)
    np.testing.assert_allclose(bessel_ratio(nu, x), sc.ive(nu + 1, x) / sc.ive(nu, x), rtol=1e-13)


def test_closed_forms_at_half_integer_order():
    # I_{1/2}(x) = sqrt(2/(pi x)) sinh x;  I_{3/2}/I_{1/2} = coth x - 1/x
    x = np.array([1e-3, 0.5, 2.0, 30.0, 700.0])
    np.testing.assert_allclose(log_bessel_iv(0.5, x), 0.5 * np.log(2 / (np.pi * x)) + np.log(np.sinh(x)),
                               rtol=1e-14)
    ref = [float(mp.coth(mp.mpf(v)) - 1 / mp.mpf(v)) for v in x]  # cancels in float64 at small x
    np.testing.assert_allclose(bessel_ratio(0.5, x), ref, rtol=1e-14)


def test_broadcasting_and_scalars():
    assert isinstance(log_bessel_iv(1.0, 2.0), float)
    out = log_bessel_iv(np.array([0.0, 1.0, 2.0])[:, None], np.array([1.0, 2.0]))
    assert out.shape == (3, 2)
    assert bessel_ratio(3.0, np.inf) == 1.0
    assert log_bessel_iv(3.0, np.inf) == np.inf
    assert log_bessel_iv(0.0, 0.0) == 0.0 and log_bessel_iv(2.0, 0.0) == -np.inf


@pytest.mark.parametrize("dim", [2, 3, 64, 3072, 12288, 100000])
def test_vmf_kappa_from_mean_resultant_length_is_the_inverse(dim):
    kappa = np.array([0.0, 1e-6, 0.5, 10.0, 500.0, 2000.0, 1e5, 1e7])
    m = vmf_mean_resultant_length(dim, kappa)
    back = vmf_kappa_from_mean_resultant_length(dim, m)
    # exact to the conditioning of the inverse: relative error ~ eps * m / (kappa * A'(kappa))
    with np.errstate(divide="ignore", invalid="ignore"):
        deriv = 1 - m * m - (dim - 1) * m / kappa
        cond = np.where(kappa > 0, m / (kappa * np.abs(deriv)), 1.0)
    tol = 64 * np.finfo(float).eps * np.maximum(cond, 1.0)
    assert np.all(np.abs(back - kappa) <= tol * np.maximum(kappa, 1e-300)), (back, kappa)
    # The residual is at the accuracy of bessel_ratio itself, which near A = 1 is ~30 ulps (log Q ~ -log x
    # carries eps * |log x| absolutely; 5.9e-15 is the worst case against mpmath on the reference grid).
    assert np.all(np.abs(vmf_mean_resultant_length(dim, back) - m) <= 32 * np.finfo(float).eps)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: log_bessel_iv(-1.0, 1.0), r"'nu' must be finite and >= 0, got -1\.0\."),
        (lambda: log_bessel_iv(np.inf, 1.0), r"'nu' must be finite and >= 0, got inf\."),
        (lambda: log_bessel_iv(1.0, -2.0), r"'x' must be >= 0, got -2\.0\."),
        (lambda: bessel_ratio(1.0, np.nan), r"'x' must be >= 0, got nan\."),
        (lambda: vmf_log_normalizer(1, 1.0), r"'dim' must be an integer >= 2, got 1\."),
        (lambda: vmf_log_normalizer(2.5, 1.0), r"'dim' must be an integer >= 2, got 2\.5\."),
        (lambda: vmf_log_normalizer(3, -1.0), r"'kappa' must be >= 0, got -1\.0\."),
        (lambda: vmf_log_normalizer(3, np.inf), r"'kappa' must be finite, got inf\."),
        (lambda: vmf_kappa_from_mean_resultant_length(3, 1.0),
         r"'mean_resultant_length' must be in \[0, 1\), got 1\.0 \(1 means identical points"),
    ],
)
def test_error_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()
