"""``python -m analyses.<name> DATASET.nc --out DIR``: one analysis on an existing saliency dataset."""

from __future__ import annotations

import argparse
import sys


def single_main(key: str, analyze, argv=None) -> int:
    """Run one analysis from the command line; errors as for ``sawdist report`` (:func:`sawdist.cli.execute`)."""
    from sawdist.cli import add_global_flags, execute

    parser = argparse.ArgumentParser(prog=f"python -m analyses.{key}",
                                     description=f"Run the {key!r} analysis on a saliency dataset.")
    parser.add_argument("dataset", metavar="DATASET.nc")
    parser.add_argument("--out", default=f"analysis-{key}", metavar="DIR", help=f"output directory (analysis-{key})")
    add_global_flags(parser)
    parser.set_defaults(func=lambda args: _run(key, analyze, args))
    return execute(parser, argv)


def _run(key: str, analyze, args: argparse.Namespace) -> int:
    from sawdist.cli import input_file, output_folder
    from sawdist.mainjob import open_dataset

    from ._common import Progress
    from .context import Context, Options
    from .report import write_report

    path = input_file(args.dataset, "dataset file")
    out = output_folder(args.out, "--out")
    progress = Progress()
    ds = open_dataset(path).load()
    ctx = Context(ds, out, Options(), progress)
    with progress.stage(key):
        finding = analyze(ds, out, context=ctx)
    write_report([finding], out, title=f"sawdist analysis: {key}", meta={"dataset": args.dataset})
    print(f"{finding.title}: {finding.status} — {finding.reason}", file=sys.stdout)
    return 0
