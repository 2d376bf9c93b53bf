r"""The convergence model: von Mises–Fisher directions with the mean direction integrated out (DESIGN section 3).

For one family at input x, capacity k has n_k directions (seeds) with resultant R_k. With mu(x) uniform on the
sphere and concentrations kappa_k given, the likelihood of all directions at x is, in closed form,

.. math:: p = \prod_k C_d(\kappa_k)^{n_k} \; {}_0F_1(; d/2; \lVert S\rVert^2/4), \qquad
          S = \sum_k \kappa_k R_k, \qquad \lVert S\rVert^2 = \kappa^\top G \kappa,

because :math:`\int e^{\mu^\top S} d\mu / \omega_d = 1/(\omega_d C_d(\lVert S\rVert)) = {}_0F_1(;d/2;\lVert S\rVert^2/4)`.
Written with the reduced logarithm :math:`L(\nu, x) = \log I_\nu(x) - \nu\log x` (nu = d/2 - 1) of
:mod:`.special_ops`,

.. math:: \log p = -\tfrac{d}{2}\log(2\pi)\,(n - 1) - \sum_k n_k L(\nu, \kappa_k) + L(\nu, \lVert S\rVert) - \log\omega_d,

with n = sum_k n_k. The data enter only through the K x K Gram matrix G and the counts, so the cost is
O(inputs x K^2) in any dimension. The conditional posterior of the mean direction is
:math:`\mu \mid \kappa, \text{data} \sim \mathrm{vMF}(S/\lVert S\rVert, \lVert S\rVert)`.

The "separate means" model (H2 false) gives every capacity its own mean direction:
:math:`\log p = \sum_k [\ldots]` with :math:`\lVert S\rVert` replaced by :math:`\kappa_k \lVert R_k\rVert`.

Laws of concentration against capacity (per family; inputs partially pooled, ``a_x ~ Normal(alpha_ref, sigma)``):

* ``"power"``: :math:`\log\kappa = a_x + \beta(\log k - \log k_\mathrm{ref})`, reported as
  :math:`\log\kappa = \alpha + \beta\log k` for the typical input (``alpha = alpha_ref - beta log k_ref``);
* ``"logit_mrl"``: the same linear predictor for :math:`\operatorname{logit} m`, and :math:`\kappa = A_d^{-1}(m)`;
* ``"monotone"``: :math:`\log\kappa = a_x + c_k` with :math:`c_1 = 0` and positive increments ``delta``;
  ``alpha`` and ``beta`` are the intercept and slope of the line through the first and last capacities.

``k_ref`` is the geometric mean of the capacities (for ``"monotone"``, the smallest one): centring log k makes the
intercept and slope nearly uncorrelated a posteriori.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from ._collapsed_op import CollapsedSharedLoglik
from .special_ops import _pair, log_sphere_area, vmf_kappa_from_mrl

__all__ = ["LAWS", "DEFAULT_PRIORS", "compare_shared_mean", "convergence_model", "fit_convergence",
           "mean_direction_posterior"]

LAWS = ("power", "logit_mrl", "monotone")

#: Default priors (location and scale of Normal priors, scale of half-normal ones). ``alpha_ref`` of the power and
#: monotone laws is centred on log d: at kappa = d a von Mises–Fisher has m ~ 0.62 in high dimension, and a scale
#: of 2 spans m from ~0.02 to ~0.99.
DEFAULT_PRIORS = {
    "power": {"alpha_ref": ("log_d", 2.0), "beta": (0.0, 1.0), "sigma": 1.0},
    "logit_mrl": {"alpha_ref": (0.0, 2.0), "beta": (0.0, 1.0), "sigma": 1.0},
    "monotone": {"alpha_ref": ("log_d", 2.0), "delta": 1.0, "sigma": 1.0},
}

_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass
class _Design:
    """Arrays of a checked summary (family F, sample N, capacity K), grouped into architectures A with J slots."""

    dim: int
    families: np.ndarray
    samples: np.ndarray
    capacities: np.ndarray
    gram: np.ndarray          # (F, N, K, K)
    count: np.ndarray         # (F, N, K)
    architectures: np.ndarray
    slot_family: np.ndarray   # (A, J), -1 for padding
    slot_capacity: np.ndarray  # (A, J)
    group_gram: np.ndarray    # (A, N, J, J)
    group_count: np.ndarray   # (A, N, J)
    trivial_groups: bool


def _where(summary, da, mask) -> str:
    idx = np.argwhere(np.asarray(mask))[0]
    return ", ".join(f"{dim}={summary[dim].values[i].item()!r}" for dim, i in zip(da.dims, idx) if dim in summary.coords)


def _check_summary(summary, architecture=None) -> _Design:
    if not isinstance(summary, xr.Dataset):
        raise TypeError(f"'summary' must be an xarray.Dataset from sawdist.summarize, got {type(summary).__name__}.")
    for name, dims in (("gram", ("family", "sample", "capacity", "capacity_b")),
                       ("count", ("family", "capacity", "sample"))):
        if name not in summary.variables:
            raise ValueError(f"'summary' must have a variable {name!r} (see sawdist.summarize), got none.")
        if set(summary[name].dims) != set(dims):
            raise ValueError(f"'summary' variable {name!r} must have dims ({', '.join(dims)}), "
                             f"got ({', '.join(map(str, summary[name].dims))}).")
    for dim in ("family", "sample", "capacity", "capacity_b"):
        if dim not in summary.coords:
            raise ValueError(f"'summary' dim {dim!r} must have a coordinate, got none.")
    capacities = np.asarray(summary["capacity"].values)
    if capacities.dtype.kind not in "iuf":
        raise ValueError(f"'summary' capacities must be numbers, got dtype {capacities.dtype}.")
    if np.any(~(capacities > 0)):
        raise ValueError(f"'summary' capacities must be > 0, got {capacities[~(capacities > 0)][0].item()!r}.")
    if not np.array_equal(summary["capacity_b"].values, capacities):
        raise ValueError(f"'summary' coordinate 'capacity_b' must equal 'capacity', got "
                         f"{summary['capacity_b'].values.tolist()} against {capacities.tolist()}.")
    if "n_features" in summary.variables:
        dim = summary["n_features"].values
        if dim.shape != () or dim.dtype.kind not in "iuf" or dim != np.round(dim) or dim < 2:
            raise ValueError(f"'summary' n_features must be an integer >= 2, got {dim.tolist()!r}.")
        dim = int(dim)
    elif "feature" in summary.dims:
        dim = summary.sizes["feature"]
    else:
        raise ValueError("'summary' must give the dimension d by a variable 'n_features' or a dim 'feature', "
                         "got neither.")
    gram_da = summary["gram"].transpose("family", "sample", "capacity", "capacity_b")
    count_da = summary["count"].transpose("family", "sample", "capacity")
    gram = np.asarray(gram_da.values, dtype=np.float64)
    count = np.asarray(count_da.values)
    bad = ~np.isfinite(gram)
    if bad.any():
        raise ValueError(f"'summary' gram must be finite, got nan or inf at {_where(summary, gram_da, bad)} "
                         "(variables with mismatched coordinates leave NaN after alignment).")
    if count.dtype.kind == "f":
        if np.any(~np.isfinite(count)) or np.any(count != np.round(count)):
            where = _where(summary, count_da, ~np.isfinite(count) | (count != np.round(count)))
            raise ValueError(f"'summary' count must be whole numbers, got a non-integer value at {where} "
                             "(variables with mismatched coordinates leave NaN after alignment).")
    elif count.dtype.kind not in "iu":
        raise ValueError(f"'summary' count must be integers, got dtype {count.dtype}.")
    count = count.astype(np.int64)
    low = count < 2
    if low.any():
        raise ValueError(f"'summary' count must be >= 2 (two valid seeds per family, capacity and sample), got "
                         f"{count[low][0].item()} at {_where(summary, count_da, low)}.")
    asym = np.abs(gram - np.swapaxes(gram, -1, -2)) > 1e-8 * (1.0 + np.abs(gram))
    if asym.any():
        raise ValueError(f"'summary' gram must be symmetric in capacity and capacity_b, got an asymmetric matrix at "
                         f"{_where(summary, gram_da, asym.any(axis=(-1, -2)))}.")
    diag = np.diagonal(gram, axis1=-2, axis2=-1)
    off = (diag < -1e-9) | (diag > count.astype(float) ** 2 * (1 + 1e-6))
    if off.any():
        raise ValueError(f"'summary' gram[k, k] (squared resultant length) must lie in [0, count**2], got "
                         f"{diag[off][0].item()!r} at {_where(summary, count_da, off)}.")

    families = summary["family"].values
    F, N, K = count.shape
    if architecture is None:
        labels = families
    else:
        if isinstance(architecture, dict):
            missing = [f for f in families.tolist() if f not in architecture]
            if missing:
                raise ValueError(f"'architecture' must map every family to a label, got no label for {missing[0]!r}.")
            labels = np.array([architecture[f] for f in families.tolist()])
        else:
            labels = np.asarray(architecture)
            if labels.shape != (F,):
                raise ValueError(f"'architecture' must give one label per family ({F}), got shape {labels.shape}.")
    architectures, first = np.unique(labels, return_index=True)
    architectures = architectures[np.argsort(first)]
    members = [np.flatnonzero(labels == a) for a in architectures]
    trivial = all(len(m) == 1 for m in members) and len(members) == F
    J = max(len(m) for m in members) * K
    A = len(architectures)
    slot_family = np.full((A, J), -1)
    slot_capacity = np.zeros((A, J), dtype=int)
    for a, m in enumerate(members):
        slot_family[a, : len(m) * K] = np.repeat(m, K)
        slot_capacity[a, : len(m) * K] = np.tile(np.arange(K), len(m))
    if trivial:
        order = [m[0] for m in members]
        group_gram, group_count = gram[order], count[order]
    else:
        if "resultant" not in summary.variables:
            raise ValueError("'architecture' sharing a mean across families needs the variable 'resultant' in "
                             "'summary', got none.")
        R = np.asarray(summary["resultant"].transpose("family", "capacity", "sample", "feature").values, np.float64)
        group_gram = np.zeros((A, N, J, J))
        group_count = np.zeros((A, N, J), dtype=np.int64)
        for a, m in enumerate(members):
            Ra = R[m].reshape(len(m) * K, N, -1).transpose(1, 0, 2)  # (N, slots, d)
            group_gram[a, :, : len(m) * K, : len(m) * K] = Ra @ Ra.transpose(0, 2, 1)
            group_count[a, :, : len(m) * K] = count[m].transpose(1, 0, 2).reshape(N, len(m) * K)
    return _Design(dim=dim, families=families, samples=summary["sample"].values, capacities=capacities,
                   gram=gram, count=count, architectures=architectures, slot_family=slot_family,
                   slot_capacity=slot_capacity, group_gram=group_gram, group_count=group_count,
                   trivial_groups=trivial)


def _collapsed_loglik(dim: int, shared: bool):
    """logp(value, kappa, gram, count) per architecture and input (value is a placeholder: the data are fixed)."""
    nu = 0.5 * dim - 1.0
    log_omega = log_sphere_area(float(dim))

    def logp(value, kappa, gram, count):
        kappa, gram, count = (pt.as_tensor_variable(v) for v in (kappa, gram, count))
        if shared and kappa.type.ndim + 1 == gram.type.ndim and count.type.ndim == kappa.type.ndim:
            # value and gradient in one C loop (see _collapsed_op); the graph below is the same function
            return CollapsedSharedLoglik(dim)(kappa, gram, count)[0]
        L_kappa = _pair(nu, kappa)[0]
        if shared:
            s2 = pt.sum(kappa[..., :, None] * gram * kappa[..., None, :], axis=(-1, -2))
            s = pt.sqrt(pt.maximum(s2, 0.0))
            n = pt.sum(count, axis=-1)
            return (-0.5 * dim * _LOG_2PI * (n - 1.0) - pt.sum(count * L_kappa, axis=-1)
                    + _pair(nu, s)[0] - log_omega)
        r = pt.sqrt(pt.maximum(pt.diagonal(gram, axis1=-2, axis2=-1), 0.0))
        per_slot = -0.5 * dim * _LOG_2PI * (count - 1.0) - count * L_kappa + _pair(nu, kappa * r)[0] - log_omega
        return pt.sum(pt.switch(pt.gt(count, 0), per_slot, 0.0), axis=-1)

    return logp


def _prior(priors, law, name, log_d):
    value = priors.get(name, DEFAULT_PRIORS[law][name])
    if isinstance(value, tuple):
        loc, scale = value
        return (log_d if loc == "log_d" else float(loc)), float(scale)
    return float(value)


def convergence_model(summary: xr.Dataset, law: str = "power", *, shared_mean: bool = True, architecture=None,
                      priors: dict | None = None, centered: bool = True) -> pm.Model:
    r"""The collapsed vMF convergence model of a summary, as a :class:`pymc.Model`.

    Parameters
    ----------
    summary : xarray.Dataset
        Output of :func:`sawdist.summarize`: ``gram`` (family, sample, capacity, capacity_b), ``count`` (family,
        capacity, sample) with every count >= 2, capacities > 0, and ``n_features`` (or a ``feature`` dim).
    law : {"power", "logit_mrl", "monotone"}
        Law of the concentration against capacity (module docstring).
    shared_mean : bool
        True: one mean direction per input shared by all capacities (H2). False: one per capacity.
    architecture : dict or sequence, optional
        Architecture label of each family; families with the same label share mu(x) (needs ``resultant``).
        By default every family is its own architecture.
    priors : dict, optional
        Overrides of :data:`DEFAULT_PRIORS` for ``law``: ``(loc, scale)`` for ``alpha_ref`` and ``beta``, a scale for
        ``sigma`` and ``delta``.
    centered : bool
        Centred (``a ~ Normal(alpha_ref, sigma)``, the default: efficient when each input is informative, as with
        high d) or non-centred (``a = alpha_ref + sigma z``) input effects.

    Returns
    -------
    pymc.Model
        Free variables ``alpha_ref``, ``beta`` (or ``delta``), ``sigma`` (dim family), ``a`` or ``z`` (family, sample);
        deterministics ``alpha``, ``beta`` (monotone), ``kappa`` and ``mrl`` (family, sample, capacity) and, with a
        shared mean, ``mu_concentration`` (architecture, sample) = ``||S||``; the observed ``directions``
        (architecture, sample) whose pointwise log-likelihood is the collapsed one.

    Examples
    --------
    >>> import numpy as np, sawdist
    >>> from sawdist.bayes import convergence_model
    >>> summary = sawdist.bayes.simulate_summary(dim=64, capacities=[4, 16], n_samples=3, n_seeds=4, rng=0)
    >>> model = convergence_model(summary, law="power")
    >>> sorted(model.named_vars)[:4]
    ['a', 'alpha', 'alpha_ref', 'beta']
    """
    if law not in LAWS:
        raise ValueError(f"'law' must be one of {', '.join(map(repr, LAWS))}, got {law!r}.")
    design = _check_summary(summary, architecture)
    priors = {} if priors is None else dict(priors)
    unknown = set(priors) - set(DEFAULT_PRIORS[law])
    if unknown:
        raise ValueError(f"'priors' for law {law!r} takes {', '.join(DEFAULT_PRIORS[law])}, got {sorted(unknown)[0]!r}.")
    K = len(design.capacities)
    if law == "monotone" and K < 2:
        raise ValueError(f"'law' 'monotone' needs at least 2 capacities, got {K}.")
    d = design.dim
    log_d = float(np.log(d))
    log_k = np.log(design.capacities.astype(np.float64))
    coords = {"family": design.families, "sample": design.samples, "capacity": design.capacities,
              "architecture": design.architectures}
    if law == "monotone":
        coords["capacity_step"] = design.capacities[1:]

    with pm.Model(coords=coords) as model:
        loc, scale = _prior(priors, law, "alpha_ref", log_d)
        alpha_ref = pm.Normal("alpha_ref", loc, scale, dims="family")
        sigma = pm.HalfNormal("sigma", _prior(priors, law, "sigma", log_d), dims="family")
        if centered:
            a = pm.Normal("a", alpha_ref[:, None], sigma[:, None], dims=("family", "sample"))
        else:
            z = pm.Normal("z", 0.0, 1.0, dims=("family", "sample"))
            a = alpha_ref[:, None] + sigma[:, None] * z
        if law == "monotone":
            delta = pm.HalfNormal("delta", _prior(priors, law, "delta", log_d), dims=("family", "capacity_step"))
            steps = pt.concatenate([pt.zeros((delta.shape[0], 1)), pt.cumsum(delta, axis=1)], axis=1)
            beta = pm.Deterministic("beta", steps[:, -1] / (log_k[-1] - log_k[0]), dims="family")
            pm.Deterministic("alpha", alpha_ref - beta * log_k[0], dims="family")
            log_kappa = a[:, :, None] + steps[:, None, :]
        else:
            k_ref = float(np.mean(log_k))
            loc, scale = _prior(priors, law, "beta", log_d)
            beta = pm.Normal("beta", loc, scale, dims="family")
            pm.Deterministic("alpha", alpha_ref - beta * k_ref, dims="family")
            eta = a[:, :, None] + beta[:, None, None] * (log_k - k_ref)
        if law == "logit_mrl":
            m = pm.math.sigmoid(eta)
            kappa = pm.Deterministic("kappa", vmf_kappa_from_mrl(float(d), m), dims=("family", "sample", "capacity"))
            pm.Deterministic("mrl", m, dims=("family", "sample", "capacity"))
        else:
            kappa = pm.Deterministic("kappa", pt.exp(eta if law == "power" else log_kappa),
                                     dims=("family", "sample", "capacity"))
            pm.Deterministic("mrl", _pair(0.5 * d - 1.0, kappa)[1], dims=("family", "sample", "capacity"))

        if design.trivial_groups:
            order = [int(design.slot_family[a_, 0]) for a_ in range(len(design.architectures))]
            kappa_g = kappa if order == list(range(len(order))) else kappa[order]
        else:
            fam = np.where(design.slot_family >= 0, design.slot_family, 0)
            kappa_g = kappa[fam, :, design.slot_capacity]  # (A, J, N)
            kappa_g = pt.switch(pt.as_tensor(design.slot_family >= 0)[:, :, None], kappa_g, 1.0)
            kappa_g = kappa_g.dimshuffle(0, 2, 1)
        gram_g = pt.as_tensor(design.group_gram)
        count_g = pt.as_tensor(design.group_count.astype(np.float64))
        if shared_mean:
            s2 = pt.sum(kappa_g[..., :, None] * gram_g * kappa_g[..., None, :], axis=(-1, -2))
            pm.Deterministic("mu_concentration", pt.sqrt(pt.maximum(s2, 0.0)), dims=("architecture", "sample"))
        pm.CustomDist("directions", kappa_g, gram_g, count_g, logp=_collapsed_loglik(d, shared_mean),
                      signature="(j),(j,j),(j)->()", observed=design.group_count.sum(-1).astype(np.float64),
                      dims=("architecture", "sample"))
    model._sawdist_design = design
    model._sawdist_law = law
    return model


def _laplace_start(model: pm.Model, chains: int, seed, **nuts_kwargs):
    """Start points and NUTS step for ``model`` from a Laplace approximation in the sampler's (transformed) space.

    The posterior scales of these models span orders of magnitude (the slope is known to 1e-4 at d = 3072, the
    input effects to 1e-2), so NUTS started with a unit mass matrix spends most of its tuning on deep trees. We
    find the mode with L-BFGS, take the diagonal of the Hessian by central differences of the gradient, and start
    the diagonal mass-matrix adaptation from ``1 / -H_ii`` (weight 10 draws); chains start at the mode plus
    Normal(0, (sd/2)^2) jitter, so they are dispersed enough for R-hat to mean something.
    """
    from pymc.blocking import DictToArrayBijection
    from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
    from scipy.optimize import minimize

    start = model.initial_point()
    x0 = DictToArrayBijection.map(start)
    # The NUTS step compiles logp and its gradient once; the mode search uses that same function (PyMC >= 5 keeps
    # it as ``_logp_dlogp_func`` and the leapfrog integrator; without them, compile a second one).
    step = pm.NUTS(vars=model.value_vars, model=model, **nuts_kwargs)
    logp_dlogp = getattr(step, "_logp_dlogp_func", None)
    if logp_dlogp is None or not hasattr(step, "integrator"):
        logp_dlogp = model.logp_dlogp_function(ravel_inputs=True)
    logp_dlogp.set_extra_values({})

    def neg(x):
        value, grad = logp_dlogp(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value, -grad

    res = minimize(neg, x0.data, jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    mode = res.x
    n = mode.size
    h = 1e-5 * np.maximum(1.0, np.abs(mode))
    diag = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        diag[i] = (neg(mode + e)[1][i] - neg(mode - e)[1][i]) / (2.0 * h[i])
    var = np.where(np.isfinite(diag) & (diag > 0), 1.0 / np.where(diag > 0, diag, 1.0), 1.0)
    gen = np.random.default_rng(seed)
    # One compiled map from the sampler's space to the free variables' own values (untransformed), for all chains.
    names = {rv.name for rv in model.free_RVs}
    outs = [v for v in model.unobserved_value_vars if v.name in names]
    to_values = model.compile_fn(outs, inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    points = []
    for _ in range(chains):
        x = mode + 0.5 * np.sqrt(var) * gen.standard_normal(n)
        raveled = DictToArrayBijection.rmap(x0._replace(data=x), start)
        points.append({v.name: np.asarray(value) for v, value in zip(outs, to_values(raveled))})
    potential = QuadPotentialDiagAdapt(n, mode, var, 10, rng=gen)
    if logp_dlogp is getattr(step, "_logp_dlogp_func", None):
        from pymc.step_methods.hmc.integration import CpuLeapfrogIntegrator

        step.potential = potential
        step.integrator = CpuLeapfrogIntegrator(potential, logp_dlogp)
    else:
        step = pm.NUTS(vars=model.value_vars, potential=potential, model=model, **nuts_kwargs)
    return points, step


def fit_convergence(summary: xr.Dataset, law: str = "power", *, shared_mean: bool = True, architecture=None,
                    priors: dict | None = None, centered: bool = True, init: str = "laplace", **sample_kwargs):
    r"""Sample the convergence model with NUTS and return an :class:`arviz.InferenceData`.

    Parameters
    ----------
    summary, law, shared_mean, architecture, priors, centered
        As in :func:`convergence_model`.
    init : {"laplace", "pymc"}
        ``"laplace"`` (default): start the chains around the posterior mode and the mass-matrix adaptation from the
        diagonal of the inverse Hessian there (see :func:`_laplace_start`); ``"pymc"``: PyMC's own
        ``jitter+adapt_diag``. Ignored when ``step`` or ``initvals`` is given.
    **sample_kwargs
        Passed to :func:`pymc.sample` (``draws``, ``tune``, ``chains``, ``cores``, ``random_seed``, ...).
        ``progressbar`` defaults to False. ``tune`` keeps PyMC's default of 1000; after the Laplace start, 300
        tuning steps gave the same R-hat and effective sample sizes in 0.6x the sampling time on the power-law
        benchmark at d = 3072 (``benchmarks/bayes_convergence.py --tune 300``), and the analyses use 300.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with ``alpha``, ``beta`` (dim family), ``sigma``, ``kappa`` and ``mrl`` (family, sample,
        capacity), ``mu_concentration``; ``log_likelihood["directions"]`` (architecture, sample) for ``az.loo``.
        ``posterior.attrs`` record the law, d and whether the mean is shared (for reading only).

    Examples
    --------
    >>> import sawdist
    >>> from sawdist.bayes import fit_convergence, simulate_summary
    >>> summary = simulate_summary(dim=64, capacities=[4, 16], n_samples=3, n_seeds=4, rng=0)
    >>> idata = fit_convergence(summary, draws=100, tune=100, chains=1, random_seed=0)  # doctest: +SKIP
    """
    model = convergence_model(summary, law, shared_mean=shared_mean, architecture=architecture, priors=priors,
                              centered=centered)
    kwargs = {"progressbar": False}
    kwargs.update(sample_kwargs)
    idata_kwargs = dict(kwargs.pop("idata_kwargs", None) or {})
    idata_kwargs.setdefault("log_likelihood", True)
    with model:
        if init == "laplace" and "step" not in kwargs and "initvals" not in kwargs:
            chains = kwargs.get("chains") or 4
            kwargs["chains"] = chains
            nuts_kwargs = dict(kwargs.pop("nuts", None) or {})
            nuts_kwargs.update({key: kwargs.pop(key) for key in ("target_accept", "max_treedepth") if key in kwargs})
            kwargs["initvals"], kwargs["step"] = _laplace_start(model, chains, kwargs.get("random_seed"),
                                                                **nuts_kwargs)
        elif init not in ("laplace", "pymc"):
            raise ValueError(f"'init' must be 'laplace' or 'pymc', got {init!r}.")
        idata = pm.sample(idata_kwargs=idata_kwargs, **kwargs)
    idata.posterior.attrs.update({"sawdist_law": law, "sawdist_dim": model._sawdist_design.dim,
                                  "sawdist_shared_mean": int(shared_mean)})
    return idata


def compare_shared_mean(summary: xr.Dataset, law: str = "power", *, architecture=None, priors=None,
                        centered: bool = True, ic: str = "loo", **sample_kwargs):
    """H2 as a model comparison: the shared-mean model against one mean direction per capacity.

    Both models are fitted with :func:`fit_convergence` (same law, priors and sampler settings) and compared by
    PSIS-LOO over inputs (the pointwise log-likelihood of all directions at one input).

    Returns
    -------
    pandas.DataFrame
        The :func:`arviz.compare` table, rows ``"shared"`` and ``"separate"``, best first.
    """
    import arviz as az

    fits = {
        name: fit_convergence(summary, law, shared_mean=shared, architecture=architecture, priors=priors,
                              centered=centered, **sample_kwargs)
        for name, shared in (("shared", True), ("separate", False))
    }
    return az.compare(fits, ic=ic)


def mean_direction_posterior(idata, summary: xr.Dataset, *, architecture=None, n_draws: int = 0, rng=None):
    r"""The posterior of the mean direction mu(x), from the conditional vMF(S/||S||, ||S||) given kappa.

    The posterior mean of mu is :math:`E[\mu] = E_\kappa[A_d(\lVert S\rVert)\, S / \lVert S\rVert]
    = \sum_k c_k R_k` with :math:`c_k = E_\kappa[\kappa_k A_d(\lVert S\rVert)/\lVert S\rVert]`, so it needs one
    pass over the resultants whatever the number of draws.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`fit_convergence` with ``shared_mean=True``.
    summary : xarray.Dataset
        The summary it was fitted to, with ``resultant``.
    architecture
        As given to the fit.
    n_draws : int
        Also return this many draws of mu per input (one per posterior draw, taken evenly over the chains).
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    xarray.Dataset
        ``mean_direction`` (architecture, sample, feature), a unit vector; ``mean_resultant_length``
        (architecture, sample), the norm of E[mu] (1 = no posterior uncertainty about the direction);
        ``concentration`` (architecture, sample), the posterior mean of ||S||; with ``n_draws``, ``draws``
        (mu_draw, architecture, sample, feature).
    """
    from .. import special
    from .. import vonmises_fisher

    design = _check_summary(summary, architecture)
    if "resultant" not in summary.variables:
        raise ValueError("'summary' must have the variable 'resultant' for the mean direction, got none.")
    if "mu_concentration" not in idata.posterior:
        raise ValueError("'idata' must come from a shared-mean fit (posterior variable 'mu_concentration'), got none.")
    R = np.asarray(summary["resultant"].transpose("family", "capacity", "sample", "feature").values, np.float64)
    kappa = idata.posterior["kappa"].transpose("chain", "draw", "family", "sample", "capacity").values
    kappa = kappa.reshape(-1, *kappa.shape[2:])  # (S, F, N, K)
    s = idata.posterior["mu_concentration"].transpose("chain", "draw", "architecture", "sample").values
    s = s.reshape(-1, *s.shape[2:])  # (S, A, N)
    nu = 0.5 * design.dim - 1.0
    weight = special.bessel_ratio(nu, s) / s  # A_d(||S||)/||S||
    A, J = design.slot_family.shape
    N, d = R.shape[2], R.shape[3]
    mean = np.zeros((A, N, d))
    for a in range(A):
        for j in range(J):
            f, k = design.slot_family[a, j], design.slot_capacity[a, j]
            if f < 0:
                continue
            c = np.mean(kappa[:, f, :, k] * weight[:, a, :], axis=0)  # (N,)
            mean[a] += c[:, None] * R[f, k]
    mrl = np.linalg.norm(mean, axis=-1)
    coords = {"architecture": design.architectures, "sample": design.samples, "feature": summary["feature"].values
              if "feature" in summary.coords else np.arange(d)}
    out = xr.Dataset({
        "mean_direction": (("architecture", "sample", "feature"), mean / mrl[..., None],
                           {"long_name": "posterior mean direction of mu"}),
        "mean_resultant_length": (("architecture", "sample"), mrl,
                                  {"long_name": "norm of the posterior mean of mu"}),
        "concentration": (("architecture", "sample"), s.mean(axis=0),
                          {"long_name": "posterior mean of ||S||, the concentration of mu given kappa"}),
    }, coords=coords)
    if n_draws:
        gen = np.random.default_rng(rng)
        pick = np.linspace(0, s.shape[0] - 1, n_draws).round().astype(int)
        draws = np.empty((n_draws, A, N, d))
        for i, p in enumerate(pick):
            S = np.zeros((A, N, d))
            for a in range(A):
                for j in range(J):
                    f, k = design.slot_family[a, j], design.slot_capacity[a, j]
                    if f >= 0:
                        S[a] += kappa[p, f, :, k][:, None] * R[f, k]
            norm = np.linalg.norm(S, axis=-1)
            draws[i] = vonmises_fisher.rvs(S / norm[..., None], norm, rng=gen)
        out["draws"] = (("mu_draw", "architecture", "sample", "feature"), draws,
                        {"long_name": "draws of mu from its conditional posterior"})
        out = out.assign_coords(mu_draw=np.arange(n_draws))
    return out
