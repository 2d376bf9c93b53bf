r"""Leave-one-input-out for the convergence fits, with each input's own effects integrated out.

Why not PSIS-LOO on the fit's pointwise log-likelihood. The pointwise term at input x is
:math:`\log p(\text{data}_x \mid a_x, \theta)`, and the input effect :math:`a_x` (with random slopes also
:math:`b_x`) is informed by input x alone: leaving x out moves :math:`a_x` from its posterior back to its
population distribution, the importance ratios are heavy-tailed and Pareto's k exceeds 0.7 (on the digits run, for
most inputs). What a held-out input needs is the predictive density of a *new* input, whose effect is unknown:

.. math:: q_x(\theta) = \int p(\text{data}_x \mid e, \theta)^{w}\, \mathcal N(e;\, \theta)\, de ,

with :math:`e` the input's effects, :math:`\mathcal N(e;\theta)` their population distribution
(:math:`a \sim \mathcal N(\alpha_\text{ref}, \sigma)`, :math:`b \sim \mathcal N(0, \tau)`) and w the likelihood
weight the fit used (:mod:`.calibration`). The posterior of the global parameters with the effects integrated out is
:math:`\pi(\theta) \prod_x q_x(\theta)`; the fit's draws of :math:`\theta` are draws from it. PSIS-LOO with
:math:`\log q_x` as the pointwise log-likelihood is therefore leave-one-input-out for a new input, and since one of
many inputs barely moves :math:`\theta`, k stays small. The scores are on the scale of the tempered likelihood (w
log p): both models of a comparison share w, and the standard error of a difference comes from its spread over
inputs, the random units.

Integration. At each input the effects are whitened by their posterior mean m and covariance
:math:`\Sigma = LL^\top` there, :math:`e = m + Lu`, and each coordinate stretched, :math:`u = \sinh v`; the integral
is the trapezoid rule on a uniform grid in v, :math:`|v| \le V`, spacing h. For a smooth integrand that vanishes
at the ends the trapezoid rule converges geometrically (Poisson summation): with the integrand analytic in the strip
:math:`|\operatorname{Im} v| < a` its error is about :math:`\exp(-2\pi a/h)`. A Gaussian in u stays analytic for
:math:`a = \pi/4`: 2e-11 relative at h = 0.2. The sinh stretch reaches :math:`|u| = \sinh V` = 18 with 37 nodes
and keeps the rule accurate for the exponential (log-linear) tails the likelihood has at small d, where a uniform
grid of 8 standard deviations cut 3e-4 of the mass. Given :math:`\theta` the effects sit where their marginal
posterior does, up to a fraction of its spread, because the inputs pin :math:`\theta` down far better than one
input pins its effect; where they do not (few inputs), the next grid is centred and scaled by the integrand's own
moments on this one (up to :data:`MAX_PASSES` grids). Two estimates make the accuracy measured rather than assumed:
the same sum on every other node (spacing 2h) bounds the spacing error, and the outermost ring's decay, continued,
bounds the mass beyond the grid; their sum above :data:`ERROR_TOLERANCE` warns (:class:`IntegrationWarning`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy.special import gammaln, logsumexp

from ._kernels import fixed_order, kappa_from_mean_resultant_length, resultant_concentration
from .design import check_summary
from .model import _group_weight
from .sandwich import sampled_posterior

if TYPE_CHECKING:
    from collections.abc import Callable

    import arviz as az
    import pandas as pd

    from .design import ArchitectureLike

__all__ = ["InputLOO", "IntegrationWarning", "compare_loo", "integrate_input_effects", "loo_inputs"]

_LOG_2PI = math.log(2.0 * math.pi)

#: Grid of the trapezoid rule in v (u = sinh v) per number of integrated effects q: (spacing h, half-width V).
#: q = 1: 37 nodes reaching |u| = 18; q = 2 (random slopes, or two families of one architecture): 23 x 23 nodes.
GRIDS = {1: (0.2, 3.6), 2: (0.3, 3.3)}
#: Largest accepted error bound of a log q_x (natural log units): the spacing-2h check plus the mass beyond the grid.
ERROR_TOLERANCE = 1e-2
#: A relative mass beyond the grid, or an error bound of the rule on every other node, above these at some draw
#: makes the next grid (:data:`MAX_PASSES`).
TAIL_REGRID = 1e-10
SPACING_REGRID = 1e-4
#: Grids per integral at most: the first whitened by the effects' marginal posterior at the input, the next ones by
#: the moments of the integrand on the previous grid, while :data:`TAIL_REGRID` or :data:`SPACING_REGRID` is exceeded.
MAX_PASSES = 6
#: Elements of one work array (draws x inputs x nodes x slots): bounds memory to ~ 100 MB.
_CHUNK_ELEMENTS = 4_000_000


class IntegrationWarning(UserWarning):
    """The integral over an input's effects may be inaccurate (its spacing error or the mass beyond the grid)."""


def _posterior_attr(post, name, default=None):
    value = post.attrs.get(name, default)
    if value is None:
        raise ValueError(f"'idata' must come from sawdist.bayes.fit_convergence (its posterior has no {name!r}).")
    return value


def _thin(post: xr.Dataset, max_draws: int) -> xr.Dataset:
    """Every n-th draw of each chain, so that at most ``max_draws`` draws remain in all."""
    total = post.sizes["chain"] * post.sizes["draw"]
    step = max(1, math.ceil(total / max_draws))
    return post.isel(draw=slice(None, None, step))


def _effects(design, random_slope):
    """Per architecture: the (family, effect) pairs integrated at one input, in order."""
    out = []
    for g in range(len(design.architectures)):
        members = np.unique(design.slot_family[g][design.slot_family[g] >= 0])
        names = ["a", "b"] if random_slope else ["a"]
        out.append([(int(f), n) for f in members for n in names])
    return out


def _log_kappa_fn(post, design, law, f):
    """log kappa of family f at capacity index i from its effect values (a, b) and the draws' globals."""
    log_k = np.log(design.capacities.astype(np.float64))
    if law == "monotone":
        delta = post["delta"].values[..., f, :]  # (S, K-1)
        steps = np.concatenate([np.zeros(delta.shape[:-1] + (1,)), np.cumsum(delta, axis=-1)], axis=-1)
        return lambda a, b, i, s: a + steps[s, i][:, None, None]
    beta = post["beta"].values[..., f]
    c = log_k - float(np.mean(log_k))
    return lambda a, b, i, s: a + (beta[s][:, None, None] + b) * c[i]


def _loglik(design, law, shared, g, effect_values, kappa_fns, s, x):
    """Unweighted collapsed log-likelihood of architecture g at inputs x for draws s, at effect values.

    ``effect_values``: {(family, name): array (S, X, G)}; returns (S, X, G).
    """
    d = design.dim
    nu = 0.5 * d - 1.0
    kernel = fixed_order(nu)
    log_omega = math.log(2.0) + 0.5 * d * math.log(math.pi) - float(gammaln(0.5 * d))
    gram = design.group_gram[g][x]  # (X, J, J)
    count = design.group_count[g][x].astype(np.float64)  # (X, J)
    J = gram.shape[-1]
    kappas = []
    L_sum = 0.0
    for j in range(J):
        f = int(design.slot_family[g, j])
        if f < 0:
            kappas.append(None)
            continue
        i = int(design.slot_capacity[g, j])
        a = effect_values[(f, "a")]
        b = effect_values.get((f, "b"), 0.0)
        eta = kappa_fns[f](a, b, i, s)
        if law == "logit_mean_resultant_length":
            kappa = kappa_from_mean_resultant_length(nu, 1.0 / (1.0 + np.exp(-eta)))
        else:
            kappa = np.exp(eta)
        kappas.append(kappa)
        n_j = count[:, j][None, :, None]
        L_kappa = kernel(kappa)[0]
        if shared:
            L_sum = L_sum + n_j * L_kappa
        else:
            r = np.sqrt(np.maximum(gram[:, j, j], 0.0))[None, :, None]
            with np.errstate(over="ignore"):
                kr = kappa * r
            per_slot = (-0.5 * d * _LOG_2PI * (n_j - 1.0) - n_j * L_kappa + kernel(kr)[0] - log_omega)
            # kappa r overflowed with kappa finite: -inf, not L(inf) = +inf (collapsed_loglik)
            per_slot = np.where(np.isinf(kr) & np.isfinite(kappa), -np.inf, per_slot)
            L_sum = L_sum + np.where(n_j > 0, per_slot, 0.0)
    if not shared:
        return L_sum
    # s = sqrt(kappa' G kappa), scaled where the square overflows (resultant_concentration)
    slots = [j for j in range(J) if kappas[j] is not None]
    k_all = np.stack(np.broadcast_arrays(*[kappas[j] for j in slots]), axis=-1)  # (S, X, nodes, slots)
    g_k = sum(k_all[..., [i]] * gram[:, slots, j][None, :, None, :] for i, j in enumerate(slots))
    s = resultant_concentration(k_all, g_k)
    n = count.sum(axis=-1)[None, :, None]
    return -0.5 * d * _LOG_2PI * (n - 1.0) - L_sum + kernel(s)[0] - log_omega


def _log_prior(post, f, name, value, s):
    """log N(value; population distribution of the effect ``name`` of family f) for draws s."""
    if name == "a":
        loc = post["alpha_ref"].values[..., f][s][:, None, None]
        scale = post["sigma"].values[..., f][s][:, None, None]
    else:
        loc = 0.0
        scale = post["tau"].values[..., f][s][:, None, None]
    z = (value - loc) / scale
    return -0.5 * z * z - np.log(scale) - 0.5 * _LOG_2PI


class _Setup:
    """What the integrals of one fit need: its law, likelihood weight, design and the per-input grids."""

    def __init__(self, idata, summary, architecture):
        post = sampled_posterior(idata.posterior)
        self.law = str(_posterior_attr(post, "sawdist_law"))
        dim = int(_posterior_attr(post, "sawdist_dim"))
        self.shared = bool(int(_posterior_attr(post, "sawdist_shared_mean")))
        self.random_slope = bool(int(post.attrs.get("sawdist_random_slope", 0)))
        self.design = check_summary(summary, architecture)
        _check_match(post, self.design, dim)
        weight = np.asarray(post.attrs.get("sawdist_likelihood_weight", 1.0), dtype=np.float64)
        self.group_w = _group_weight(self.design, weight)
        self.effects = _effects(self.design, self.random_slope)
        flat = _flat(post)
        self.grids = []
        for g, eff in enumerate(self.effects):
            q = len(eff)
            if q not in GRIDS:
                per = 2 if self.random_slope else 1
                raise ValueError(f"integrating {q} effects per input (architecture {self.design.architectures[g]!r}: "
                                 f"{q // per} families{' with random slopes' if self.random_slope else ''}) is not "
                                 f"supported; at most 2.")
            h, V = GRIDS[q]
            n_side = int(round(V / h))
            v = h * np.array(list(itertools.product(range(-n_side, n_side + 1), repeat=q)), dtype=np.float64)
            # the effects' posterior mean and Cholesky factor at each input: (N, q), (N, q, q)
            draws = np.stack([flat[name].values[:, f, :] for f, name in eff], axis=-1)  # (S, N, q)
            m = draws.mean(axis=0)
            dev = draws - m
            cov = np.einsum("sni,snj->nij", dev, dev) / max(draws.shape[0] - 1, 1)
            cov += np.eye(q) * 1e-12 * np.maximum(np.trace(cov, axis1=1, axis2=2), 1e-300)[:, None, None]
            chol = np.linalg.cholesky(cov)
            self.grids.append({
                "h": h, "q": q, "u": np.sinh(v), "log_jacobian": np.log(np.cosh(v)).sum(axis=1),  # (G, q), (G,)
                "center": m, "chol": chol,  # (N, q), (N, q, q)
                "coarse": np.all(np.round(v / h).astype(int) % 2 == 0, axis=1),  # the nodes of spacing 2h
                "edge": np.abs(np.round(v / h)).max(axis=1) == n_side,  # the outermost ring of nodes
                "inner": np.abs(np.round(v / h)).max(axis=1) == n_side - 1,  # the ring inside it
            })

    def log_q(self, flat: xr.Dataset, inputs: np.ndarray) -> tuple[np.ndarray, float]:
        """log q_x at the draws of ``flat`` (sample, ...) for ``inputs`` (positions): (S, A, X), and its largest
        error bound (natural log units)."""
        design = self.design
        inputs = np.asarray(inputs)
        S = flat.sizes["sample"]
        kappa_fns = {f: _log_kappa_fn(flat, design, self.law, f) for f in range(len(design.families))}
        out = np.empty((S, len(design.architectures), len(inputs)))
        worst_error, worst_tail = 0.0, 0.0
        J = design.group_gram.shape[-1]
        for g, (eff, grid) in enumerate(zip(self.effects, self.grids)):
            u, h, q = grid["u"], grid["h"], grid["q"]
            chunk = max(1, _CHUNK_ELEMENTS // max(1, len(inputs) * len(u) * J))
            for start in range(0, S, chunk):
                s = np.arange(start, min(S, start + chunk))
                center, chol = _first_grid(flat, eff, grid["center"][inputs], grid["chol"][inputs], s)
                for attempt in range(MAX_PASSES):
                    nodes = center[:, :, None, :] + np.einsum("sxij,gj->sxgi", chol, u)  # (S, X, G, q)
                    vals = {key: nodes[..., i] for i, key in enumerate(eff)}
                    log_f = self.group_w[g] * _loglik(design, self.law, self.shared, g, vals, kappa_fns, s, inputs)
                    for (f, name), v in vals.items():
                        log_f = log_f + _log_prior(flat, f, name, v, s)
                    log_f = np.where(np.isnan(log_f), -np.inf, log_f)
                    log_g = log_f + grid["log_jacobian"]  # the integrand in v
                    total = logsumexp(log_g, axis=-1)
                    tail = _tail(log_g, grid, total)  # (S, X): the relative mass beyond the grid, estimated
                    rough = logsumexp(log_g[..., grid["coarse"]], axis=-1) + q * math.log(2.0)
                    with np.errstate(invalid="ignore"):
                        spacing = np.abs(total - rough)  # (S, X): the error of the rule on every other node
                        again = (tail > TAIL_REGRID) | ~(spacing <= SPACING_REGRID)
                    if attempt == MAX_PASSES - 1 or not np.any(again):
                        break
                    # Given this draw's globals the effects sit elsewhere, or spread wider or far narrower than
                    # their marginal posterior: centre and scale the next grid by the integrand's own moments on this
                    # one (plus Sheppard's h^2/12 of the grid's scale, so that a peak narrower than the spacing gets
                    # a grid about 1/sqrt(12) as wide, and the next one zooms in further).
                    weight = np.exp(log_g - log_g.max(axis=-1, keepdims=True))
                    weight /= weight.sum(axis=-1, keepdims=True)
                    mean = np.einsum("sxg,sxgi->sxi", weight, nodes)
                    dev = nodes - mean[:, :, None, :]
                    cov = (np.einsum("sxg,sxgi,sxgj->sxij", weight, dev, dev)
                           + (h * h / 12.0) * np.einsum("sxik,sxjk->sxij", chol, chol))
                    center, chol = mean, np.linalg.cholesky(cov)
                log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, X)
                out[s, g] = total + q * math.log(h) + log_det
                worst_error = max(worst_error, float(np.nanmax(np.where(np.isnan(spacing), np.inf, spacing))))
                worst_tail = max(worst_tail, float(np.nanmax(np.where(np.isnan(tail), np.inf, tail))))
        if not np.all(np.isfinite(out)):
            raise ValueError("the integrated log-likelihood is not finite at some draws and inputs; the fit's "
                             "posterior may hold non-finite draws.")
        # log(1 + tail) <= tail: the tail's share of the mass bounds what it adds to log q
        bound = worst_error + worst_tail
        if not bound <= ERROR_TOLERANCE:
            warnings.warn(f"the integral over the inputs' effects may be inaccurate: error bound {bound:.2g} (spacing "
                          f"{worst_error:.2g}, mass beyond the grid {worst_tail:.2g}; tolerance {ERROR_TOLERANCE:g}).",
                          IntegrationWarning, stacklevel=3)
        return out, bound


def _first_grid(flat, eff, m, chol, s):
    """Centre (S, X, q) and Cholesky factor (S, X, q, q) of each draw's first grid.

    The effects' marginal posterior N(m, Sigma) at the input, narrowed by this draw's population distribution
    N(mu_s, sd_s^2) coordinate by coordinate (the product of the two normals: the conditional of an effect is never
    wider than its population distribution). Without it a draw with a tiny spread (sigma or tau near 0, a funnel's
    neck) puts all of the integrand between two nodes of a grid sized for the marginal.
    """
    loc = np.stack([flat["alpha_ref"].values[s, f] if name == "a" else np.zeros(len(s)) for f, name in eff], axis=-1)
    sd = np.stack([flat["sigma" if name == "a" else "tau"].values[s, f] for f, name in eff], axis=-1)  # (S, q)
    marginal_sd = np.sqrt(np.einsum("xij,xij->xi", chol, chol))  # (X, q)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        prec = 1.0 / marginal_sd[None] ** 2 + 1.0 / sd[:, None, :] ** 2  # (S, X, q)
        center = (m[None] / marginal_sd[None] ** 2 + loc[:, None, :] / sd[:, None, :] ** 2) / prec
        shrink = 1.0 / np.sqrt(prec) / marginal_sd[None]
    ok = np.isfinite(center) & np.isfinite(shrink) & (shrink > 0)
    center = np.where(ok, center, m[None])
    shrink = np.where(ok, shrink, 1.0)
    return center, shrink[..., :, None] * chol[None]


def _tail(log_g, grid, total):
    """The mass beyond the grid relative to the mass on it, continuing the outermost ring's decay geometrically.

    r, the ratio of the outermost ring's sum to the next ring's, is the decay per step of v; the rings beyond would
    add edge * (r + r^2 + ...) = edge * r / (1 - r). In v the tails of a Gaussian or exponential integrand decay
    faster than geometrically, so this overestimates; r >= 1 (not decaying) gives inf.
    """
    edge = logsumexp(log_g[..., grid["edge"]], axis=-1)
    inner = logsumexp(log_g[..., grid["inner"]], axis=-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        log_r = edge - inner
        r = np.exp(np.minimum(log_r, 0.0))
        out = np.where(log_r < 0.0, np.exp(edge - total) * r / (1.0 - r), np.inf)
    return np.where(np.isfinite(total), out, np.inf)


def _flat(post: xr.Dataset) -> xr.Dataset:
    return post.stack(sample=("chain", "draw")).transpose("sample", ...)


def _check_match(post, design, dim):
    if dim != design.dim:
        raise ValueError(f"'summary' has d = {design.dim} but 'idata' was fitted at d = {dim}.")
    for name, values in (("family", design.families), ("input", design.inputs)):
        fitted = post[name].values if name in post.coords else None
        if fitted is None or len(fitted) != len(values) or not np.array_equal(fitted, values):
            raise ValueError(f"'summary' is not the summary 'idata' was fitted to: its {name} coordinates differ.")


def _check_max_draws(max_draws):
    if not isinstance(max_draws, (int, np.integer)) or isinstance(max_draws, bool) or max_draws < 1:
        raise ValueError(f"'max_draws' must be a positive integer, got {max_draws!r}.")


def integrate_input_effects(idata: az.InferenceData, summary: xr.Dataset, *, architecture: ArchitectureLike = None,
                            max_draws: int = 1000) -> az.InferenceData:
    r"""The fit's draws with each input's effects integrated out of its pointwise log-likelihood, for LOO over inputs.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`~sawdist.bayes.fit_convergence` (any law, shared or separate means, with or without random
        slopes; the likelihood weight it used is applied).
    summary : xarray.Dataset
        The summary it was fitted to.
    architecture : dict or sequence, optional
        As given to the fit.
    max_draws : int
        About this many posterior draws (every n-th of each chain, at least one per chain) enter the integrals
        (default 1000).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with the global parameters of the kept draws and ``log_likelihood["directions"]`` (chain,
        draw, architecture, input) = :math:`\log q_x(\theta)` (module docstring), for :func:`arviz.loo` and
        :func:`arviz.compare`. ``log_likelihood.attrs["sawdist_integration_error"]`` is the largest error bound of
        a :math:`\log q_x` (natural log units).

    Raises
    ------
    ValueError
        When ``idata`` is not a convergence fit of ``summary`` or an architecture has more than two effects per
        input (several families sharing a mean with random slopes).

    Warns
    -----
    IntegrationWarning
        When an error bound exceeds :data:`ERROR_TOLERANCE` or the integrand reaches the edge of the grid.

    Examples
    --------
    >>> import arviz as az
    >>> from sawdist.bayes import fit_convergence, simulate_summary
    >>> from sawdist.bayes.loo import integrate_input_effects
    >>> summary = simulate_summary(dim=64, capacities=[4, 16], n_inputs=10, n_seeds=4, rng=0)
    >>> idata = fit_convergence(summary, draws=200, tune=200, random_seed=0)  # doctest: +SKIP
    >>> az.loo(integrate_input_effects(idata, summary))  # doctest: +SKIP
    """
    import arviz as az

    _check_max_draws(max_draws)
    setup = _Setup(idata, summary, architecture)
    post = _thin(sampled_posterior(idata.posterior), int(max_draws))
    C, D = post.sizes["chain"], post.sizes["draw"]
    design = setup.design
    out, error = setup.log_q(_flat(post), np.arange(len(design.inputs)))
    loglik = xr.DataArray(out.reshape(C, D, len(design.architectures), len(design.inputs)),
                          dims=("chain", "draw", "architecture", "input"),
                          coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                  "architecture": design.architectures, "input": design.inputs},
                          attrs={"sawdist_integration_error": error})
    globals_ = [v for v in ("alpha_ref", "alpha", "beta", "delta", "sigma", "tau") if v in post]
    return az.InferenceData(posterior=post[globals_],
                            log_likelihood=xr.Dataset({"directions": loglik}, attrs=dict(loglik.attrs)))


@dataclasses.dataclass
class InputLOO:
    """Leave-one-input-out of one fit (:func:`loo_inputs`).

    Attributes
    ----------
    elpd : xarray.DataArray
        (architecture, input) expected log predictive density of each held-out input, on the scale of the tempered
        likelihood.
    pareto_k : xarray.DataArray
        (architecture, input) Pareto shape of PSIS (NaN where the input was refitted exactly).
    refitted : list
        Inputs left out by an exact refit (their PSIS k exceeded ``k_threshold``).
    k_threshold : float
        Above it PSIS is not trusted (ArviZ's rule: min(1 - 1/log10 S, 0.7) for S draws).
    integration_error : float
        Largest error bound of a log q_x.
    """

    elpd: xr.DataArray
    pareto_k: xr.DataArray
    refitted: list
    k_threshold: float
    integration_error: float

    @property
    def unreliable(self) -> int:
        """Number of (architecture, input) terms whose PSIS k exceeds the threshold and that were not refitted."""
        return int((self.pareto_k > self.k_threshold).sum())

    @property
    def total(self) -> float:
        return float(self.elpd.sum())

    @property
    def se(self) -> float:
        values = self.elpd.values.ravel()
        return float(np.sqrt(values.size * np.var(values, ddof=1))) if values.size > 1 else math.nan


def loo_inputs(idata: az.InferenceData, summary: xr.Dataset, *, architecture: ArchitectureLike = None,
               max_draws: int = 1000, refit: Callable[[xr.Dataset], az.InferenceData] | None = None,
               max_refits: int = 10) -> InputLOO:
    """Leave-one-input-out of a convergence fit: PSIS with each input's effects integrated out, exact where PSIS fails.

    Parameters
    ----------
    idata, summary, architecture, max_draws
        As in :func:`integrate_input_effects`.
    refit : callable, optional
        ``refit(summary_without_one_input) -> InferenceData``: the same fit (law, weight, priors, sampler settings)
        of a smaller summary. Inputs whose Pareto k exceeds the threshold are then left out exactly: the model is
        refitted without them and their log q_x averaged over the refit's draws. Without it they stay approximate
        and are counted by :attr:`InputLOO.unreliable`.
    max_refits : int
        At most this many refits (the inputs of largest k first).

    Returns
    -------
    InputLOO
    """
    import arviz as az

    _check_max_draws(max_draws)
    setup = _Setup(idata, summary, architecture)
    post = _thin(sampled_posterior(idata.posterior), int(max_draws))
    design = setup.design
    N = len(design.inputs)
    log_q, error = setup.log_q(_flat(post), np.arange(N))
    C, D = post.sizes["chain"], post.sizes["draw"]
    S = C * D
    k_threshold = min(1.0 - 1.0 / math.log10(S), 0.7) if S > 10 else 0.0
    ll = xr.DataArray(log_q.reshape(C, D, -1, N), dims=("chain", "draw", "architecture", "input"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the k > threshold warning: handled below
        result = az.loo(az.InferenceData(posterior=post[["alpha_ref"]],
                                         log_likelihood=xr.Dataset({"directions": ll})), pointwise=True)
    coords = {"architecture": design.architectures, "input": design.inputs}
    elpd = xr.DataArray(np.asarray(result.loo_i).reshape(-1, N), dims=("architecture", "input"), coords=coords)
    pareto_k = xr.DataArray(np.asarray(result.pareto_k).reshape(-1, N), dims=("architecture", "input"),
                            coords=coords)
    refitted = []
    if refit is not None:
        worst = pareto_k.max("architecture").values
        bad = [int(i) for i in np.argsort(-worst) if worst[i] > k_threshold][: int(max_refits)]
        for i in bad:
            keep = np.ones(N, bool)
            keep[i] = False
            other = refit(summary.isel(input=np.flatnonzero(keep)))
            flat_other = _flat(_thin(sampled_posterior(other.posterior), int(max_draws)))
            q_i, err_i = setup.log_q(flat_other, np.array([i]))
            elpd[:, i] = logsumexp(q_i[:, :, 0], axis=0) - math.log(q_i.shape[0])
            pareto_k[:, i] = np.nan
            error = max(error, err_i)
            refitted.append(design.inputs[i].item() if hasattr(design.inputs[i], "item") else design.inputs[i])
    return InputLOO(elpd, pareto_k, refitted, k_threshold, error)


def compare_loo(results: dict[str, InputLOO]) -> pd.DataFrame:
    """Compare fits by their leave-one-input-out elpd: the table of :func:`arviz.compare`'s main columns.

    Rows best first: ``elpd`` (total), ``se``, ``elpd_diff`` (to the best) and ``dse`` (the standard error of that
    paired difference over inputs, the random units), ``pareto_k_max``, ``unreliable`` (terms with k above the
    threshold, not refitted) and ``refitted`` (inputs left out exactly).
    """
    import pandas as pd

    if not results:
        raise ValueError("'results' must hold at least one InputLOO.")
    names = sorted(results, key=lambda n: -results[n].total)
    best = results[names[0]]
    rows = []
    for n in names:
        r = results[n]
        diff = (best.elpd - r.elpd).values.ravel()
        dse = float(np.sqrt(diff.size * np.var(diff, ddof=1))) if diff.size > 1 and n != names[0] else 0.0
        k = r.pareto_k.values
        rows.append({"elpd": r.total, "se": r.se, "elpd_diff": float(diff.sum()), "dse": dse,
                     "pareto_k_max": float(np.nanmax(k)) if np.isfinite(k).any() else math.nan,
                     "unreliable": r.unreliable, "refitted": len(r.refitted)})
    return pd.DataFrame(rows, index=pd.Index(names, name="model"))
