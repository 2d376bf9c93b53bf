"""sawdist.bayes.initialization: the Laplace start of NUTS, on PyMC's API, and seeded determinism of the fit."""

import inspect

import numpy as np
import pymc as pm
import pytest

from sawdist.bayes import fit_convergence, simulate_summary
from sawdist.bayes.initialization import INITIAL_WEIGHT, laplace_start

MU_B, SD_B = np.array([-1.0, 4.0]), np.array([0.5, 3.0])
MU_A, SD_A = np.array([1.0, 2.0, 3.0]), np.array([0.2, 1.0, 10.0])


def gaussian_model():
    """A posterior whose Laplace approximation is exact: independent normals, declared ``b`` before ``a`` (the
    sampler's flat vector follows the declaration order, not the names), and a half-normal (log transform)."""
    with pm.Model() as model:
        pm.Normal("b", MU_B, SD_B)
        pm.Normal("a", MU_A, SD_A)
        pm.HalfNormal("s", 1.0)
    return model


def test_laplace_start_is_the_mode_plus_half_sd_jitter():
    model = gaussian_model()
    points, step = laplace_start(model, chains=3, seed=5)
    assert [sorted(p) for p in points] == [["a", "b", "s"]] * 3
    # jitter: mode + (sd/2) z with sd = min(Laplace sd, 1), z standard normal from default_rng(seed) over the flat
    # vector (b, a, log s) per chain
    gen = np.random.default_rng(5)
    for point in points:
        z = gen.standard_normal(6)
        np.testing.assert_allclose(point["b"], MU_B + 0.5 * np.minimum(SD_B, 1) * z[:2], atol=1e-3)
        np.testing.assert_allclose(point["a"], MU_A + 0.5 * np.minimum(SD_A, 1) * z[2:5], atol=1e-3)
        # half-normal(1) in log space: logp = -exp(2y)/2 + y, mode y = 0, curvature -2: sd 1/sqrt(2)
        assert point["s"].shape == () and point["s"] > 0
        np.testing.assert_allclose(np.log(point["s"]), 0.5 * np.sqrt(0.5) * z[5], atol=1e-3)
    # the mass matrix starts from the Laplace variances capped at 1 (PyMC's unit default), in the same flat order
    assert isinstance(step, pm.NUTS)
    var = step.potential.velocity(np.ones(6))
    np.testing.assert_allclose(var, np.r_[np.minimum(SD_B, 1) ** 2, np.minimum(SD_A, 1) ** 2, 0.5], rtol=1e-5)


def test_a_nearly_flat_direction_starts_no_wider_than_pymc_would():
    # curvature 1e-12 at the mode: a Laplace variance of 1e12, capped at PyMC's unit default
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1e6)
    points, step = laplace_start(model, chains=4, seed=0)
    assert step.potential.velocity(np.ones(1))[0] == pytest.approx(1.0)
    assert all(abs(p["x"]) < 5.0 for p in points)


def test_laplace_start_is_seeded_and_passes_nuts_arguments():
    model = gaussian_model()
    first, step = laplace_start(model, chains=2, seed=1, target_accept=0.95, max_treedepth=7)
    again, _ = laplace_start(model, chains=2, seed=1)
    other, _ = laplace_start(model, chains=2, seed=2)
    for p, q, r in zip(first, again, other):
        for name in p:
            np.testing.assert_array_equal(p[name], q[name])
            assert not np.array_equal(p[name], r[name])
    assert step.target_accept == 0.95 and step.max_treedepth == 7


def test_pinned_pymc_quadpotential():
    # QuadPotentialDiagAdapt is public by name (pymc.step_methods.hmc.quadpotential.__all__) but not in PyMC's API
    # reference; laplace_start relies on this signature and on NUTS adopting the potential as given.
    # Checked with PyMC 5.28.5.
    from pymc.step_methods.hmc import quadpotential

    assert "QuadPotentialDiagAdapt" in quadpotential.__all__
    params = list(inspect.signature(quadpotential.QuadPotentialDiagAdapt).parameters)
    assert params[:4] == ["n", "initial_mean", "initial_diag", "initial_weight"] and "rng" in params
    potential = quadpotential.QuadPotentialDiagAdapt(3, np.zeros(3), np.array([1.0, 4.0, 9.0]), INITIAL_WEIGHT)
    with pm.Model():
        pm.Normal("x", 0.0, 1.0, shape=3)
        step = pm.NUTS(potential=potential)
    assert step.potential is potential
    np.testing.assert_array_equal(potential.velocity(np.ones(3)), [1.0, 4.0, 9.0])


SAMPLE = {"draws": 40, "tune": 40, "chains": 2, "cores": 1, "compute_convergence_checks": False}


@pytest.fixture(scope="module")
def summary():
    return simulate_summary(dim=16, capacities=[4, 16], n_inputs=3, n_seeds=3, rng=0)


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_same_seed_same_draws(summary):
    first = fit_convergence(summary, "power", random_seed=3, **SAMPLE)
    again = fit_convergence(summary, "power", random_seed=3, **SAMPLE)
    other = fit_convergence(summary, "power", random_seed=4, **SAMPLE)
    for name in ("alpha_ref", "beta", "sigma", "a", "kappa"):
        np.testing.assert_array_equal(first.posterior[name].values, again.posterior[name].values)
        assert not np.array_equal(first.posterior[name].values, other.posterior[name].values)
    np.testing.assert_array_equal(first.log_likelihood["directions"].values,
                                  again.log_likelihood["directions"].values)
    assert first.posterior.attrs["sawdist_dim"] == 16 and first.posterior.attrs["sawdist_law"] == "power"
    assert first.posterior.attrs["sawdist_shared_mean"] == 1


def test_fit_argument_messages(summary):
    with pytest.raises(ValueError, match=r"^'init' must be 'auto', 'laplace' or 'pymc', got 'map'\.$"):
        fit_convergence(summary, init="map")
    with pytest.raises(ValueError, match=r"^'law' must be one of 'power', 'logit_mean_resultant_length', 'monotone', "
                                         r"got 'line'\.$"):
        fit_convergence(summary, "line")


def test_a_held_variable_starts_the_others_at_their_conditional_mode():
    # x ~ N(0, 1), y ~ N(x, 1/2): held at x = 2, the mode of y is 2; the curvatures there are 1 + 4 (x) and 4 (y)
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Normal("y", x, 0.5)
    points, step = laplace_start(model, chains=3, seed=4, fixed={"x": 2.0})
    gen = np.random.default_rng(4)
    for point in points:
        z = gen.standard_normal(2)
        np.testing.assert_allclose([point["x"], point["y"]], 2.0 + 0.5 * np.sqrt([0.2, 0.25]) * z, atol=1e-5)
    np.testing.assert_allclose(step.potential.velocity(np.ones(2)), [0.2, 0.25], rtol=1e-5)
    # the model is left without initial values (PyMC cannot compute the log-likelihood of one that has them)
    assert all(value is None for value in model.rvs_to_initial_values.values())
    with pytest.raises(ValueError, match=r"^'fixed' must name free variables of the model, got 'w'\.$"):
        laplace_start(model, chains=1, fixed={"w": 1.0})


def test_the_centred_start_is_held_off_the_funnels_neck(monkeypatch):
    """With each input's a_x weakly determined (w = 0.2, 4 seeds at d = 64) the joint mode of the centred effects
    and their scale is at sigma -> 0, where chains stay (R-hat 1.71, 421 divergences in 4 x 300 draws; held, 1.009);
    fit_convergence holds sigma at the moment estimates' spread while it looks for the mode of the rest."""
    from sawdist.bayes import convergence_model, fitting
    from sawdist.bayes.calibration import input_spread

    summary = simulate_summary(dim=64, capacities=[4, 16], n_inputs=20, n_seeds=4, sigma=0.3, rng=0)
    model = convergence_model(summary, likelihood_weight=0.2)
    collapsed, _ = laplace_start(model, chains=2, seed=0)
    assert all(p["sigma"][0] < 1e-6 for p in collapsed)
    spread = input_spread(summary)
    held, _ = laplace_start(model, chains=2, seed=0, fixed={"sigma": spread})
    # the jitter is half the Laplace sd there, about 0.1 in log sigma
    assert all(abs(np.log(p["sigma"][0] / spread[0])) < 0.5 for p in held)

    seen = []

    def record(model, sampler, *, init, laplace_fixed=None, **kwargs):
        seen.append((init, laplace_fixed))
        raise RuntimeError("recorded")

    monkeypatch.setattr(fitting, "sample", record)
    for centered, expected in [(True, {"sigma": spread}), (False, None)]:
        with pytest.raises(RuntimeError, match="recorded"):
            fit_convergence(summary, calibrate=0.2, centered=centered, random_slope=False)
        init, fixed = seen.pop()
        assert init == "laplace" and (fixed is None) == (expected is None)
        if expected is not None:
            np.testing.assert_allclose(fixed["sigma"], expected["sigma"], rtol=1e-12)
