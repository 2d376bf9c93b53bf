"""The slope's sandwich (sawdist.bayes.sandwich): derivatives, the ratio's known answers, the posterior's move."""

import mpmath as mp
import numpy as np
import pytest
import xarray as xr

from sawdist.bayes.sandwich import (
    SlopeSandwich,
    _mean_resultant_length_and_slope,
    adjust_slope,
    collapsed_derivatives,
    sampled_posterior,
    slope_sandwich,
)
from sawdist.bayes.simulate import simulate_gram_summary
from sawdist.special import vmf_log_normalizer

CAPS = [4.0, 16.0, 64.0]


@pytest.mark.parametrize(("d", "kappa"), [(3, 0.5), (64, 10.0), (3072, 3072.0), (3072, 1e6), (100000, 1e8)])
def test_mean_resultant_length_slope_matches_mpmath(d, kappa):
    # A_d = I_{d/2} / I_{d/2-1} and its derivative at 50 digits (mpmath's Bessel functions and numerical derivative)
    mp.mp.dps = 50
    nu = mp.mpf(d) / 2 - 1

    def ratio(x):
        return mp.besseli(nu + 1, x) / mp.besseli(nu, x)

    a, da = _mean_resultant_length_and_slope(float(d), np.array([kappa]))
    assert a[0] == pytest.approx(float(ratio(mp.mpf(kappa))), rel=1e-13)
    # A' ~ (d - 1) / (2 kappa^2) far out: its relative rounding error is about 2 kappa eps (module docstring)
    assert da[0] == pytest.approx(float(mp.diff(ratio, mp.mpf(kappa))), rel=max(1e-12, 20 * kappa * 2.2e-16))


@pytest.mark.parametrize("d", [16, 3072])
def test_collapsed_derivatives_match_finite_differences(d):
    summary, truth = simulate_gram_summary(dim=d, capacities=CAPS, n_inputs=6, n_seeds=4, rng=1)
    G = summary["gram"].transpose("family", "input", "capacity", "capacity_b").values[0]
    n = summary["count"].transpose("family", "input", "capacity").values[0].astype(float)
    eta = np.log(truth["kappa"])

    def loglik(e):
        k = np.exp(e)
        r = np.sqrt(np.einsum("nk,nkl,nl->n", k, G, k))
        return (n * vmf_log_normalizer(d, k)).sum(axis=1) - vmf_log_normalizer(d, r)

    grad, hess = collapsed_derivatives(G, n, float(d), eta)
    E = np.eye(3)
    # Richardson-extrapolated central differences: truncation error O(h^4)
    def diff(f, h):
        return (4 * f(h / 2) - f(h)) / 3

    num_grad = np.stack([diff(lambda h, i=i: (loglik(eta + h * E[i]) - loglik(eta - h * E[i])) / (2 * h), 1e-3)
                         for i in range(3)], axis=1)
    np.testing.assert_allclose(grad, num_grad, rtol=1e-7, atol=1e-7 * np.abs(num_grad).max())
    for i in range(3):
        num = np.stack([diff(lambda h, i=i, j=j: (loglik(eta + h * (E[i] + E[j])) - loglik(eta + h * (E[i] - E[j]))
                                                  - loglik(eta - h * (E[i] - E[j])) + loglik(eta - h * (E[i] + E[j])))
                             / (4 * h * h), 2e-3) for j in range(3)], axis=1)
        np.testing.assert_allclose(hess[:, i, :], num, rtol=1e-5, atol=1e-5 * np.abs(num).max())


def _summary(shape="vmf", n_inputs=2000, **kw):
    return simulate_gram_summary(dim=3072, capacities=CAPS, n_inputs=n_inputs, n_seeds=4, beta=0.5, sigma=0.3,
                                 shape=shape, rng=7, **kw)[0]


def test_the_vmf_needs_no_adjustment():
    """Well specified and untempered, the inputs' scores scatter as the model says: f^2 = 1 within its noise
    (sd sqrt(2 / 1999) = 0.032 for normal scores); tempered by w, the posterior is 1/w too wide: f^2 = w."""
    summary = _summary()
    one = slope_sandwich(summary)
    assert one.dof[0] == 1999
    assert one.variance_ratio[0] == pytest.approx(1.0, abs=0.1)
    assert one.beta[0] == pytest.approx(0.5, abs=0.02)
    quarter = slope_sandwich(summary, weight=0.25)
    assert quarter.variance_ratio[0] == pytest.approx(0.25 * one.variance_ratio[0], rel=0.05)


def test_anisotropic_tangent_noise_gets_a_narrower_slope():
    """The missed cell of the calibration study: tangent noise of participation ratio 20 at d = 3072. At the default
    weight the slope is tempered about twice as much as it needs (f^2 ~ 0.5, RESULTS.md); untempered, the vMF
    likelihood understates its variance many times over."""
    from sawdist.bayes.calibration import likelihood_weight

    summary = _summary("anisotropic_tangent", effective_dimension=20)
    w = float(likelihood_weight(summary).weight[0])
    tempered = slope_sandwich(summary, weight=w).variance_ratio[0]
    assert 0.3 < tempered < 0.7
    assert slope_sandwich(summary).variance_ratio[0] > 10


def test_inputs_in_another_order_give_the_same_ratio():
    summary = _summary(n_inputs=200)
    flipped = summary.isel(input=slice(None, None, -1))
    assert slope_sandwich(flipped).variance_ratio[0] == pytest.approx(slope_sandwich(summary).variance_ratio[0],
                                                                      rel=1e-9)


def test_too_few_inputs_measure_nothing():
    out = slope_sandwich(_summary(n_inputs=2))
    assert np.isnan(out.variance_ratio[0]) and out.dof[0] == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weight": 0.0}, "'weight' must lie in (0, 1], got 0.0."),
    ({"weight": 1.5}, "'weight' must lie in (0, 1], got 1.5."),
    ({"beta_prior": (0.0, -1.0)}, "'beta_prior' must be (location, scale > 0), got (0.0, -1.0)."),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError) as err:
        slope_sandwich(_summary(n_inputs=5), **kwargs)
    assert str(err.value) == message


def _posterior(n_chain=4, n_draw=4000, seed=0):
    gen = np.random.default_rng(seed)
    beta = 0.5 + 0.1 * gen.standard_normal((n_chain, n_draw, 1))
    a = gen.normal(3.0, 0.2, (n_chain, n_draw, 1, 2))
    log_k = np.log(np.array(CAPS))
    kappa = np.exp(a[..., None] + beta[..., None, None] * (log_k - log_k.mean()))
    coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "family": ["f"], "input": [0, 1],
              "capacity": np.array(CAPS)}
    post = xr.Dataset({"beta": (("chain", "draw", "family"), beta),
                       "alpha": (("chain", "draw", "family"), 3.0 - beta * log_k.mean()),
                       "kappa": (("chain", "draw", "family", "input", "capacity"), kappa)}, coords=coords)
    return post, log_k


def _sandwich(ratio, dof):
    return SlopeSandwich(["f"], np.array([ratio]), np.array([dof]), np.array([0.5]), np.array([1.0]))


def test_adjustment_keeps_the_mean_and_scales_the_spread():
    post, log_k = _posterior()
    same = adjust_slope(post, _sandwich(1.0, 1e9), log_k, 64.0)
    np.testing.assert_allclose(same["beta"], post["beta"], atol=1e-9)
    np.testing.assert_allclose(same["kappa"], post["kappa"], rtol=1e-8)
    half = adjust_slope(post, _sandwich(0.25, 1e9), log_k, 64.0)
    assert float(half["beta"].mean()) == pytest.approx(float(post["beta"].mean()), abs=1e-12)
    assert float(half["beta"].std()) == pytest.approx(0.5 * float(post["beta"].std()), rel=1e-3)
    # the deterministics follow: alpha = alpha_ref - beta log k_ref, kappa on the law's line with the new slope
    np.testing.assert_allclose(half["alpha"] + half["beta"] * log_k.mean(), post["alpha"] + post["beta"]
                               * log_k.mean(), atol=1e-12)
    slope = np.log(half["kappa"].values[..., 2] / half["kappa"].values[..., 0]) / (log_k[2] - log_k[0])
    np.testing.assert_allclose(slope, np.broadcast_to(half["beta"].values[..., None], slope.shape), rtol=1e-10)
    assert "mean_resultant_length" not in half  # moved only where the posterior has it
    np.testing.assert_array_equal(sampled_posterior(half)["beta"], post["beta"])
    assert "beta_sampled" not in sampled_posterior(half)


def test_few_inputs_give_the_t_interval():
    """With 9 degrees of freedom the central 95 % interval is t_9's 2.262 sds wide on each side, not 1.96."""
    post, log_k = _posterior(n_draw=20000, seed=2)
    moved = adjust_slope(post, _sandwich(1.0, 9.0), log_k, 64.0)["beta"].values.ravel()
    m, s = post["beta"].values.mean(), post["beta"].values.std()
    lo, hi = np.quantile(moved, [0.025, 0.975])
    assert (hi - m) / s == pytest.approx(2.262, rel=0.02) and (m - lo) / s == pytest.approx(2.262, rel=0.02)


def test_an_unmeasured_family_is_left_as_sampled():
    post, log_k = _posterior()
    np.testing.assert_array_equal(adjust_slope(post, _sandwich(np.nan, 1.0), log_k, 64.0)["beta"], post["beta"])


def test_the_deterministics_follow_the_models_own():
    """Moved by nothing (f = 1, a normal), beta, kappa, m and the mean direction's concentration recomputed by
    adjust_slope equal the model's deterministics of the same draws (each family its own architecture)."""
    from sawdist.bayes import fit_convergence, simulate_summary
    from sawdist.bayes.design import check_summary

    summary = simulate_summary(dim=64, capacities=CAPS, n_inputs=20, n_seeds=4, rng=3)
    idata = fit_convergence(summary, draws=100, tune=100, chains=2, random_seed=1, adjust_slope=False,
                            idata_kwargs={"log_likelihood": False})
    design = check_summary(summary)
    order = np.array([int(design.slot_family[a, 0]) for a in range(len(design.architectures))])
    unmoved = SlopeSandwich(list(design.families), np.ones(1), np.array([1e12]), np.zeros(1), np.ones(1))
    moved = adjust_slope(idata.posterior, unmoved, np.log(design.capacities.astype(float)), float(design.dim),
                         groups=(design.group_gram, order))
    for name in ("beta", "alpha", "kappa", "mean_resultant_length", "mu_concentration"):
        np.testing.assert_allclose(moved[name], idata.posterior[name], rtol=1e-11)
