"""Fitting the convergence model: NUTS from the Laplace start, the sampler rule, and the H2 comparison of shared and
separate means.

The model is :func:`~sawdist.bayes.model.convergence_model` (derivation in docs/theory/bayesian.md); the start is
:func:`~sawdist.bayes.initialization.laplace_start`.

**The sampler rule** (:func:`sampler_diagnostics`, the one place it is stated): a fit is *reliable* when, over the
law's parameters alpha, beta and sigma of every family (:data:`LAW_PARAMETERS`), the largest rank-normalised split
R-hat is at most 1.01 (:data:`RHAT_MAX`), the smallest bulk effective sample size is at least 400
(:data:`ESS_BULK_MIN`; Vehtari et al. 2021 ask for 100 per chain, and the default is 4 chains) and no transition
diverged after tuning. A fit that breaks it makes :func:`fit_convergence` warn once
(:class:`SamplerDiagnosticsWarning`, one sentence) instead of PyMC's several messages, and the report's verdict of a
finding that rests on it is "UNRELIABLE (sampler)".
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .design import check_summary
from .model import DEFAULT_PRIORS, model_from_design
from .samplers import sample

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd

    from .design import ArchitectureLike

__all__ = ["ESS_BULK_MIN", "LAW_PARAMETERS", "RETRY_TARGET_ACCEPT", "RHAT_MAX", "CalibrationWarning",
           "SamplerDiagnostics", "SamplerDiagnosticsWarning", "compare_shared_mean", "fit_convergence",
           "sampler_diagnostics"]

#: The sampler rule (module docstring): largest R-hat allowed, smallest bulk ESS, over these parameters.
RHAT_MAX = 1.01
ESS_BULK_MIN = 400
LAW_PARAMETERS = ("alpha", "beta", "sigma")
#: The smallest ``target_accept`` of :func:`fit_convergence`'s second attempt (its ``retry``).
RETRY_TARGET_ACCEPT = 0.95


class CalibrationWarning(UserWarning):
    """A fit asked for the calibrated likelihood of a summary that has no seed-level moments to calibrate it."""


class SamplerDiagnosticsWarning(UserWarning):
    """A Bayesian fit broke the sampler rule (:func:`sampler_diagnostics`): its posterior is not to be relied on."""


@dataclasses.dataclass(frozen=True)
class SamplerDiagnostics:
    """The diagnostics of one fit that the sampler rule reads (:func:`sampler_diagnostics`).

    Attributes
    ----------
    rhat_max : float
        Largest rank-normalised split R-hat over :data:`LAW_PARAMETERS` (NaN when it cannot be computed).
    ess_bulk_min : float
        Smallest bulk effective sample size over the same parameters.
    divergences : int
        Divergent transitions after tuning, all chains.
    chains, draws : int
        The posterior's chains and draws per chain.
    """

    rhat_max: float
    ess_bulk_min: float
    divergences: int
    chains: int
    draws: int

    @property
    def problems(self) -> list[str]:
        """What breaks the rule, in words (empty when the fit is reliable); a NaN statistic breaks it."""
        out = []
        if not self.rhat_max <= RHAT_MAX:
            out.append(f"max R-hat {self.rhat_max:.3f} > {RHAT_MAX:g}")
        if not self.ess_bulk_min >= ESS_BULK_MIN:
            out.append(f"min bulk ESS {self.ess_bulk_min:.0f} < {ESS_BULK_MIN}")
        if self.divergences > 0:
            out.append(f"{self.divergences} divergent transition{'s' if self.divergences > 1 else ''}")
        return out

    @property
    def reliable(self) -> bool:
        """True when the fit meets the sampler rule."""
        return not self.problems

    @property
    def geometry_broken(self) -> bool:
        """True when a divergence, or chains that disagree (R-hat beyond the rule, or NaN) and mix slowly (bulk ESS
        short of the rule), break the rule: what another parametrisation changes. A bulk ESS short of the rule
        alone asks for more draws; an R-hat beyond it alone, for fresh chains (:attr:`rhat_alone`)."""
        return self.divergences > 0 or (not self.rhat_max <= RHAT_MAX and not self.rhat_alone)

    @property
    def rhat_alone(self) -> bool:
        """True when R-hat alone breaks the rule while the chains mix well by the rule's own measure (no divergence,
        bulk ESS at least :data:`ESS_BULK_MIN`): chains that disagree by chance for their length, which fresh chains
        of the same parametrisation settle and another parametrisation does not (:func:`fit_convergence`'s retry)."""
        return (self.divergences == 0 and self.ess_bulk_min >= ESS_BULK_MIN and math.isfinite(self.rhat_max)
                and self.rhat_max > RHAT_MAX)

    def summary(self) -> str:
        """One line for a report: 'max R-hat 1.004, min bulk ESS 812, 0 divergences (alpha, beta, sigma; 4 chains x
        300 draws): meets the sampler rule'."""
        verdict = "meets the sampler rule" if self.reliable else "breaks the sampler rule (" + ", ".join(
            self.problems) + ")"
        return (f"max R-hat {self.rhat_max:.3f}, min bulk ESS {self.ess_bulk_min:.0f}, {self.divergences} "
                f"divergences ({', '.join(LAW_PARAMETERS)}; {self.chains} chains x {self.draws} draws): {verdict}")

    def message(self) -> str:
        """The one-sentence warning of a fit that breaks the rule."""
        return (f"The Bayesian fit did not converge reliably ({', '.join(self.problems)}; the rule asks for R-hat <= "
                f"{RHAT_MAX:g}, bulk ESS >= {ESS_BULK_MIN} and no divergences), so its intervals are not to be "
                f"trusted: fit again with more tuning and draws (e.g. tune=1000, draws=1000) and 4 chains.")


def sampler_diagnostics(idata: az.InferenceData) -> SamplerDiagnostics:
    """The sampler rule's statistics of a fit of :func:`fit_convergence` (module docstring for the rule).

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` holding :data:`LAW_PARAMETERS` and, when the sampler records them, ``sample_stats``
        with ``diverging``.

    Returns
    -------
    SamplerDiagnostics
        ``.reliable`` says whether the fit meets the rule, ``.problems`` what breaks it.
    """
    import arviz as az

    post = getattr(idata, "posterior", None)
    missing = [name for name in LAW_PARAMETERS if post is None or name not in post]
    if missing:
        raise ValueError(f"'idata' must have a posterior with {', '.join(LAW_PARAMETERS)}, got none for "
                         f"{missing[0]!r}.")
    names = list(LAW_PARAMETERS)
    rhat = az.rhat(idata, var_names=names)
    ess = az.ess(idata, var_names=names, method="bulk")
    values = [float(rhat[v].max()) for v in names]
    rhat_max = math.nan if any(math.isnan(v) for v in values) else max(values)
    values = [float(ess[v].min()) for v in names]
    ess_min = math.nan if any(math.isnan(v) for v in values) else min(values)
    stats = getattr(idata, "sample_stats", None)
    divergences = int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else 0
    return SamplerDiagnostics(rhat_max, ess_min, divergences, int(post.sizes["chain"]), int(post.sizes["draw"]))


def fit_convergence(summary: xr.Dataset, law: str = "power", *, shared_mean: bool = True,
                    architecture: ArchitectureLike = None, priors: dict | None = None, centered: bool | str = True,
                    calibrate: bool | float | Any = True, random_slope: bool | str = "auto", init: str = "auto",
                    retry: bool = True, sampler: str | None = None, adjust_slope: bool = True,
                    **sample_kwargs: Any) -> az.InferenceData:
    r"""Sample the convergence model with NUTS and return an :class:`arviz.InferenceData`.

    Parameters
    ----------
    summary, law, shared_mean, architecture, priors
        As in :func:`~sawdist.bayes.convergence_model`; the summary is checked once
        (:func:`~sawdist.bayes.design.check_summary`) and the model built from its design.
    centered : bool or "auto"
        As in :func:`~sawdist.bayes.convergence_model` (default True, the centred input effects); ``"auto"`` chooses
        from the data (:func:`sawdist.bayes.calibration.choose_centered`: centred when the likelihood pins each input's
        a_x down more tightly than the inputs spread, else non-centred). ``"auto"`` is not the default yet: its
        threshold rests on two measured designs (centred stuck at a ratio of 0.25 with 1,000 inputs and w = 0.0075;
        non-centred mixing worse than centred at 0.20 with 30 inputs and w = 1, R-hat 1.039 against <= 1.01 in 4 x 300
        draws).
    calibrate : bool, float or array_like over families
        True (default): temper each family's likelihood by the weight w <= 1 measured from the seed-level moments of
        the summary (:func:`sawdist.bayes.calibration.likelihood_weight`: the smaller of the Gram diagonal's and the
        score check's, docs/bayes.md "Calibration"), so that the intervals stay honest when the directions vary more
        than a vMF with isotropic tangent noise would. False: the vMF likelihood as it is (w = 1). A number or one
        per family: that w. A summary without the moments (from before they were added) is fitted with w = 1 and a
        :class:`CalibrationWarning`.
    random_slope : bool or "auto"
        Input-specific slopes b_x ~ Normal(0, tau) (:func:`~sawdist.bayes.convergence_model`). ``"auto"`` (default):
        when Cochran's test of equal slopes across inputs rejects at 1 % in some family
        (:func:`sawdist.bayes.calibration.choose_random_slope`, on the moment estimates with the calibrated variance),
        for the laws that have a slope and at least 2 capacities; otherwise one slope per family. Without random slopes
        beta's interval is far too narrow when the inputs' slopes differ (coverage 28 % of 95 % in
        ``benchmarks/calibration.py``).
    init : {"auto", "laplace", "pymc"}
        ``"auto"`` (default): ``"laplace"``, except for a model with input slopes, which starts with ``"pymc"``: the
        joint mode of a hierarchical slope sits at tau -> 0, and chains started there stayed in the funnel's neck
        (R-hat 2.08, 24 divergences, 302 s at 100 inputs, 4 seeds, d = 768; with ``"pymc"`` R-hat 1.004, bulk ESS
        913, 19 s). ``"laplace"``: start the chains around the posterior mode and the mass-matrix adaptation from the
        diagonal of the inverse Hessian there (:func:`~sawdist.bayes.initialization.laplace_start`; its jitter is
        seeded by ``random_seed``, so the same seed gives the same draws); with centred input effects, the mode of
        the rest given sigma held at :func:`~sawdist.bayes.calibration.input_spread` (the joint mode sits at
        sigma -> 0, the funnel's neck, where each a_x is weakly determined); ``"pymc"``: PyMC's own
        ``jitter+adapt_diag``. Ignored when ``step`` or ``initvals`` is given. What each sampler takes from the
        Laplace start: :mod:`sawdist.bayes.samplers`.
    retry : bool
        True (default): when the fit's geometry breaks the rule (a divergence, or R-hat above 1.01 with a bulk ESS
        short of 400: :attr:`SamplerDiagnostics.geometry_broken`) and it has at least 400 draws in all (fewer
        cannot meet the rule), sample again with the other parametrisation of the input effects (centred <->
        non-centred) and ``target_accept`` at least :data:`RETRY_TARGET_ACCEPT` (0.95), from a seed derived from
        ``random_seed``; with input slopes, if that fit breaks the rule too, once more with the slopes'
        parametrisation switched as well. When R-hat alone breaks the rule while the chains mix well (no
        divergence, bulk ESS at least 400: :attr:`SamplerDiagnostics.rhat_alone`), sample again once with the same
        parametrisation and ``target_accept`` from another seed: the chains disagree by chance for their length
        (R-hat 1.004-1.013 over five seeds of one fit with bulk ESS 877-1,069 in 2 x 400 draws), and another
        parametrisation only slowed down (1,000 inputs: tree depth 9-10, 281-572 s against 14-22 s, bulk ESS 8-56,
        ``benchmarks/retry.py``). A bulk ESS short of 400 alone is not retried: more draws fix it. The first fit
        that meets the rule is kept (else the one with the smallest R-hat, with the warning below). Every attempt
        samples the same posterior; the others are discarded because their draws are not to be relied on. No
        parametrisation suits every design: centred input effects make a funnel where each input's intercept is
        weakly determined (10 inputs at d = 64; 4 seeds with w = 0.06), non-centred ones mix worse where the data
        pin each intercept down (``benchmarks/calibration.py``, RESULTS.md "Calibration"). False: one fit, as
        sampled. Ignored when ``step`` is given.
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"} or None
        The NUTS implementation (:func:`sawdist.bayes.samplers.sample`); None (default): the fastest installed one
        for this fit (:func:`sawdist.bayes.samplers.default_sampler`). Every sampler returns the same groups with
        the same dims.
    adjust_slope : bool
        True (default): with the power law, the shared mean, one slope per family and each family its own
        architecture, give beta the width of its sandwich, the scatter of the inputs' own scores
        (:mod:`sawdist.bayes.sandwich`): each draw is moved about the posterior mean to a Student-t of scale f times
        the posterior's sd and (inputs - 1) degrees of freedom, f^2 = :func:`~sawdist.bayes.sandwich.slope_sandwich`'s
        ratio, and ``alpha``, ``kappa``, ``mean_resultant_length`` and ``mu_concentration`` move with it. The one
        weight w tempers the slope by the Gram diagonal's need, which under anisotropic tangent noise left beta's
        intervals up to 1.4x too wide (calibration study: 69 % coverage of the 50 % interval; docs/bayes.md,
        "The slope's own width"). The draws as sampled stay in ``beta_sampled`` and ``alpha_sampled``. False: the
        posterior as sampled.
    **sample_kwargs
        Passed to :func:`pymc.sample` with ``sampler="pymc"`` (``draws``, ``tune``, ``chains``, ``cores``,
        ``random_seed``, ...); the other samplers take ``draws``, ``tune``, ``chains``, ``cores``, ``random_seed``,
        ``progressbar``, ``target_accept``, ``max_treedepth``, ``idata_kwargs`` and ``nuts_sampler_kwargs``.
        ``progressbar`` defaults to False. ``tune`` keeps PyMC's default of 1000; after the Laplace start, 300
        tuning steps gave the same R-hat and effective sample sizes in 0.6x the sampling time on the power-law
        benchmark at d = 3072 (``benchmarks/bayes_convergence.py --tune 300``), and the analyses use 300.
        ``compute_convergence_checks`` defaults to False: PyMC's own checks (several log messages) are replaced by
        the sampler rule below.

    Warns
    -----
    SamplerDiagnosticsWarning
        Once, in one sentence, when the fit returned breaks the sampler rule (module docstring;
        :func:`sampler_diagnostics`): max R-hat over alpha, beta and sigma above 1.01, min bulk ESS below 400, or a
        divergence (after the retry, with ``retry=True``).

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with ``alpha``, ``beta`` (dim family), ``sigma``, ``kappa`` and ``mean_resultant_length``
        (family, input, capacity), ``mu_concentration``; ``log_likelihood["directions"]`` (architecture, input), the
        pointwise log-likelihood with each input's effects as sampled (for leave-one-input-out, integrate them out
        with :func:`sawdist.bayes.loo.loo_inputs`: plain ``az.loo`` on it reports Pareto k > 0.7).
        ``posterior.attrs`` record the law, d and whether the mean is shared, and the calibration:
        ``sawdist_likelihood_weight`` (w per family), ``sawdist_calibrated`` (1 when w was measured from the data),
        ``sawdist_effective_dimension``, ``sawdist_variance_ratio`` and ``sawdist_score_variance_ratio`` (per
        family, when measured; :class:`sawdist.bayes.calibration.Calibration`),
        ``sawdist_slope_adjusted`` (1 when beta was given its sandwich's width, ``adjust_slope``; then
        ``sawdist_slope_variance_ratio`` and ``sawdist_slope_dof`` per family, and ``beta_sampled`` and
        ``alpha_sampled`` in the posterior), ``sawdist_random_slope`` (1 with input slopes),
        ``sawdist_slope_test_p`` (per family, when ``"auto"`` ran the test), ``sawdist_centered_slope`` (the input
        slopes' parametrisation: :attr:`sawdist.bayes.calibration.SlopeHeterogeneity.centered`),
        ``sawdist_centered`` (the input effects' parametrisation of the fit returned), ``sawdist_attempts`` (1, 2
        or 3 after a retry), ``sawdist_target_accept`` (when given or raised by the retry) and, after a retry,
        ``sawdist_failed_attempts`` (each failed fit's parametrisation, target_accept and what broke the rule,
        joined by "; "), ``sawdist_retry`` (``"parametrisation"``, or ``"fresh chains"`` when R-hat alone broke the
        rule), ``sawdist_retry_target_accept`` (when the retries set one) and ``sawdist_kept_attempt`` (1, 2 or 3).

    Examples
    --------
    >>> import sawdist
    >>> from sawdist.bayes import fit_convergence, simulate_summary
    >>> summary = simulate_summary(dim=64, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0)
    >>> idata = fit_convergence(summary, draws=100, tune=100, chains=1, random_seed=0)  # doctest: +SKIP
    """
    if init not in ("auto", "laplace", "pymc"):
        raise ValueError(f"'init' must be 'auto', 'laplace' or 'pymc', got {init!r}.")
    design = check_summary(summary, architecture)
    weight, attrs = _calibration(summary, design, calibrate)
    if isinstance(centered, str):
        if centered != "auto":
            raise ValueError(f"'centered' must be True, False or 'auto', got {centered!r}.")
        from .calibration import choose_centered

        centered = choose_centered(summary, weight, design.dim)[0]
    if isinstance(random_slope, str) and random_slope != "auto":
        raise ValueError(f"'random_slope' must be True, False or 'auto', got {random_slope!r}.")
    slope_attrs, centered_slope = {}, None
    if random_slope is not False and law != "monotone" and len(design.capacities) >= 2:
        from .calibration import choose_random_slope

        chosen, test = choose_random_slope(summary.sel(family=design.families), weight, design.dim)
        if random_slope == "auto":
            random_slope = chosen
            slope_attrs["sawdist_slope_test_p"] = [float(p) for p in test.p_value]
        # the input slopes centred on beta where the data pin each one down within their spread (as the intercepts)
        centered_slope = test.centered
        slope_attrs["sawdist_centered_slope"] = int(centered_slope)
    # "auto" left here: a law without a slope, or one capacity; True with the monotone law is refused by the model
    random_slope = False if random_slope == "auto" else bool(random_slope)
    sample_kwargs.setdefault("compute_convergence_checks", False)  # the sampler rule below speaks instead
    sample_kwargs.setdefault("chains", 4)
    if init == "auto":
        init = "pymc" if random_slope else "laplace"
    attrs = {"sawdist_law": law, "sawdist_dim": design.dim, "sawdist_shared_mean": int(shared_mean),
             "sawdist_random_slope": int(random_slope), "sawdist_init": init, "sawdist_slope_adjusted": 0, **attrs,
             **slope_attrs}

    spread = None
    if init == "laplace":
        from .calibration import input_spread

        spread = input_spread(summary.sel(family=design.families), design.dim, law)

    def attempt(centered, centered_slope, **kwargs):
        model = model_from_design(design, law, shared_mean=shared_mean, priors=priors, centered=centered,
                                  likelihood_weight=weight, random_slope=random_slope, centered_slope=centered_slope)
        fixed = None
        if centered and spread is not None and np.all(np.isfinite(spread) & (spread > 0)):
            # The joint mode of centred effects and their scale sits at sigma -> 0 (the funnel's neck) when each
            # a_x is weakly determined: chains started there stayed (R-hat 2.05, 1,710 divergences, digits with
            # w = 0.069). Hold sigma at the moment estimates' spread, which errs above it, and start from the
            # mode of the rest given that.
            fixed = {"sigma": spread}
        idata = sample(model, sampler, init=init, laplace_fixed=fixed, **kwargs)
        idata.posterior.attrs.update({**attrs, "sawdist_centered": int(centered), "sawdist_attempts": 1})
        if random_slope:
            idata.posterior.attrs["sawdist_centered_slope"] = int(centered_slope)
        if kwargs.get("target_accept") is not None:
            idata.posterior.attrs["sawdist_target_accept"] = float(kwargs["target_accept"])
        return idata, sampler_diagnostics(idata)

    def described(centered, centered_slope, kwargs, checked):
        slopes = f" (input slopes {'' if centered_slope else 'non-'}centred)" if random_slope else ""
        return (f"{'' if centered else 'non-'}centred input effects{slopes}, target_accept "
                f"{kwargs.get('target_accept', 'default')}: {', '.join(checked.problems)}")

    plan = (bool(centered), centered_slope)
    idata, diagnostics = attempt(*plan, **sample_kwargs)
    # A broken geometry is retried with another parametrisation, R-hat alone with fresh chains; a bulk ESS short of
    # the rule alone is not (it asks for more draws, which the warning says). Fewer draws in all than the rule's ESS
    # cannot meet it whatever the geometry (a short exploratory fit): no retry either.
    enough = diagnostics.chains * diagnostics.draws >= ESS_BULK_MIN
    fresh_chains = diagnostics.rhat_alone
    if (diagnostics.geometry_broken or fresh_chains) and enough and retry and "step" not in sample_kwargs:
        if fresh_chains:
            # Chains that mix well and disagree by chance: the same parametrisation from another seed. Switching
            # it where the data pin the intercepts down took 572 s at tree depth 10 for a bulk ESS of 56.
            others, target_accept = [plan], sample_kwargs.get("target_accept")
        else:
            # The other parametrisation of the intercepts; with input slopes, then of the slopes too (their rule's
            # threshold missed at slope_sd = 0.12 tau: non-centred slopes gave R-hat 1.06, centred ones 1.003).
            others = [(not plan[0], plan[1])] + ([(not plan[0], not plan[1])] if random_slope else [])
            target_accept = max(RETRY_TARGET_ACCEPT, sample_kwargs.get("target_accept") or 0.0)
        fits, failed, kwargs = [(idata, diagnostics)], [described(*plan, sample_kwargs, diagnostics)], sample_kwargs
        for n, other in enumerate(others, start=1):
            kwargs = {**sample_kwargs, "random_seed": _retry_seed(sample_kwargs.get("random_seed"), n)}
            if target_accept is not None:
                kwargs["target_accept"] = target_accept
            fits.append(attempt(*other, **kwargs))
            if fits[-1][1].reliable:
                break
            failed.append(described(*other, kwargs, fits[-1][1]))
        kept = next((k for k, (_, checked) in enumerate(fits) if checked.reliable),
                    min(range(len(fits)), key=lambda k: np.nan_to_num(fits[k][1].rhat_max, nan=np.inf)))
        idata, diagnostics = fits[kept]
        idata.posterior.attrs.update({"sawdist_attempts": len(fits), "sawdist_failed_attempts": "; ".join(failed),
                                      "sawdist_retry": "fresh chains" if fresh_chains else "parametrisation",
                                      "sawdist_kept_attempt": kept + 1})
        if target_accept is not None:
            idata.posterior.attrs["sawdist_retry_target_accept"] = float(target_accept)
    if not diagnostics.reliable:
        warnings.warn(diagnostics.message(), SamplerDiagnosticsWarning, stacklevel=2)
    if adjust_slope and law == "power" and shared_mean and not random_slope and design.trivial_groups \
            and len(design.capacities) >= 2:
        _adjust_slope(idata, design, weight, priors)
    return idata


def _adjust_slope(idata, design, weight, priors):
    """Give beta its sandwich's width in place (``adjust_slope`` of :func:`fit_convergence`)."""
    from .sandwich import _sandwich_arrays, adjust_slope

    loc, scale = (priors or {}).get("beta", DEFAULT_PRIORS["power"]["beta"])
    sandwich = _sandwich_arrays(design.gram, design.count, design.dim, design.capacities, weight,
                                (float(loc), float(scale)), design.families)
    order = np.array([int(design.slot_family[a, 0]) for a in range(len(design.architectures))])
    post = idata.posterior
    moved = adjust_slope(post, sandwich, np.log(design.capacities.astype(np.float64)), float(design.dim),
                         groups=(design.group_gram, order))
    for name in moved.data_vars:
        post[name] = moved[name]
    post.attrs.update({"sawdist_slope_adjusted": 1,
                       "sawdist_slope_variance_ratio": [float(v) for v in sandwich.variance_ratio],
                       "sawdist_slope_dof": [float(v) for v in sandwich.dof]})


def _retry_seed(random_seed, attempt: int):
    """The seed of :func:`fit_convergence`'s ``attempt``-th retry: None stays None, anything else gives another int
    for each attempt."""
    if random_seed is None:
        return None
    return int(np.random.default_rng(random_seed).integers(2**31, size=attempt)[-1])


def _calibration(summary, design, calibrate):
    """(w per family, posterior attrs) for ``calibrate`` of :func:`fit_convergence`."""
    F = len(design.families)
    if calibrate is True:
        from .calibration import MOMENT_VARIABLES, likelihood_weight

        if not all(v in summary.variables for v in MOMENT_VARIABLES):
            warnings.warn("The summary has no seed-level moments (contrast_norm_product, contrast_cross_square, "
                          "contrast_radial), so the likelihood is not calibrated (w = 1) and its intervals may be "
                          "too narrow: summarise the dataset again with sawdist.summarize.", CalibrationWarning,
                          stacklevel=3)
            return np.ones(F), {"sawdist_likelihood_weight": [1.0] * F, "sawdist_calibrated": 0}
        cal = likelihood_weight(summary.sel(family=design.families), design.dim)
        return cal.weight, {"sawdist_likelihood_weight": [float(x) for x in cal.weight], "sawdist_calibrated": 1,
                            "sawdist_effective_dimension": [float(x) for x in cal.effective_dimension],
                            "sawdist_variance_ratio": [float(x) for x in cal.variance_ratio],
                            "sawdist_score_variance_ratio": [float(x) for x in cal.score_ratio]}
    if calibrate is False or calibrate is None:
        return np.ones(F), {"sawdist_likelihood_weight": [1.0] * F, "sawdist_calibrated": 0}
    w = np.broadcast_to(np.asarray(calibrate, dtype=np.float64), (F,)).copy()
    return w, {"sawdist_likelihood_weight": [float(x) for x in w], "sawdist_calibrated": 0}


def compare_shared_mean(summary: xr.Dataset, law: str = "power", *, architecture: ArchitectureLike = None,
                        priors: dict | None = None, centered: bool = True, sampler: str | None = None,
                        max_refits: int = 10, **sample_kwargs: Any) -> pd.DataFrame:
    """H2 as a model comparison: the shared-mean model against one mean direction per capacity.

    Both models are fitted with :func:`fit_convergence` (same law, priors, likelihood weight and sampler settings)
    and compared by leave-one-input-out with each input's effects integrated out
    (:func:`sawdist.bayes.loo.loo_inputs`: PSIS, and an exact refit without the input where PSIS's Pareto k is too
    large). PSIS-LOO on the fits' own pointwise log-likelihood is not used: it keeps each input's effect, which only
    that input informs, and its k exceeds 0.7 (docs/bayes.md, "Comparing models").

    Parameters
    ----------
    summary, law, architecture, priors, centered
        As in :func:`fit_convergence`.
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"} or None
        As in :func:`fit_convergence` (the same for both fits and their refits).
    max_refits : int
        At most this many exact refits per model (default 10).
    **sample_kwargs
        Passed to :func:`fit_convergence` for both fits.

    Returns
    -------
    pandas.DataFrame
        :func:`sawdist.bayes.loo.compare_loo`'s table, rows ``"shared"`` and ``"separate"``, best first.
    """
    from .loo import compare_loo, loo_inputs

    weight = _calibration(summary, check_summary(summary, architecture), True)[0]
    results = {}
    for name, shared in (("shared", True), ("separate", False)):
        def fit(data, shared=shared, random_slope="auto"):
            # the weight of the whole summary also for the refits: every fit of the comparison is tempered alike
            return fit_convergence(data, law, shared_mean=shared, architecture=architecture, priors=priors,
                                   centered=centered, calibrate=weight, random_slope=random_slope, sampler=sampler,
                                   **sample_kwargs)

        idata = fit(summary)
        slopes = bool(idata.posterior.attrs["sawdist_random_slope"])  # the refits keep the model of the fit
        results[name] = loo_inputs(idata, summary, architecture=architecture,
                                   refit=lambda data, fit=fit, slopes=slopes: fit(data, random_slope=slopes),
                                   max_refits=max_refits)
    return compare_loo(results)
