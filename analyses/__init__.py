"""Analyses that measure the convergence findings on a saliency dataset, one module per finding.

========================  ===========================================================================================
module                    finding
========================  ===========================================================================================
:mod:`.similarity`        1. similarity rho(k1, k2) rises with either capacity (H1), with its rank-one prediction
:mod:`.cosine_laws`       2. cosine laws per capacity against the uniform law; Saw shapes log psi_k
:mod:`.shared_mean`       3. capacities share the mean direction (H2): bias-aware alignment, Bayesian LOO comparison
:mod:`.convergence`       4. the convergence law kappa(k), m(k) by the Bayesian model; laws by LOO; predictive rho
:mod:`.ensembles`         5. ensembles of small models approach large models (identity 4), ensemble accuracy
:mod:`.transfer`          6. black-box transfer along the surrogates' mean direction (needs trained models)
========================  ===========================================================================================

Each module has ``analyze(ds, out_dir, *, context=None) -> Finding``; ``sawdist report DATASET.nc --only <module>``
runs one alone. :func:`run_all` runs them all; ``sawdist run`` and ``sawdist report`` (:mod:`sawdist.analyses.cli`)
call it and write the report. :func:`run_all` is where a dataset enters the analyses: it first applies the exclusion
rule of :mod:`.quality` (failed models — at chance accuracy or without a valid direction — are marked invalid), so
no analysis sees a failed model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import distributed
    import xarray as xr

    from ._common import Finding, Progress
    from .context import Options
    from .models import ModelPool
    from .quality import Screening

__all__ = ["ANALYSES", "run_all"]

#: Analysis modules in report order.
ANALYSES = ("similarity", "cosine_laws", "shared_mean", "convergence", "ensembles", "transfer")


def run_all(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, options: Options | dict | None = None,
            models: ModelPool | None = None, progress: Progress | None = None, only: Sequence[str] | None = None,
            strict: bool = False, screening: Screening | None = None, memory: int | None = None,
            client: distributed.Client | None = None) -> list[Finding]:
    """Run every analysis (or those named in ``only``) on ``ds`` without its failed models; return the findings.

    Failed models (:mod:`sawdist.analyses.quality`: test accuracy not above chance, or no valid direction) are
    excluded from every analysis first, and the model-quality table is written to ``out_dir/tables``.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset (docs/dataset.md), in memory or opened from disk (:func:`sawdist.io.open_saliency`): the
        directions are read in one pass, block by block (:mod:`sawdist.analyses.blocks`).
    out_dir : path-like
        Figures go to ``out_dir/figures``, tables to ``out_dir/tables``.
    options : sawdist.analyses.context.Options or dict, optional
    models : sawdist.analyses.models.ModelPool, optional
        Trained models for the transfer attack and the ensemble accuracy.
    progress : sawdist.analyses._common.Progress, optional
    only : sequence of str, optional
    strict : bool
        Re-raise an analysis' exception (by default it is reported as "not tested" and the others run).
    screening : sawdist.analyses.quality.Screening, optional
        The result of :func:`sawdist.analyses.quality.screen` on ``ds`` and ``models``, when the caller has it
        already (to pass it on to :func:`~sawdist.analyses.report.write_report`); computed here otherwise.
    memory : int, optional
        Working memory of one block of the pass over the directions, in bytes (default
        :data:`sawdist.analyses.blocks.DEFAULT_MEMORY`).
    client : distributed.Client, optional
        Compute the blocks on this Dask cluster (``ds`` must then be opened from files the workers can read).
    """
    from ._common import Finding, Progress, save_table
    from .context import Context, Options
    from .quality import screen

    if isinstance(options, dict) or options is None:
        options = Options.from_dict(options)
    progress = progress or Progress(enabled=False)
    names = ANALYSES if only is None else tuple(only)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise ValueError(f"'only' must name analyses among {', '.join(ANALYSES)}, got {unknown[0]!r}.")
    # The one place where a dataset enters the analyses: failed models leave here, for every analysis.
    screening = screening or screen(ds, models)
    ds, models = screening.ds, screening.models
    save_table(screening.table, out_dir, "model_quality")
    if screening.pool_table is not None:
        save_table(screening.pool_table, out_dir, "model_pool_quality")
    for line in screening.excluded():
        progress.say(f"  excluded (failed model): {line}")
    ctx = Context(ds, out_dir, options, progress, models=models, excluded=screening.failed_models,
                  analyses=names, memory=memory, client=client)
    findings = []
    for i, name in enumerate(names):
        module = importlib.import_module(f"{__name__}.{name}")
        with progress.stage(f"analysis {i + 1}/{len(names)}: {name}"):
            try:
                finding = module.analyze(ds, out_dir, context=ctx)
            except Exception as err:  # one broken analysis must not lose the others' results
                if strict:
                    raise
                finding = Finding(module.KEY, module.TITLE, module.CLAIM, status="not tested",
                                  reason=f"the analysis raised {type(err).__name__}: {err}")
                progress.say(f"  {name} failed: {type(err).__name__}: {err}")
        progress.say(f"  {finding.title}: {finding.status.upper()}")
        findings.append(finding)
    return findings
