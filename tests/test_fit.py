"""sawdist.fit and the parametric maximum-likelihood estimators."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import sawdist
from sawdist import power_spherical, vonmises_fisher


def e(d, i=0):
    v = np.zeros(d)
    v[i] = 1.0
    return v


@pytest.mark.parametrize("d, kappa", [(3072, 500.0), (12288, 2000.0)])
def test_vmf_fit_recovers_kappa_in_high_dimension(d, kappa):
    # the goal: within 3 % from 5000 draws (scipy returns kappa = 1e-8 here)
    x = vonmises_fisher(e(d, 7), kappa).rvs(size=5000, rng=20261126)
    result = sawdist.fit(x, distribution="vonmises_fisher")
    assert abs(result.kappa / kappa - 1) < 0.03
    assert result.mu @ e(d, 7) > 0.99
    assert result.n == 5000 and result.dim == d and result.n_skipped == 0


def test_vmf_fit_is_the_mle():
    # the score vanishes: A_d(kappa_hat) = ||R|| / n, and the log-likelihood is maximal in kappa and mu
    x = vonmises_fisher(e(10), 4.0).rvs(size=300, rng=1)
    mu, kappa = vonmises_fisher.fit(x)
    m_plugin = np.linalg.norm(x.sum(0)) / len(x)
    assert sawdist.special.vmf_mean_resultant_length(10, kappa) == pytest.approx(m_plugin, rel=1e-13)
    best = vonmises_fisher(mu, kappa).logpdf(x).sum()
    for k in (kappa * 0.99, kappa * 1.01):
        assert vonmises_fisher(mu, k).logpdf(x).sum() < best
    tilted = mu + 0.01 * e(10, 3)
    assert vonmises_fisher(tilted / np.linalg.norm(tilted), kappa).logpdf(x).sum() < best


def test_power_spherical_fit_recovers_parameters_and_is_stationary():
    d, kappa = 64, 30.0
    mu0 = np.ones(d) / np.sqrt(d)
    x = power_spherical(mu0, kappa).rvs(size=4000, rng=3)
    mu, k = power_spherical.fit(x)
    assert abs(k / kappa - 1) < 0.05
    assert mu @ mu0 > 0.995
    best = power_spherical(mu, k).logpdf(x).sum()
    for kk in (k * 0.999, k * 1.001):
        assert power_spherical(mu, kk).logpdf(x).sum() < best
    rng = np.random.default_rng(0)
    for _ in range(3):
        tilted = mu + 1e-3 * rng.standard_normal(d)
        assert power_spherical(tilted / np.linalg.norm(tilted), k).logpdf(x).sum() < best


def test_power_spherical_fit_of_uniform_data_gives_small_kappa():
    x = sawdist.uniform_direction(5).rvs(size=2000, rng=4)
    _, k = power_spherical.fit(x)
    assert k < 0.5


def test_fit_result_delegates_to_the_distribution():
    x = vonmises_fisher(e(5), 10.0).rvs(size=200, rng=2)
    r = sawdist.fit(x, distribution="vonmises_fisher")
    assert r.loglik == pytest.approx(np.sum(r.logpdf(x)), rel=1e-14)
    assert r.mean_resultant_length == pytest.approx(r.cosine.mean(), rel=1e-14)
    np.testing.assert_allclose(r.mean(), r.mean_resultant_length * r.mu, rtol=1e-14)
    assert r.rvs(size=3, rng=0).shape == (3, 5)
    assert np.isfinite(r.entropy())
    text = r.summary()
    assert "distribution=vonmises_fisher" in text and "kappa" in text and "n = 200" in text
    assert repr(r).startswith("FitResult(distribution_name='vonmises_fisher', dim=5, n=200, kappa=")


def test_nan_rows_are_skipped_and_counted():
    x = vonmises_fisher(e(6), 5.0).rvs(size=50, rng=3)
    full = sawdist.fit(x, distribution="power_spherical")
    holes = np.vstack([x[:20], np.full((3, 6), np.nan), x[20:]])
    holes[0, 2] = np.nan  # a partly-NaN row is invalid too
    r = sawdist.fit(holes, distribution="power_spherical")
    assert r.n_skipped == 4 and r.n == 49
    full_minus_first = sawdist.fit(x[1:], distribution="power_spherical")
    assert r.kappa == pytest.approx(full_minus_first.kappa, rel=1e-12)
    assert full.n == 50


def test_xarray_input_flattens_leading_dims_and_accepts_float32():
    x = vonmises_fisher(e(8), 20.0).rvs(size=(4, 5), rng=5).astype(np.float32)  # (seed, input, feature)
    x[1, 2] = np.nan
    da = xr.DataArray(x, dims=("seed", "input", "feature"))
    r = sawdist.fit(da, distribution="vonmises_fisher")
    assert r.n == 19 and r.n_skipped == 1 and r.dim == 8
    ref = sawdist.fit(np.delete(x.reshape(20, 8), 7, axis=0).astype(np.float64), distribution="vonmises_fisher",
                      normalize=True)
    assert r.kappa == pytest.approx(ref.kappa, rel=1e-12)


def test_normalize_option_scales_rows():
    x = vonmises_fisher(e(4), 3.0).rvs(size=30, rng=6)
    r1 = sawdist.fit(x * np.arange(1, 31)[:, None], distribution="vonmises_fisher", normalize=True)
    r2 = sawdist.fit(x, distribution="vonmises_fisher")
    assert r1.kappa == pytest.approx(r2.kappa, rel=1e-13)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sawdist.fit(np.eye(3), distribution="gauss"),
         r"'distribution' must be one of 'semiparametric', 'vonmises_fisher', 'power_spherical', got 'gauss'\."),
        (lambda: sawdist.fit(np.ones(3)),
         r"'directions' must have shape \(n, d\) \(rows are directions\), got shape \(3,\)\."),
        (lambda: sawdist.fit(np.array([[1.0, 0.0], [np.nan, 0.0]])),
         r"'directions' must have at least 2 valid rows, got 1\."),
        (lambda: sawdist.fit(np.array([[1.0, 0.0], [0.0, 2.0]])),
         r"'directions' must contain unit vectors along its last axis \(\|norm - 1\| <= .*\), got norm 2\.0 in row 1; "
         r"pass normalize=True"),
        (lambda: sawdist.fit(np.array([[1.0, 0.0], [0.0, 0.0]]), normalize=True),
         r"'directions' has a zero row at index 1, which has no direction\."),
        (lambda: sawdist.fit(np.array([[0.6, 0.8], [0.6, 0.8], [0.6, 0.8]]), distribution="vonmises_fisher"),
         r"'directions' rows are all identical: the maximum-likelihood concentration is infinite\."),
        (lambda: sawdist.fit(np.array([[1.0, 0.0], [-1.0, 0.0]]), distribution="vonmises_fisher"),
         r"'directions' has a zero resultant: the mean direction is undefined"),
        (lambda: vonmises_fisher.fit(np.array([[0.6, 0.8], [0.6, 0.8]])),
         r"'x' rows are all identical: the maximum-likelihood concentration is infinite\."),
        (lambda: sawdist.fit(np.array([[1.0, np.inf], [1.0, 0.0], [0.0, 1.0]])),
         r"'directions' must be finite, or NaN in the rows of invalid directions, got inf in 1 row\(s\)\."),
        (lambda: power_spherical.fit(np.eye(3)[None]), r"'x' must be a 2-D array of shape \(n, d\)"),
        (lambda: vonmises_fisher.fit(np.array([[1.0, 0.0]])), r"'x' must have at least 2 rows, got 1\."),
        (lambda: sawdist.fit(np.array([["a", "b"]])), r"'directions' must be array-like of real numbers"),
    ],
)
def test_error_messages(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_import_stays_light():
    heavy = ("torch", "pymc", "pytensor", "arviz", "matplotlib")
    code = f"import sys, sawdist; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("distribution", ["semiparametric", "vonmises_fisher", "power_spherical"])
def test_one_feature_is_not_a_direction(distribution):
    with pytest.raises(ValueError, match=r"^'directions' must have at least 2 coordinates along its last axis "
                                         r"\(sphere dimension d >= 2\), got 1\.$"):
        sawdist.fit(np.ones((5, 1)), distribution=distribution)


def two_clusters(angle, n=10):
    """n unit rows in d = 3, half at e1 and half at angle `angle` from it: 1 - m = 1 - cos(angle/2) exactly."""
    x = np.zeros((n, 3))
    x[:, 0] = 1.0
    x[::2] = [np.cos(angle), np.sin(angle), 0.0]
    return x


@pytest.mark.parametrize("distribution", ["vonmises_fisher", "power_spherical"])
def test_nearly_identical_rows_are_not_called_identical(distribution):
    # rows 1e-10 apart: 1 - m = 1.25e-21, which the float64 m = ||R||/n cannot hold (it rounded to 1, "all identical")
    with pytest.raises(ValueError, match=r"^'directions' rows are nearly identical \(1 - mean resultant length = "
                                         r"1\.25e-21, below the 1e-10 that float64 resolves\): the maximum-likelihood "
                                         r"concentration is too large to compute accurately\.$"):
        sawdist.fit(two_clusters(1e-10), distribution=distribution)


def test_tightly_clustered_rows_above_the_limit_fit_accurately():
    # 1 - m = 2 sin^2(angle/4) = 1.25e-9; vMF at d = 3: A_3(kappa) = coth(kappa) - 1/kappa, so kappa = 1/(1 - m)
    angle = 1e-4
    gap = 2.0 * np.sin(angle / 4.0) ** 2
    result = sawdist.fit(two_clusters(angle), distribution="vonmises_fisher")
    assert result.kappa == pytest.approx(1.0 / gap, rel=1e-6)
