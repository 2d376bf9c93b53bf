"""The Laplace start of NUTS: chains around the posterior mode, mass-matrix adaptation from the Hessian there.

The posterior scales of the convergence models span orders of magnitude (the slope is known to 1e-4 at d = 3072, the
input effects to 1e-2), so NUTS started with a unit mass matrix spends most of its tuning on deep trees.
:func:`laplace_start` finds the mode in the sampler's (transformed) space with L-BFGS, takes the diagonal of the
Hessian there by central differences of the gradient (random probes above 2000 parameters:
:func:`laplace`), and returns start points and a NUTS step whose diagonal mass-matrix adaptation
starts from the Laplace variances. Variables can be held at given values during the search (``fixed``): the joint
mode of centred random effects and their scale sits at scale 0, the funnel's neck, when each effect is weakly
determined, and :func:`~sawdist.bayes.fit_convergence` holds that scale off it.

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

from typing import TYPE_CHECKING, Any

import numpy as np
import pymc as pm
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import ArrayLike

__all__ = ["INITIAL_WEIGHT", "laplace", "laplace_point", "laplace_start"]

#: Weight, in draws, of the Laplace variances against the tuning draws in the mass-matrix adaptation (PyMC's own
#: initialisers use 10).
INITIAL_WEIGHT = 10


def laplace_start(model: pm.Model, chains: int, seed: int | np.random.Generator | None = None, *,
                  fixed: Mapping[str, ArrayLike] | None = None,
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
    fixed : dict, optional
        Free variables (by name) held at the values given (in their own space) during the mode search: the start is
        then the mode of the others given them; the Laplace variances are taken there for every variable, and the
        held ones are jittered too. For a hierarchical scale whose joint mode with its effects sits at 0.
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
    value_vars = model.value_vars
    x0, held, start = laplace_point(model, fixed, value_vars, argument="fixed")
    shapes = [np.shape(start[v.name]) for v in value_vars]
    splits = np.cumsum([int(np.prod(shape)) for shape in shapes])[:-1]

    def unravel(x):
        return {v.name: np.asarray(part, dtype=start[v.name].dtype).reshape(shape)
                for v, part, shape in zip(value_vars, np.split(x, splits), shapes)}

    logp_dlogp = model.logp_dlogp_function(value_vars, ravel_inputs=True)
    logp_dlogp.set_extra_values({})  # every value variable is a gradient variable: no extra inputs
    mode, var = laplace(logp_dlogp, x0, held)
    n = mode.size
    # Laplace variances, at most 1: never wider than PyMC's own default start (a unit mass matrix, jitter within
    # +-1). A nearly flat direction at the mode (a scale parameter whose mode sits at its boundary, sigma -> 0 in
    # the sampler's log space) has curvature ~1e-12: its "variance" of ~1e12 would throw the jittered starts to
    # absurd points ("Bad initial energy") and tell the adaptation nothing true. Non-positive or non-finite
    # curvature also gets 1.
    var = np.minimum(var, 1.0)
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


#: Up to this many parameters the Laplace variances come from one central difference per coordinate (as
#: laplace_start); above, from _HESSIAN_PROBES random probes.
_EXACT_HESSIAN_MAX = 2000
_HESSIAN_PROBES = 16


def laplace(logp_dlogp: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: ArrayLike,
            fixed: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mode of a log-density and the diagonal of the inverse Hessian there, in the sampler's flat space.

    ``logp_dlogp(x) -> (logp, grad)``; the approximation of :func:`laplace_start` (L-BFGS-B from ``x0``, central
    differences of the gradient with step ``1e-5 max(1, |x|)``, variance 1 where the curvature is not positive and
    finite), on any compiled function (each sampler's own). Above 2000 parameters the diagonal of the Hessian is the
    average of ``z * (H z)`` over 16 Rademacher probes z (32 gradients instead of 2n). ``fixed``, a boolean mask
    over ``x0``, holds those coordinates at ``x0`` during the mode search: the point returned is then the mode of
    the others given them (:func:`laplace_point`), and the variances cover every coordinate.
    """
    from scipy.optimize import minimize

    def neg(x):
        value, grad = logp_dlogp(x)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(x)
        return -float(value), -np.asarray(grad, dtype=np.float64)

    x0 = np.asarray(x0, dtype=np.float64)
    free = np.ones(x0.size, dtype=bool) if fixed is None else ~np.asarray(fixed, dtype=bool)

    def neg_free(y):
        x = x0.copy()
        x[free] = y
        value, grad = neg(x)
        return value, grad[free]

    mode = x0.copy()
    if free.any():
        mode[free] = minimize(neg_free, x0[free], jac=True, method="L-BFGS-B", options={"maxiter": 5000}).x
    n = mode.size
    h = 1e-5 * np.maximum(1.0, np.abs(mode))
    diag = np.empty(n)
    if n <= _EXACT_HESSIAN_MAX:
        for i in range(n):
            e = np.zeros(n)
            e[i] = h[i]
            diag[i] = (neg(mode + e)[1][i] - neg(mode - e)[1][i]) / (2.0 * h[i])
    else:
        # n coordinate probes cost 2n gradients (50 s for 10^4 parameters): average z * (H z) over Rademacher
        # probes z instead, unbiased for the diagonal; the models here are nearly diagonal (inputs interact
        # only through the population parameters), so a few probes give every variance to a few per cent
        gen = np.random.default_rng(0)
        diag[:] = 0.0
        for _ in range(_HESSIAN_PROBES):
            z = gen.choice([-1.0, 1.0], size=n)
            diag += z * (neg(mode + h * z)[1] - neg(mode - h * z)[1]) / (2.0 * h)
        diag /= _HESSIAN_PROBES
    var = np.where(np.isfinite(diag) & (diag > 0), 1.0 / np.where(diag > 0, diag, 1.0), 1.0)
    return mode, var


def laplace_point(model: pm.Model, fixed: Mapping[str, ArrayLike] | None = None, value_vars: Sequence | None = None,
                  argument: str = "laplace_fixed") -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Where the Laplace start's mode search begins: ``(x0, mask, point)``.

    ``point`` is :meth:`pymc.Model.initial_point` (keyed by value variable, in the sampler's space) with the free
    variables named in ``fixed`` at the values given (their own space); ``x0`` is its flat vector over
    ``value_vars`` (default ``model.value_vars``) and ``mask`` marks the coordinates of ``fixed`` (:func:`laplace`'s
    ``fixed``). The model is left as it was (PyMC cannot compute the log-likelihood of a model with initial values).
    ``argument`` names ``fixed`` in the error for a name that is not a free variable.
    """
    fixed = dict(fixed or {})
    rvs = _held_variables(model, fixed, argument)
    value_vars = model.value_vars if value_vars is None else list(value_vars)
    previous = {rv: model.rvs_to_initial_values.get(rv) for rv in rvs.values()}
    try:
        for name, value in fixed.items():
            model.set_initval(rvs[name], np.asarray(value, dtype=np.float64))
        point = model.initial_point()
    finally:
        for rv, value in previous.items():
            model.set_initval(rv, value)
    x0 = np.concatenate([np.ravel(point[v.name]) for v in value_vars]).astype(np.float64)
    mask = np.concatenate([np.full(np.size(point[v.name]), model.values_to_rvs[v].name in fixed)
                           for v in value_vars])
    return x0, mask, point


def _held_variables(model: pm.Model, fixed: Mapping[str, ArrayLike], argument: str = "laplace_fixed") -> dict:
    """The free variables of ``model`` named in ``fixed`` (name -> variable), or a ValueError that names
    ``argument`` and the first name that is not one."""
    rvs = {rv.name: rv for rv in model.free_RVs}
    unknown = set(fixed) - set(rvs)
    if unknown:
        raise ValueError(f"'{argument}' must name free variables of the model, got {min(unknown)!r}.")
    return {name: rvs[name] for name in fixed}
