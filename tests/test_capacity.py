"""Tests of sawdist.capacity.fit_family (one Saw per capacity, shared mean direction, shapes smooth in log k)."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats as sps

import sawdist
from sawdist import stats
from sawdist.capacity import fit_family, second_differences

from ._saw_reference import directions_from_cosines, draw_cosines

ALPHA = 1e-3


def random_mu(rng, d):
    mu = rng.standard_normal(d)
    return mu / np.linalg.norm(mu)


def vmf_family(rng, mu, kappas, n):
    d = mu.size
    return np.stack([directions_from_cosines(draw_cosines(lambda t, k=k: k * t, d, n, rng), mu, rng) for k in kappas])


def testsecond_differences_exact_on_polynomials():
    x = np.log(np.array([4.0, 8.0, 32.0, 64.0, 256.0]))
    D = second_differences(x)
    np.testing.assert_allclose(D @ (3 * x - 1), 0.0, atol=1e-13)
    np.testing.assert_allclose(D @ x**2, 2.0, rtol=1e-13)
    assert second_differences(x[:2]).shape == (0, 2)


def test_recovers_m_of_k_in_high_d_where_plugin_fails():
    rng = np.random.default_rng(1)
    d, kappas = 3072, [300.0, 1000.0, 2500.0]
    mu = random_mu(rng, d)
    x = vmf_family(rng, mu, kappas, 20)
    res = fit_family(x, capacities=[4, 16, 64], n_boot=60, rng=2)
    m_true = np.array([float(sawdist.special.vmf_mean_resultant_length(d, k)) for k in kappas])
    z = sps.norm.isf(ALPHA / 2 / len(kappas))
    assert np.all(np.abs(res.mean_resultant_length - m_true) < z * res.m_se)
    assert np.all(res.m_plugin - m_true > 0.03)  # plug-in: +0.14, +0.07, +0.03 (identity 3)
    assert np.all((res.m_lower <= res.mean_resultant_length) & (res.mean_resultant_length <= res.m_upper))
    # The shared mean direction pools all capacities: closer to mu than the best single capacity's mean.
    best_single = max(stats.mean_direction(xk) @ mu for xk in x)
    assert res.mu @ mu > best_single


def test_shapes_per_capacity_ks_against_fresh_draws():
    # Power-spherical shapes (not vMF) at d = 64: each capacity's fitted cosine law against fresh draws.
    rng = np.random.default_rng(3)
    d, kappas, n = 64, [5.0, 15.0, 40.0], 1500
    mu = random_mu(rng, d)
    shapes = [lambda t, k=k: k * np.log1p(t) for k in kappas]
    x = np.stack([directions_from_cosines(draw_cosines(f, d, n, rng), mu, rng) for f in shapes])
    res = fit_family(x, capacities=[2, 4, 8], n_boot=0)
    for f, dist in zip(shapes, res.distributions):
        fresh = draw_cosines(f, d, 800, rng)
        assert sps.kstest(fresh, dist.cosine.cdf).pvalue > ALPHA / len(kappas)
    # Means: the fitted m(k) against the exact kappa / (d - 1 + kappa), within a few bootstrap-free MC errors.
    m_true = np.array(kappas) / (d - 1 + np.array(kappas))
    np.testing.assert_allclose(res.mean_resultant_length, m_true, atol=0.01)


def test_rho_predicted_and_observed():
    rng = np.random.default_rng(4)
    d = 500
    mu = random_mu(rng, d)
    x = vmf_family(rng, mu, [50.0, 100.0, 200.0, 400.0], 12)
    res = fit_family(x, capacities=[1, 2, 4, 8], n_boot=0)
    np.testing.assert_allclose(res.rho_predicted, np.outer(res.mean_resultant_length, res.mean_resultant_length))
    np.testing.assert_allclose(res.rho_observed, stats.similarity_matrix(x), rtol=1e-14)
    # Diagonal of the observed matrix = the unbiased m_hat^2 of each capacity (identity 3).
    np.testing.assert_allclose(np.diag(res.rho_observed), res.m_unbiased**2, rtol=1e-12)
    assert np.isnan(res.m_se).all()


def test_nan_rows_counted_per_capacity_and_xarray_out():
    rng = np.random.default_rng(5)
    d = 100
    mu = random_mu(rng, d)
    x = vmf_family(rng, mu, [20.0, 40.0, 80.0], 10)
    x[0, 2] = np.nan
    x[2, [1, 7]] = np.nan
    caps = [64, 16, 32]  # unsorted on purpose
    da = xr.DataArray(
        x,
        dims=("capacity", "seed", "feature"),
        coords={"capacity": caps, "seed": np.arange(10), "feature": np.arange(d)},
    )
    res = fit_family(da, n_boot=20, rng=0)
    assert res.mean_resultant_length.dims == ("capacity",)
    np.testing.assert_array_equal(res.mean_resultant_length.capacity, [16, 32, 64])
    np.testing.assert_array_equal(res.n_skipped, [0, 2, 1])
    np.testing.assert_array_equal(res.n, [10, 8, 9])
    assert res.rho_observed.dims == ("capacity_1", "capacity_2")
    assert res.mu.dims == ("feature",)
    ref = fit_family(da.sortby("capacity").values, capacities=[16, 32, 64], n_boot=0)
    np.testing.assert_allclose(res.mean_resultant_length.values, ref.mean_resultant_length, rtol=1e-12)
    ds = res.to_dataset()
    assert set(ds.data_vars) >= {"mean_resultant_length", "m_se", "rho_predicted", "rho_observed", "mu", "n"}
    assert ds["n_skipped"].sel(capacity=32) == 2
    text = res.summary()
    assert "shared mean direction" in text and "lam_z" in text


ERRORS = [
    (lambda: fit_family(xr.DataArray(np.eye(3)[None], dims=("k", "seed", "feature"))), r"'dim' must name a dim"),
    (
        lambda: fit_family(xr.DataArray(np.eye(3)[None, None], dims=("capacity", "input", "seed", "feature"))),
        r"must have exactly the dims \('capacity', a seed dim, 'feature'\) for one input",
    ),
    (lambda: fit_family(np.eye(3)), r"'directions' must have shape \(capacity, seed, feature\), got shape \(3, 3\)\."),
    (lambda: fit_family(np.stack([np.eye(3)] * 2), capacities=[1]), r"'capacities' must have one value per capacity"),
    (lambda: fit_family(np.stack([np.eye(3)] * 2), capacities=[0, 1]), r"'capacities' must be positive and finite"),
    (lambda: fit_family(np.stack([np.eye(3)] * 2), capacities=[2, 2]), r"'capacities' must be distinct"),
    (lambda: fit_family(np.stack([np.eye(3)[:1]] * 2)), r"'directions' must have at least 2 valid rows, got 1\."),
    (
        lambda: fit_family(np.stack([[[1.0, 0], [-1.0, 0]], [[0, 1.0], [0, -1.0]]])),
        r"'directions' must have a nonzero weighted resultant",
    ),
    (
        lambda: fit_family(np.stack([[[1.0, 0], [1.0, 0]], [[1.0, 0], [0.6, 0.8]]])),
        r"at least 2 distinct cosines per capacity, got 1 at capacity 1",
    ),
    # n_boot once reached np.full ("negative dimensions are not allowed"); n_knots and rng were checked late or not
    (lambda: fit_family(np.stack([np.eye(3)] * 2), n_boot=-1), r"^'n_boot' must be an integer >= 0, got -1\.$"),
    (lambda: fit_family(np.stack([np.eye(3)] * 2), n_knots=1), r"^'n_knots' must be an integer >= 2, got 1\.$"),
    (lambda: fit_family(np.stack([np.eye(3)] * 2), rng=-1),
     r"^'rng' must be a numpy.random.Generator, a non-negative int seed or None, got -1\.$"),
]


@pytest.mark.parametrize("call, match", ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_error_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()

