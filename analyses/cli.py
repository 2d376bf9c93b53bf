"""The main job: ``sawdist run`` (extract on the digits default, then every analysis) and ``sawdist report``.

This module is the application layer above :mod:`sawdist.analyses` and :mod:`sawdist.extraction` (see
docs/architecture.md): :data:`sawdist.cli.SUBCOMMANDS` names its parser functions, and nothing below imports it.

``sawdist run [--out DIR] [--config FILE]`` writes into DIR (default ``sawdist-run``):

* ``saliency-<dataset>.nc`` — the saliency dataset (``sawdist extract``; rerunning resumes and reuses it);
* ``models/`` — a small pool of trained models kept for the transfer attack and the ensemble accuracy;
* ``figures/*.png``, ``tables/*.csv`` — one set per finding (:mod:`analyses`);
* ``report.md``, ``report.html`` — for each finding, the claim, what was measured with 95 % intervals, and whether
  it holds here; ``timings.csv`` — where the time went.

``sawdist report DATASET.nc --out DIR`` runs the analyses on an existing dataset (e.g. a CIFAR run); pass
``--models DIR/models`` to include the transfer attack, ``--only similarity,ensembles`` to run some of them.

The configuration file (TOML) has the tables of ``sawdist extract`` (``[extract]``, ``[dataset]``, ``[recipe]``) and
two more: ``[analyses]`` (fields of :class:`sawdist.analyses.context.Options`) and ``[models]`` (the kept model pool:
``families``, default the first extracted family; ``seeds``, default 6; ``inputs``, default 200; ``train``, default
true). Example of a reduced run::

    [extract]
    families = ["mlp"]
    capacities = [4, 16]
    seeds = 4
    inputs = 50
    [recipe]
    epochs = 2
    [analyses]
    bayes = false
    [models]
    seeds = 3
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sawdist.cli import CommandError, UsageError, input_file, output_folder

from . import ANALYSES

if TYPE_CHECKING:
    import os

    import xarray as xr

__all__ = ["add_report_parser", "add_run_parser", "load_config", "open_dataset", "report", "run"]

_TABLES = ("extract", "dataset", "recipe", "analyses", "models")
_MODEL_KEYS = {"families": None, "seeds": 6, "inputs": 200, "train": True}


def load_config(path: str | os.PathLike[str] | None) -> dict:
    """Read a ``sawdist run`` TOML file; unknown tables, and unknown keys outside ``[dataset]``, are errors."""
    if path is None:
        return {}
    import dataclasses

    from sawdist.config import read_config
    from sawdist.extraction.config import DEFAULTS
    from sawdist.extraction.recipe import Recipe

    from .context import Options

    keys = {"extract": DEFAULTS, "recipe": [f.name for f in dataclasses.fields(Recipe)],
            "analyses": [f.name for f in dataclasses.fields(Options)], "models": _MODEL_KEYS}
    return read_config(path, _TABLES, keys)


def _check_models(models: dict, config_path) -> None:
    """Check the ``[models]`` table of a ``sawdist run`` file (the families are checked by the caller)."""

    def fail(key, expected):
        raise UsageError(f"{config_path}: [models] {key} must be {expected}, got {models[key]!r}.")

    families = models["families"]
    if families is not None and not (isinstance(families, list) and families
                                     and all(isinstance(f, str) for f in families)):
        fail("families", "a non-empty list of family names")
    for key in ("seeds", "inputs"):
        if isinstance(models[key], bool) or not isinstance(models[key], int) or models[key] < 1:
            fail(key, "a positive integer")
    if not isinstance(models["train"], bool):
        fail("train", "true or false")


def _write_timings(out: Path, timings: dict) -> None:
    lines = ["stage,seconds"] + [f"{json.dumps(k)},{v:.3f}" for k, v in timings.items()]
    (out / "timings.csv").write_text("\n".join(lines) + "\n")


def _analyse(ds, out, options, models, progress, meta, only=None, memory=None, client=None):
    from . import run_all
    from .quality import screen
    from .report import write_report

    with progress.stage("model quality (the exclusion rule)"):
        screening = screen(ds, models)  # once: run_all applies it, the report lists it
    findings = run_all(ds, out, options=options, models=models, progress=progress, only=only, screening=screening,
                       memory=memory, client=client)
    _write_timings(out, progress.timings)
    md, page = write_report(findings, out, title="sawdist: do these models think alike?", meta=meta,
                            timings=progress.timings, screening=screening)
    _write_timings(out, progress.timings)
    progress.say(f"report: {md} and {page}")
    pad = max(len(f.title) for f in findings)
    for f in findings:
        print(f"  {f.title:<{pad}}  {f.status.upper()}")
    return findings


def _setup(args: argparse.Namespace):
    """(config, output folder (not yet created), progress printer, analysis options) of ``run`` and ``report``."""
    from sawdist.cli import read_config

    from ._common import Progress
    from .context import Options

    config = read_config(args.config, load_config) if args.config else {}
    out = output_folder(args.out, "--out")
    progress = Progress(enabled=args.progress)
    options = Options.from_dict(config.get("analyses"))
    if args.no_bayes:
        options.bayes = False
    return config, out, progress, options


def run(args: argparse.Namespace) -> int:
    """``sawdist run``: extract (resumable), train the kept model pool, run every analysis, write the report."""
    config, out, progress, options = _setup(args)
    models_cfg = {**_MODEL_KEYS, **config.get("models", {})}
    _check_models(models_cfg, args.config)

    from sawdist.extraction.cli import check_data, need_torch, prepare, set_threads

    # Every setting is checked before any work; errors name the config file's keys.
    file_config = {k: config[k] for k in ("extract", "dataset", "recipe") if k in config}
    overrides = {"progress": args.progress and logging.getLogger("sawdist").isEnabledFor(logging.INFO)}
    if "out" not in config.get("extract", {}):
        dataset = config.get("extract", {}).get("dataset", "digits")
        overrides["out"] = str(out / f"saliency-{dataset}.nc")
    run_cfg, origin = prepare(file_config, args.config, overrides)
    need_torch("all")
    check_data(run_cfg, origin)
    from sawdist.extraction.models import FAMILIES

    unknown = [f for f in models_cfg["families"] or [] if f not in FAMILIES]
    if unknown:
        raise UsageError(f"{args.config}: [models] families has unknown family {unknown[0]!r}; the families are "
                         f"{', '.join(FAMILIES)}.")
    out.mkdir(parents=True, exist_ok=True)
    dataset_path = Path(run_cfg["out"])
    set_threads(run_cfg.pop("threads"))  # as `sawdist extract` does: torch CPU threads, "auto" = the idle cores
    hint = "rerun: " + " ".join(shlex.quote(a) for a in (getattr(args, "argv", None) or sys.argv))
    with progress.stage("extraction (train every family, capacity and seed; saliency)"):
        from sawdist.extraction.sweep import extract

        with origin.translating(CommandError):
            result = extract(resume_hint=hint, **run_cfg)
    if not result.complete:
        return 130
    with progress.stage("load the dataset"):
        from sawdist.io import open_saliency

        ds = open_saliency(dataset_path).load()
    models = None
    if models_cfg["train"]:
        with progress.stage("train the kept model pool (transfer, ensemble accuracy)"):
            from sawdist.extraction.data import load_dataset
            from sawdist.extraction.pool import TorchModelPool
            from sawdist.extraction.train import resolve_device

            device = resolve_device(run_cfg["device"])
            data = load_dataset(run_cfg["dataset"], **run_cfg["dataset_options"]).to(device)
            families = models_cfg["families"] or list(run_cfg["families"])[:1]
            models = TorchModelPool.train(data, families, run_cfg["capacities"], range(int(models_cfg["seeds"])),
                                          run_cfg["recipe"], n_inputs=models_cfg["inputs"], device=device,
                                          progress=progress)
            models.save(out / "models")
    meta = {"dataset": str(dataset_path), "source data": run_cfg["dataset"],
            "families": ", ".join(run_cfg["families"]), "capacities": ", ".join(map(str, run_cfg["capacities"])),
            "seeds": ds.sizes["seed"], "inputs": ds.sizes["input"], "dimension d": ds.sizes["feature"],
            "recipe": run_cfg["recipe"].to_json()}
    _analyse(ds, out, options, models, progress, meta)
    return 0


def report(args: argparse.Namespace) -> int:
    """``sawdist report DATASET.nc --out DIR``: every analysis (or those of ``--only``) on a saliency dataset."""
    only = None
    if args.only is not None:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = [name for name in only if name not in ANALYSES]
        if unknown or not only:
            raise UsageError(f"--only must name analyses among {', '.join(ANALYSES)}, got {args.only!r}.")
    path = input_file(args.dataset, "dataset file")
    config, out, progress, options = _setup(args)
    if args.models:
        pool = Path(args.models).expanduser()
        if not pool.is_dir():
            raise CommandError(f"--models {args.models!r} {'is not a folder' if pool.exists() else 'does not exist'}.")
        if not (pool / "pool.json").is_file():
            raise CommandError(f"--models {args.models!r} has no pool.json; pass the folder of a model pool: "
                               "DIR/models of sawdist run, or the --save-models folder of sawdist extract.")
    memory = parse_memory(args.memory) if args.memory is not None else None
    scheduler = None
    if args.scheduler is not None:
        from sawdist.cluster import check_scheduler

        try:
            scheduler = check_scheduler(args.scheduler, "--scheduler")
        except ValueError as err:
            raise UsageError(str(err)) from None
    ds = open_dataset(path)  # lazily: checks the file and its schema before any output is written
    from .blocks import BYTES_PER_VALUE, DEFAULT_MEMORY

    if scheduler is None and ds["direction"].size * BYTES_PER_VALUE <= (memory or DEFAULT_MEMORY):
        with progress.stage("load the dataset"):
            ds = ds.load()  # it fits one block; a larger one stays on disk and is read block by block, once
    out.mkdir(parents=True, exist_ok=True)
    models = None
    if args.models:
        with progress.stage("load the model pool"):
            from sawdist.extraction.pool import TorchModelPool

            models = TorchModelPool.load(args.models)
    meta = {"dataset": str(path), "source data": ds.attrs.get("dataset", "?"),
            "families": ", ".join(map(str, ds["family"].values)),
            "capacities": ", ".join(map(str, ds["capacity"].values)), "seeds": ds.sizes["seed"],
            "inputs": ds.sizes["input"], "dimension d": ds.sizes["feature"]}
    if scheduler is None:
        _analyse(ds, out, options, models, progress, meta, only=only, memory=memory)
        return 0
    import contextlib

    from sawdist.cluster import connect

    meta["Dask cluster"] = scheduler
    with contextlib.ExitStack() as stack:
        with progress.stage(f"connect to the Dask cluster {scheduler}"):
            try:
                client = stack.enter_context(connect(scheduler))
            except (OSError, TimeoutError) as err:
                raise CommandError(f"--scheduler {scheduler!r}: no Dask scheduler answered ({err}).") from err
        _analyse(ds, out, options, models, progress, meta, only=only, memory=memory, client=client)
    return 0


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_memory(text: str) -> int:
    """``--memory``: bytes, or a number with a unit (``512MB``, ``2GiB``, ``1.5g``; powers of 1024), >= 1 MiB."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match and _UNITS.get(match.group(2).lower())
    if not unit:
        raise UsageError(f"--memory must be a size such as 512MB or 2GB, got {text!r}.")
    value = int(float(match.group(1)) * unit)
    if value < 2**20:
        raise UsageError(f"--memory must be at least 1MB, got {text!r}.")
    return value


def open_dataset(path: str | os.PathLike[str]) -> xr.Dataset:
    """Open the saliency dataset a command was given (lazily); a file that is not one is a CommandError."""
    from sawdist.io import open_saliency

    try:
        return open_saliency(path)
    except (OSError, ValueError) as err:
        reason = str(err.strerror if isinstance(err, OSError) and err.strerror else err)
        reason = reason.replace("'ds' ", "it ", 1) if reason.startswith("'ds' ") else reason
        named = f"{str(path)!r}: "
        reason = reason[len(named):] if reason.startswith(named) else reason  # the file is named once, here
        raise CommandError(f"dataset file {str(path)!r} is not a saliency dataset: {reason}") from err


def _common_flags(parser):
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file: [extract], [dataset], [recipe] as for sawdist extract; [analyses], [models]")
    parser.add_argument("--no-bayes", action="store_true", help="skip the Bayesian (PyMC) fits")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress messages")


def add_run_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sawdist run`` to the command line."""
    parser = subparsers.add_parser(
        "run", help="the main job: extract on digits, run every analysis, write figures, tables and a report",
        description="Train model families on the default data (scikit-learn digits), extract their saliency, run "
                    "every analysis and write DIR/ with the dataset, figures (PNG), tables (CSV) and a report "
                    "(Markdown and HTML) that says for each finding what was measured and whether it holds.",
    )
    parser.add_argument("--out", default="sawdist-run", metavar="DIR", help="output directory (default sawdist-run)")
    _common_flags(parser)
    parser.set_defaults(func=run)
    return parser


def add_report_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sawdist report`` to the command line."""
    parser = subparsers.add_parser(
        "report", help="run every analysis on an existing saliency dataset and write the report",
        description="Run every analysis on a saliency dataset (from sawdist extract or your own writer) and write "
                    "DIR/ with figures (PNG), tables (CSV) and a report (Markdown and HTML).",
    )
    parser.add_argument("dataset", metavar="DATASET.nc", help="saliency dataset (netCDF; schema in docs/dataset.md)")
    parser.add_argument("--out", default="sawdist-report", metavar="DIR",
                        help="output directory (default sawdist-report)")
    parser.add_argument("--models", metavar="DIR", help="model pool written by sawdist run (DIR/models)")
    parser.add_argument("--only", metavar="A1,A2",
                        help=f"run only these analyses: {', '.join(ANALYSES)} (default all)")
    parser.add_argument("--memory", metavar="SIZE",
                        help="working memory of one block of inputs read from the dataset, e.g. 512MB or 4GB "
                             "(default 1GB); a dataset larger than this is read from disk block by block, once")
    parser.add_argument("--scheduler", metavar="local:N|tcp://HOST:PORT",
                        help="compute the blocks on a Dask cluster: N local worker processes, or a running "
                             "scheduler whose workers can read DATASET.nc (docs/cluster-report.md)")
    _common_flags(parser)
    parser.set_defaults(func=report)
    return parser
