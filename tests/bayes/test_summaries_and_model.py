import numpy as np
import pytest
import xarray as xr

import sawdist
from sawdist.bayes import convergence_model, observed_mean_resultant_length, observed_similarity, simulate_summary
from sawdist.bayes.design import check_summary
from sawdist.bayes.model import collapsed_loglik, model_from_design
from sawdist.summaries import similarity, summarize

MODE = "FAST_COMPILE"
DIMS = ("family", "capacity", "seed", "input", "feature")


def dataset(rng=0, d=5):
    gen = np.random.default_rng(rng)
    u = gen.normal(size=(2, 3, 4, 6, d))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    valid = np.ones(u.shape[:-1], bool)
    valid[0, 1, 2, 3] = False
    u[0, 1, 2, 3] = np.nan
    return xr.Dataset({"direction": (DIMS, u.astype(np.float32)), "valid": (DIMS[:-1], valid)},
                      coords={"family": ["a", "b"], "capacity": [2, 8, 32], "seed": np.arange(4),
                              "input": np.arange(6), "feature": np.arange(d)})


def test_summarize_against_a_loop():
    ds = dataset()
    s = summarize(ds)
    u = np.nan_to_num(ds["direction"].values.astype(np.float64))
    R = u.sum(axis=2)
    np.testing.assert_allclose(s["resultant"].values, R, rtol=1e-15)
    assert s["count"].values[0, 1, 3] == 3 and s["count"].values[1, 1, 3] == 4
    for f in range(2):
        for x in range(6):
            np.testing.assert_allclose(s["gram"].values[f, x], R[f, :, x] @ R[f, :, x].T, rtol=1e-13)
    assert int(s["n_features"]) == 5
    np.testing.assert_array_equal(s["capacity_b"].values, [2, 8, 32])


def test_summarize_same_seed_sums_against_a_loop():
    ds = dataset()
    s = summarize(ds)
    u = np.nan_to_num(ds["direction"].values.astype(np.float64))
    v = ds["valid"].values.astype(np.int64)
    assert s["same_seed_gram"].dims == s["same_seed_count"].dims == ("family", "input", "capacity", "capacity_b")
    np.testing.assert_allclose(s["same_seed_gram"].values, np.einsum("fksxd,fjsxd->fxkj", u, u), rtol=1e-13)
    np.testing.assert_array_equal(s["same_seed_count"].values, np.einsum("fksx,fjsx->fxkj", v, v))
    assert s["same_seed_count"].values[0, 3, 1, 1] == 3 and s["same_seed_count"].values[0, 3, 0, 1] == 3


def sparse_dataset():
    """``dataset()`` with more invalid (NaN) directions: one seed at two capacities of one input, one seed at every
    input of a capacity, and every seed but two of one capacity at one input."""
    ds = dataset()
    direction, valid = ds["direction"].values.copy(), ds["valid"].values.copy()
    for index in [(1, 0, 1, 2), (1, 2, 1, 2), (0, 2, 3, slice(None)), (1, 1, slice(0, 2), 5)]:
        direction[index], valid[index] = np.nan, False
    return ds.assign(direction=(DIMS, direction), valid=(DIMS[:-1], valid))


@pytest.mark.parametrize("make", [dataset, sparse_dataset])
def test_observed_similarity_equals_the_similarity_matrix_of_the_directions(make):
    """One definition of the similarity: pairs of different seeds only, also across capacities. From the summary
    (per input, and averaged over inputs by the Bayesian module) it is stats.similarity_matrix of the directions."""
    ds = make()
    summary = summarize(ds)
    direct = sawdist.stats.similarity_matrix(ds["direction"], capacity="capacity", axis="seed")
    direct = direct.transpose("family", "input", "capacity_1", "capacity_2")
    per_input = similarity(summary)
    assert per_input.dims == ("family", "input", "capacity", "capacity_b")
    np.testing.assert_allclose(per_input.values, direct.values, rtol=0, atol=1e-12)
    observed = observed_similarity(summary)
    assert observed.dims == ("family", "capacity", "capacity_b")
    np.testing.assert_allclose(observed.values, direct.mean("input").values, rtol=0, atol=1e-12)
    # the diagonal is the unbiased m_hat^2 of identity 3 at every input (which counts ||u||^2 as 1: the float32
    # directions are unit vectors to 1e-7)
    m2 = sawdist.stats.mean_resultant_length(ds["direction"], axis="seed", squared=True)
    np.testing.assert_allclose(np.diagonal(per_input.values, axis1=2, axis2=3),
                               m2.transpose("family", "input", "capacity").values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(observed_mean_resultant_length(summary).values,
                               np.sqrt(np.clip(np.diagonal(direct.mean("input").values, axis1=1, axis2=2), 0, None)),
                               rtol=1e-9, atol=1e-12)
    # the Gram matrix alone would count the pairs of one seed across capacities
    n = summary["count"].transpose("family", "input", "capacity").values.astype(float)
    with_same_seed = (summary["gram"].values / (n[..., :, None] * n[..., None, :])).mean(1)
    assert np.abs(with_same_seed - observed.values)[:, 0, 1].max() > 1e-3


def test_similarity_needs_the_same_seed_sums():
    summary = summarize(dataset())
    with pytest.raises(ValueError, match=r"^'summary' must have the variables gram, same_seed_gram, count and "
                                         r"same_seed_count \(from sawdist.summarize\), got none named "
                                         r"'same_seed_count'\.$"):
        similarity(summary.drop_vars("same_seed_count"))


def test_summarize_dask_equals_eager():
    ds = dataset()
    lazy = summarize(ds.chunk({"input": 2}), compute=False)
    assert lazy["gram"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), summarize(ds))


def test_summarize_messages():
    ds = dataset()
    with pytest.raises(ValueError, match="'ds' must have a variable 'valid'"):
        summarize(ds.drop_vars("valid"))
    with pytest.raises(ValueError, match=r"'ds' capacities must be numbers > 0, got \[0, 8, 32\]\."):
        summarize(ds.assign_coords(capacity=[0, 8, 32]))
    with pytest.raises(TypeError, match="'ds' must be an xarray.Dataset, got dict."):
        summarize({})


def sphere_quadrature_loglik(R_list, kappas, n_list, shared=True, n_z=120, n_phi=240):
    """log of  int prod_k prod_i vMF(u_ki; mu, kappa_k) dmu / omega_3  on S^2: Gauss-Legendre in z = cos(theta),
    trapezoid (spectrally accurate for periodic integrands) in phi."""
    z, wz = np.polynomial.legendre.leggauss(n_z)
    phi = np.arange(n_phi) * 2 * np.pi / n_phi
    Z, P = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - Z**2)
    mu = np.stack([r * np.cos(P), r * np.sin(P), Z], -1)
    w = wz[:, None] * (2 * np.pi / n_phi) / (4 * np.pi) * np.ones_like(P)
    total = 0.0
    if shared:
        log_f = sum(
            n * sawdist.special.vmf_log_normalizer(3, k) + k * (mu @ R) for R, k, n in zip(R_list, kappas, n_list)
        )
        m = log_f.max()
        return m + np.log(np.sum(w * np.exp(log_f - m)))
    for R, k, n in zip(R_list, kappas, n_list):
        log_f = n * sawdist.special.vmf_log_normalizer(3, k) + k * (mu @ R)
        m = log_f.max()
        total += m + np.log(np.sum(w * np.exp(log_f - m)))
    return total


@pytest.mark.parametrize("shared", [True, False])
def test_collapsed_likelihood_against_quadrature_over_mu(shared):
    # The directions' density is a product of sawdist vMF densities; integrate mu out numerically on S^2.
    gen = np.random.default_rng(4)
    mu = sawdist.uniform_direction(3).rvs(rng=gen)
    kappas, counts = np.array([0.7, 2.5, 4.0]), np.array([3, 2, 4])
    R_list = [sawdist.vonmises_fisher(mu, k).rvs(size=n, rng=gen).sum(0) for k, n in zip(kappas, counts)]
    G = np.array([[a @ b for b in R_list] for a in R_list])
    got = collapsed_loglik(3, shared)(None, kappas, G, counts.astype(float)).eval(mode=MODE)
    # the quadrature integrates prod vMF(u) over mu; the directions' log density includes it exactly
    ref = sphere_quadrature_loglik(R_list, kappas, counts, shared)
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-10)


@pytest.fixture(scope="module")
def summary():
    return simulate_summary(dim=16, capacities=[4, 16], n_inputs=3, n_seeds=3, rng=0)


def test_simulate_summary_has_the_same_seed_sums(summary):
    """The simulated summary has every variable of summarize, the same-seed sums consistent with the directions:
    every direction is valid (counts n), a direction's product with itself is 1, a cosine is at most 1."""
    pair_dims = ("family", "input", "capacity", "capacity_b")
    assert summary["same_seed_gram"].dims == summary["same_seed_count"].dims == pair_dims
    np.testing.assert_array_equal(summary["same_seed_count"].values, 3)
    P = summary["same_seed_gram"].values
    np.testing.assert_allclose(np.diagonal(P, axis1=2, axis2=3), 3.0, rtol=1e-13)
    np.testing.assert_allclose(P, np.swapaxes(P, 2, 3), rtol=1e-13)
    assert np.all(np.abs(P) <= 3.0 + 1e-12)
    rho = similarity(summary).values  # diagonal: (G_kk - n) / (n (n - 1)), as for summarize's output
    G = summary["gram"].values
    np.testing.assert_allclose(np.diagonal(rho, axis1=2, axis2=3),
                               (np.diagonal(G, axis1=2, axis2=3) - 3.0) / 6.0, rtol=1e-12, atol=1e-14)


def test_model_structure(summary):
    model = convergence_model(summary, "power")
    assert {"alpha_ref", "beta", "sigma", "a"} <= {v.name for v in model.free_RVs}
    assert model.named_vars_to_dims["kappa"] == ("family", "input", "capacity")
    # the observed value is the Gram matrices (slot = capacity here), so that predictive draws are summaries
    assert model.named_vars_to_dims["directions"] == ("architecture", "input", "slot", "slot_b")
    assert np.isfinite(model.compile_logp(mode=MODE)(model.initial_point()))
    for law in ("logit_mean_resultant_length", "monotone"):
        m = convergence_model(summary, law, shared_mean=False, centered=False)
        assert np.isfinite(m.compile_logp(mode=MODE)(m.initial_point()))


def test_shared_architecture_equals_one_family_with_more_capacities(summary):
    # Two families sharing mu: the likelihood equals that of one family holding both families' capacities.
    parts = [summary.drop_vars("n_features").assign_coords(family=[f]) for f in ("x", "y")]
    two = xr.concat(parts, "family", data_vars="all")
    two["n_features"] = summary["n_features"]
    model = convergence_model(two, architecture={"x": "arch", "y": "arch"})
    assert list(model.coords["architecture"]) == ["arch"]
    design = check_summary(two, architecture={"x": "arch", "y": "arch"})
    kappa = np.array([[3.0, 5.0], [2.0, 7.0]])  # (family, capacity), every input
    logp = collapsed_loglik(16, True)
    R = summary["resultant"].values[0]  # (capacity, input, d)
    for x in range(3):
        stacked = np.concatenate([R[:, x], R[:, x]])
        G = stacked @ stacked.T
        ref = logp(None, kappa.ravel(), G, np.full(4, 3.0)).eval(mode=MODE)
        got = logp(None, kappa.ravel(), design.group_gram[0, x], design.group_count[0, x].astype(float)).eval(mode=MODE)
        assert got == pytest.approx(ref, rel=1e-13)


def test_model_from_design_is_the_model_of_the_summary(summary):
    # convergence_model checks the summary and builds from its design; both routes give the same model
    design = check_summary(summary)
    for law, shared in (("power", True), ("logit_mean_resultant_length", False), ("monotone", True)):
        ref = convergence_model(summary, law, shared_mean=shared)
        got = model_from_design(design, law, shared_mean=shared)
        assert [v.name for v in got.free_RVs] == [v.name for v in ref.free_RVs]
        point = ref.initial_point()
        assert got.compile_logp(mode=MODE)(point) == pytest.approx(ref.compile_logp(mode=MODE)(point), rel=1e-14)
    assert not hasattr(got, "_sawdist_design")  # no state on the PyMC model
    with pytest.raises(TypeError, match=r"^'design' must be a Design from check_summary, got Dataset\.$"):
        model_from_design(summary)
    with pytest.raises(ValueError, match=r"^'law' must be one of 'power', 'logit_mean_resultant_length', 'monotone', "
                                         r"got 'line'\.$"):
        model_from_design(design, "line")


def test_bad_summary_messages(summary):
    with pytest.raises(ValueError, match=r"^'summary' capacities must be > 0, got 0\.$"):
        convergence_model(summary.assign_coords(capacity=[0, 16], capacity_b=[0, 16]))
    bad = summary.copy()
    bad["count"] = bad["count"].where(bad["input"] != 1, 1)
    with pytest.raises(ValueError, match=r"'summary' count must be >= 2 .*got 1 at family='family0', input=1, "
                                         r"capacity=4\."):
        convergence_model(bad)
    with pytest.raises(ValueError, match=r"'summary' coordinate 'capacity_b' must equal 'capacity', got \[4, 8\] "
                                         r"against \[4, 16\]\."):
        convergence_model(summary.assign_coords(capacity_b=[4, 8]))
    shifted = summary.copy()
    shifted["gram"] = summary["gram"].assign_coords(input=[1, 2, 3])
    with pytest.raises(ValueError, match=r"'summary' gram must be finite, got nan or inf at family='family0', "
                                         r"input=0, capacity=4, capacity_b=4 \(variables with mismatched"):
        convergence_model(shifted)
    with pytest.raises(ValueError, match="'summary' must have a variable 'gram'"):
        convergence_model(summary.drop_vars("gram"))
    asym = summary.copy()
    asym["gram"] = summary["gram"] + xr.DataArray([[0.0, 1.0], [0.0, 0.0]], dims=("capacity", "capacity_b"))
    with pytest.raises(ValueError, match="'summary' gram must be symmetric in capacity and capacity_b"):
        convergence_model(asym)
    big = summary.copy()
    big["gram"] = summary["gram"] * 100.0
    with pytest.raises(ValueError, match=r"'summary' gram\[k, k\] \(squared resultant length\) must lie in"):
        convergence_model(big)
    with pytest.raises(ValueError, match="'summary' must give the dimension d"):
        convergence_model(summary.drop_vars(["n_features", "resultant", "feature"]))
    with pytest.raises(TypeError, match="'summary' must be an xarray.Dataset from sawdist.summarize, got dict."):
        convergence_model({})


def test_argument_messages(summary):
    with pytest.raises(ValueError, match=r"'law' must be one of 'power', 'logit_mean_resultant_length', 'monotone', "
                                         r"got 'linear'\."):
        convergence_model(summary, "linear")
    with pytest.raises(ValueError, match=r"'priors' for law 'power' takes alpha_ref, beta, sigma, got 'delta'\."):
        convergence_model(summary, priors={"delta": 1.0})
    with pytest.raises(ValueError, match=r"'law' 'monotone' needs at least 2 capacities, got 1\."):
        convergence_model(summary.isel(capacity=[0], capacity_b=[0]), "monotone")
    with pytest.raises(ValueError, match=r"'architecture' must map every family to a label, got no label for "
                                         r"'family0'\."):
        convergence_model(summary, architecture={"other": "x"})


@pytest.mark.parametrize("dim", [5, 64, 3072])
def test_fused_collapsed_op_matches_the_graph(dim):
    # The shared-mean likelihood runs as one Op (C code, or NumPy under FAST_COMPILE); its value and gradient must
    # be those of the plain graph -n L(kappa) + L(||S||) + constants, including a zero concentration.
    import pytensor
    import pytensor.tensor as pt

    from sawdist.bayes._collapsed_op import CollapsedSharedLoglik
    from sawdist.bayes.special_ops import _pair, log_sphere_area

    s = simulate_summary(dim=dim, capacities=[4, 8, 16], n_inputs=7, n_seeds=4, rng=dim)
    G = s["gram"].values
    C = s["count"].values.transpose(0, 2, 1).astype(float)
    kappa = np.exp(np.random.default_rng(0).normal(np.log(dim), 0.5, size=(1, 7, 3)))
    kappa[0, 0, 0] = 0.0
    k = pt.dtensor3("k")
    fused = CollapsedSharedLoglik(dim)(k, G, C)[0]
    nu = 0.5 * dim - 1.0
    s2 = pt.sum(k[..., :, None] * G * k[..., None, :], axis=(-1, -2))
    graph = (-0.5 * dim * np.log(2 * np.pi) * (C.sum(-1) - 1.0) - pt.sum(C * _pair(nu, k)[0], -1)
             + _pair(nu, pt.sqrt(s2))[0] - log_sphere_area(float(dim)))
    ref, dref = pytensor.function([k], [graph, pt.grad(graph.sum(), k)], mode=MODE)(kappa)
    for mode in ("FAST_RUN", MODE):
        value, grad = pytensor.function([k], [fused, pt.grad(fused.sum(), k)], mode=mode)(kappa)
        np.testing.assert_allclose(value, ref, rtol=1e-13)
        np.testing.assert_allclose(grad, dref, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="needs kappa"):
        CollapsedSharedLoglik(dim)(k[0], G, C)


def test_collapsed_likelihood_where_kappa_G_kappa_overflows_is_finite_and_right():
    # A NUTS trajectory can reach concentrations of 1e153 and more (seen: a retry's first step at d = 3072 with
    # input slopes). There kappa' G kappa overflows; L(s) = inf made the value +inf, a point NUTS accepted with
    # infinite weight, and the fit stopped on "bad initial energy". The value is finite and very negative there:
    # the reference is mpmath at 50 digits (Hankel's expansion of log I), the fused Op (C and NumPy), the plain
    # graph and the mean direction's concentration must agree with it, and their gradients with -n R(kappa) +
    # (R(s)/s) G kappa.
    import mpmath as mp
    import pytensor
    import pytensor.tensor as pt

    from sawdist.bayes._collapsed_op import CollapsedSharedLoglik
    from sawdist.bayes.model import _resultant_concentration

    from ..reference import mpmath_reference as ref

    dim = 3072
    s = simulate_summary(dim=dim, capacities=[4, 8, 16], n_inputs=3, n_seeds=4, rng=5)
    G = np.ascontiguousarray(s["gram"].values[0])  # (3 inputs, 3, 3): entries up to 16
    C = s["count"].values[0].T.astype(float)
    kappa = np.array([[3e153, 5e153, 8e153],  # kappa' G kappa overflows
                      [1e100, 3e100, 2e100],  # it does not
                      [8e153, 40.0, 0.0]])  # it does, through one concentration
    nu = 0.5 * dim - 1.0
    with mp.workdps(50):
        L = [[ref.log_iv(nu, mp.mpf(x)) - nu * mp.log(x) if x > 0 else None for x in row] for row in kappa]
        want, s_want = [], []
        for i in range(3):
            k = [mp.mpf(x) for x in kappa[i]]
            s_i = mp.sqrt(sum(k[j] * mp.mpf(G[i, j, c]) * k[c] for j in range(3) for c in range(3)))
            L0 = -mp.loggamma(nu + 1) - nu * mp.log(2)  # L(nu, 0)
            value = (-mp.mpf(dim) / 2 * mp.log(2 * mp.pi) * (sum(C[i]) - 1)
                     - sum(mp.mpf(C[i, j]) * (L[i][j] if L[i][j] is not None else L0) for j in range(3))
                     + ref.log_iv(nu, s_i) - nu * mp.log(s_i) - ref.log_sphere_area(dim))
            want.append(float(value))
            s_want.append(float(s_i))
    want, s_want = np.array(want), np.array(s_want)
    assert np.all(np.isfinite(want)) and want[0] < -1e152 and want[2] < -1e152
    grad_want = -C * np.where(kappa > 0, 1.0, 0.0) + np.einsum("xjl,xl->xj", G, kappa) / s_want[:, None]
    grad_want[2, 1] = -C[2, 1] * float(ref.ratio(nu, 40.0)) + (G[2] @ kappa[2])[1] / s_want[2]

    k = pt.dmatrix("k")
    fused = CollapsedSharedLoglik(dim)(k, G, C)[0]
    graphs = [collapsed_loglik(dim, shared=True)(None, k[0], G[i], C[i]) for i in range(3)]  # the plain graph
    for mode in ("FAST_RUN", MODE):
        value, grad = pytensor.function([k], [fused, pt.grad(fused.sum(), k)], mode=mode)(kappa)
        # the value is a difference of two numbers of 1e154 that cancel to 1e153 or less: 1e-13 of the terms
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-13 * np.abs(C * kappa).sum(axis=1).max())
        np.testing.assert_allclose(grad, grad_want, rtol=1e-12, atol=1e-12)
        for i in range(3):
            one = pytensor.function([k], graphs[i], mode=mode)(kappa[i:i + 1])
            np.testing.assert_allclose(one, want[i], rtol=0, atol=1e-13 * np.abs(C[i] * kappa[i]).sum())
    got_s = pytensor.function([k], _resultant_concentration(k, G), mode=MODE)(kappa)
    np.testing.assert_allclose(got_s, s_want, rtol=1e-14)


def test_per_capacity_means_likelihood_is_never_plus_inf_where_kappa_r_overflows():
    # One mean per slot: -n L(kappa) + L(kappa r), r = |S_j| < n. Within a factor r of the largest float kappa r
    # overflows while kappa does not; L(inf) made the value +inf there (the shared mean's bug, test above). The
    # value is about kappa (r - n) there: -inf. Below, the graph agrees with mpmath at 50 digits.
    import mpmath as mp
    import pytensor
    import pytensor.tensor as pt

    from ..reference import mpmath_reference as ref

    dim = 3072
    s = simulate_summary(dim=dim, capacities=[4, 8, 16], n_inputs=1, n_seeds=4, rng=5)
    G = np.ascontiguousarray(s["gram"].values[0, 0])
    C = s["count"].values[0, :, 0].astype(float)
    k = pt.dvector("k")
    value = collapsed_loglik(dim, shared=False)(None, k, G, C)
    nu = 0.5 * dim - 1.0
    kappa = np.array([1e300, 40.0, 3000.0])
    with mp.workdps(50):
        want = 0
        for j in range(3):
            x, r = mp.mpf(kappa[j]), mp.sqrt(mp.mpf(G[j, j]))
            want += (-mp.mpf(dim) / 2 * mp.log(2 * mp.pi) * (C[j] - 1) - C[j] * (ref.log_iv(nu, x) - nu * mp.log(x))
                     + ref.log_iv(nu, x * r) - nu * mp.log(x * r) - ref.log_sphere_area(dim))
        want = float(want)
    for mode in ("FAST_RUN", MODE):
        fn = pytensor.function([k], value, mode=mode)
        np.testing.assert_allclose(fn(kappa), want, rtol=1e-13)
        # kappa r = inf: -inf, never +inf (n L(kappa) overflows there too: older PyTensor's Python backend lets
        # NumPy warn about it, which is not what is tested)
        with np.errstate(over="ignore", invalid="ignore"):
            assert fn(np.array([1.7e308, 40.0, 3000.0])) == -np.inf
