"""Random summaries of the collapsed model (sawdist.bayes.collapsed_random) and PyMC's prior and posterior
predictive sampling of the convergence model through them."""

import numpy as np
import pymc as pm
import pytest
import scipy.stats as st

import sawdist
from sawdist.bayes import convergence_model, fit_convergence, simulate_summary
from sawdist.bayes.collapsed_random import draw_gram
from sawdist.distributions.vonmises_fisher import vmf_cosines
from sawdist.special import vmf_mean_resultant_length


def _z(x, expected):
    """z-scores of the means over the first axis against ``expected``."""
    return (x.mean(0) - expected) / (x.std(0) / np.sqrt(x.shape[0]))


@pytest.mark.parametrize("dim", [5, 64, 3072])
@pytest.mark.parametrize("shared", [True, False])
def test_gram_moments(dim, shared):
    # E G_jj = n + n (n - 1) m_j^2; E G_jk = n_j n_k m_j m_k with a shared mean, 0 with separate ones
    kappa = np.array([0.0, 0.5 * dim, 2.0 * dim, 50.0 * dim])
    n = np.array([4, 3, 5, 2])
    m = vmf_mean_resultant_length(dim, kappa)
    G = draw_gram(kappa, n, dim, shared=shared, size=(20000,), rng=dim + shared)
    assert G.shape == (20000, 4, 4)
    np.testing.assert_allclose(G, np.swapaxes(G, -1, -2), rtol=0, atol=0)
    assert np.all(np.linalg.eigvalsh(G)[:, 0] > -1e-9 * np.abs(G).max())
    diag = np.diagonal(G, axis1=-2, axis2=-1)
    assert np.all(np.abs(_z(diag, n + n * (n - 1) * m**2)) < 4)
    off = G[:, 0, 1:].reshape(20000, -1), G[:, 1, 2:].reshape(20000, -1), G[:, 2, 3:]
    expected = [n[0] * n[1:] * m[0] * m[1:], n[1] * n[2:] * m[1] * m[2:], n[2] * n[3:] * m[2] * m[3:]]
    for x, e in zip(off, expected):
        assert np.all(np.abs(_z(x, e if shared else 0.0)) < 4)


@pytest.mark.parametrize("dim", [3, 5, 64])
@pytest.mark.parametrize("shared", [True, False])
def test_gram_law_equals_explicit_directions(dim, shared):
    # the O(n^2) draw (cosines + Bartlett factor) against vMF directions drawn in R^d and summed: same law of every
    # Gram entry (two-sample Kolmogorov-Smirnov); d = 3 takes the Gaussian branch (m = d - 1 < n)
    kappa, count, N = np.array([0.5 * dim, 2.0 * dim, 0.0]), np.array([3, 4, 2]), 4000
    G = draw_gram(kappa, count, dim, shared=shared, size=(N,), rng=1)
    rng = np.random.default_rng(2)
    mu = sawdist.uniform_direction(dim).rvs(size=N if shared else (N, 3), rng=rng)
    R = []
    for j in range(3):
        u = (sawdist.uniform_direction(dim).rvs(size=(count[j], N), rng=rng) if kappa[j] == 0 else
             sawdist.vonmises_fisher.rvs(mu if shared else mu[:, j], np.full(N, kappa[j]), size=count[j], rng=rng))
        R.append(u.sum(0))
    R = np.stack(R, 1)
    explicit = np.einsum("njd,nkd->njk", R, R)
    for j in range(3):
        for k in range(j, 3):
            assert st.ks_2samp(G[:, j, k], explicit[:, j, k]).pvalue > 1e-3, (j, k)


def test_cosines_follow_the_vmf_law():
    dim = 64
    kappa = np.array([0.0, 10.0, 64.0, 1e4, 1e20])
    t, y = vmf_cosines(dim, np.broadcast_to(kappa, (50000, 5)), np.random.default_rng(0))
    np.testing.assert_allclose(1.0 - t, y, rtol=1e-12, atol=1e-16)
    assert np.all(np.abs(_z(t[:, :4], vmf_mean_resultant_length(dim, kappa[:4]))) < 4)
    assert np.all(y[:, 4] > 0) and np.all(y[:, 4] < 1e-15)  # (d - 1)/(2 kappa) ~ 3e-19: no rounding to t = 1


def test_padding_slots_and_messages():
    G = draw_gram(np.array([[10.0, 20.0, 1.0]]), np.array([[3, 2, 0]]), 8, rng=0)
    assert G.shape == (1, 3, 3) and np.all(G[0, 2] == 0) and np.all(G[0, :, 2] == 0)
    G = draw_gram(np.array([10.0, 20.0]), np.array([[3, 2], [0, 0]]), 8, rng=0)  # an input with no direction at all
    assert G.shape == (2, 2, 2) and np.all(G[1] == 0)
    with pytest.raises(ValueError, match=r"^'count' must hold whole numbers >= 0\.$"):
        draw_gram([1.0, 2.0], [2.5, 2], 8)
    with pytest.raises(ValueError, match=r"^'kappa' and 'count' must have one last axis of slots"):
        draw_gram([1.0, 2.0], [2, 2, 2], 8)


@pytest.mark.parametrize("shared", [True, False])
def test_prior_predictive_has_the_model_moments(shared):
    # tight priors (kappa ~ d): the conditional identities E[G_kk | kappa] = n + n (n - 1) m^2 and, with a shared
    # mean, E[G_kk' | kappa] = n^2 m m' hold draw by draw; their residuals average to zero
    summary = simulate_summary(dim=64, capacities=[4, 16, 64], n_inputs=8, n_seeds=4, rng=11)
    model = convergence_model(summary, shared_mean=shared,
                              priors={"alpha_ref": (np.log(64.0), 0.3), "beta": (0.5, 0.1), "sigma": 0.1})
    with model:
        idata = pm.sample_prior_predictive(draws=1000, random_seed=4)
    G = idata.prior_predictive["directions"]
    assert G.dims == ("chain", "draw", "architecture", "input", "slot", "slot_b")
    np.testing.assert_array_equal(G["slot"].values, [4, 16, 64])
    G = G.values[0]
    m = idata.prior["mean_resultant_length"].values[0]  # (draw, family, input, capacity)
    n = 4
    resid = (np.diagonal(G, axis1=-2, axis2=-1) - (n + n * (n - 1) * m**2)).reshape(-1, 3)
    assert np.all(np.abs(_z(resid, 0.0)) < 4)
    off = (G[..., 0, 1] - (n * n * m[..., 0] * m[..., 1] if shared else 0.0)).ravel()
    assert abs(_z(off, 0.0)) < 4
    np.testing.assert_array_equal(idata.observed_data["directions"].values, summary["gram"].values)


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_posterior_predictive_reproduces_the_data():
    summary = simulate_summary(dim=64, capacities=[4, 16, 64], n_inputs=8, n_seeds=4, rng=11)
    model = convergence_model(summary)
    idata = fit_convergence(summary, draws=200, tune=200, chains=2, cores=1, random_seed=1)
    with model:
        pp = pm.sample_posterior_predictive(idata, random_seed=2, progressbar=False)
    G = pp.posterior_predictive["directions"]
    assert G.dims == ("chain", "draw", "architecture", "input", "slot", "slot_b")
    assert G.shape == (2, 200, 1, 8, 3, 3)
    predicted = np.diagonal(G.mean(("chain", "draw")).values, axis1=-2, axis2=-1)
    observed = np.diagonal(summary["gram"].values, axis1=-2, axis2=-1)
    # each input's squared resultant lengths within the predictive spread, on average close to the data
    spread = np.diagonal(G.std(("chain", "draw")).values, axis1=-2, axis2=-1)
    assert np.all(np.abs(predicted - observed) < 4 * spread)
    assert abs(predicted.mean() / observed.mean() - 1.0) < 0.05


def test_shared_architecture_slots():
    # two families of one architecture share mu(x): 2 x 3 slots, slot coordinates are slot indices
    summary = simulate_summary(dim=16, capacities=[4, 16, 64], n_inputs=3, n_seeds=4, rng=3,
                               families=("a", "b"))
    model = convergence_model(summary, architecture={"a": "net", "b": "net"})
    with model:
        idata = pm.sample_prior_predictive(draws=20, random_seed=0)
    G = idata.prior_predictive["directions"]
    assert G.shape == (1, 20, 1, 3, 6, 6)
    np.testing.assert_array_equal(G["slot"].values, np.arange(6))


def test_draw_gram_accepts_scipys_random_state():
    a = draw_gram([64.0, 256.0], [4, 4], 64, size=(3,), rng=5)
    assert np.array_equal(a, draw_gram([64.0, 256.0], [4, 4], 64, size=(3,), random_state=5))
    with pytest.raises(ValueError, match=r"^pass 'rng' or its scipy spelling 'random_state', not both; got 1 and 2\.$"):
        draw_gram([64.0], [4], 64, rng=1, random_state=2)
