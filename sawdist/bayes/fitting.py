"""Fitting the convergence model: NUTS from the Laplace start, and the H2 comparison of shared and separate means.

The model is :func:`~sawdist.bayes.model.convergence_model` (derivation in docs/theory/bayesian.md); the start is
:func:`~sawdist.bayes.initialization.laplace_start`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

from .design import check_summary
from .model import model_from_design
from .samplers import sample

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd

    from .design import ArchitectureLike

__all__ = ["compare_shared_mean", "fit_convergence"]


def fit_convergence(summary: xr.Dataset, law: str = "power", *, shared_mean: bool = True,
                    architecture: ArchitectureLike = None, priors: dict | None = None, centered: bool = True,
                    init: str = "laplace", sampler: str | None = None, **sample_kwargs: Any) -> az.InferenceData:
    r"""Sample the convergence model with NUTS and return an :class:`arviz.InferenceData`.

    Parameters
    ----------
    summary, law, shared_mean, architecture, priors, centered
        As in :func:`~sawdist.bayes.convergence_model`; the summary is checked once
        (:func:`~sawdist.bayes.design.check_summary`) and the model built from its design.
    init : {"laplace", "pymc"}
        ``"laplace"`` (default): start the chains around the posterior mode and the mass-matrix adaptation from the
        diagonal of the inverse Hessian there (:func:`~sawdist.bayes.initialization.laplace_start`; its jitter is
        seeded by ``random_seed``, so the same seed gives the same draws); ``"pymc"``: PyMC's own
        ``jitter+adapt_diag``. Ignored when ``step`` or ``initvals`` is given. What each sampler takes from the
        Laplace start: :mod:`sawdist.bayes.samplers`.
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"} or None
        The NUTS implementation (:func:`sawdist.bayes.samplers.sample`); None (default): the fastest installed one
        (:func:`sawdist.bayes.samplers.default_sampler`). Every sampler returns the same groups with the same dims.
    **sample_kwargs
        Passed to :func:`pymc.sample` with ``sampler="pymc"`` (``draws``, ``tune``, ``chains``, ``cores``,
        ``random_seed``, ...); the other samplers take ``draws``, ``tune``, ``chains``, ``cores``, ``random_seed``,
        ``progressbar``, ``target_accept``, ``max_treedepth``, ``idata_kwargs`` and ``nuts_sampler_kwargs``.
        ``progressbar`` defaults to False. ``tune`` keeps PyMC's default of 1000; after the Laplace start, 300
        tuning steps gave the same R-hat and effective sample sizes in 0.6x the sampling time on the power-law
        benchmark at d = 3072 (``benchmarks/bayes_convergence.py --tune 300``), and the analyses use 300.

    Returns
    -------
    arviz.InferenceData
        ``posterior`` with ``alpha``, ``beta`` (dim family), ``sigma``, ``kappa`` and ``mean_resultant_length``
        (family, input, capacity), ``mu_concentration``; ``log_likelihood["directions"]`` (architecture, input) for
        ``az.loo``.
        ``posterior.attrs`` record the law, d and whether the mean is shared (for reading only).

    Examples
    --------
    >>> import sawdist
    >>> from sawdist.bayes import fit_convergence, simulate_summary
    >>> summary = simulate_summary(dim=64, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0)
    >>> idata = fit_convergence(summary, draws=100, tune=100, chains=1, random_seed=0)  # doctest: +SKIP
    """
    if init not in ("laplace", "pymc"):
        raise ValueError(f"'init' must be 'laplace' or 'pymc', got {init!r}.")
    design = check_summary(summary, architecture)
    model = model_from_design(design, law, shared_mean=shared_mean, priors=priors, centered=centered)
    idata = sample(model, sampler, init=init, **sample_kwargs)
    idata.posterior.attrs.update({"sawdist_law": law, "sawdist_dim": design.dim,
                                  "sawdist_shared_mean": int(shared_mean)})
    return idata


def compare_shared_mean(summary: xr.Dataset, law: str = "power", *, architecture: ArchitectureLike = None,
                        priors: dict | None = None, centered: bool = True, ic: str = "loo", sampler: str | None = None,
                        **sample_kwargs: Any) -> pd.DataFrame:
    """H2 as a model comparison: the shared-mean model against one mean direction per capacity.

    Both models are fitted with :func:`fit_convergence` (same law, priors and sampler settings) and compared by
    PSIS-LOO over inputs (the pointwise log-likelihood of all directions at one input).

    Parameters
    ----------
    summary, law, architecture, priors, centered
        As in :func:`fit_convergence`.
    ic : {"loo", "waic"}
        Information criterion of :func:`arviz.compare`.
    sampler : {"pymc", "nutpie", "numpyro", "blackjax"} or None
        As in :func:`fit_convergence` (the same for both fits).
    **sample_kwargs
        Passed to :func:`fit_convergence` for both fits.

    Returns
    -------
    pandas.DataFrame
        The :func:`arviz.compare` table, rows ``"shared"`` and ``"separate"``, best first.
    """
    import arviz as az

    fits = {
        name: fit_convergence(summary, law, shared_mean=shared, architecture=architecture, priors=priors,
                              centered=centered, sampler=sampler, **sample_kwargs)
        for name, shared in (("shared", True), ("separate", False))
    }
    return az.compare(fits, ic=ic)
