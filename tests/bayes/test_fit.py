import re

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pytest

from sawdist.bayes import (
    compare_shared_mean,
    fit_convergence,
    mean_direction_posterior,
    observed_similarity,
    plot_capacity_law,
    plot_similarity,
    plot_trace,
    posterior_predictive,
    simulate_summary,
)

SAMPLE = dict(draws=150, tune=150, chains=2, cores=1, random_seed=7, compute_convergence_checks=False)


@pytest.fixture(scope="module")
def fitted():
    summary, truth = simulate_summary(dim=64, capacities=[4, 16, 64], n_inputs=8, n_seeds=4, rng=11,
                                      return_truth=True)
    return summary, truth, fit_convergence(summary, "power", **SAMPLE)


def test_inference_data_layout(fitted):
    summary, _, idata = fitted
    post = idata.posterior
    assert post["alpha"].dims == ("chain", "draw", "family") and post["beta"].dims == ("chain", "draw", "family")
    assert post["kappa"].dims == ("chain", "draw", "family", "input", "capacity")
    assert post["mean_resultant_length"].dims == post["kappa"].dims
    np.testing.assert_array_equal(post["capacity"].values, [4, 16, 64])
    assert idata.log_likelihood["directions"].dims == ("chain", "draw", "architecture", "input")
    # the mean resultant length is A_d(kappa)
    from sawdist.special import vmf_mean_resultant_length
    k = post["kappa"].values[0, :3]
    np.testing.assert_allclose(post["mean_resultant_length"].values[0, :3], vmf_mean_resultant_length(64, k),
                               rtol=1e-13)


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")  # per-input random effects
def test_loo_runs(fitted):
    loo = az.loo(fitted[2], pointwise=True)
    assert loo.loo_i.shape == (1, 8)


def test_mean_direction_posterior_near_truth(fitted):
    summary, truth, idata = fitted
    out = mean_direction_posterior(idata, summary, n_draws=3, rng=0)
    cos = np.sum(out["mean_direction"].values[0] * truth["mu"][0], axis=-1)
    assert np.all(cos > 0.8)
    np.testing.assert_allclose(np.linalg.norm(out["draws"].values, axis=-1), 1.0, rtol=1e-12)
    assert out["mean_resultant_length"].dims == ("architecture", "input")


def test_mean_direction_posterior_messages(fitted):
    summary, _, idata = fitted
    with pytest.raises(ValueError, match=r"^'summary' must have the variable 'resultant' for the mean direction, "
                                         r"got none\.$"):
        mean_direction_posterior(idata, summary.drop_vars("resultant"))
    separate = az.InferenceData(posterior=idata.posterior.drop_vars("mu_concentration"))
    with pytest.raises(ValueError, match=r"^'idata' must come from a shared-mean fit \(posterior variable "
                                         r"'mu_concentration'\), got none\.$"):
        mean_direction_posterior(separate, summary)


def test_predictive_quantities(fitted):
    summary, _, idata = fitted
    pp = posterior_predictive(idata, sizes=[1, 4])
    m = idata.posterior["mean_resultant_length"].values
    np.testing.assert_allclose(pp["similarity"].values[..., 0, 1], (m[..., 0] * m[..., 1]).mean(-1), rtol=1e-13)
    np.testing.assert_allclose(pp["ensemble"].sel(ensemble_size=1).values, m.mean(-2), rtol=1e-13)  # N = 1: m
    obs = observed_similarity(summary)
    assert obs.dims == ("family", "capacity", "capacity_b")
    pred = pp["similarity"].mean(("chain", "draw")).values
    assert np.max(np.abs(pred - obs.values)) < 0.1


# ArviZ 0.23's plot_trace calls a matplotlib helper deprecated in matplotlib 3.11; not ours to fix.
@pytest.mark.filterwarnings("ignore:Passing a dict or None as alias_mapping:matplotlib.MatplotlibDeprecationWarning")
def test_plots(fitted):
    summary, _, idata = fitted
    assert plot_capacity_law(idata, summary).get_xscale() == "log"
    plot_capacity_law(idata, var="kappa")
    assert plot_similarity(idata, summary).shape == (2,)
    plot_trace(idata)
    with pytest.raises(ValueError, match="'var' must be 'mean_resultant_length' or 'kappa', got 'x'."):
        plot_capacity_law(idata, var="x")
    plt.close("all")


@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")  # per-input random effects
# ArviZ 0.23's compare sorts with pandas' deprecated inplace keyword; not ours to fix.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.sort_values")
@pytest.mark.slow
def test_compare_shared_mean_prefers_the_truth():
    # kappa ~ 4d (m ~ 0.88): each input's directions tell the two means apart; non-centred input effects, as six
    # inputs leave the population scale vague (the centred funnel costs minutes of deep trees).
    capacities = np.array([4, 16])
    summary = simulate_summary(dim=32, capacities=capacities, n_inputs=6, n_seeds=4, shared_mean=False, rng=5,
                               alpha=np.log(4 * 32) - 0.5 * np.log(capacities).mean())
    table = compare_shared_mean(summary, centered=False, **SAMPLE)
    assert set(table.index) == {"shared", "separate"}
    assert table.index[0] == "separate"
    assert table.loc["shared", "elpd_diff"] > 4 * table.loc["shared", "dse"]


# --- the sampler rule ---------------------------------------------------------------------------------------------


def _posterior(shift=0.0, rho=0.0, diverging=0, chains=4, draws=1000, seed=0):
    """alpha, beta, sigma draws (chain, draw): iid N(0, 1), chain 0 shifted by ``shift``, AR(1) with ``rho``."""
    gen = np.random.default_rng(seed)
    out = {}
    for name in ("alpha", "beta", "sigma"):
        e = gen.standard_normal((chains, draws))
        x = np.empty_like(e)
        x[:, 0] = e[:, 0]
        for t in range(1, draws):
            x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * e[:, t]
        x[0] += shift
        out[name] = x
    div = np.zeros((chains, draws), bool)
    div.flat[:diverging] = True
    return az.from_dict(posterior=out, sample_stats={"diverging": div})


def test_sampler_rule_known_answers():
    from sawdist.bayes import sampler_diagnostics

    good = sampler_diagnostics(_posterior())
    assert good.reliable and good.problems == [] and good.divergences == 0
    assert good.rhat_max < 1.01 and good.ess_bulk_min > 2000 and (good.chains, good.draws) == (4, 1000)
    assert good.summary().endswith("(alpha, beta, sigma; 4 chains x 1000 draws): meets the sampler rule")
    stuck = sampler_diagnostics(_posterior(shift=1.0))  # one chain elsewhere
    assert stuck.rhat_max > 1.01 and not stuck.reliable and stuck.problems[0].startswith("max R-hat 1.")
    slow = sampler_diagnostics(_posterior(rho=0.99))  # ESS about 4000 (1 - 0.99) / (1 + 0.99) = 20
    assert slow.ess_bulk_min < 400 and any(p.startswith("min bulk ESS") for p in slow.problems)
    diverged = sampler_diagnostics(_posterior(diverging=2))
    assert diverged.problems == ["2 divergent transitions"]
    assert sampler_diagnostics(_posterior(diverging=1)).problems == ["1 divergent transition"]
    # the geometry (what fit_convergence's retry answers): a divergence or R-hat, not a short ESS alone
    assert not good.geometry_broken and stuck.geometry_broken and diverged.geometry_broken
    from sawdist.bayes.fitting import SamplerDiagnostics

    assert not SamplerDiagnostics(1.002, 120.0, 0, 4, 1000).geometry_broken
    assert SamplerDiagnostics(float("nan"), 900.0, 0, 4, 1000).geometry_broken
    # R-hat alone beyond the rule while the chains mix well: chance, which fresh chains answer, not the geometry
    chance = SamplerDiagnostics(1.013, 941.0, 0, 2, 400)
    assert chance.rhat_alone and not chance.geometry_broken and not chance.reliable
    assert not stuck.rhat_alone and not good.rhat_alone and not diverged.rhat_alone
    assert not SamplerDiagnostics(1.013, 399.0, 0, 2, 400).rhat_alone  # mixing short of the rule too
    assert SamplerDiagnostics(1.013, 399.0, 0, 2, 400).geometry_broken
    assert not SamplerDiagnostics(1.013, 941.0, 1, 2, 400).rhat_alone  # a divergence
    assert not SamplerDiagnostics(float("nan"), 900.0, 0, 4, 1000).rhat_alone
    message = diverged.message()
    assert message == ("The Bayesian fit did not converge reliably (2 divergent transitions; the rule asks for R-hat "
                       "<= 1.01, bulk ESS >= 400 and no divergences), so its intervals are not to be trusted: fit "
                       "again with more tuning and draws (e.g. tune=1000, draws=1000) and 4 chains.")


def test_sampler_rule_needs_the_law_parameters():
    from sawdist.bayes import sampler_diagnostics

    idata = az.from_dict(posterior={"alpha": np.zeros((2, 10)), "beta": np.zeros((2, 10))})
    with pytest.raises(ValueError) as err:
        sampler_diagnostics(idata)
    assert str(err.value) == "'idata' must have a posterior with alpha, beta, sigma, got none for 'sigma'."


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_fit_convergence_warns_once_in_plain_words_instead_of_pymc(caplog):
    import logging
    import warnings

    from sawdist.bayes import SamplerDiagnosticsWarning

    summary = simulate_summary(dim=16, capacities=[2, 8], n_inputs=3, n_seeds=4, rng=1)
    with caplog.at_level(logging.INFO, logger="pymc"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # 2 short chains: bulk ESS < 400 for sure (and PyMC alone would log its 'at least 4 chains' note)
        fit_convergence(summary, "power", sampler="pymc", draws=100, tune=100, chains=2, cores=1, random_seed=2)
    ours = [w for w in caught if issubclass(w.category, SamplerDiagnosticsWarning)]
    assert len(ours) == 1
    text = str(ours[0].message)
    assert text.startswith("The Bayesian fit did not converge reliably (") and "min bulk ESS" in text
    assert text.endswith(" and 4 chains.") and re.search(r"[.;:]\s+[A-Z]", text) is None  # one sentence
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "4 chains" not in logged and "rhat" not in logged.lower() and "effective sample size" not in logged


def _record_samples(monkeypatch, fitting, verdicts):
    """Replace the sampling of fit_convergence by a record of its calls (the free variables of the model and the
    arguments) and the sampler rule by ``verdicts``, one per attempt: the retry's control flow without MCMC."""
    calls = []

    def recording_sample(model, sampler, **kwargs):
        calls.append(({rv.name for rv in model.free_RVs}, dict(kwargs)))
        return az.from_dict(posterior={"beta": np.zeros((2, 5))})

    verdicts = iter(verdicts)
    monkeypatch.setattr(fitting, "sample", recording_sample)
    monkeypatch.setattr(fitting, "_adjust_slope", lambda *args: None)  # no draws to move in the record
    monkeypatch.setattr(fitting, "sampler_diagnostics", lambda idata: next(verdicts))
    return calls


RETRY_SUMMARY = dict(dim=16, capacities=[2, 8], n_inputs=3, n_seeds=4, rng=1)


def test_retry_switches_parametrisation_and_raises_target_accept(monkeypatch):
    """A first fit that breaks the rule by its geometry is sampled again with the other parametrisation,
    target_accept 0.95 and another seed; the fit that meets the rule is kept, without a warning."""
    import warnings

    from sawdist.bayes import fitting

    calls = _record_samples(monkeypatch, fitting, [fitting.SamplerDiagnostics(1.05, 900.0, 12, 4, 1000),
                                                   fitting.SamplerDiagnostics(1.002, 900.0, 0, 4, 1000)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", fitting.SamplerDiagnosticsWarning)
        idata = fitting.fit_convergence(simulate_summary(**RETRY_SUMMARY), "power", random_slope=False,
                                        random_seed=2)
    (first_vars, first), (second_vars, second) = calls
    assert "a" in first_vars and "z" in second_vars  # centred, then non-centred input effects
    assert "target_accept" not in first and second["target_accept"] == fitting.RETRY_TARGET_ACCEPT
    assert first["random_seed"] == 2 and second["random_seed"] not in (None, 2)
    assert second["random_seed"] == fitting._retry_seed(2, 1) != fitting._retry_seed(2, 2)
    attrs = idata.posterior.attrs
    assert (attrs["sawdist_attempts"], attrs["sawdist_kept_attempt"], attrs["sawdist_centered"]) == (2, 2, 0)
    assert attrs["sawdist_target_accept"] == attrs["sawdist_retry_target_accept"] == 0.95
    assert attrs["sawdist_failed_attempts"] == ("centred input effects, target_accept default: max R-hat 1.050 > "
                                                "1.01, 12 divergent transitions")


def test_retry_keeps_the_better_fit_and_warns_once_when_both_break_the_rule(monkeypatch):
    import warnings

    from sawdist.bayes import fitting

    calls = _record_samples(monkeypatch, fitting, [fitting.SamplerDiagnostics(1.02, 300.0, 0, 4, 1000),
                                                   fitting.SamplerDiagnostics(1.03, 900.0, 3, 4, 1000)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = fitting.fit_convergence(simulate_summary(**RETRY_SUMMARY), "power", random_slope=False,
                                        centered=False, target_accept=0.97, random_seed=None)
    assert calls[1][1]["target_accept"] == 0.97 and calls[1][1]["random_seed"] is None  # the larger one is kept
    ours = [w for w in caught if issubclass(w.category, fitting.SamplerDiagnosticsWarning)]
    assert len(ours) == 1 and "max R-hat 1.020 > 1.01" in str(ours[0].message)  # the kept (first) fit's problems
    attrs = idata.posterior.attrs
    assert (attrs["sawdist_attempts"], attrs["sawdist_kept_attempt"], attrs["sawdist_centered"]) == (2, 1, 0)
    assert attrs["sawdist_target_accept"] == attrs["sawdist_retry_target_accept"] == 0.97
    assert attrs["sawdist_failed_attempts"] == ("non-centred input effects, target_accept 0.97: max R-hat 1.020 > "
                                                "1.01, min bulk ESS 300 < 400; centred input effects, target_accept "
                                                "0.97: max R-hat 1.030 > 1.01, 3 divergent transitions")
    assert attrs["sawdist_retry"] == "parametrisation"


def test_r_hat_alone_gets_fresh_chains_of_the_same_parametrisation(monkeypatch):
    """Chains that mix well (bulk ESS >= 400, no divergence) but disagree by chance are sampled once more with the
    same parametrisation and target_accept from another seed; no other parametrisation follows."""
    import warnings

    from sawdist.bayes import fitting

    chance = fitting.SamplerDiagnostics(1.013, 941.0, 0, 2, 400)
    for second, kept in ((fitting.SamplerDiagnostics(1.004, 877.0, 0, 2, 400), 2),
                         (fitting.SamplerDiagnostics(1.016, 900.0, 0, 2, 400), 1)):
        calls = _record_samples(monkeypatch, fitting, [chance, second])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = fitting.fit_convergence(simulate_summary(**RETRY_SUMMARY), "power", random_slope=True,
                                            random_seed=5)
        assert len(calls) == 2 and calls[0][0] == calls[1][0]  # the same free variables: the same parametrisation
        assert [kw["random_seed"] for _, kw in calls] == [5, fitting._retry_seed(5, 1)]
        assert "target_accept" not in calls[1][1]
        attrs = idata.posterior.attrs
        assert (attrs["sawdist_attempts"], attrs["sawdist_kept_attempt"]) == (2, kept)
        assert attrs["sawdist_retry"] == "fresh chains" and "sawdist_retry_target_accept" not in attrs
        failed = attrs["sawdist_failed_attempts"].split("; ")
        assert len(failed) == (1 if kept == 2 else 2)
        assert all(f.startswith("centred input effects (input slopes ") for f in failed)
        assert failed[0].endswith("target_accept default: max R-hat 1.013 > 1.01")
        ours = [w for w in caught if issubclass(w.category, fitting.SamplerDiagnosticsWarning)]
        assert len(ours) == (kept == 1)
    # a target_accept given is kept for the fresh chains
    calls = _record_samples(monkeypatch, fitting, [chance, fitting.SamplerDiagnostics(1.004, 877.0, 0, 2, 400)])
    idata = fitting.fit_convergence(simulate_summary(**RETRY_SUMMARY), "power", random_slope=False,
                                    target_accept=0.9)
    assert calls[1][1]["target_accept"] == 0.9 and idata.posterior.attrs["sawdist_retry_target_accept"] == 0.9


def test_with_input_slopes_a_third_attempt_switches_their_parametrisation_too(monkeypatch):
    from sawdist.bayes import fitting

    fail = fitting.SamplerDiagnostics(1.06, 64.0, 0, 4, 1000)
    calls = _record_samples(monkeypatch, fitting, [fail, fail, fitting.SamplerDiagnostics(1.003, 1400.0, 0, 4, 1000)])
    idata = fitting.fit_convergence(simulate_summary(**RETRY_SUMMARY), "power", random_slope=True, random_seed=4)
    first, second, third = (names for names, _ in calls)
    slopes = "beta_input" if "beta_input" in first else "zb"  # the rule's choice first
    assert {"a", slopes} <= first and {"z", slopes} <= second
    assert {"z", {"beta_input": "zb", "zb": "beta_input"}[slopes]} <= third
    assert [kw["random_seed"] for _, kw in calls] == [4, fitting._retry_seed(4, 1), fitting._retry_seed(4, 2)]
    attrs = idata.posterior.attrs
    assert (attrs["sawdist_attempts"], attrs["sawdist_kept_attempt"], attrs["sawdist_centered"]) == (3, 3, 0)
    assert attrs["sawdist_centered_slope"] == int(slopes == "zb")
    assert attrs["sawdist_failed_attempts"].count("max R-hat 1.060 > 1.01, min bulk ESS 64 < 400") == 2


def test_no_retry_for_a_short_bulk_ess_alone_too_few_draws_or_when_asked(monkeypatch):
    from sawdist.bayes import fitting

    summary = simulate_summary(**RETRY_SUMMARY)
    for verdict, retry in ((fitting.SamplerDiagnostics(1.002, 120.0, 0, 4, 1000), True),  # bulk ESS alone
                           (fitting.SamplerDiagnostics(1.5, 120.0, 40, 2, 150), True),  # 300 draws: never enough
                           (fitting.SamplerDiagnostics(1.5, 120.0, 40, 4, 1000), False)):
        calls = _record_samples(monkeypatch, fitting, [verdict])
        with pytest.warns(fitting.SamplerDiagnosticsWarning):
            idata = fitting.fit_convergence(summary, "power", random_slope=False, retry=retry)
        assert len(calls) == 1 and idata.posterior.attrs["sawdist_attempts"] == 1
        assert "sawdist_failed_attempts" not in idata.posterior.attrs


@pytest.mark.slow
def test_retry_escapes_the_funnel_of_weakly_determined_intercepts():
    """Known answer: 6 inputs at d = 32 with w = 0.2 make the centred input effects a funnel (hundreds of
    divergences at target_accept 0.8); the non-centred retry at 0.95 meets the sampler rule."""
    import warnings

    from sawdist.bayes import SamplerDiagnosticsWarning, sampler_diagnostics

    summary = simulate_summary(dim=32, capacities=[4, 16, 64], n_inputs=6, n_seeds=4, rng=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SamplerDiagnosticsWarning)
        idata = fit_convergence(summary, calibrate=0.2, sampler="pymc", draws=1000, tune=300, cores=1,
                                random_seed=0)
    attrs = idata.posterior.attrs
    assert (attrs["sawdist_attempts"], attrs["sawdist_kept_attempt"], attrs["sawdist_centered"]) == (2, 2, 0)
    assert re.fullmatch(r"centred input effects, target_accept default: .*\d+ divergent transitions",
                        attrs["sawdist_failed_attempts"])
    assert sampler_diagnostics(idata).reliable
