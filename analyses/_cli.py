"""``python -m analyses.<name> DATASET.nc --out DIR``: one analysis on an existing saliency dataset."""

from __future__ import annotations

import argparse
import sys


def single_main(key: str, analyze, argv=None) -> int:
    from sawdist.io import open_saliency

    from ._common import Progress
    from .context import Context, Options
    from .report import write_report

    parser = argparse.ArgumentParser(prog=f"python -m analyses.{key}",
                                     description=f"Run the {key!r} analysis on a saliency dataset.")
    parser.add_argument("dataset", metavar="DATASET.nc")
    parser.add_argument("--out", default=f"analysis-{key}", metavar="DIR", help=f"output directory (analysis-{key})")
    args = parser.parse_args(argv)
    progress = Progress()
    ds = open_saliency(args.dataset).load()
    ctx = Context(ds, args.out, Options(), progress)
    with progress.stage(key):
        finding = analyze(ds, args.out, context=ctx)
    write_report([finding], args.out, title=f"sawdist analysis: {key}", meta={"dataset": args.dataset})
    print(f"{finding.title}: {finding.status} — {finding.reason}", file=sys.stdout)
    return 0
