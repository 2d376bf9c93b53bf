"""Validation of the collapsed convergence model: the same posterior as an explicit model that samples the
mean direction, and parameter recovery at d = 3072.

Both are statistical tests with fixed seeds and one attempt; their tolerances come from the Monte-Carlo standard
errors (explicit vs collapsed) or from the posterior itself (recovery), never from re-running.
"""

import arviz as az
import numpy as np
import pymc as pm
import pytest
import xarray as xr

import sawdist
from sawdist.bayes import VonMisesFisher, fit_convergence, simulate_summary

CAPACITIES = np.array([2.0, 8.0])
N_INPUTS, N_SEEDS = 10, 4
SAMPLE = dict(
    draws=1000, tune=500, chains=2, cores=1, target_accept=0.9, compute_convergence_checks=False, progressbar=False
)


def _directions(dim, rng):
    """Directions (capacity, seed, input, feature) from the power law with shared mu(x), and the summary."""
    gen = np.random.default_rng(rng)
    log_k = np.log(CAPACITIES)
    log_kappa = np.log(4.0 * dim) + 0.3 * gen.standard_normal(N_INPUTS)[:, None] + 0.5 * (log_k - log_k.mean())
    mu = sawdist.uniform_direction(dim).rvs(size=N_INPUTS, rng=gen)
    u = np.stack([sawdist.vonmises_fisher(mu, np.exp(log_kappa[:, k])).rvs(size=N_SEEDS, rng=gen)
                  for k in range(len(CAPACITIES))])  # (K, seed, N, d)
    dims = ("family", "capacity", "seed", "input", "feature")
    ds = xr.Dataset({"direction": (dims, u[None]), "valid": (dims[:-1], np.ones(u.shape[:-1], bool)[None])},
                    coords={"family": ["f"], "capacity": CAPACITIES, "seed": np.arange(N_SEEDS),
                            "input": np.arange(N_INPUTS), "feature": np.arange(dim)})
    return u, sawdist.summarize(ds)


def _explicit_model(u):
    """mu(x) = z / ||z|| with z ~ N(0, I_d) (uniform on the sphere), u ~ VonMisesFisher(mu(x), kappa_k(x)), and the
    priors of ``convergence_model(..., law="power", centered=False)``."""
    N, d = u.shape[2:]
    log_k = np.log(CAPACITIES)
    k_ref = log_k.mean()
    with pm.Model() as model:
        alpha_ref = pm.Normal("alpha_ref", np.log(d), 2.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        beta = pm.Normal("beta", 0.0, 1.0)
        pm.Deterministic("alpha", alpha_ref - beta * k_ref)
        z_a = pm.Normal("z_a", 0.0, 1.0, shape=N)
        z = pm.Normal("z_mu", 0.0, 1.0, shape=(N, d))
        mu = z / pm.math.sqrt(pm.math.sum(z**2, axis=-1, keepdims=True))
        kappa = pm.math.exp(alpha_ref + sigma * z_a[None, :] + beta * (log_k - k_ref)[:, None])  # (K, N)
        VonMisesFisher("u", mu=mu[None, None], kappa=kappa[:, None, :], observed=u)
    return model


# One dimension: the collapsing (mu(x) integrated out: docs/theory/bayesian.md, "collapsed") is the same algebra at
# every d, and the Bessel functions it rests on are checked at every order against mpmath (test_special*.py). d = 5
# as well cost CI 51 s from a fresh cache (30 s warm), its most expensive test, for no further coverage.
#
# A trajectory that runs away in early warm-up of the explicit model (PyMC's unit-mass start) overflows in PyMC's
# kinetic energy; PyMC records it as a divergence and rejects it. Not a numerical problem of ours.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.slow
def test_collapsed_posterior_equals_explicit_mu_posterior():
    dim = 8
    u, summary = _directions(dim, rng=100 + dim)
    # the posterior as sampled: the collapsed likelihood's, which the explicit model must reproduce
    collapsed = fit_convergence(summary, "power", centered=False, calibrate=False, adjust_slope=False,
                                random_seed=dim, idata_kwargs={"log_likelihood": False}, **SAMPLE)
    with _explicit_model(u):
        explicit = pm.sample(random_seed=dim, **SAMPLE)
    for name in ("alpha", "beta"):
        a = collapsed.posterior[name].values[..., 0]  # (chain, draw), the one family
        b = explicit.posterior[name].values
        assert a.shape == b.shape == (2, 1000)
        mcse = {key: np.hypot(_mcse(a, key), _mcse(b, key)) for key in ("mean", "sd")}
        sd = 0.5 * (a.std() + b.std())
        # The comparison has power: 4 MCSEs of the difference are a small fraction of the posterior sd.
        assert 4 * mcse["mean"] < 0.25 * sd and 4 * mcse["sd"] < 0.25 * sd, (name, sd, mcse)
        assert abs(a.mean() - b.mean()) < 4 * mcse["mean"], (name, a.mean(), b.mean(), mcse)
        assert abs(a.std() - b.std()) < 4 * mcse["sd"], (name, a.std(), b.std(), mcse)


def _mcse(draws, of):
    """Monte-Carlo standard error of the posterior mean or sd of ``draws`` (chain, draw): sd/sqrt(ESS), and for
    the sd the delta method on the variance, ``MCSE(var) / (2 sd)`` with the ESS of the squared deviations."""
    if of == "mean":
        return draws.std() / np.sqrt(float(az.ess(draws, method="mean")))
    sq = (draws - draws.mean()) ** 2
    return sq.std() / np.sqrt(float(az.ess(sq, method="mean"))) / (2.0 * draws.std())


@pytest.mark.slow
def test_parameter_recovery_at_d3072():
    dim, capacities = 3072, [4, 16, 64]
    alpha_true, beta_true, sigma_true = np.log(dim) - 0.7 * np.log(16), 0.7, 0.3
    summary, truth = simulate_summary(dim=dim, capacities=capacities, n_inputs=40, n_seeds=4, alpha=alpha_true,
                                      beta=beta_true, sigma=sigma_true, rng=3072, return_truth=True)
    idata = fit_convergence(summary, "power", draws=500, tune=300, chains=1, cores=1, random_seed=3,
                            compute_convergence_checks=False, idata_kwargs={"log_likelihood": False})
    post = idata.posterior
    for name, value in (("alpha", alpha_true), ("beta", beta_true), ("sigma", sigma_true)):
        draws = post[name].values.ravel()
        lo, hi = np.quantile(draws, [0.005, 0.995])
        assert lo < value < hi, (name, value, lo, hi)
        assert abs(draws.mean() - value) < 3 * draws.std(), (name, value, draws.mean(), draws.std())
    # d = 3072 pins the slope down: the posterior sd of beta is small against the prior's 1.
    assert post["beta"].values.std() < 0.05
    # The per-input concentrations are recovered: the truth within 3 posterior sds of log kappa almost everywhere.
    log_kappa = np.log(post["kappa"].values[0, :, 0])  # (draw, input, capacity)
    z = (log_kappa.mean(0) - np.log(truth["kappa"][0])) / log_kappa.std(0)
    assert np.mean(np.abs(z) < 3) >= 0.95, np.sort(np.abs(z).ravel())[-10:]
