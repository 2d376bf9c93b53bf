"""sawdist._validation: the one check of direction arrays behind every public entry, with one tolerance."""

import numpy as np
import pytest
import xarray as xr

import sawdist
import sawdist.io as sio
from sawdist import power_spherical, stats, vonmises_fisher
from sawdist._validation import (
    as_directions,
    as_rows,
    check_directions,
    check_unit_vectors,
    unit_tolerance,
)
from sawdist.capacity import fit_family
from sawdist.semiparametric import fit_semiparametric
from sawdist.summaries import summarize

D = 6


def directions(n=12, d=D, seed=0, kappa=8.0):
    mu = np.zeros(d)
    mu[0] = 1.0
    return vonmises_fisher(mu, kappa).rvs(size=n, rng=seed)


def dataset(u):
    """A saliency dataset with one family, one capacity and one input holding the seeds `u` (n, d)."""
    dims = ("family", "capacity", "seed", "input", "feature")
    x = u[None, None, :, None, :]
    valid = ~np.isnan(x).any(-1)
    return xr.Dataset({"direction": (dims, x), "valid": (dims[:-1], valid)},
                      coords={"family": ["f"], "capacity": [4], "seed": np.arange(u.shape[0]), "input": [0],
                              "feature": np.arange(u.shape[1])})


# --- the tolerance ------------------------------------------------------------------------------------------------


def test_unit_tolerance_is_ten_eps_sqrt_d_of_the_input_dtype():
    assert unit_tolerance(4) == 10 * np.finfo(np.float64).eps * 2
    assert unit_tolerance(4, np.float32) == 10 * float(np.finfo(np.float32).eps) * 2
    assert unit_tolerance(9, np.int64) == unit_tolerance(9)  # integers: float64


# Every public entry that takes directions, as a function of the rows (n, d); each must apply the same tolerance.
ENTRIES = {
    "fit": lambda x: sawdist.fit(x, distribution="vonmises_fisher"),
    "fit_semiparametric": fit_semiparametric,
    "vonmises_fisher.fit": vonmises_fisher.fit,
    "power_spherical.fit": power_spherical.fit,
    "logpdf": lambda x: vonmises_fisher(np.eye(D)[0], 1.0).logpdf(x),
    "mu": lambda x: vonmises_fisher(x, 1.0),
    "stats.resultant": stats.resultant,
    "stats.rayleigh_test": stats.rayleigh_test,
    "stats.tangent_normal": lambda x: stats.tangent_normal(x, np.eye(D)[0]),
    "stats.ensemble_curve": lambda x: stats.ensemble_curve(np.stack([np.eye(D)[0]] * 3), x[0]),
    "stats.similarity_matrix": lambda x: stats.similarity_matrix(np.stack([x, x])),
    "fit_family": lambda x: fit_family(np.stack([x, x]), n_boot=0),
    "summarize": lambda x: summarize(dataset(x)),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_entry_applies_the_one_tolerance(entry, dtype):
    x = directions().astype(dtype)
    tol = unit_tolerance(D, dtype)
    inside, outside = x.copy(), x.copy()
    inside[0] *= dtype(1 + 0.5 * tol)
    outside[0] *= dtype(1 + 3 * tol)
    ENTRIES[entry](inside)
    with pytest.raises(ValueError, match=r"must contain unit vectors along its .* \(\|norm - 1\| <= "):
        ENTRIES[entry](outside)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e not in ("mu", "logpdf", "vonmises_fisher.fit",
                                                                  "power_spherical.fit", "stats.ensemble_curve")])
def test_an_infinite_entry_is_an_error_everywhere_a_nan_row_is_skipped(entry):
    x = directions()
    x[3] = np.nan
    ENTRIES[entry](x)
    x[5, 1] = np.inf
    with pytest.raises(ValueError, match=r"must be finite"):
        ENTRIES[entry](x)


@pytest.mark.parametrize("entry", ["mu", "logpdf", "vonmises_fisher.fit", "power_spherical.fit"])
def test_nan_is_an_error_where_no_row_may_be_invalid(entry):
    x = directions()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"^'\w+' must be finite, got nan at index \(3, 2\)\.$"):
        ENTRIES[entry](x)


# --- check_directions ---------------------------------------------------------------------------------------------


def test_nan_rows_are_invalid_and_counted_per_batch():
    x = np.stack([directions(seed=1), directions(seed=2)])  # (2, 12, d)
    x[0, [2, 7]] = np.nan
    values, valid = check_directions(x, min_rows=10, rows_axis=-1)
    assert valid.sum(axis=-1).tolist() == [10, 12]
    assert np.shares_memory(values, x)  # float64 input: checked, not copied
    with pytest.raises(ValueError, match=r"^'directions' must have at least 11 valid rows, got 10\.$"):
        check_directions(x, min_rows=11, rows_axis=-1)


def test_rows_whose_sums_overflow_are_still_valid():
    x = np.full((2, 4), 1e308)
    values, valid = check_directions(x, check_norm=False)
    assert valid.all()


def test_the_bad_row_is_located_by_position_or_by_dim_name():
    x = np.stack([directions(seed=1), directions(seed=2)])
    x[1, 4] *= 2
    with pytest.raises(ValueError, match=r"got norm 2\.0\d* in row \(1, 4\)\.$"):
        check_directions(x)
    da = xr.DataArray(x.transpose(2, 0, 1), dims=("feature", "input", "seed"))
    with pytest.raises(ValueError, match=r"along its 'feature' dim .* in row \(input=1, seed=4\)\.$"):
        stats.resultant(da)


def test_renormalization_rules():
    x32 = directions().astype(np.float32)
    rows, skipped = as_rows(x32)  # low precision: renormalized in float64
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, rtol=1e-15)
    assert skipped == 0
    np.testing.assert_array_equal(as_directions(x32).values, x32.astype(np.float64))  # statistics: as given
    x = directions()
    assert np.shares_memory(as_rows(x)[0], x)  # float64 and nothing dropped: no copy
    np.testing.assert_allclose(np.linalg.norm(check_unit_vectors(x * (1 + 1e-15), "x"), axis=1), 1.0, rtol=1e-15)
    rows, _ = as_rows(3.0 * x, normalize=True)
    np.testing.assert_allclose(rows, x, rtol=1e-15)


def test_fit_and_fit_semiparametric_read_a_dataarray_the_same_way():
    x = directions(n=40, seed=3)
    x[5] = np.nan
    da = xr.DataArray(x.T.reshape(D, 8, 5), dims=("feature", "seed", "input"))  # feature dim first
    a = sawdist.fit(da)
    b = fit_semiparametric(da)
    assert (a.n, a.n_skipped, a.dim) == (b.n, b.n_skipped, b.dim) == (39, 1, D)
    np.testing.assert_array_equal(a.mu, b.mu)


# --- summarize ----------------------------------------------------------------------------------------------------


def test_summarize_checks_the_valid_directions():
    u = directions().astype(np.float32)
    summarize(dataset(u))
    bad = u.copy()
    bad[2] *= 2
    with pytest.raises(sio.SchemaError, match=r"^'ds' must contain unit vectors along its 'feature' dim \(\|norm - 1\| "
                                              r"<= .*\), got norm (2\.0|1\.99)\d* where 'valid' is True, in 1 "
                                              r"row\(s\)\.$"):
        summarize(dataset(bad))
    ds = dataset(u)
    ds["direction"][0, 0, 3, 0, 1] = np.nan  # marked valid
    with pytest.raises(sio.SchemaError, match=r"^'ds' must be finite where 'valid' is True, got nan in 1 "
                                              r"row\(s\)\.$"):
        summarize(ds)
    ds = dataset(bad)
    ds["valid"][0, 0, 2, 0] = False  # invalid but not NaN: the statistics of sawdist.stats would count it
    with pytest.raises(sio.SchemaError, match=r"^'ds' must be NaN where 'valid' is False \(the schema's mark of an "
                                              r"invalid direction\), got numbers in 1 row\(s\)\.$"):
        summarize(ds)
    ds["direction"][0, 0, 2, 0] = np.nan  # invalid and NaN: ignored
    summarize(ds)


def test_summarize_keeps_a_lazy_result_lazy():
    pytest.importorskip("dask")
    bad = directions()
    bad[2] *= 2
    lazy = summarize(dataset(bad).chunk({"seed": 4}), compute=False)
    assert lazy["gram"].chunks is not None
    with pytest.raises(ValueError, match="must contain unit vectors"):
        summarize(dataset(bad).chunk({"seed": 4}))
