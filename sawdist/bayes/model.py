r"""The convergence model: von Mises–Fisher directions with the mean direction integrated out.

The derivation is in docs/theory/bayesian.md; the arrays the model reads come from :mod:`.design`, the
sampler's start from :mod:`.initialization`, and the fit from :mod:`.fitting`.

For one family at input x, capacity k has n_k directions (seeds) with resultant R_k. With mu(x) uniform on the
sphere and concentrations kappa_k given, the likelihood of all directions at x is, in closed form,

.. math:: p = \prod_k C_d(\kappa_k)^{n_k} \; {}_0F_1(; d/2; \lVert S\rVert^2/4), \qquad
          S = \sum_k \kappa_k R_k, \qquad \lVert S\rVert^2 = \kappa^\top G \kappa,

because
:math:`\int e^{\mu^\top S} d\mu / \omega_d = 1/(\omega_d C_d(\lVert S\rVert)) = {}_0F_1(;d/2;\lVert S\rVert^2/4)`.
Written with the reduced logarithm :math:`L(\nu, x) = \log I_\nu(x) - \nu\log x` (nu = d/2 - 1) of
:mod:`.special_ops`,

.. math:: \log p = -\tfrac{d}{2}\log(2\pi)\,(n - 1) - \sum_k n_k L(\nu, \kappa_k)
          + L(\nu, \lVert S\rVert) - \log\omega_d,

with n = sum_k n_k. The data enter only through the K x K Gram matrix G and the counts, so the cost is
O(inputs x K^2) in any dimension. The conditional posterior of the mean direction is
:math:`\mu \mid \kappa, \text{data} \sim \mathrm{vMF}(S/\lVert S\rVert, \lVert S\rVert)`.

The "separate means" model (H2 false) gives every capacity its own mean direction:
:math:`\log p = \sum_k [\ldots]` with :math:`\lVert S\rVert` replaced by :math:`\kappa_k \lVert R_k\rVert`.

Laws of concentration against capacity (per family; inputs partially pooled, ``a_x ~ Normal(alpha_ref, sigma)``):

* ``"power"``: :math:`\log\kappa = a_x + \beta(\log k - \log k_\mathrm{ref})`, reported as
  :math:`\log\kappa = \alpha + \beta\log k` for the typical input (``alpha = alpha_ref - beta log k_ref``);
* ``"logit_mean_resultant_length"``: the same linear predictor for :math:`\operatorname{logit} m`, and
  :math:`\kappa = A_d^{-1}(m)`;
* ``"monotone"``: :math:`\log\kappa = a_x + c_k` with :math:`c_1 = 0` and positive increments ``delta``;
  ``alpha`` and ``beta`` are the intercept and slope of the line through the first and last capacities.

``k_ref`` is the geometric mean of the capacities (for ``"monotone"``, the smallest one): centring log k makes the
intercept and slope nearly uncorrelated a posteriori.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from ._collapsed_op import CollapsedSharedLoglik
from .collapsed_random import gram_random
from .design import Design, check_summary
from .special_ops import bessel_ratio, log_sphere_area, reduced_log_bessel_iv, vmf_kappa_from_mean_resultant_length

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

    from .design import ArchitectureLike

__all__ = ["DEFAULT_PRIORS", "LAWS", "collapsed_loglik", "convergence_model", "model_from_design"]

#: The laws of concentration against capacity that :func:`convergence_model` takes (module docstring).
LAWS = ("power", "logit_mean_resultant_length", "monotone")

#: Default priors (location and scale of Normal priors, scale of half-normal ones). ``alpha_ref`` of the power and
#: monotone laws is centred on log d: at kappa = d a von Mises–Fisher has m ~ 0.62 in high dimension, and a scale
#: of 2 spans m from ~0.02 to ~0.99.
DEFAULT_PRIORS = {
    "power": {"alpha_ref": ("log_d", 2.0), "beta": (0.0, 1.0), "sigma": 1.0},
    "logit_mean_resultant_length": {"alpha_ref": (0.0, 2.0), "beta": (0.0, 1.0), "sigma": 1.0},
    "monotone": {"alpha_ref": ("log_d", 2.0), "delta": 1.0, "sigma": 1.0},
}

#: Scale of the half-normal prior of ``tau``, the spread of the input slopes with ``random_slope=True`` (override
#: with ``priors={"tau": ...}``).
TAU_PRIOR_SCALE = 0.5

_LOG_2PI = float(np.log(2.0 * np.pi))


def collapsed_loglik(dim: int, shared: bool) -> Callable[..., pt.TensorVariable]:
    """The collapsed log-likelihood of all directions at one input, as a ``logp`` for :class:`pymc.CustomDist`.

    Parameters
    ----------
    dim : int
        The dimension d.
    shared : bool
        True: one mean direction shared by all slots (the closed form of the module docstring); False: one per slot
        (slots with a zero count add nothing).

    Returns
    -------
    callable
        ``logp(value, kappa, gram, count)``: the log-likelihood over the last axis of ``kappa`` and ``count`` (J
        slots) with ``gram`` (..., J, J), as a PyTensor graph; ``value`` is a placeholder (the data are fixed).
        With a shared mean and batched ``kappa`` (one more axis in ``gram`` than in ``kappa``) the value and its
        gradient run as one Op (:class:`~sawdist.bayes._collapsed_op.CollapsedSharedLoglik`), the same function.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.bayes.model import collapsed_loglik
    >>> R = np.array([[1.5, 0.0, 0.0], [0.0, 1.8, 0.0]])  # resultants of two capacities, two seeds each, d = 3
    >>> logp = collapsed_loglik(3, shared=True)
    >>> value = logp(None, np.array([1.0, 2.0]), R @ R.T, np.array([2.0, 2.0])).eval()
    >>> bool(np.isfinite(value))
    True
    """
    nu = 0.5 * dim - 1.0
    log_omega = log_sphere_area(float(dim))

    def logp(value, kappa, gram, count):
        kappa, gram, count = (pt.as_tensor_variable(v) for v in (kappa, gram, count))
        if shared and kappa.type.ndim + 1 == gram.type.ndim and count.type.ndim == kappa.type.ndim:
            # value and gradient in one C loop (see _collapsed_op); the graph below is the same function
            return CollapsedSharedLoglik(dim)(kappa, gram, count)[0]
        L_kappa = reduced_log_bessel_iv(nu, kappa)
        if shared:
            s = _resultant_concentration(kappa, gram)
            n = pt.sum(count, axis=-1)
            return (-0.5 * dim * _LOG_2PI * (n - 1.0) - pt.sum(count * L_kappa, axis=-1)
                    + reduced_log_bessel_iv(nu, s) - log_omega)
        r = pt.sqrt(pt.maximum(pt.diagonal(gram, axis1=-2, axis2=-1), 0.0))
        kr = kappa * r
        per_slot = (-0.5 * dim * _LOG_2PI * (count - 1.0) - count * L_kappa + reduced_log_bessel_iv(nu, kr)
                    - log_omega)
        # kappa r overflows while kappa does not (kappa within a factor r of the largest float, where a NUTS
        # trajectory can wander): L(inf) made the value +inf. It is about kappa (r - n) there, r < n: -inf instead.
        per_slot = pt.switch(pt.isinf(kr) & pt.lt(kappa, np.inf), -np.inf, per_slot)
        return pt.sum(pt.switch(pt.gt(count, 0), per_slot, 0.0), axis=-1)

    return logp


def _resultant_concentration(kappa, gram):
    """sqrt(kappa' G kappa) over the last axes as a graph, as m sqrt(u' G u) with u = kappa/m and m the largest
    concentration: the plain square overflows past kappa ~ 1e153, where a NUTS trajectory can wander (the fused
    Op's docstring, :mod:`sawdist.bayes._collapsed_op`), and the graph has no cheap "only where it overflows"."""
    m = pt.max(kappa, axis=-1)
    m = pt.switch(pt.gt(m, 0.0), m, 1.0)
    u = kappa / m[..., None]
    return m * pt.sqrt(pt.maximum(pt.sum(u[..., :, None] * gram * u[..., None, :], axis=(-1, -2)), 0.0))


def _prior(priors, law, name, log_d):
    """(loc, scale) or scale of the prior ``name`` of ``law``: the override in ``priors`` or the default."""
    value = priors.get(name, DEFAULT_PRIORS[law][name])
    if isinstance(value, tuple):
        loc, scale = value
        return (log_d if loc == "log_d" else float(loc)), float(scale)
    return float(value)


def convergence_model(summary: xr.Dataset, law: str = "power", *, shared_mean: bool = True,
                      architecture: ArchitectureLike = None, priors: dict | None = None,
                      centered: bool = True, likelihood_weight: ArrayLike = 1.0,
                      random_slope: bool = False, centered_slope: bool | None = None) -> pm.Model:
    r"""The collapsed vMF convergence model of a summary, as a :class:`pymc.Model`.

    Parameters
    ----------
    summary : xarray.Dataset
        Output of :func:`sawdist.summarize`: ``gram`` (family, input, capacity, capacity_b), ``count`` (family,
        capacity, input) with every count >= 2, capacities > 0, and ``n_features`` (or a ``feature`` dim).
    law : {"power", "logit_mean_resultant_length", "monotone"}
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
    likelihood_weight : float or array_like over families
        The power w in (0, 1] on each family's collapsed likelihood (a tempered likelihood; 1, the default, is the
        vMF likelihood as it is). :func:`~sawdist.bayes.fit_convergence` sets it from the data
        (:func:`sawdist.bayes.calibration.likelihood_weight`); families that share an architecture take the
        smallest of their weights.
    random_slope : bool
        Also let the slope vary by input (``"power"`` and ``"logit_mean_resultant_length"``): the linear predictor
        becomes ``a_x + (beta + b_x)(log k - log k_ref)`` with ``b_x ~ Normal(0, tau)`` (parametrised as the
        intercepts: free ``beta_input`` ~ Normal(beta, tau) when ``centered``, else free ``zb`` with
        ``b = tau zb``; deterministic ``b`` either way),
        ``tau ~ HalfNormal`` (prior scale ``priors["tau"]``, default 0.5). Without it, beta's
        interval is too narrow when the inputs' slopes differ (docs/bayes.md, "Calibration").
    centered_slope : bool, optional
        The parametrisation of the input slopes (default: as ``centered``).

    Returns
    -------
    pymc.Model
        Free variables ``alpha_ref``, ``beta`` (or ``delta``), ``sigma`` (dim family), ``a`` or ``z`` (family, input);
        deterministics ``a`` (when non-centred), ``alpha``, ``beta`` (monotone), ``kappa`` and
        ``mean_resultant_length`` (family, input, capacity) and, with a shared mean, ``mu_concentration``
        (architecture, input) = ``||S||``; the observed ``directions`` (architecture, input) whose pointwise
        log-likelihood is the collapsed one.

    Examples
    --------
    >>> import numpy as np, sawdist
    >>> from sawdist.bayes import convergence_model
    >>> summary = sawdist.bayes.simulate_summary(dim=64, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0)
    >>> model = convergence_model(summary, law="power")
    >>> sorted(model.named_vars)[:4]
    ['a', 'alpha', 'alpha_ref', 'beta']
    """
    _check_law(law)
    return model_from_design(check_summary(summary, architecture), law, shared_mean=shared_mean, priors=priors,
                             centered=centered, likelihood_weight=likelihood_weight, random_slope=random_slope,
                             centered_slope=centered_slope)


def _group_weight(design: Design, likelihood_weight) -> np.ndarray:
    """The likelihood weight of each architecture (the smallest of its families'), checked."""
    F = len(design.families)
    try:
        w = np.broadcast_to(np.asarray(likelihood_weight, dtype=np.float64), (F,))
    except ValueError:
        raise ValueError(f"'likelihood_weight' must be a number or one per family ({F}), got shape "
                         f"{np.shape(likelihood_weight)}.") from None
    if not np.all((w > 0) & (w <= 1)):
        raise ValueError(f"'likelihood_weight' must lie in (0, 1], got {np.asarray(w).tolist()!r}.")
    out = np.ones(len(design.architectures))
    for a in range(len(design.architectures)):
        members = design.slot_family[a][design.slot_family[a] >= 0]
        out[a] = w[np.unique(members)].min() if members.size else 1.0
    return out


def _check_law(law):
    if law not in LAWS:
        raise ValueError(f"'law' must be one of {', '.join(map(repr, LAWS))}, got {law!r}.")


def model_from_design(design: Design, law: str = "power", *, shared_mean: bool = True, priors: dict | None = None,
                      centered: bool = True, likelihood_weight: ArrayLike = 1.0,
                      random_slope: bool = False, centered_slope: bool | None = None) -> pm.Model:
    """The model of :func:`convergence_model` from a design already checked by :func:`~.design.check_summary`.

    :func:`~sawdist.bayes.fit_convergence` checks the summary once and keeps the design (its dimension and
    architectures) next to the model built here, instead of storing it on the model.

    Parameters
    ----------
    design : Design
        From :func:`~sawdist.bayes.design.check_summary` (the architectures are fixed there).
    law, shared_mean, priors, centered, likelihood_weight, random_slope, centered_slope
        As in :func:`convergence_model`.

    Returns
    -------
    pymc.Model
        As from :func:`convergence_model`.

    Examples
    --------
    >>> from sawdist.bayes import simulate_summary
    >>> from sawdist.bayes.design import check_summary
    >>> from sawdist.bayes.model import model_from_design
    >>> design = check_summary(simulate_summary(dim=64, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0))
    >>> model = model_from_design(design, "monotone")
    >>> sorted(v.name for v in model.free_RVs)
    ['a', 'alpha_ref', 'delta', 'sigma']
    """
    _check_law(law)
    if not isinstance(design, Design):
        raise TypeError(f"'design' must be a Design from check_summary, got {type(design).__name__}.")
    priors = {} if priors is None else dict(priors)
    unknown = set(priors) - set(DEFAULT_PRIORS[law]) - ({"tau"} if random_slope else set())
    if unknown:
        raise ValueError(f"'priors' for law {law!r} takes {', '.join(DEFAULT_PRIORS[law])}, got {min(unknown)!r}.")
    group_weight = _group_weight(design, likelihood_weight)
    K = len(design.capacities)
    if random_slope and law == "monotone":
        raise ValueError("'random_slope' needs law 'power' or 'logit_mean_resultant_length', got 'monotone'.")
    if law == "monotone" and K < 2:
        raise ValueError(f"'law' 'monotone' needs at least 2 capacities, got {K}.")
    d = design.dim
    log_d = float(np.log(d))
    log_k = np.log(design.capacities.astype(np.float64))
    coords = {"family": design.families, "input": design.inputs, "capacity": design.capacities,
              "architecture": design.architectures}
    if law == "monotone":
        coords["capacity_step"] = design.capacities[1:]

    with pm.Model(coords=coords) as model:
        loc, scale = _prior(priors, law, "alpha_ref", log_d)
        alpha_ref = pm.Normal("alpha_ref", loc, scale, dims="family")
        sigma = pm.HalfNormal("sigma", _prior(priors, law, "sigma", log_d), dims="family")
        if centered:
            a = pm.Normal("a", alpha_ref[:, None], sigma[:, None], dims=("family", "input"))
        else:
            z = pm.Normal("z", 0.0, 1.0, dims=("family", "input"))
            # recorded, so that the posterior has ``a`` whichever form fit_convergence(centered="auto") chose
            a = pm.Deterministic("a", alpha_ref[:, None] + sigma[:, None] * z, dims=("family", "input"))
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
            slope = beta[:, None, None]
            if random_slope:
                tau = pm.HalfNormal("tau", float(priors.get("tau", TAU_PRIOR_SCALE)), dims="family")
                if centered if centered_slope is None else centered_slope:
                    # As the intercepts: each input's slope is a child of beta (not beta + b with b ~ N(0, tau),
                    # whose likelihood is flat along beta + delta, b - delta: a ridge that NUTS crosses slowly).
                    beta_x = pm.Normal("beta_input", beta[:, None], tau[:, None], dims=("family", "input"))
                    b = pm.Deterministic("b", beta_x - beta[:, None], dims=("family", "input"))
                    slope = beta_x[:, :, None]
                else:
                    zb = pm.Normal("zb", 0.0, 1.0, dims=("family", "input"))
                    b = pm.Deterministic("b", tau[:, None] * zb, dims=("family", "input"))
                    slope = slope + b[:, :, None]
            eta = a[:, :, None] + slope * (log_k - k_ref)
        if law == "logit_mean_resultant_length":
            m = pm.math.sigmoid(eta)
            kappa = pm.Deterministic("kappa", vmf_kappa_from_mean_resultant_length(float(d), m),
                                     dims=("family", "input", "capacity"))
            pm.Deterministic("mean_resultant_length", m, dims=("family", "input", "capacity"))
        else:
            kappa = pm.Deterministic("kappa", pt.exp(eta if law == "power" else log_kappa),
                                     dims=("family", "input", "capacity"))
            pm.Deterministic("mean_resultant_length", bessel_ratio(0.5 * d - 1.0, kappa),
                             dims=("family", "input", "capacity"))

        if design.trivial_groups:
            order = [int(design.slot_family[a_, 0]) for a_ in range(len(design.architectures))]
            kappa_g = kappa if order == list(range(len(order))) else kappa[order]
        else:
            fam = np.where(design.slot_family >= 0, design.slot_family, 0)
            kappa_g = kappa[fam, :, design.slot_capacity]  # (A, J, N)
            kappa_g = pt.switch(pt.as_tensor(design.slot_family >= 0)[:, :, None], kappa_g, 1.0)
            kappa_g = kappa_g.dimshuffle(0, 2, 1)
        # C order: Numba embeds contiguous constants in its cached code, and refuses to cache a graph that holds a
        # strided one (the Gram matrices arrive transposed from the summary), recompiling it every time
        gram_data = np.ascontiguousarray(design.group_gram, dtype=np.float64)
        gram_g = pt.as_tensor(gram_data)
        count_g = pt.as_tensor(np.ascontiguousarray(design.group_count, dtype=np.float64))
        if shared_mean:
            pm.Deterministic("mu_concentration", _resultant_concentration(kappa_g, gram_g),
                             dims=("architecture", "input"))
        # The observed value is the data the likelihood sees, the Gram matrices (the counts are the design), so
        # that prior and posterior predictive draws are summaries (collapsed_random); slot = capacity when every
        # family is its own architecture, else the slot index of design.slot_family/slot_capacity.
        loglik = collapsed_loglik(d, shared_mean)
        slots = design.capacities if design.trivial_groups else np.arange(design.group_gram.shape[-1])
        model.add_coords({"slot": slots, "slot_b": slots})
        if np.all(group_weight == 1.0):
            def logp(gram, kappa, count):
                return loglik(gram, kappa, gram, count)
        else:
            w_g = pt.as_tensor(group_weight[:, None])  # (architecture, 1): the tempered likelihood

            def logp(gram, kappa, count):
                return w_g * loglik(gram, kappa, gram, count)
        pm.CustomDist("directions", kappa_g, count_g, logp=logp,
                      random=gram_random(d, shared_mean), signature="(j),(j)->(j,j)", observed=gram_data,
                      dims=("architecture", "input", "slot", "slot_b"))
    return model


