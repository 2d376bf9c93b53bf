"""fit_convergence with every installed sampler: the same InferenceData layout, the same posterior within Monte Carlo
error, and the same draws for the same seed."""

import arviz as az
import numpy as np
import pytest

from sawdist.bayes import convergence_model, fit_convergence, simulate_summary
from sawdist.bayes import samplers as smp
from sawdist.dependencies import MissingDependencyError

INSTALLED = smp.installed_samplers()
SAMPLE = dict(draws=400, tune=300, chains=2, cores=1, random_seed=3, retry=False)  # samplers, not the retry
GROUPS = {"posterior", "log_likelihood", "sample_stats", "observed_data"}
STATS = {"diverging", "energy", "n_steps", "tree_depth", "acceptance_rate", "lp"}


def _sampler(name):
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed")
    return name


@pytest.fixture(scope="module")
def summary():
    return simulate_summary(dim=64, capacities=[4, 16, 64], n_inputs=8, n_seeds=4, rng=11)


@pytest.fixture(scope="module")
def fits(summary):
    return {name: fit_convergence(summary, "power", sampler=name, **SAMPLE) for name in INSTALLED}


def test_the_default_is_the_fastest_installed_sampler_for_the_fit(summary, monkeypatch):
    # the order measured by benchmarks/samplers.py: nutpie, then PyMC (always installed) before the JAX samplers
    assert smp.SAMPLERS == ("nutpie", "pymc", "numpyro", "blackjax")
    assert "pymc" in INSTALLED and INSTALLED == tuple(s for s in smp.SAMPLERS if s in INSTALLED)
    assert smp.default_sampler() == ("nutpie" if "nutpie" in INSTALLED else "pymc")
    # work = kappa's cells (1 family x 8 inputs x 3 capacities) x (draws + tune) x chains
    model = convergence_model(summary)
    assert smp.fit_work(model, draws=400, tune=300, chains=2) == 24 * 700 * 2
    for installed in [("nutpie", "pymc"), ("pymc", "numpyro", "blackjax")]:
        monkeypatch.setattr(smp, "installed_samplers", lambda installed=installed: installed)
        nutpie = "nutpie" if "nutpie" in installed else "pymc"
        assert smp.default_sampler() == nutpie
        assert smp.default_sampler(smp.NUTPIE_MIN_WORK - 1) == "pymc"
        assert smp.default_sampler(smp.NUTPIE_MIN_WORK) == nutpie
        assert smp._check_sampler(None, model, SAMPLE) == "pymc"  # a small fit: nutpie's compile would not pay
        assert smp._check_sampler(None, model, dict(draws=10**6)) == nutpie  # 24 x (10**6 + 1000) x 4 >= 1.3e7


def test_argument_messages(summary):
    model = convergence_model(summary)
    with pytest.raises(ValueError, match=r"^'sampler' must be one of 'nutpie', 'pymc', 'numpyro', 'blackjax' or "
                                         r"None, got 'stan'\.$"):
        smp.sample(model, "stan")
    with pytest.raises(ValueError, match=r"^'init' must be 'laplace' or 'pymc', got 'map'\.$"):
        smp.sample(model, "pymc", init="map")
    with pytest.raises(ValueError, match=r"^'laplace_fixed' must name free variables of the model, got 'kappa'\.$"):
        smp.sample(model, "pymc", laplace_fixed={"kappa": 1.0})  # a deterministic, not a free variable
    other = next((s for s in INSTALLED if s != "pymc"), None)
    if other is not None:
        with pytest.raises(TypeError, match=rf"^sampler '{other}' takes draws, .* got 'step'\.$"):
            smp.sample(model, other, step=None)
    missing = [s for s in smp.SAMPLERS if s not in INSTALLED]
    if missing:
        with pytest.raises(MissingDependencyError, match=r"pip install 'sawdist\["):
            smp.sample(model, missing[0])


@pytest.mark.parametrize("name", smp.SAMPLERS)
def test_same_layout_whichever_sampler(fits, name):
    _sampler(name)
    idata, ref = fits[name], fits["pymc"]
    assert GROUPS <= set(idata.groups())
    assert set(idata.groups()) - GROUPS <= {"constant_data"}
    assert idata.posterior.attrs["sawdist_sampler"] == name
    assert set(idata.posterior.data_vars) == set(ref.posterior.data_vars)
    for var in ref.posterior.data_vars:
        assert idata.posterior[var].dims == ref.posterior[var].dims, var
        for dim in ref.posterior[var].dims[2:]:
            np.testing.assert_array_equal(idata.posterior[dim].values, ref.posterior[dim].values)
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 400
    assert STATS <= set(idata.sample_stats.data_vars)
    assert idata.log_likelihood["directions"].dims == ("chain", "draw", "architecture", "input")
    np.testing.assert_array_equal(idata.observed_data["directions"].values, ref.observed_data["directions"].values)


@pytest.mark.slow
@pytest.mark.parametrize("name", [s for s in smp.SAMPLERS if s != "pymc"])
def test_same_posterior_within_monte_carlo_error(fits, name):
    _sampler(name)
    table = az.summary(fits[name], var_names=["alpha", "beta", "sigma"])
    ref = az.summary(fits["pymc"], var_names=["alpha", "beta", "sigma"])
    assert (table["r_hat"] < 1.05).all() and (table["ess_bulk"] > 100).all()
    gap = np.abs(table["mean"] - ref["mean"])
    mcse = np.sqrt(table["mcse_mean"] ** 2 + ref["mcse_mean"] ** 2)
    assert (gap <= 4 * mcse).all(), (table, ref)


# The JAX samplers compile each fit anew (20-30 s a fit), nutpie too (18 s for three fits; its compile is in the
# fast suite through the layout test above): slow, so that the dependency floors' fast run keeps its time.
@pytest.mark.parametrize("name", [pytest.param(s, marks=pytest.mark.slow) if s != "pymc" else s
                                  for s in smp.SAMPLERS])
def test_same_seed_same_draws(summary, name):
    _sampler(name)
    small = dict(draws=30, tune=30, chains=2, cores=1)
    first = fit_convergence(summary, sampler=name, random_seed=5, **small)
    again = fit_convergence(summary, sampler=name, random_seed=5, **small)
    other = fit_convergence(summary, sampler=name, random_seed=6, **small)
    np.testing.assert_array_equal(first.posterior["beta"].values, again.posterior["beta"].values)
    np.testing.assert_array_equal(first.log_likelihood["directions"].values,
                                  again.log_likelihood["directions"].values)
    assert not np.array_equal(first.posterior["beta"].values, other.posterior["beta"].values)


# blackjax's own window adaptation compiles for 30 s, nutpie for 10: slow, as the same-seed test above
@pytest.mark.parametrize("name", [pytest.param(s, marks=pytest.mark.slow) for s in smp.SAMPLERS if s != "pymc"])
def test_own_start_and_sampler_arguments(summary, name):
    _sampler(name)
    idata = fit_convergence(summary, sampler=name, init="pymc", draws=20, tune=20, chains=2, random_seed=1,
                            target_accept=0.9, max_treedepth=6, idata_kwargs={"log_likelihood": False})
    assert "log_likelihood" not in idata.groups()
    assert int(idata.sample_stats["tree_depth"].max()) <= 6
