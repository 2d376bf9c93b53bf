"""Benchmark: the cost of running a sweep on a Dask cluster instead of in one process.

The sweep is `sawdist extract`'s digits default (mlp and cnn_small at capacities 2-32, 16 seeds each: 10 units of 16
models, 10 epochs), each run in a fresh Python process, side by side and alternated (the machine is shared):

* ``one process``: torch on C threads (C: the cores of this machine);
* ``local:1``: one Dask worker with the same C torch threads: the same compute, plus the scheduling;
* ``local:2`` (or ``--workers``): the same cores shared by two workers, for the record.

The compute of a run is the sum of its units' times (``ExtractResult.unit_seconds``: training, saliency and, on a
worker, writing the parts); everything else — imports, loading the data, starting the cluster, scheduling the
tasks, moving results, assembling the file — is *outside* the units. The scheduling overhead is the outside time of
``local:1`` less that of one process, in total and per unit; it is immune to the load on the cores that makes the
compute itself vary by 1.5x between repeats here. Part of it is fixed, the start of the cluster (timed on its own:
a worker process that imports torch and sawdist); the rest, divided by the units, is the cost per task. Each output
is compared with the one-process file (the same values, bit for bit, are required). The 1-minute load average is
printed before each run.

    python benchmarks/scheduling.py [--repeats 2] [--workers 2] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UNITS = 10  # 2 families x 5 capacities, 16 seeds in one chunk each


def run(out: Path, threads: int, epochs: int, scheduler: str | None) -> dict:
    """One sweep in a fresh process: its wall time and the sum of its units' times."""
    code = f"""
import json, time
start = time.perf_counter()
import torch
torch.set_num_threads({threads})
from sawdist.extraction.sweep import extract
from sawdist.extraction.train import Recipe
result = extract({str(out)!r}, recipe=Recipe(epochs={epochs}), scheduler={scheduler!r}, progress=False)
print(json.dumps({{"wall": time.perf_counter() - start, "units": result.unit_seconds}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    record = json.loads(done.stdout.strip().splitlines()[-1])
    record["process"] = time.perf_counter() - start
    return record


def cluster_start(threads: int) -> float:
    """Seconds to start a one-worker LocalCluster as sawdist does and have the worker import torch and sawdist's
    sweep (what the first unit of a local:1 run waits for), in a fresh process."""
    code = """
import time
start = time.perf_counter()
import distributed
cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
client = distributed.Client(cluster)
client.submit(lambda: __import__("sawdist.extraction.sweep"), pure=False).result()
print(time.perf_counter() - start)
client.close()
cluster.close()
"""
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def same(a: Path, b: Path) -> bool:
    import numpy as np
    import xarray as xr

    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        return all(np.array_equal(x[v].values, y[v].values, equal_nan=x[v].dtype.kind == "f") for v in y.data_vars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    configs = [("one process", None), ("local:1", "local:1"), (f"local:{args.workers}", f"local:{args.workers}")]
    records: dict = {name: [] for name, _ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for repeat in range(args.repeats):
            for name, scheduler in configs:
                out = Path(tmp) / f"{name.replace(' ', '_').replace(':', '')}-{repeat}.nc"
                load = os.getloadavg()[0]
                record = run(out, cores, args.epochs, scheduler)
                reference = reference or out
                record["same"] = same(out, reference)
                records[name].append(record)
                compute = sum(record["units"].values())
                print(f"{name:12s} repeat {repeat}: {record['process']:6.1f} s in all, units {compute:6.1f} s, outside "
                      f"the units {record['process'] - compute:5.1f} s (load {load:.1f}; same values as one process: "
                      f"{record['same']})", flush=True)
    print()
    print("| run | process wall (each repeat) | sum of the units | outside the units | same values |")
    print("|---|---|---|---|---|")
    outside = {}
    for name, rows in records.items():
        outs = [r["process"] - sum(r["units"].values()) for r in rows]
        outside[name] = min(outs)
        walls = " / ".join(f"{r['process']:.1f} s" for r in rows)
        computes = " / ".join(f"{sum(r['units'].values()):.1f} s" for r in rows)
        # with several workers the units overlap: their sum exceeds the wall time, and "outside" means nothing
        outs_text = " / ".join(f"{o:.1f} s" for o in outs) if name in ("one process", "local:1") else "(parallel)"
        print(f"| {name} | {walls} | {computes} | {outs_text} | {all(r['same'] for r in rows)} |")
    n_units = len(records["one process"][0]["units"])
    overhead = outside["local:1"] - outside["one process"]
    starts = [cluster_start(cores) for _ in range(args.repeats)]
    start = min(starts)
    print(f"\nstarting the cluster (one worker, torch and sawdist imported there): "
          f"{' / '.join(f'{t:.1f} s' for t in starts)}; per unit, the rest of the overhead: "
          f"{(overhead - start) / n_units:.2f} s")
    sweep = min(r["process"] for r in records["local:1"])
    print(f"\nscheduling overhead of local:1 (best outside time of each): {overhead:.1f} s in total, "
          f"{overhead / n_units:.2f} s per unit ({n_units} units), {100 * overhead / sweep:.1f} % of its best sweep "
          f"({sweep:.1f} s)")


if __name__ == "__main__":
    main()
