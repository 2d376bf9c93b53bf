"""NUTS for the convergence models with any of four samplers: PyMC's own, nutpie, NumPyro or BlackJAX.

:func:`sample` runs one of them on a :class:`pymc.Model` and returns an :class:`arviz.InferenceData` with the same
groups whichever it is: ``posterior`` (the free variables and the deterministics, with the model's dims and coords),
``sample_stats`` (at least ``diverging``, ``energy``, ``n_steps``, ``tree_depth``, ``acceptance_rate`` and
``lp``, renamed where a sampler calls them otherwise), ``log_likelihood`` (computed by PyMC from the posterior, so
identical in layout) and ``observed_data``.

* ``"nutpie"``: Rust NUTS over the model's log-density compiled by Numba (:mod:`._numba_ops`), chains in threads;
  the fastest sampler, though it compiles the model anew each time (6 s on the benchmark).
* ``"pymc"``: :func:`pymc.sample` over the C Ops; its NUTS is a Python loop, about half of every leapfrog step on
  the benchmark's 500 inputs, a small part with thousands of inputs.
* ``"numpyro"`` and ``"blackjax"``: NUTS in JAX, the whole sampler compiled by XLA with the log-density
  (:mod:`._jax_ops`), chains on as many XLA CPU devices (PyMC asks for them when it loads its JAX module). XLA's
  Bessel kernel costs 3 times Numba's at 500 inputs (1.35 times at 10,000), so both trail PyMC on CPU.

The default, ``sampler=None``, is the fastest installed one for the fit at hand (:func:`default_sampler`), by the
order measured with ``benchmarks/samplers.py`` (numbers in ``benchmarks/RESULTS.md`` and docs/bayes.md): nutpie when
the fit is large enough to repay its compile (:data:`NUTPIE_MIN_WORK`), else PyMC, always installed; the JAX samplers
are used only when asked for.

**Start.** ``init="laplace"`` starts every sampler at the Laplace approximation of the posterior in the sampler's
(transformed) space: the mode found by L-BFGS and the diagonal of the inverse Hessian there (as
:func:`~.initialization.laplace_start`), each chain at the mode plus Normal(0, (sd/2)^2) jitter seeded by
``random_seed``; ``laplace_fixed`` holds named variables at given values during the mode search, for every
sampler. What each sampler does with it: PyMC, NumPyro and BlackJAX start the chains there *and* their
diagonal mass-matrix adaptation from the Laplace variances; nutpie takes the start points only (it accepts no
initial mass matrix and initialises its adaptation from the gradient at the start). NumPyro's regularisation of the
adapted variances towards 1e-3 (Stan's) is switched off, since it swamps posterior variances of 1e-8 (the slope at
d = 3072: 63 leapfrog steps per draw instead of 15); BlackJAX 1.7 keeps it, with no option. ``init="pymc"`` leaves
each sampler its own start (PyMC's ``jitter+adapt_diag``, nutpie's jittered support point, the support point with
U(-1, 1) jitter for the JAX samplers).

**Seeds.** ``random_seed`` (an int) gives the same draws on every run with the same sampler, the same arguments and
the same library versions; different samplers give different draws of the same posterior.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pymc as pm

from ..dependencies import MissingDependencyError
from .initialization import _held_variables, laplace, laplace_point, laplace_start

if TYPE_CHECKING:
    from collections.abc import Mapping

    import arviz as az
    from numpy.typing import ArrayLike

__all__ = ["NUTPIE_MIN_WORK", "SAMPLERS", "default_sampler", "fit_work", "installed_samplers", "sample"]

#: The samplers, fastest first (``benchmarks/samplers.py``): ``sampler=None`` takes the first installed one.
SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")

#: The work of a fit (:func:`fit_work`: likelihood cells x iterations x chains) from which nutpie is the faster
#: default. nutpie compiles every model anew for its calling convention (7-9 s on the benchmark's 2 cores, whatever
#: the size) and then takes about 0.4 of PyMC's time per leapfrog step; on the benchmark's 5 capacities x 500 inputs,
#: 4 chains x (300 + 1000) iterations (2500 x 1300 x 4 = 1.3e7) the two took the same time, 14-15 s.
NUTPIE_MIN_WORK = 13_000_000

#: What each sampler needs besides PyMC (import names), and the extra that installs it.
_NEEDS = {"nutpie": ("nutpie", "numba"), "numpyro": ("numpyro", "jax"), "blackjax": ("blackjax", "jax"), "pymc": ()}
_EXTRA = {"nutpie": "fast", "numpyro": "jax", "blackjax": "jax"}

#: Arguments of :func:`sample` that every sampler takes; the rest go to pymc.sample (PyMC only) or, for the other
#: samplers, only through ``nuts_sampler_kwargs``.
_COMMON = ("draws", "tune", "chains", "cores", "random_seed", "progressbar", "target_accept", "max_treedepth",
           "var_names", "idata_kwargs", "compute_convergence_checks", "nuts_sampler_kwargs")

#: sample_stats names -> PyMC's name for the same statistic
_STAT_NAMES = {"depth": "tree_depth", "mean_tree_accept": "acceptance_rate", "logp": "lp"}


def installed_samplers() -> tuple[str, ...]:
    """The samplers of :data:`SAMPLERS` whose libraries are installed, fastest first (``"pymc"`` is always)."""
    return tuple(name for name in SAMPLERS if all(importlib.util.find_spec(m) is not None for m in _NEEDS[name]))


def default_sampler(work: float | None = None) -> str:
    """The sampler ``sampler=None`` means: the fastest installed one for a fit of ``work`` (:func:`fit_work`).

    nutpie when it is installed and ``work`` is None or at least :data:`NUTPIE_MIN_WORK` (below it, nutpie's compile
    costs more than its faster steps save), else PyMC. The JAX samplers are never the default: they trail both on CPU.
    """
    if "nutpie" in installed_samplers() and (work is None or work >= NUTPIE_MIN_WORK):
        return "nutpie"
    return "pymc"


def fit_work(model: pm.Model, *, draws: int = 1000, tune: int = 1000, chains: int = 4) -> float:
    """The work of sampling ``model``, as :data:`NUTPIE_MIN_WORK` counts it: likelihood cells x (draws + tune) x chains.

    A cell is one concentration of the collapsed likelihood (family x input x capacity: the size of ``kappa`` in the
    convergence models), the unit of a leapfrog step's cost; for another model, its number of free parameters.
    """
    dims = model.named_vars_to_dims.get("kappa") if "kappa" in model.named_vars else None
    if dims and all(dim in model.coords for dim in dims):
        cells = float(np.prod([len(model.coords[dim]) for dim in dims]))
    else:
        cells = float(sum(np.size(value) for value in model.initial_point().values()))
    return cells * (int(draws) + int(tune)) * int(chains)


def _check_sampler(sampler, model=None, kwargs=None):
    if sampler is None:
        if model is None:
            return default_sampler()
        kwargs = kwargs or {}
        return default_sampler(fit_work(model, draws=kwargs.get("draws") or 1000, tune=kwargs.get("tune") or 1000,
                                        chains=kwargs.get("chains") or 4))
    if sampler not in SAMPLERS:
        raise ValueError(f"'sampler' must be one of {', '.join(map(repr, SAMPLERS))} or None, got {sampler!r}.")
    missing = [m for m in _NEEDS[sampler] if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(f"sampler {sampler!r} needs {missing[0]}, which is not installed; install it "
                                     f"with: pip install 'sawdist[{_EXTRA[sampler]}]'.")
    return sampler


def sample(model: pm.Model, sampler: str | None = None, *, init: str = "laplace",
           laplace_fixed: Mapping[str, ArrayLike] | None = None, **kwargs: Any) -> az.InferenceData:
    """Sample ``model`` with NUTS from ``sampler`` and return an :class:`arviz.InferenceData` (module docstring).

    Parameters
    ----------
    model : pymc.Model
        A model with continuous free variables (every model of :mod:`sawdist.bayes`).
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"} or None
        None: :func:`default_sampler` for the fit's work (:func:`fit_work` of ``model``, ``draws``, ``tune`` and
        ``chains``).
    init : {"laplace", "pymc"}
        Start at the Laplace approximation (module docstring), or each sampler's own start. With PyMC, ignored
        when ``step`` or ``initvals`` is given.
    laplace_fixed : dict, optional
        Free variables (by name) held at the values given (in their own space) during the Laplace start's mode
        search, which then finds the mode of the others given them; the Laplace variances and the jitter cover
        them too. For the scale of centred random effects, whose joint mode with its effects sits at 0
        (the funnel's neck) when each effect is weakly determined (:func:`~sawdist.bayes.fit_convergence`).
    **kwargs
        ``draws`` (1000), ``tune`` (1000), ``chains`` (4), ``cores``, ``random_seed``, ``progressbar`` (False),
        ``target_accept``, ``max_treedepth``, ``var_names`` (the deterministics to keep in the posterior, all by
        default; the free variables are always kept), ``idata_kwargs`` (only ``log_likelihood``, default True, outside
        PyMC), ``compute_convergence_checks`` and ``nuts_sampler_kwargs`` (keyword arguments of
        :func:`nutpie.sample`, of numpyro's ``NUTS`` or of BlackJAX's ``window_adaptation``) for every sampler.
        With ``sampler="pymc"`` every other :func:`pymc.sample` argument too (``step``, ``initvals``, ``nuts``
        (arguments of the NUTS step that ``init="laplace"`` builds), ...).

    Returns
    -------
    arviz.InferenceData
        ``posterior``, ``sample_stats``, ``log_likelihood`` (unless ``idata_kwargs={"log_likelihood": False}``) and
        ``observed_data``; ``posterior.attrs["sawdist_sampler"]`` names the sampler.
    """
    sampler = _check_sampler(sampler, model, kwargs)
    if init not in ("laplace", "pymc"):
        raise ValueError(f"'init' must be 'laplace' or 'pymc', got {init!r}.")
    laplace_fixed = dict(laplace_fixed or {})
    _held_variables(model, laplace_fixed)  # names checked before any sampler compiles
    if kwargs.get("var_names") is not None:
        free = [rv.name for rv in model.free_RVs]
        kwargs["var_names"] = free + [name for name in kwargs["var_names"] if name not in free]
    if sampler == "pymc":
        idata = _sample_pymc(model, init, kwargs, laplace_fixed)
    else:
        unknown = sorted(set(kwargs) - set(_COMMON))
        if unknown:
            raise TypeError(f"sampler {sampler!r} takes {', '.join(_COMMON)} (and its own arguments through "
                            f"'nuts_sampler_kwargs'), got {unknown[0]!r}.")
        kwargs.setdefault("draws", 1000)
        kwargs.setdefault("tune", 1000)
        kwargs["chains"] = kwargs.get("chains") or 4
        log_likelihood = dict(kwargs.pop("idata_kwargs", None) or {}).get("log_likelihood", True)
        if sampler == "nutpie":
            idata = _sample_nutpie(model, init, laplace_fixed, **kwargs)
        else:
            idata = _sample_jax(model, sampler, init, laplace_fixed, **kwargs)
        _tidy(idata, model, kwargs.get("var_names"))
        if log_likelihood:
            pm.compute_log_likelihood(idata, model=model, progressbar=False, extend_inferencedata=True)
    idata.posterior.attrs["sawdist_sampler"] = sampler
    return idata


def _sample_pymc(model, init, kwargs, laplace_fixed=None):
    kwargs = {"progressbar": False, **kwargs}
    kwargs.pop("nuts_sampler_kwargs", None)
    idata_kwargs = dict(kwargs.pop("idata_kwargs", None) or {})
    idata_kwargs.setdefault("log_likelihood", True)
    with model:
        if init == "laplace" and "step" not in kwargs and "initvals" not in kwargs:
            chains = kwargs.get("chains") or 4
            kwargs["chains"] = chains
            nuts_kwargs = dict(kwargs.pop("nuts", None) or {})
            nuts_kwargs.update({key: kwargs.pop(key) for key in ("target_accept", "max_treedepth") if key in kwargs})
            kwargs["initvals"], kwargs["step"] = laplace_start(model, chains, kwargs.get("random_seed"),
                                                               fixed=laplace_fixed, **nuts_kwargs)
        return pm.sample(idata_kwargs=idata_kwargs, **kwargs)


def _seed(random_seed) -> int:
    """A non-negative int seed from an int, a Generator or None (fresh entropy)."""
    if isinstance(random_seed, (int, np.integer)):
        return int(random_seed)
    return int(np.random.default_rng(random_seed).integers(2**31))


def _jitter(mode, var, seed, chain):
    """Start point of one chain: the mode plus Normal(0, var/4) jitter, from the seed and the chain alone."""
    return mode + 0.5 * np.sqrt(var) * np.random.default_rng([seed, int(chain)]).standard_normal(mode.size)


@contextlib.contextmanager
def _numba_quiet():
    """Silence Numba's note that PyTensor's graph function (it holds the Gram matrices as constants) is not cached on
    disk, as PyTensor's own filter does (a filter that test runners reset per test)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r'(\x1b\[1m)*Cannot cache compiled function "numba_funcified_fgraph')
        yield


def _sample_nutpie(model, init, laplace_fixed=None, *, draws, tune, chains, cores=None, random_seed=None,
                   progressbar=False, target_accept=None, max_treedepth=None, var_names=None,
                   compute_convergence_checks=None, nuts_sampler_kwargs=None):
    import nutpie

    seed = _seed(random_seed)
    with _numba_quiet():
        compiled = nutpie.compile_pymc_model(model, backend="numba", var_names=var_names)
    if init == "laplace":
        # nutpie's flat vector: the free variables' values in model order
        x0, fixed, _ = laplace_point(model, laplace_fixed, [model.rvs_to_values[rv] for rv in model.free_RVs])
        with _numba_quiet():
            mode, var = laplace(lambda x: compiled.logp_func(x), x0, fixed)
        # nutpie calls this once per chain, with a seed of its own derived from `seed` and the chain
        compiled = dataclasses.replace(compiled,
                                       initial_point_func=lambda chain_seed: _jitter(mode, var, seed, chain_seed))
    settings = dict(nuts_sampler_kwargs or {})
    if target_accept is not None:
        settings["target_accept"] = target_accept
    if max_treedepth is not None:
        settings["maxdepth"] = max_treedepth
    cores = cores or min(chains, os.cpu_count() or 1)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                          progress_bar=progressbar, save_warmup=False, **settings)
    return idata


def _sample_jax(model, sampler, init, laplace_fixed=None, *, draws, tune, chains, cores=None, random_seed=None,
                progressbar=False, target_accept=None, max_treedepth=None, var_names=None,
                compute_convergence_checks=True, nuts_sampler_kwargs=None):
    # PyMC's JAX module asks XLA for 100 CPU devices (one chain each) when it is imported before JAX starts
    import jax
    import pymc.sampling.jax as pymc_jax

    seed = _seed(random_seed)
    nuts_kwargs = dict(nuts_sampler_kwargs or {})
    value_vars = model.value_vars
    x0, fixed, point = laplace_point(model, laplace_fixed if init == "laplace" else None, value_vars)
    shapes = [np.shape(point[v.name]) for v in value_vars]
    splits = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    starts = var = None
    if init == "laplace":
        fn = model.logp_dlogp_function(ravel_inputs=True)  # C code (cached): the mode search needs no XLA compile
        fn.set_extra_values({})
        mode, var = laplace(fn, x0, fixed)
        starts = np.stack([_jitter(mode, var, seed, chain) for chain in range(chains)])
    chain_method = "parallel" if jax.local_device_count() >= chains else "vectorized"
    target_accept = 0.8 if target_accept is None else float(target_accept)
    if sampler == "blackjax":
        if starts is None:  # PyMC's default start: the support point with U(-1, 1) jitter
            gen = np.random.default_rng(seed)
            starts = x0 + gen.uniform(-1.0, 1.0, size=(chains, x0.size))
        if max_treedepth is not None:
            nuts_kwargs["max_num_doublings"] = max_treedepth
        if var is not None:
            nuts_kwargs.setdefault("initial_inverse_mass_matrix", var)
        positions = [part.reshape((chains, *shape)) for part, shape in zip(np.split(starts, splits, axis=1), shapes)]
        return _blackjax(model, positions, draws, tune, chains, seed, target_accept, chain_method, nuts_kwargs,
                         var_names)
    initvals = None
    if starts is not None:
        # PyMC takes start points as the free variables' own (untransformed) values
        names = {rv.name for rv in model.free_RVs}
        outs = [v for v in model.unobserved_value_vars if v.name in names]
        to_values = model.compile_fn(outs, inputs=value_vars, point_fn=False, on_unused_input="ignore")
        initvals = []
        for start in starts:
            values = to_values(*[p.reshape(s) for p, s in zip(np.split(start, splits), shapes)])
            initvals.append({v.name: np.asarray(x) for v, x in zip(outs, values)})
        nuts_kwargs.setdefault("inverse_mass_matrix", var)
    # Stan's regularisation of the adapted variances towards 1e-3 swamps posterior variances of 1e-8 (beta at
    # d = 3072): with it NUTS took 63 leapfrog steps per draw on the benchmark instead of 15
    nuts_kwargs.setdefault("regularize_mass_matrix", False)
    if max_treedepth is not None:
        nuts_kwargs["max_tree_depth"] = max_treedepth
    return pymc_jax.sample_jax_nuts(
        draws=draws, tune=tune, chains=chains, target_accept=target_accept, random_seed=seed, initvals=initvals,
        jitter=init != "laplace", model=model, var_names=var_names, progressbar=progressbar, nuts_sampler="numpyro",
        idata_kwargs={"log_likelihood": False}, chain_method=chain_method,
        compute_convergence_checks=True if compute_convergence_checks is None else bool(compute_convergence_checks),
        nuts_kwargs=nuts_kwargs)


def _blackjax(model, positions, draws, tune, chains, seed, target_accept, chain_method, nuts_kwargs, var_names):
    """BlackJAX's window adaptation and NUTS, one chain per XLA device (PyMC's own BlackJAX path passes an
    argument that BlackJAX 1.7 no longer takes); the posterior and sample_stats as PyMC's JAX path lays them out."""
    import arviz as az
    import blackjax
    import jax
    import pymc.sampling.jax as pymc_jax
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.util import get_default_varnames

    logdensity = pymc_jax.get_jaxified_logp(model)  # (sic) with the default negative_logp=True it is +logp
    doublings = nuts_kwargs.pop("max_num_doublings", 10)
    adaptation = blackjax.window_adaptation(blackjax.nuts, logdensity, target_acceptance_rate=target_accept,
                                            max_num_doublings=doublings, **nuts_kwargs)

    def one_chain(key, position):
        key_tune, key_draws = jax.random.split(key)
        (state, parameters), _ = adaptation.run(key_tune, position, num_steps=tune)
        kernel = blackjax.nuts(logdensity, **{**parameters, "max_num_doublings": doublings}).step

        def step(state, key):
            state, info = kernel(key, state)
            stats = {"diverging": info.is_divergent, "energy": info.energy,
                     "tree_depth": info.num_trajectory_expansions, "n_steps": info.num_integration_steps,
                     "acceptance_rate": info.acceptance_rate, "lp": state.logdensity,
                     "step_size": parameters["step_size"]}
            return state, (state.position, stats)

        _, (draws_, stats) = jax.lax.scan(step, state, jax.random.split(key_draws, draws))
        return draws_, stats

    keys = jax.random.split(jax.random.PRNGKey(seed), chains)
    mapped = jax.pmap(one_chain) if chain_method == "parallel" else jax.jit(jax.vmap(one_chain))
    raw, stats = mapped(keys, positions)
    outputs = [v for v in get_default_varnames(model.unobserved_value_vars, include_transformed=False)
               if var_names is None or v.name in var_names]
    values = jax.vmap(jax.vmap(pymc_jax.get_jaxified_graph(inputs=model.value_vars, outputs=outputs)))(*raw)
    coords, dims = coords_and_dims_for_inferencedata(model)
    return az.from_dict(posterior={v.name: np.asarray(x) for v, x in zip(outputs, values)},
                        sample_stats={k: np.asarray(v) for k, v in stats.items()}, coords=coords, dims=dims,
                        posterior_attrs={"sampling_library": "blackjax", "tuning_steps": tune})


def _tidy(idata, model, var_names=None):
    """PyMC's layout for every sampler: posterior holds the free variables and deterministics only (nutpie also
    stores the transformed values), sample_stats use PyMC's names, and observed_data is there."""
    import arviz as az
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_observations

    keep = {rv.name for rv in model.free_RVs} | {d.name for d in model.deterministics}
    if var_names is not None:
        keep &= set(var_names)
    drop = [name for name in idata.posterior.data_vars if name not in keep]
    if drop:
        idata.posterior = idata.posterior.drop_vars(drop)
    stats = idata.sample_stats
    renames = {old: new for old, new in _STAT_NAMES.items() if old in stats and new not in stats}
    if renames:
        idata.sample_stats = stats.rename(renames)
    if "observed_data" not in idata.groups():
        coords, dims = coords_and_dims_for_inferencedata(model)
        observed = az.from_dict(observed_data=find_observations(model), coords=coords, dims=dims)
        idata.add_groups({"observed_data": observed.observed_data})
