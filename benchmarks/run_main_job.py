"""Where the time of ``sawdist run`` goes: run the main job with its defaults and print the stage breakdown.

Usage::

    python benchmarks/run_main_job.py [--out DIR] [--no-bayes] [--config FILE]

Runs ``sawdist run`` (digits: 2 families x 5 capacities x 16 seeds, the kept model pool, every analysis, the report) in
a fresh output directory, then prints the seconds of every stage (from DIR/timings.csv) with its share, the wall time,
and the load average before and after (the machine may be shared: compare shares, and rerun when it is quiet).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path

# benchmarks/extraction.py would shadow the extraction package: drop this folder from the import path.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="main-job-benchmark", help="output directory (deleted first)")
    parser.add_argument("--config", help="sawdist run configuration (TOML)")
    parser.add_argument("--no-bayes", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    load_before = os.getloadavg()
    cmd = ["run", "--out", str(out)]
    if args.config:
        cmd += ["--config", args.config]
    if args.no_bayes:
        cmd.append("--no-bayes")
    from sawdist.cli import main as sawdist_main

    start = time.perf_counter()
    status = sawdist_main(cmd)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    with open(out / "timings.csv") as f:
        rows = [(r["stage"], float(r["seconds"])) for r in csv.DictReader(f)]
    total = sum(s for _, s in rows)
    print(f"\nsawdist run: exit status {status}, wall {wall:.1f} s on {os.cpu_count()} cores; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    pad = max(len(name) for name, _ in rows)
    for name, sec in rows:
        print(f"  {name:<{pad}}  {sec:7.1f} s  {100 * sec / total:5.1f} %")
    print(f"  {'sum of stages':<{pad}}  {total:7.1f} s")
    record = {"wall_s": wall, "stages": dict(rows), "load_before": load_before[0], "load_after": load_after[0],
              "cpus": os.cpu_count(), "bayes": not args.no_bayes}
    (out / "benchmark.json").write_text(json.dumps(record, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
