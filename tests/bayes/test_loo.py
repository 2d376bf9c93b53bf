"""Leave-one-input-out with each input's effects integrated out (sawdist.bayes.loo).

References: the integral over an input's effects by adaptive quadrature (scipy.integrate.quad / dblquad) of the
model's own PyTensor likelihood (sawdist.bayes.model.collapsed_loglik, an independent implementation of the one that
loo.py evaluates in NumPy) times scipy's normal density; the exact refit against PSIS.
"""

import math
import warnings

import arviz as az
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr
from scipy import integrate, optimize, stats

from sawdist.bayes import fit_convergence, loo, simulate_summary
from sawdist.bayes.loo import compare_loo, integrate_input_effects, loo_inputs
from sawdist.bayes.model import collapsed_loglik
from sawdist.bayes.sandwich import sampled_posterior
from sawdist.bayes.special_ops import vmf_kappa_from_mean_resultant_length

CAPS = np.array([2, 4, 8])
SAMPLE = {"draws": 150, "tune": 150, "chains": 2, "cores": 1, "random_seed": 1, "progressbar": False}
pytestmark = pytest.mark.filterwarnings("ignore::sawdist.bayes.fitting.SamplerDiagnosticsWarning")


@pytest.fixture(scope="module")
def summary():
    return simulate_summary(dim=48, capacities=CAPS, n_inputs=6, n_seeds=4, rng=3)


_FITS = {}


def _fit(summary, law="power", shared=True, random_slope=False, architecture=None, weight=0.7):
    key = (law, shared, random_slope, None if architecture is None else tuple(architecture))
    if key not in _FITS:
        _FITS[key] = fit_convergence(summary, law, shared_mean=shared, random_slope=random_slope,
                                     architecture=architecture, calibrate=weight, **SAMPLE)
    return _FITS[key]


def _reference(summary, idata, chain, draw, x, family=0, weight=0.7):
    """log q_x at one draw by adaptive quadrature (one family, its own architecture)."""
    post = sampled_posterior(idata.posterior).isel(chain=chain, draw=draw)  # the draws the integrals read
    law = post.attrs["sawdist_law"]
    d = int(post.attrs["sawdist_dim"])
    shared = bool(post.attrs["sawdist_shared_mean"])
    kappa_in = pt.dvector("kappa")
    s = summary.isel(family=family, input=x)
    gram = s["gram"].transpose("capacity", "capacity_b").values
    count = s["count"].values.astype(float)
    log_k = np.log(CAPS.astype(float))
    c = log_k - log_k.mean()
    ar, sg = float(post["alpha_ref"][family]), float(post["sigma"][family])
    logp = pytensor.function([kappa_in], collapsed_loglik(d, shared)(None, kappa_in, gram, count))
    m_in = pt.dvector("m")
    kappa_of_m = pytensor.function([m_in], vmf_kappa_from_mean_resultant_length(float(d), m_in))

    def loglik(a, b=0.0):
        if law == "monotone":
            steps = np.concatenate([[0.0], np.cumsum(post["delta"].values[family])])
            kappa = np.exp(a + steps)
        else:
            eta = a + (float(post["beta"][family]) + b) * c
            kappa = np.exp(eta) if law == "power" else kappa_of_m(1.0 / (1.0 + np.exp(-eta)))
        return weight * float(logp(np.asarray(kappa, dtype=np.float64)))

    a_draws = idata.posterior["a"].values[..., family, x].ravel()
    a0, sd = float(a_draws.mean()), float(a_draws.std())
    if "tau" not in post:
        peak = loglik(a0) + stats.norm.logpdf(a0, ar, sg)
        val, _ = integrate.quad(lambda a: math.exp(loglik(a) + stats.norm.logpdf(a, ar, sg) - peak),
                                a0 - 12 * sd, a0 + 12 * sd, points=[a0], limit=200, epsabs=0, epsrel=1e-10)
        return math.log(val) + peak
    tau = float(post["tau"][family])

    def neg(z):
        return -(loglik(z[0], z[1]) + stats.norm.logpdf(z[0], ar, sg) + stats.norm.logpdf(z[1], 0.0, tau))

    # the integrand's peak and curvature at this draw (a small tau narrows b far below its marginal spread)
    z0 = optimize.minimize(neg, [a0, 0.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}).x
    steps = np.array([1e-4 * max(1e-3, sd), 1e-4 * min(tau, 1.0)])
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * steps[i], np.eye(2)[j] * steps[j]
            hess[i, j] = (neg(z0 + ei + ej) - neg(z0 + ei - ej) - neg(z0 - ei + ej) + neg(z0 - ei - ej)) / (
                4 * steps[i] * steps[j])
    half = 12.0 * np.sqrt(np.diag(np.linalg.inv(hess)))
    peak = -neg(z0)
    val, _ = integrate.dblquad(lambda b, a: math.exp(-neg([a, b]) - peak), z0[0] - half[0], z0[0] + half[0],
                               z0[1] - half[1], z0[1] + half[1], epsabs=0, epsrel=1e-8)
    return math.log(val) + peak


@pytest.mark.slow
@pytest.mark.parametrize("law, shared", [("power", True), ("power", False), ("logit_mean_resultant_length", True),
                                          ("monotone", True)])
def test_the_integral_over_an_inputs_effect_matches_quadrature(summary, law, shared):
    idata = _fit(summary, law, shared)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no IntegrationWarning: the checks pass
        ll = integrate_input_effects(idata, summary, max_draws=10_000).log_likelihood["directions"]
    assert ll.dims == ("chain", "draw", "architecture", "input")
    # the bound is the error of the rule on every other node, far above that of the rule itself (checked below)
    assert ll.attrs["sawdist_integration_error"] < 1e-3
    for chain, draw, x in [(0, 3, 0), (1, 77, 4)]:
        ref = _reference(summary, idata, chain, draw, x)
        assert float(ll[chain, draw, 0, x]) == pytest.approx(ref, rel=1e-9, abs=1e-7)


@pytest.mark.slow
def test_the_integral_over_two_effects_matches_quadrature(summary):
    idata = _fit(summary, "power", True, random_slope=True)
    ll = integrate_input_effects(idata, summary, max_draws=10_000).log_likelihood["directions"]
    ref = _reference(summary, idata, 1, 40, 2)
    assert float(ll[1, 40, 0, 2]) == pytest.approx(ref, abs=1e-5)


@pytest.mark.slow
def test_two_families_of_one_architecture_integrate_both_effects(monkeypatch):
    # Two families sharing mu(x): the term of (architecture, x) holds both families' effects (q = 2). The second
    # family repeats the first one's directions, so that they share mu(x) as the model says.
    one = simulate_summary(dim=48, capacities=CAPS, n_inputs=6, n_seeds=4, rng=4)
    summary = xr.concat([one.assign_coords(family=[name]) for name in ("a", "b")], dim="family",
                        data_vars="minimal", coords="minimal", compat="override")
    idata = fit_convergence(summary, architecture=["net", "net"], calibrate=0.7, **SAMPLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no IntegrationWarning
        ll = integrate_input_effects(idata, summary, architecture=["net", "net"],
                                     max_draws=100).log_likelihood["directions"]
    assert ll.sizes["architecture"] == 1 and np.all(np.isfinite(ll))
    # The rule converges: half the spacing (four times the nodes) changes no value beyond the error bound, which
    # is that of the rule on every other node.
    monkeypatch.setitem(loo.GRIDS, 2, (loo.GRIDS[2][0] / 2, loo.GRIDS[2][1]))
    finer = integrate_input_effects(idata, summary, architecture=["net", "net"],
                                    max_draws=100).log_likelihood["directions"]
    assert float(np.abs(finer - ll).max()) < ll.attrs["sawdist_integration_error"] ** 2 + 1e-9


def test_thinning_keeps_every_nth_draw_of_each_chain(summary):
    idata = _fit(summary)
    inte = integrate_input_effects(idata, summary, max_draws=60)
    assert inte.posterior.sizes["chain"] == 2 and inte.posterior.sizes["draw"] == 30
    # the draws as sampled (importance sampling needs them), not those the slope's sandwich moved
    assert "beta_sampled" in idata.posterior
    np.testing.assert_array_equal(inte.posterior["beta"].values, idata.posterior["beta_sampled"].values[:, ::5])


@pytest.mark.slow
def test_integrating_the_effects_makes_psis_reliable_and_an_exact_refit_agrees():
    # 16 inputs: leaving one out moves the global parameters by a sixteenth of their information
    summary = simulate_summary(dim=48, capacities=CAPS, n_inputs=16, n_seeds=4, rng=5)
    idata = fit_convergence(summary, calibrate=0.7, **SAMPLE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = az.loo(idata, pointwise=True)
    result = loo_inputs(idata, summary)
    # The plain PSIS k exceeds 0.7 (each input's own effect); the integrated one stays below ArviZ's threshold for
    # 300 draws (0.60).
    assert float(plain.pareto_k.max()) > 0.7
    assert float(result.pareto_k.max()) < result.k_threshold
    assert result.unreliable == 0 and result.refitted == []

    calls = []

    def refit(smaller):
        calls.append(smaller.sizes["input"])
        return fit_convergence(smaller, calibrate=0.7, **SAMPLE)

    forced = loo_inputs(idata, summary, refit=refit, max_refits=1)
    assert forced.refitted == [] and calls == []  # nothing above the threshold: no refit
    # Exact leave-one-out of input 0 against its PSIS estimate: the same within Monte Carlo error.
    exact_draws = refit(summary.isel(input=slice(1, None)))
    from sawdist.bayes.loo import _flat, _Setup, _thin

    setup = _Setup(idata, summary, None)
    q, _ = setup.log_q(_flat(_thin(exact_draws.posterior, 1000)), np.array([0]))
    exact = float(np.log(np.mean(np.exp(q[:, 0, 0] - q[:, 0, 0].max()))) + q[:, 0, 0].max())
    assert exact == pytest.approx(float(result.elpd[0, 0]), abs=0.5)


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_compare_loo_orders_the_models_and_pairs_the_differences(summary):
    shared = loo_inputs(_fit(summary, "power", True), summary)
    separate = loo_inputs(_fit(summary, "power", False), summary)
    table = compare_loo({"separate": separate, "shared": shared})
    best, other = table.index
    assert table.loc[best, "elpd"] >= table.loc[other, "elpd"]
    diff = ({"shared": shared, "separate": separate}[best].elpd - {"shared": shared, "separate": separate}[other].elpd)
    assert table.loc[other, "elpd_diff"] == pytest.approx(float(diff.sum()))
    assert table.loc[other, "dse"] == pytest.approx(float(np.sqrt(diff.size * np.var(diff.values, ddof=1))))
    assert table.loc[best, "dse"] == 0.0


def test_errors_name_the_argument(summary):
    idata = _fit(summary)
    with pytest.raises(ValueError, match=r"^'max_draws' must be a positive integer, got 0\.$"):
        integrate_input_effects(idata, summary, max_draws=0)
    with pytest.raises(ValueError, match=r"^'summary' is not the summary 'idata' was fitted to: its input "):
        integrate_input_effects(idata, summary.isel(input=slice(1, None)))
    with pytest.raises(ValueError, match=r"^'idata' must come from sawdist.bayes.fit_convergence"):
        integrate_input_effects(az.InferenceData(posterior=idata.posterior.drop_attrs()), summary)
    other = simulate_summary(dim=32, capacities=CAPS, n_inputs=6, n_seeds=4, rng=3)
    with pytest.raises(ValueError, match=r"^'summary' has d = 32 but 'idata' was fitted at d = 48\.$"):
        integrate_input_effects(idata, other)
    with pytest.raises(ValueError, match=r"^'results' must hold at least one InputLOO\.$"):
        compare_loo({})
