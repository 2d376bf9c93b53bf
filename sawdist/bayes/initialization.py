"""The Laplace start of NUTS: chains around the posterior mode, mass-matrix adaptation from the Hessian there.

The posterior scales of the convergence models span orders of magnitude (the slope is known to 1e-4 at d = 3072, the
input effects to 1e-2), so NUTS started with a unit mass matrix spends most of its tuning on deep trees.
:func:`laplace_start` finds the mode in the sampler's (transformed) space with L-BFGS, takes the diagonal of the
Hessian there by central differences of the gradient, and returns start points and a NUTS step whose diagonal
mass-matrix adaptation starts from the Laplace variances.

PyMC API used. Public and documented: :meth:`pymc.Model.initial_point`, :meth:`pymc.Model.logp_dlogp_function`
(``ravel_inputs=True``: one function of the flat vector of ``model.value_vars``, in that order, each raveled),
:meth:`pymc.Model.compile_fn`, :attr:`pymc.Model.unobserved_value_vars`, :class:`pymc.NUTS` (its ``potential``
argument) and ``initvals``/``step`` of :func:`pymc.sample`. One class is public by name but not in PyMC's API
reference: :class:`pymc.step_methods.hmc.quadpotential.QuadPotentialDiagAdapt` (in the module's ``__all__``; it is
what :func:`pymc.init_nuts` builds for ``init="adapt_diag"``). Nothing public adapts a diagonal mass matrix from a
given initial diagonal (``pm.NUTS(scaling=...)`` fixes it), so it is used as it is, pinned by
``tests/bayes/test_initialization.py``: signature ``QuadPotentialDiagAdapt(n, initial_mean, initial_diag,
initial_weight, ..., rng=None)``, checked with PyMC 5.28.5. The mode search compiles its own logp-and-gradient
function and :class:`pymc.NUTS` compiles another (reusing the step's, a private attribute, would save about 0.5 s at
d = 3072 with 500 inputs); the start points, the mass matrix and hence the draws are the same either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

__all__ = ["INITIAL_WEIGHT", "laplace_start"]

#: Weight, in draws, of the Laplace variances against the tuning draws in the mass-matrix adaptation (PyMC's own
#: initialisers use 10).
INITIAL_WEIGHT = 10


def laplace_start(model: pm.Model, chains: int, seed: int | np.random.Generator | None = None,
                  **nuts_kwargs: Any) -> tuple[list[dict[str, np.ndarray]], pm.NUTS]:
    """Start points and a NUTS step for ``model`` from a Laplace approximation in the sampler's space.

    Parameters
    ----------
    model : pymc.Model
        A model with continuous free variables only (every model of :mod:`sawdist.bayes`).
    chains : int
        Number of start points.
    seed : int, numpy.random.Generator or None
        Seed of the jitter (and of the potential, which :func:`pymc.sample` reseeds per chain): the same seed gives
        the same start points.
    **nuts_kwargs
        Passed to :class:`pymc.NUTS` (``target_accept``, ``max_treedepth``, ...).

    Returns
    -------
    points : list of dict
        One start per chain, keyed by free variable name in the variables' own (untransformed) space, for
        ``pymc.sample(initvals=...)``: the mode plus Normal(0, (sd/2)^2) jitter in the sampler's space, sd the
        Laplace standard deviation capped at 1, so that chains are dispersed enough for R-hat to mean something.
    step : pymc.NUTS
        NUTS over ``model.value_vars`` whose diagonal mass-matrix adaptation starts at the mode with variances
        ``min(1, 1 / -H_ii)`` (weight :data:`INITIAL_WEIGHT` draws); a coordinate whose curvature is not positive
        and finite gets variance 1.

    Examples
    --------
    >>> from sawdist.bayes import convergence_model, simulate_summary
    >>> from sawdist.bayes.initialization import laplace_start
    >>> model = convergence_model(simulate_summary(dim=64, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0))
    >>> points, step = laplace_start(model, chains=2, seed=0)
    >>> len(points), sorted(points[0]) == sorted(v.name for v in model.free_RVs)
    (2, True)
    >>> idata = pm.sample(50, tune=50, chains=2, cores=1, step=step, initvals=points, model=model,
    ...                   random_seed=0, progressbar=False)  # doctest: +SKIP
    """
    from scipy.optimize import minimize

    value_vars = model.value_vars
    start = model.initial_point()
    shapes = [np.shape(start[v.name]) for v in value_vars]
    splits = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]
    x0 = np.concatenate([np.ravel(start[v.name]) for v in value_vars]).astype(np.float64)

    def unravel(x):
        return {v.name: np.asarray(part, dtype=start[v.name].dtype).reshape(shape)
                for v, part, shape in zip(value_vars, np.split(x, splits), shapes)}

    logp_dlogp = model.logp_dlogp_function(value_vars, ravel_inputs=True)
    logp_dlogp.set_extra_values({})  # every value variable is a gradient variable: no extra inputs

    def neg(x):
        value, grad = logp_dlogp(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -value, -grad

    res = minimize(neg, x0, jac=True, method="L-BFGS-B", options={"maxiter": 5000})
    mode = res.x
    n = mode.size
    h = 1e-5 * np.maximum(1.0, np.abs(mode))
    diag = np.empty(n)
    for i in range(n):
        e = np.zeros(n)
        e[i] = h[i]
        diag[i] = (neg(mode + e)[1][i] - neg(mode - e)[1][i]) / (2.0 * h[i])
    # Laplace variances, at most 1: never wider than PyMC's own default start (a unit mass matrix, jitter within
    # +-1). A nearly flat direction at the mode (a scale parameter whose mode sits at its boundary, sigma -> 0 in
    # the sampler's log space) has curvature ~1e-12: its "variance" of ~1e12 would throw the jittered starts to
    # absurd points ("Bad initial energy") and tell the adaptation nothing true. Non-positive or non-finite
    # curvature also gets 1.
    var = np.where(np.isfinite(diag) & (diag > 1.0), 1.0 / np.where(diag > 1.0, diag, 1.0), 1.0)
    gen = np.random.default_rng(seed)
    # One compiled map from the sampler's space to the free variables' own values (untransformed), for all chains.
    names = {rv.name for rv in model.free_RVs}
    outs = [v for v in model.unobserved_value_vars if v.name in names]
    to_values = model.compile_fn(outs, inputs=value_vars, point_fn=True, on_unused_input="ignore")
    points = []
    for _ in range(chains):
        x = mode + 0.5 * np.sqrt(var) * gen.standard_normal(n)
        points.append({v.name: np.asarray(value) for v, value in zip(outs, to_values(unravel(x)))})
    potential = QuadPotentialDiagAdapt(n, mode, var, INITIAL_WEIGHT, rng=gen)
    step = pm.NUTS(vars=value_vars, potential=potential, model=model, **nuts_kwargs)
    return points, step
