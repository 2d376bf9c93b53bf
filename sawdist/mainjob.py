"""The main job: ``sawdist run`` (extract on the digits default, then every analysis) and ``sawdist report``.

``sawdist run [--out DIR] [--config FILE]`` writes into DIR (default ``sawdist-run``):

* ``saliency-<dataset>.nc`` — the saliency dataset (``sawdist extract``; rerunning resumes and reuses it);
* ``models/`` — a small pool of trained models kept for the transfer attack and the ensemble accuracy;
* ``figures/*.png``, ``tables/*.csv`` — one set per finding (:mod:`analyses`);
* ``report.md``, ``report.html`` — for each finding, the claim, what was measured with 95 % intervals, and whether
  it holds here; ``timings.csv`` — where the time went.

``sawdist report DATASET.nc --out DIR`` runs the analyses on an existing dataset (e.g. a CIFAR run); pass
``--models DIR/models`` to include the transfer attack.

The configuration file (TOML) has the tables of ``sawdist extract`` (``[extract]``, ``[dataset]``, ``[recipe]``) and
two more: ``[analyses]`` (fields of :class:`analyses.context.Options`) and ``[models]`` (the kept model pool:
``families``, default the first extracted family; ``seeds``, default 6; ``inputs``, default 200; ``train``, default
true). Example of a reduced run::

    [extract]
    families = ["mlp"]
    widths = [4, 16]
    seeds = 4
    samples = 50
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
import shlex
import sys
from pathlib import Path


__all__ = ["add_report_parser", "add_run_parser", "load_config", "report", "run"]

_TABLES = ("extract", "dataset", "recipe", "analyses", "models")
_MODEL_KEYS = {"families": None, "seeds": 6, "inputs": 200, "train": True}


def load_config(path) -> dict:
    """Read a ``sawdist run`` TOML file; unknown tables or ``[models]`` keys are an error."""
    if path is None:
        return {}
    from ._toml import read_config

    return read_config(path, _TABLES, {"models": _MODEL_KEYS})


def _write_timings(out: Path, timings: dict) -> None:
    lines = ["stage,seconds"] + [f"{json.dumps(k)},{v:.3f}" for k, v in timings.items()]
    (out / "timings.csv").write_text("\n".join(lines) + "\n")


def _analyse(ds, out, options, models, progress, meta):
    from analyses import run_all
    from analyses.report import write_report

    findings = run_all(ds, out, options=options, models=models, progress=progress)
    _write_timings(out, progress.timings)
    md, page = write_report(findings, out, title="sawdist: do these models think alike?", meta=meta,
                            timings=progress.timings)
    _write_timings(out, progress.timings)
    progress.say(f"report: {md} and {page}")
    width = max(len(f.title) for f in findings)
    for f in findings:
        print(f"  {f.title:<{width}}  {f.status.upper()}")
    return findings


def _setup(args: argparse.Namespace):
    """(config, output folder (created), progress printer, analysis options) shared by ``run`` and ``report``."""
    from analyses._common import Progress
    from analyses.context import Options

    config = load_config(args.config)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(enabled=args.progress)
    options = Options.from_dict(config.get("analyses"))
    if args.no_bayes:
        options.bayes = False
    return config, out, progress, options


def run(args: argparse.Namespace) -> int:
    """``sawdist run``: extract (resumable), train the kept model pool, run every analysis, write the report."""
    config, out, progress, options = _setup(args)
    models_cfg = {**_MODEL_KEYS, **config.get("models", {})}

    from extraction.config import resolve

    file_config = {k: config[k] for k in ("extract", "dataset", "recipe") if k in config}
    run_cfg = resolve(file_config, {"progress": args.progress})
    if "out" not in config.get("extract", {}):
        run_cfg["out"] = str(out / f"saliency-{run_cfg['dataset']}.nc")
    dataset_path = Path(run_cfg["out"])
    threads = run_cfg.pop("threads", None)  # as `sawdist extract` does: torch CPU threads, "auto" = the idle cores
    if threads is not None:
        import torch

        from extraction.config import auto_threads

        torch.set_num_threads(auto_threads() if threads == "auto" else int(threads))
    hint = "rerun: " + " ".join(shlex.quote(a) for a in (getattr(args, "argv", None) or sys.argv))
    with progress.stage("extraction (train every family, width and seed; saliency)"):
        from extraction.sweep import extract

        result = extract(resume_hint=hint, **run_cfg)
    if not result.complete:
        return 130
    with progress.stage("load the dataset"):
        from sawdist.io import open_saliency

        ds = open_saliency(dataset_path).load()
    models = None
    if models_cfg["train"]:
        with progress.stage("train the kept model pool (transfer, ensemble accuracy)"):
            from analyses.models import TorchModelPool
            from extraction.data import load_dataset
            from extraction.train import resolve_device

            device = resolve_device(run_cfg["device"])
            data = load_dataset(run_cfg["dataset"], **run_cfg["dataset_options"]).to(device)
            families = models_cfg["families"] or list(run_cfg["families"])[:1]
            models = TorchModelPool.train(data, families, run_cfg["widths"], range(int(models_cfg["seeds"])),
                                          run_cfg["recipe"], n_inputs=models_cfg["inputs"], device=device,
                                          progress=progress)
            models.save(out / "models")
    meta = {"dataset": str(dataset_path), "source data": run_cfg["dataset"],
            "families": ", ".join(run_cfg["families"]), "capacities": ", ".join(map(str, run_cfg["widths"])),
            "seeds": ds.sizes["seed"], "inputs": ds.sizes["sample"], "dimension d": ds.sizes["feature"],
            "recipe": run_cfg["recipe"].to_json()}
    _analyse(ds, out, options, models, progress, meta)
    return 0


def report(args: argparse.Namespace) -> int:
    """``sawdist report DATASET.nc --out DIR``: every analysis on an existing saliency dataset."""
    path = Path(args.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"'dataset' file {str(path)!r} does not exist.")
    config, out, progress, options = _setup(args)
    with progress.stage("load the dataset"):
        from sawdist.io import open_saliency

        ds = open_saliency(path)
        if ds["direction"].nbytes <= 2**30:
            ds = ds.load()  # larger datasets stay on disk: the analyses read them in chunks of inputs
    models = None
    if args.models:
        with progress.stage("load the model pool"):
            from analyses.models import TorchModelPool

            models = TorchModelPool.load(args.models)
    meta = {"dataset": str(path), "source data": ds.attrs.get("dataset", "?"),
            "families": ", ".join(map(str, ds["family"].values)),
            "capacities": ", ".join(map(str, ds["capacity"].values)), "seeds": ds.sizes["seed"],
            "inputs": ds.sizes["sample"], "dimension d": ds.sizes["feature"]}
    _analyse(ds, out, options, models, progress, meta)
    return 0


def _common_flags(parser):
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file: [extract], [dataset], [recipe] as for sawdist extract; [analyses], [models]")
    parser.add_argument("--no-bayes", action="store_true", help="skip the Bayesian (PyMC) fits")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress messages")


def add_run_parser(subparsers) -> argparse.ArgumentParser:
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


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``sawdist report`` to the command line."""
    parser = subparsers.add_parser(
        "report", help="run every analysis on an existing saliency dataset and write the report",
        description="Run every analysis on a saliency dataset (from sawdist extract or your own writer) and write "
                    "DIR/ with figures (PNG), tables (CSV) and a report (Markdown and HTML).",
    )
    parser.add_argument("dataset", metavar="DATASET.nc", help="saliency dataset (netCDF, DESIGN section 5 schema)")
    parser.add_argument("--out", default="sawdist-report", metavar="DIR",
                        help="output directory (default sawdist-report)")
    parser.add_argument("--models", metavar="DIR", help="model pool written by sawdist run (DIR/models)")
    _common_flags(parser)
    parser.set_defaults(func=report)
    return parser
