import numpy as np
import pymc as pm
import pytest
from pymc.logprob.utils import ParameterValueError
from scipy import stats

import sawdist
from sawdist.bayes import PowerSpherical, PowerSphericalCosine, VonMisesFisher, VonMisesFisherCosine

MODE = "FAST_COMPILE"
PAIRS = [(VonMisesFisher, sawdist.vonmises_fisher), (PowerSpherical, sawdist.power_spherical)]
COSINES = [(VonMisesFisherCosine, sawdist.vonmises_fisher), (PowerSphericalCosine, sawdist.power_spherical)]


def e1(d):
    mu = np.zeros(d)
    mu[0] = 1.0
    return mu


@pytest.mark.parametrize("dist, ref", PAIRS)
@pytest.mark.parametrize("d", [3, 64, 3072])
def test_logp_matches_sawdist_on_a_grid(dist, ref, d):
    # check_logp style: a grid of kappa (0 included) and of points at several cosines, against the numpy density.
    rng = np.random.default_rng(d)
    mu = sawdist.uniform_direction(d).rvs(rng=rng)
    for kappa in [0.0, 0.3, 5.0, 500.0, 1e5]:
        x = ref(mu, max(kappa, 1.0)).rvs(size=5, rng=rng)
        got = pm.logp(dist.dist(mu=mu, kappa=kappa), x).eval(mode=MODE)
        np.testing.assert_allclose(got, ref(mu, kappa).logpdf(x), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dist, ref", COSINES)
def test_cosine_logp_matches_sawdist(dist, ref):
    t = np.linspace(-0.99, 0.99, 9)
    for d, kappa in [(3, 0.0), (3, 2.0), (5, 7.0), (64, 30.0), (3072, 500.0)]:
        got = pm.logp(dist.dist(dim=d, kappa=kappa), t).eval(mode=MODE)
        np.testing.assert_allclose(got, ref(e1(d), kappa).cosine.logpdf(t), rtol=1e-11, atol=1e-9)
    assert pm.logp(dist.dist(dim=5, kappa=1.0), 1.5).eval(mode=MODE) == -np.inf


@pytest.mark.parametrize("dist, ref", PAIRS)
def test_off_sphere_is_minus_inf_and_negative_kappa_raises(dist, ref):
    mu = e1(4)
    assert pm.logp(dist.dist(mu=mu, kappa=1.0), 2 * mu).eval(mode=MODE) == -np.inf
    with pytest.raises(ParameterValueError, match="kappa >= 0"):
        pm.logp(dist.dist(mu=mu, kappa=-1.0), mu).eval(mode=MODE)


@pytest.mark.parametrize("dist, ref", PAIRS)
@pytest.mark.parametrize("d", [4, 3072])
def test_values_on_the_sphere_within_the_one_tolerance_of_float32_data(dist, ref, d):
    """A value (cast to float64 by PyMC) counts as on the sphere within sawdist.checks.unit_tolerance of float32,
    what the NumPy distributions accept of float32 data; past it, log density -inf."""
    from sawdist.checks import unit_tolerance

    mu = e1(d)
    tol = unit_tolerance(d, np.float32)
    inside, outside = (1.0 + 0.9 * tol) * mu, (1.0 + 1.1 * tol) * mu
    assert np.isfinite(pm.logp(dist.dist(mu=mu, kappa=1.0), inside).eval(mode=MODE))
    assert np.isfinite(ref(mu, 1.0).logpdf(inside.astype(np.float32)))
    assert pm.logp(dist.dist(mu=mu, kappa=1.0), outside).eval(mode=MODE) == -np.inf


@pytest.mark.parametrize("dist, ref", PAIRS)
def test_draw_shapes_and_cosine_law(dist, ref):
    mu = e1(16)
    assert pm.draw(dist.dist(mu=mu, kappa=np.array([1.0, 2.0, 3.0])), random_seed=0).shape == (3, 16)
    assert pm.draw(dist.dist(mu=mu, kappa=2.0, size=(2, 3)), random_seed=0).shape == (2, 3, 16)
    x = pm.draw(dist.dist(mu=mu, kappa=10.0, size=2000), random_seed=1)
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, rtol=1e-14)
    assert stats.kstest(x[:, 0], ref(mu, 10.0).cosine.cdf).pvalue > 1e-3


@pytest.mark.parametrize("dist, ref", COSINES)
def test_cosine_draws(dist, ref):
    t = pm.draw(dist.dist(dim=8, kappa=4.0, size=2000), random_seed=2)
    assert stats.kstest(t, ref(e1(8), 4.0).cosine.cdf).pvalue > 1e-3


def test_support_point_broadcasts():
    mu = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]])  # not unit: the support point is normalized
    with pm.Model() as model:
        VonMisesFisher("u", mu=mu, kappa=1.0, size=(4, 2))
        VonMisesFisherCosine("t", dim=5, kappa=2.0, size=3)
    point = model.initial_point()
    assert point["u_sphere__"].shape == (4, 2, 3)  # the sphere transform's forward map is the identity
    np.testing.assert_allclose(point["u_sphere__"][0], [[0, 1, 0], [1, 0, 0]])
    assert point["t_interval__"].shape == (3,)


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_prior_predictive_and_sampling_a_free_direction():
    d, kappa = 4, 5.0
    with pm.Model():
        u = VonMisesFisher("u", mu=e1(d), kappa=kappa)
        PowerSpherical("v", mu=u, kappa=2.0, observed=e1(d))
        prior = pm.sample_prior_predictive(50, random_seed=0)
        idata = pm.sample(600, tune=400, chains=2, cores=1, random_seed=3, progressbar=False,
                          compute_convergence_checks=False)
    assert prior.prior["u"].shape == (1, 50, d)
    # posterior of u: vMF(e1, 5) times (1 + u_1)^2 -> E[u_1] by 1-D quadrature of the cosine law
    t = np.linspace(-1, 1, 200001)[1:-1]
    w = np.exp(kappa * t + 2 * np.log1p(t)) * (1 - t * t) ** ((d - 3) / 2)
    expected = np.sum(t * w) / np.sum(w)
    t_draws = idata.posterior["u"].values[..., 0].ravel()
    ess = float(pm.ess(idata, var_names=["u"])["u"].values[0])
    assert abs(t_draws.mean() - expected) < 4 * t_draws.std() / np.sqrt(ess)
    np.testing.assert_allclose(np.linalg.norm(idata.posterior["u"].values, axis=-1), 1.0, rtol=1e-14)
