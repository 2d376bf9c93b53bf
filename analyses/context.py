"""The shared state of one analysis run: the dataset, options, and results computed once for several findings.

:class:`Context` computes lazily, and keeps, the one pass over the directions (:mod:`sawdist.analyses.blocks`: the
pair statistics of :mod:`sawdist.analyses._pairs`, the cosine laws' cosines, the ensemble curves and the summary of
the Bayesian fits' inputs, each stored chunk read once) and the Bayesian convergence fits (used by the shared-mean
and convergence findings), so a full run computes each once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._common import Progress

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import arviz as az
    import distributed
    import pandas as pd
    import xarray as xr

    from sawdist.bayes.fitting import SamplerDiagnostics
    from sawdist.bayes.loo import InputLOO

    from ._pairs import PairStats
    from .blocks import ScanResult
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
    """Dataset, output directory, options and caches of one analysis run.

    Parameters
    ----------
    ds : xarray.Dataset
        The saliency dataset, in memory or opened lazily (read block by block, :mod:`sawdist.analyses.blocks`).
    out_dir : path-like
    options : Options, optional
    progress : Progress, optional
    models : ModelPool, optional
    excluded : array_like (family, capacity, seed) of bool, optional
        Failed models (:mod:`sawdist.analyses.quality`): every read takes them as not valid.
    analyses : sequence of str, optional
        The analyses that will run (default all): the pass over the directions computes only what they need.
    memory : int, optional
        Working memory of one block of the pass, in bytes (default :data:`sawdist.analyses.blocks.DEFAULT_MEMORY`).
    client : distributed.Client, optional
        Run the blocks of the pass on this Dask cluster.
    """

    def __init__(self, ds: xr.Dataset, out_dir: str | os.PathLike[str], options: Options | None = None,
                 progress: Progress | None = None, models: ModelPool | None = None, *,
                 excluded: np.ndarray | None = None, analyses: Sequence[str] | None = None, memory: int | None = None,
                 client: distributed.Client | None = None) -> None:
        from .blocks import DEFAULT_MEMORY, check_memory

        self.ds = ds
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.options = options or Options()
        self.progress = progress or Progress(enabled=False)
        self.models = models
        shape = tuple(ds.sizes[d] for d in ("family", "capacity", "seed"))
        self.excluded = np.zeros(shape, bool) if excluded is None else np.asarray(excluded, bool).reshape(shape)
        self.analyses = None if analyses is None else tuple(analyses)
        self.memory = DEFAULT_MEMORY if memory is None else check_memory(memory)
        self.client = client
        self._scan = None
        self._pairs = None
        self._valid = None
        self._fits = {}
        self._diagnostics = {}
        self._loo = {}
        self.loo_warnings = {}
        self._summary = None
        self.sampler_warnings = {}

    @property
    def dim(self) -> int:
        return int(self.ds.sizes["feature"])

    def runs(self, name: str) -> bool:
        return self.analyses is None or name in self.analyses

    @property
    def valid(self) -> np.ndarray:
        """``valid`` (family, capacity, seed, input) in memory, failed models not valid."""
        if self._valid is None:
            v = np.asarray(self.ds["valid"].transpose("family", "capacity", "seed", "input").values, dtype=bool)
            self._valid = v & ~self.excluded[..., None]
        return self._valid

    @property
    def bayes_inputs(self) -> np.ndarray:
        """Positions of the inputs of the Bayesian fits: at most ``bayes_inputs`` of those where every family and
        capacity has 2 valid seeds, evenly spaced."""
        idx = np.flatnonzero((self.valid.sum(axis=2) >= 2).all(axis=(0, 1)))
        n_max = int(self.options.bayes_inputs)
        if idx.size > n_max:
            idx = idx[np.linspace(0, idx.size - 1, n_max).round().astype(int)]
        return idx

    def ensemble_sizes(self) -> tuple:
        """Ensemble sizes N per family: those of the options (default 1, 2, 4, ...) up to the number of valid small
        models at 90 % of the inputs (a dead network, whose gradients vanish everywhere, leaves fewer than n_seeds
        valid directions at every input)."""
        from .blocks import default_sizes

        out = []
        for f in range(self.valid.shape[0]):
            n_valid = self.valid[f, 0].sum(axis=0)
            n_max = max(1, int(np.floor(np.quantile(n_valid, 0.1))))
            out.append(tuple(int(s) for s in (self.options.ensemble_sizes or default_sizes(n_max)) if int(s) <= n_max))
        return tuple(out)

    @property
    def scan(self) -> ScanResult:
        """The one pass over the directions (:func:`sawdist.analyses.blocks.scan`), for the analyses that run."""
        if self._scan is None:
            from sawdist.io import source_text

            from . import blocks

            bayes = self.options.bayes and (self.runs("shared_mean") or self.runs("convergence"))
            K = self.ds.sizes["capacity"]
            spec = blocks.ScanSpec(
                *self.excluded.shape, self.dim, excluded=self.excluded,
                summary_inputs=self.bayes_inputs if bayes else None,
                cosines=self.runs("cosine_laws"),
                ensemble_sizes=self.ensemble_sizes() if self.runs("ensembles") and K >= 2 else None,
                ensemble_subsets=int(self.options.ensemble_subsets), seed=int(self.options.seed),
                source=source_text(self.ds))
            plan = blocks.plan_blocks(self.ds, self.memory)
            where = "on the Dask cluster" if self.client is not None else "in this process"
            self.progress.say(f"  one pass over the directions {where}: {len(plan.blocks)} block(s) of up to "
                              f"{plan.block_bytes / 2**20:.0f} MiB, each stored chunk read {plan.reads_per_chunk} "
                              f"time(s)")
            with self.progress.stage("one pass over the directions"):
                bar = self.progress.bar("blocks", len(plan.blocks))
                self._scan = blocks.scan(self.ds, spec, memory=self.memory, client=self.client, progress=bar)
        return self._scan

    @property
    def pairs(self) -> PairStats:
        if self._pairs is None:
            from ._pairs import PairStats

            res = self.scan
            families = [str(f) for f in np.asarray(self.ds["family"].values).tolist()]
            self._pairs = PairStats(families, np.asarray(self.ds["capacity"].values), res.rho, res.sums)
        return self._pairs

    @property
    def summary(self) -> xr.Dataset:
        """:func:`sawdist.summaries.summarize` of the inputs used by the Bayesian fits (:attr:`bayes_inputs`)."""
        if self._summary is None:
            summary = self.scan.summary
            if summary is None:  # the pass ran without the Bayesian fits' inputs (or none has 2 valid seeds)
                from sawdist.summaries import summarize

                from .blocks import read_block

                idx = self.bayes_inputs
                summary = summarize(read_block(self.ds.isel(input=idx), 0, idx.size, self._spec_for_reads())[0])
            self._summary = summary
        return self._summary

    def _spec_for_reads(self):
        from sawdist.io import source_text

        from .blocks import ScanSpec

        return ScanSpec(*self.excluded.shape, self.dim, excluded=self.excluded, source=source_text(self.ds))

    def read(self, family: int, inputs: np.ndarray | None = None,
             capacities: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Directions of one family (index) at some input and capacity positions, as
        :func:`sawdist.analyses._common.family_layout` gives them, with failed models not valid."""
        from ._common import family_layout

        U, V = family_layout(self.ds, self.ds["family"].values[family], inputs, capacities)
        ex = self.excluded[family]
        if capacities is not None:
            ex = ex[np.asarray(capacities)]
        if ex.any():
            V = V & ~ex[:, :, None]
            U[~V] = 0.0
        return U, V

    def fit(self, law: str, shared: bool) -> az.InferenceData:
        """The Bayesian convergence fit (cached) of one law, with a shared or separate mean directions."""
        key = (law, shared)
        if key not in self._fits:
            o = self.options
            self.progress.say(f"  Bayesian fit: law {law!r}, {'shared' if shared else 'separate'} mean "
                              f"({o.chains} chains x {o.draws} draws, {self.summary.sizes['input']} inputs)")
            # Sampler warnings (divergences that overflow, the sampler rule's one sentence, ...) are diagnostics,
            # not errors: they are recorded, and the findings apply the sampler rule to the fits they rest on.
            self._fits[key], caught = self._sample(self.summary, law, shared, True)
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

    def _sample(self, summary, law, shared, calibrate, random_slope="auto"):
        """fit_convergence with the run's options, its warnings recorded instead of shown."""
        import warnings

        from sawdist.bayes import fit_convergence

        o = self.options
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = fit_convergence(summary, law, shared_mean=shared, architecture=o.architecture, draws=o.draws,
                                    tune=o.tune, chains=o.chains, cores=1, random_seed=o.seed, progressbar=False,
                                    calibrate=calibrate, random_slope=random_slope)
        return idata, caught

    def loo(self, law: str, shared: bool) -> InputLOO:
        """Leave-one-input-out of a fit (cached): :func:`sawdist.bayes.loo.loo_inputs`, each input's effects
        integrated out, and an exact refit without the input where PSIS's Pareto k is too large."""
        key = (law, shared)
        if key not in self._loo:
            import warnings

            from sawdist.bayes.loo import loo_inputs

            idata = self.fit(law, shared)
            # the refits keep the fit's model: its likelihood weight and whether the inputs have their own slopes
            weight = list(idata.posterior.attrs["sawdist_likelihood_weight"])
            slopes = bool(idata.posterior.attrs["sawdist_random_slope"])

            def refit(summary):
                self.progress.say(f"  exact leave-one-input-out refit: law {law!r}, "
                                  f"{'shared' if shared else 'separate'} mean")
                return self._sample(summary, law, shared, weight, slopes)[0]

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._loo[key] = loo_inputs(idata, self.summary, architecture=self.options.architecture,
                                            refit=refit)
            self.loo_warnings[key] = sorted({str(w.message) for w in caught if "BLAS" not in str(w.message)})
        return self._loo[key]

    def compare(self, fits: dict[str, tuple[str, bool]]) -> tuple[pd.DataFrame, list[str]]:
        """Compare fits, named ``{name: (law, shared)}``, by leave-one-input-out (:meth:`loo`).

        Returns the table of :func:`sawdist.bayes.loo.compare_loo` and a list of notes for the report (exact
        refits, terms whose Pareto k stayed above the threshold, an inaccurate integral).
        """
        from sawdist.bayes.loo import compare_loo

        results = {name: self.loo(*key) for name, key in fits.items()}
        table = compare_loo(results)
        notes = []
        for name, key in fits.items():
            r = results[name]
            if r.refitted:
                notes.append(f"{name}: {len(r.refitted)} input(s) left out by an exact refit (Pareto k above "
                             f"{r.k_threshold:.2f})")
            if r.unreliable:
                notes.append(f"{name}: {r.unreliable} input(s) with Pareto k above {r.k_threshold:.2f} beyond the "
                             f"refits: those terms are approximate")
            notes.extend(f"{name}: {w}" for w in self.loo_warnings.get(key, []))
        return table, notes
