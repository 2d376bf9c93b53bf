"""The Numba and JAX implementations of the custom Ops (sawdist.bayes._numba_ops, sawdist.bayes._jax_ops) against the
C Ops (NumPy ``perform`` where an Op has no C code), values and gradients, on the grid of test_special_ops.py."""

import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from sawdist import special
from sawdist.bayes import LAWS, convergence_model, simulate_summary
from sawdist.bayes import special_ops as so
from sawdist.bayes._collapsed_op import CollapsedSharedLoglik

NUS = [0.0, 0.5, 1.5, 3.0, 24.5, 25.0, 30.0, 1535.0, 1e4, 1e5]
XS = np.concatenate([[0.0, 1e-300, 1e-10, 1e-3], np.logspace(-1, 7, 200)])
SPECIAL = np.array([np.inf, -1.0, np.nan])
RTOL = 1e-12
#: dR/dx = 1 - R^2 - (2 nu + 1) R/x is a difference of terms of order 1 (the gradient graph is PyTensor's own
#: elementwise Ops, fused differently by each backend): it is compared to 1e-12 of its terms, not of itself.
GRAD_R_ATOL = 1e-12


def _backend(name):
    pytest.importorskip("numba" if name == "NUMBA" else "jax")
    return name


@pytest.fixture(params=["NUMBA", "JAX"])
def mode(request):
    return _backend(request.param)


def _agree(value, ref, rtol=RTOL, atol=0.0):
    """Equal NaN/inf pattern, and relative agreement to ``rtol`` elsewhere."""
    value, ref = np.asarray(value), np.asarray(ref)
    np.testing.assert_array_equal(np.isnan(value), np.isnan(ref))
    finite = np.isfinite(ref)
    np.testing.assert_array_equal(value[~finite & ~np.isnan(ref)], ref[~finite & ~np.isnan(ref)])
    np.testing.assert_allclose(value[finite], ref[finite], rtol=rtol, atol=atol)


def _compile(inputs, outputs, mode):
    # the suite turns every warning into an error: no object-mode fallback, no other warning
    fn = pytensor.function(inputs, outputs, mode=mode)
    fn(*[np.ones((2,) * i.type.ndim) for i in inputs])  # Numba compiles (and would warn) on the first call
    return fn


def test_fixed_order_op_and_gradients_match_c(mode):
    # every order of the grid in one graph (one compile per backend)
    x = pt.dvector("x")
    outputs = []
    for nu in NUS:
        L, R = so._pair(nu, x)
        assert isinstance(L.owner.op, so.FixedOrderBesselLogRatio)
        outputs += [L, R, pt.grad(L.sum(), x), pt.grad(R.sum(), x)]
    ref = pytensor.function([x], outputs, mode="FAST_RUN")
    fn = _compile([x], outputs, mode)
    for got, want, atol in zip(fn(XS), ref(XS), [0.0, 0.0, 0.0, GRAD_R_ATOL] * len(NUS)):
        _agree(got, want, atol=atol)
    for i, (got, want) in enumerate(zip(fn(SPECIAL), ref(SPECIAL))):
        if i % 4 < 2:  # L and R: NaN for negative or NaN x, (inf, 1) at x = inf
            _agree(got, want)


def test_general_order_op_and_gradients_match_numpy(mode):
    # a tensor order: the general Op, whose reference is its NumPy perform (it has no C code); one compile per
    # backend serves every order of the grid (the order is an input)
    v, x = pt.dvector("nu"), pt.dvector("x")
    L, R = so._pair(v, x)
    assert L.owner.op is so._bessel_log_ratio
    outputs = [L, R, pt.grad(L.sum(), x), pt.grad(R.sum(), x)]
    ref = pytensor.function([v, x], outputs, mode="FAST_COMPILE")
    fn = _compile([v, x], outputs, mode)
    xs = np.concatenate([XS, SPECIAL])
    for nu in [0.0, 1.5, 24.5, 1535.0, 1e5]:
        orders = np.full(xs.shape, nu)
        orders[-1] = 3.0  # the order may change from one element to the next
        for got, want in zip(fn(orders, xs)[:2], ref(orders, xs)[:2]):
            _agree(got, want)
        for got, want, atol in zip(fn(orders[:-3], XS)[2:], ref(orders[:-3], XS)[2:], [0.0, GRAD_R_ATOL]):
            _agree(got, want, atol=atol)
    # invalid orders give NaN, as the NumPy kernel does
    bad = fn(np.array([-1.0, np.nan]), np.array([1.0, 1.0]))
    assert np.isnan(bad[0]).all() and np.isnan(bad[1]).all()


def test_kappa_from_mean_resultant_length_and_gradient_match_numpy(mode):
    # every dimension in one graph (a constant dimension is compiled into its Op: one compile per backend)
    dims = [3, 5, 64, 3072]
    m = pt.dvector("m")
    outputs = []
    for dim in dims:
        kappa = so.vmf_kappa_from_mean_resultant_length(dim, m)
        outputs += [kappa, pt.grad(kappa.sum(), m)]
    ref = pytensor.function([m], outputs, mode="FAST_RUN")
    fn = _compile([m], outputs, mode)
    ms = np.concatenate([[0.0, 1e-8, 1e-3], np.linspace(0.01, 0.99, 40), [0.999999]])
    got_all, want_all = fn(ms), ref(ms)
    bad_all = fn(np.array([1.0, -0.1, np.nan]))
    # a tensor dimension (the general path)
    d = pt.dvector("d")
    fn_d = _compile([d, m], [so._kappa_from_mean_resultant_length(d, m)], mode)
    for i, dim in enumerate(dims):
        got, want = got_all[2 * i: 2 * i + 2], want_all[2 * i: 2 * i + 2]
        # kappa is determined by m only up to its condition number m / (kappa A'(kappa)) (1e6 at m = 0.999999,
        # d = 3): relative agreement to 1e-12 times that, and the same residual A_d(kappa) - m as the NumPy Op
        cond = np.maximum(1.0, np.abs(ms * want[1] / np.where(want[0] > 0, want[0], 1.0)))
        np.testing.assert_array_less(np.abs(got[0] - want[0]), RTOL * cond * np.abs(want[0]) + 1e-300)
        np.testing.assert_allclose(special.bessel_ratio(dim / 2 - 1, got[0]), ms, rtol=0, atol=4e-15)
        # dkappa/dm = 1/A'(kappa), A' = 1 - m^2 - (d - 1) m/kappa a difference of terms of order 1: compare A'
        _agree(1.0 / got[1], 1.0 / want[1], atol=GRAD_R_ATOL)
        _agree(bad_all[2 * i], np.full(3, np.nan))
        np.testing.assert_array_less(np.abs(fn_d(np.full(ms.shape, float(dim)), ms)[0] - want[0]),
                                     RTOL * cond * np.abs(want[0]) + 1e-300)


# Each backend compiles the Op anew per dimension (13-19 s with Numba): d = 3072 alone in the fast suite, so that
# the dependency floors' fast run keeps its time; the others with the slow tests.
@pytest.mark.parametrize("dim", [pytest.param(5, marks=pytest.mark.slow), pytest.param(64, marks=pytest.mark.slow),
                                 3072])
def test_collapsed_op_value_and_gradient_match_c(dim, mode):
    s = simulate_summary(dim=dim, capacities=[4, 8, 16], n_inputs=7, n_seeds=4, rng=dim)
    G = s["gram"].values
    C = s["count"].values.transpose(0, 2, 1).astype(float)
    kappa = np.exp(np.random.default_rng(0).normal(np.log(dim), 0.5, size=(1, 7, 3)))
    kappa[0, 0, 0] = 0.0
    # where kappa' G kappa overflows (the C Op scales it there: test_summaries_and_model.py checks it on mpmath)
    kappa[0, 1] = [1e154, 2e154, 3e154]
    kappa[0, 2, 1] = 3e154
    k = pt.dtensor3("k")
    value, grad = CollapsedSharedLoglik(dim)(k, G, C)
    outputs = [value, grad, pt.grad(value.sum(), k)]
    ref = pytensor.function([k], outputs, mode="FAST_RUN")(kappa)
    got = pytensor.function([k], outputs, mode=mode)(kappa)
    for g, r in zip(got, ref):
        _agree(g, r)
    # one batch dim less, and a zero Gram matrix (||S|| = 0)
    k2 = pt.dmatrix("k2")
    v2 = CollapsedSharedLoglik(dim)(k2, np.zeros((2, 3, 3)), np.full((2, 3), 4.0))[0]
    f_ref = pytensor.function([k2], v2, mode="FAST_RUN")
    f_got = pytensor.function([k2], v2, mode=mode)
    _agree(f_got(kappa[0, :2]), f_ref(kappa[0, :2]))


def test_numba_collapsed_op_rejects_mismatched_shapes():
    pytest.importorskip("numba")
    k = pt.dmatrix("k")
    g = pt.dtensor3("g")
    c = pt.dmatrix("c")
    fn = pytensor.function([k, g, c], CollapsedSharedLoglik(5)(k, g, c)[0], mode="NUMBA")
    with pytest.raises(ValueError, match="shapes differ"):
        fn(np.ones((2, 3)), np.ones((2, 3, 2)), np.ones((2, 3)))


# A whole model compiled by Numba takes 15-50 s. Two models hold every custom Op and both likelihoods: the power law
# with a shared mean (the collapsed Op; in the fast suite) and the logistic law of m with per-capacity means (kappa
# from the inverse ratio, the fixed-order Bessel Op in the von Mises-Fisher terms). The other law and pairings differ
# from these only in PyTensor's own Ops (the monotone law's cumulative sum), which its Numba backend provides.
@pytest.mark.parametrize("law, shared", [("power", True),
                                         pytest.param("logit_mean_resultant_length", False, marks=pytest.mark.slow)])
def test_compile_logp_numba_matches_c_without_warning(law, shared):
    pytest.importorskip("numba")
    summary = simulate_summary(dim=3072, capacities=[4, 16, 64], n_inputs=6, n_seeds=4, rng=1)
    model = convergence_model(summary, law, shared_mean=shared)
    point = model.initial_point()
    point = {name: value + 0.1 * np.random.default_rng(2).standard_normal(np.shape(value))
             for name, value in point.items()}
    logp = model.compile_logp(mode="NUMBA")  # a warning (object mode, ...) would fail the test
    dlogp = model.compile_dlogp(mode="NUMBA")
    value, grad = logp(point), dlogp(point)
    np.testing.assert_allclose(value, model.compile_logp()(point), rtol=RTOL)
    np.testing.assert_allclose(grad, model.compile_dlogp()(point), rtol=1e-10, atol=1e-10)


def test_jax_custom_jvp_gives_the_exact_derivatives():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from sawdist.bayes import _jax_ops as jax_ops

    x = np.array([0.0, 0.3, 40.0, 1500.0, 4000.0])
    for nu in (1.5, 1535.0):
        pair = jax_ops.fixed_order_pair(nu)
        xv = pt.dvector("x")
        L, R = so._pair(nu, xv)
        ref = pytensor.function([xv], [pt.grad(L.sum(), xv), pt.grad(R.sum(), xv)], mode="FAST_RUN")(x)
        got = [jax.grad(lambda v, i=i, pair=pair: jnp.sum(pair(v)[i]))(x) for i in (0, 1)]
        general = [jax.grad(lambda v, i=i, nu=nu: jnp.sum(jax_ops.bessel_pair(jnp.full(v.shape, nu), v)[i]))(x)
                   for i in (0, 1)]
        for g in (got, general):
            np.testing.assert_allclose(g[0], ref[0], rtol=RTOL)
            np.testing.assert_allclose(g[1], ref[1], rtol=RTOL, atol=GRAD_R_ATOL)
    # dkappa/dm of the inverse ratio, constant and tensor dimension
    m = np.array([0.01, 0.3, 0.9])
    mv = pt.dvector("m")
    ref = pytensor.function([mv], pt.grad(so.vmf_kappa_from_mean_resultant_length(64.0, mv).sum(), mv),
                            mode="FAST_RUN")(m)
    for dim in (64.0, None):
        g = jax.grad(lambda v, dim=dim: jnp.sum(jax_ops.kappa_from_mean_resultant_length(jnp.full(v.shape, 64.0), v,
                                                                                         constant_dim=dim)))(m)
        np.testing.assert_allclose(g, ref, rtol=RTOL)
    # the collapsed likelihood: its gradient output is jax.grad of its value, and the jvp of the gradient output
    # is the Hessian-vector product (central differences of the gradient output)
    dim = 64
    s = simulate_summary(dim=dim, capacities=[4, 8, 16], n_inputs=3, n_seeds=4, rng=3)
    G = s["gram"].values[0]
    C = s["count"].values[0].T.astype(float)
    kappa = np.exp(np.random.default_rng(1).normal(np.log(dim), 0.5, size=(3, 3)))
    fn = jax_ops.collapsed_shared_loglik(dim)
    value, grad = fn(kappa, G, C)
    np.testing.assert_allclose(jax.grad(lambda k: jnp.sum(fn(k, G, C)[0]))(kappa), grad, rtol=RTOL)
    direction = np.random.default_rng(2).standard_normal(kappa.shape)
    _, (_, hvp) = jax.jvp(lambda k: fn(k, G, C), (kappa,), (direction,))
    h = 1e-4
    fd = (np.asarray(fn(kappa + h * direction, G, C)[1]) - np.asarray(fn(kappa - h * direction, G, C)[1])) / (2 * h)
    np.testing.assert_allclose(hvp, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.slow  # a whole model's gradient compiled by JAX: 20-45 s (the Ops' own JAX tests stay in the fast suite)
def test_jax_logp_gradient_of_the_model_matches_c():
    # what numpyro and blackjax differentiate: the jaxified log-density, by jax.grad
    jax = pytest.importorskip("jax")
    from pymc.sampling.jax import get_jaxified_logp

    summary = simulate_summary(dim=3072, capacities=[4, 16, 64], n_inputs=6, n_seeds=4, rng=1)
    for law in LAWS[:2]:  # the power law and the logistic law of m (kappa from the inverse ratio)
        model = convergence_model(summary, law)
        point = model.initial_point()
        values = [np.asarray(point[v.name]) + 0.05 for v in model.value_vars]
        logp = get_jaxified_logp(model, negative_logp=True)  # sic: True gives +logp
        grad = jax.grad(logp)(values)
        ref_point = dict(zip([v.name for v in model.value_vars], values))
        np.testing.assert_allclose(logp(values), model.compile_logp()(ref_point), rtol=RTOL)
        ref = model.compile_dlogp()(ref_point)
        np.testing.assert_allclose(np.concatenate([np.ravel(g) for g in grad]), ref, rtol=1e-10, atol=1e-10)


def test_import_does_not_load_jax():
    code = ("import sys, sawdist, sawdist.bayes; "
            "assert 'jax' not in sys.modules and 'sawdist.bayes._jax_ops' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
