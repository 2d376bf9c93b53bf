"""The shared state of one analysis run: the dataset, options, and results computed once for several findings.

:class:`Context` computes lazily, and keeps, the pair statistics (:mod:`sawdist.analyses._pairs`, used by the
similarity, shared-mean and ensemble findings) and the Bayesian convergence fits (used by the shared-mean and
convergence findings), so a full run computes each once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import Progress

if TYPE_CHECKING:
    import os

    import arviz as az
    import pandas as pd
    import xarray as xr

    from sawdist.bayes.fitting import SamplerDiagnostics

    from ._pairs import PairStats
    from .models import ModelPool

__all__ = ["Context", "Options"]


@dataclasses.dataclass
class Options:
    """Options of the analyses (the ``[analyses]`` table of a ``sawdist run --config`` file).

    Attributes
    ----------
    alignment_threshold : float
        H2 holds when the bias-aware cos(mu_k1, mu_k2) of every pair of capacities is above this (95 % interval).
    architecture : dict, optional
        Family -> architecture label; families with one label are compared for a shared mean too.
    bayes : bool
        Fit the Bayesian convergence models (PyMC); False skips them (findings 3 and 4 then use the moment
        statistics only).
    bayes_inputs : int
        At most this many inputs (evenly spaced) enter the Bayesian fits.
    draws, tune, chains : int
        NUTS settings of every Bayesian fit (default 1000 draws after 300 tuning steps, 4 chains: the sampler rule's
        R-hat and bulk ESS, :func:`sawdist.bayes.fitting.sampler_diagnostics`, need several chains to be reliable).
    laws : list of str
        Laws of concentration compared by LOO (:data:`sawdist.bayes.LAWS`).
    ensemble_sizes : list of int, optional
        Ensemble sizes N (default 1, 2, 4, ... up to the number of seeds).
    ensemble_subsets : int
        Random subsets of seeds per ensemble size.
    transfer_epsilons : list of float
        Perturbation sizes eps: the RMS change per input feature, in units of the standardised input (the input
        moves by eps sqrt(d) along a unit direction).
    seed : int
        Random seed of subsets and samplers.
    """

    alignment_threshold: float = 0.9
    architecture: dict | None = None
    bayes: bool = True
    bayes_inputs: int = 100
    draws: int = 1000
    tune: int = 300
    chains: int = 4
    laws: list = dataclasses.field(default_factory=lambda: ["power", "logit_mean_resultant_length"])
    ensemble_sizes: list | None = None
    ensemble_subsets: int = 64
    transfer_epsilons: list = dataclasses.field(default_factory=lambda: [0.0, 0.125, 0.25, 0.5, 1.0, 2.0])
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict | None) -> Options:
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"'analyses' option {unknown[0]!r} is unknown; the options are {', '.join(sorted(names))}."
            )
        return cls(**values)


class Context:
    """Dataset, output directory, options and caches of one analysis run."""

    def __init__(self, ds: xr.Dataset, out_dir: str | os.PathLike[str], options: Options | None = None,
                 progress: Progress | None = None, models: ModelPool | None = None) -> None:
        self.ds = ds
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.options = options or Options()
        self.progress = progress or Progress(enabled=False)
        self.models = models
        self._pairs = None
        self._fits = {}
        self._diagnostics = {}
        self._summary = None
        self.sampler_warnings = {}

    @property
    def dim(self) -> int:
        return int(self.ds.sizes["feature"])

    @property
    def pairs(self) -> PairStats:
        if self._pairs is None:
            from ._pairs import pair_stats

            self._pairs = pair_stats(self.ds)
        return self._pairs

    @property
    def summary(self) -> xr.Dataset:
        """:func:`sawdist.summaries.summarize` of the inputs used by the Bayesian fits (every count >= 2)."""
        if self._summary is None:
            from sawdist.summaries import summarize

            valid = self.ds["valid"].sum("seed")
            ok = np.asarray((valid >= 2).all(("family", "capacity")).values)
            idx = np.flatnonzero(ok)
            n_max = int(self.options.bayes_inputs)
            if idx.size > n_max:
                idx = idx[np.linspace(0, idx.size - 1, n_max).round().astype(int)]
            self._summary = summarize(self.ds.isel(input=idx))
        return self._summary

    def fit(self, law: str, shared: bool) -> az.InferenceData:
        """The Bayesian convergence fit (cached) of one law, with a shared or separate mean directions."""
        key = (law, shared)
        if key not in self._fits:
            from sawdist.bayes import fit_convergence

            o = self.options
            self.progress.say(f"  Bayesian fit: law {law!r}, {'shared' if shared else 'separate'} mean "
                              f"({o.chains} chains x {o.draws} draws, {self.summary.sizes['input']} inputs)")
            import warnings

            # Sampler warnings (divergences that overflow, the sampler rule's one sentence, ...) are diagnostics,
            # not errors: they are recorded, and the findings apply the sampler rule to the fits they rest on.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._fits[key] = fit_convergence(
                    self.summary, law, shared_mean=shared, architecture=o.architecture, draws=o.draws,
                    tune=o.tune, chains=o.chains, cores=1, random_seed=o.seed, progressbar=False,
                )
            # PyTensor's note that it found no BLAS concerns speed only.
            self.sampler_warnings[key] = sorted({f"{w.category.__name__}: {w.message}" for w in caught
                                                 if "BLAS" not in str(w.message)})
            checked = self.diagnostics(law, shared)
            if not checked.reliable:
                self.progress.say(f"  the fit breaks the sampler rule: {', '.join(checked.problems)}")
        return self._fits[key]

    def diagnostics(self, law: str, shared: bool) -> SamplerDiagnostics:
        """The sampler rule's diagnostics (:func:`sawdist.bayes.fitting.sampler_diagnostics`) of a fit (cached)."""
        key = (law, shared)
        if key not in self._diagnostics:
            from sawdist.bayes.fitting import sampler_diagnostics

            self._diagnostics[key] = sampler_diagnostics(self.fit(law, shared))
        return self._diagnostics[key]

    def compare(self, fits: dict[str, az.InferenceData]) -> tuple[pd.DataFrame, list[str]]:
        """:func:`arviz.compare` by PSIS-LOO, with its warnings turned into notes for the report.

        Returns the comparison table and a list of notes (e.g. Pareto k > 0.7: the LOO estimate is unreliable for
        some inputs).
        """
        import warnings

        import arviz as az

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = az.compare(fits, ic="loo")
        notes = []
        if any("Pareto" in str(w.message) for w in caught):
            notes.append("PSIS-LOO warned that the Pareto shape k exceeds 0.7 for some inputs: those inputs are "
                         "influential and the elpd differences are approximate")
        return table, notes
