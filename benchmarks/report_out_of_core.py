"""``sawdist report`` on a saliency dataset larger than memory: peak resident memory, wall time, read throughput.

Writes a synthetic dataset of ``--size-gb`` GB of float32 directions at d = 3072 (von Mises–Fisher directions about
one mean direction per family and input, m(k) rising with capacity; two families, four capacities, 16 seeds, inputs
to fill the size) with the project's writer and layout (:func:`sawdist.io.to_netcdf_atomic`), then:

1. the floor: every stored chunk of ``direction`` read (HDF5 direct chunk reads, in storage order) and decompressed
   (zlib, then the shuffle undone), on one thread, and nothing else;
2. ``sawdist report DATASET --memory ...`` in a new process, every analysis (the Bayesian fits at their default of
   100 inputs included), under ``/usr/bin/time -v``: peak resident memory and wall time; the report's own stage
   timings give the time of its one pass over the directions, whose read throughput (raw bytes / seconds) is set
   against the floor.

Usage::

    python benchmarks/report_out_of_core.py --size-gb 10 --dir /tmp/ooc          # about 30 min on 2 cores
    python benchmarks/report_out_of_core.py --size-gb 0.5 --dir /tmp/ooc-small   # a quick check

The dataset is kept in ``--dir`` for reruns (``--reuse``); remove it afterwards (it is ``--size-gb`` large).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

D = 3072
FAMILIES = ("mlp", "cnn")
CAPACITIES = (2, 4, 8, 16)
M = (0.25, 0.4, 0.55, 0.7)
SEEDS = 16


def write_dataset(path: Path, size_gb: float, complevel: int) -> dict:
    import dask.array as da
    import xarray as xr

    import sawdist
    from sawdist.io import to_netcdf_atomic
    from sawdist.special import vmf_kappa_from_mean_resultant_length

    per_input = len(FAMILIES) * len(CAPACITIES) * SEEDS * D * 4
    n = int(round(size_gb * 1e9 / per_input))
    shape = (len(FAMILIES), len(CAPACITIES), SEEDS, n)
    rng = np.random.default_rng(0)
    mu = [sawdist.uniform_direction(D).rvs(size=n, rng=rng) for _ in FAMILIES]
    kappa = [float(vmf_kappa_from_mean_resultant_length(D, m)) for m in M]

    def load(index):
        f, k, s = index
        gen = np.random.default_rng([f, k, s])
        return sawdist.vonmises_fisher.rvs(mu[f], kappa[k], rng=gen).astype(np.float32)

    dims4 = ("family", "capacity", "seed", "input")
    ds = xr.Dataset(
        {
            "direction": (dims4 + ("feature",), da.zeros(shape + (D,), dtype=np.float32, chunks=(1, 1, 1, n, D))),
            "grad_norm": (dims4, np.ones(shape, np.float32)),
            "valid": (dims4, np.ones(shape, bool)),
            "correct": (dims4, np.ones(shape, bool)),
            "test_accuracy": (dims4[:3], np.full(shape[:3], np.nan, np.float32)),
            "n_params": (("family", "capacity"), np.tile(np.array(CAPACITIES, np.int64), (len(FAMILIES), 1))),
        },
        coords={"family": list(FAMILIES), "capacity": list(CAPACITIES), "seed": np.arange(SEEDS),
                "input": np.arange(n), "feature": np.arange(D), "label": ("input", np.zeros(n, np.int64))},
        attrs={"dataset": "synthetic-vmf", "target": "none", "recipe": "{}", "versions": "{}", "device": "none",
               "created": "benchmark", "input_shape": np.array([D])},
    )
    t0 = time.perf_counter()
    to_netcdf_atomic(ds, path, complevel=complevel, load=load)
    return {"inputs": n, "raw_bytes": int(np.prod(shape) * D * 4), "file_bytes": path.stat().st_size,
            "write_seconds": time.perf_counter() - t0}


def read_floor(path: Path) -> dict:
    """Every chunk of ``direction`` read and decompressed once, in storage order, on one thread."""
    import h5py

    t0 = time.perf_counter()
    raw = 0
    with h5py.File(path, "r") as f:
        dset = f["direction"]
        filters = dset.id.get_create_plist().get_nfilters()
        item = dset.dtype.itemsize
        # every chunk by its offset, in the order of the chunk grid (get_chunk_info(i) walks the index from the
        # start each time: quadratic in the number of chunks)
        grid = [range(0, size, chunk) for size, chunk in zip(dset.shape, dset.chunks)]
        n = 0
        for offset in itertools.product(*grid):
            n += 1
            mask, data = dset.id.read_direct_chunk(offset)
            if filters:
                data = zlib.decompress(data)
                a = np.frombuffer(data, np.uint8).reshape(item, -1).T.copy()  # undo the byte shuffle
                data = a.tobytes()
            raw += len(data)
    seconds = time.perf_counter() - t0
    return {"chunks": n, "floor_seconds": seconds, "floor_mb_per_s": raw / seconds / 1e6}


def run_report(path: Path, out: Path, memory: str, extra: list[str]) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "sawdist", "report", str(path), "--out", str(out),
           "--memory", memory, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) * 1024
    timings = {}
    with open(out / "timings.csv") as fh:
        for row in csv.DictReader(fh):
            timings[row["stage"]] = float(row["seconds"])
    plan = re.search(r"one pass over the directions .*?: (\d+) block\(s\) of up to (\d+) MiB, each stored chunk read "
                     r"(\d+) time", proc.stderr)
    return {"report_wall_seconds": wall, "peak_rss_bytes": peak, "timings": timings,
            "blocks": int(plan.group(1)) if plan else None, "block_mib": int(plan.group(2)) if plan else None,
            "reads_per_chunk": int(plan.group(3)) if plan else None,
            "verdicts": [line.strip() for line in proc.stdout.splitlines() if line.strip()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=Path("ooc-benchmark"))
    parser.add_argument("--memory", default="1GB", help="sawdist report --memory (default 1GB)")
    parser.add_argument("--complevel", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="keep an existing dataset in --dir")
    parser.add_argument("--no-bayes", action="store_true")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "dataset.nc"
    date = subprocess.run(["date", "-u", "+%Y-%m-%d %H:%M UTC"], capture_output=True, text=True).stdout.strip()
    result = {"machine": os.uname().nodename, "cores": os.cpu_count(), "date": date}
    if not (args.reuse and path.exists()):
        print(f"writing {args.size_gb:g} GB of directions to {path} ...", flush=True)
        result.update(write_dataset(path, args.size_gb, args.complevel))
    else:
        import xarray as xr

        with xr.open_dataset(path) as ds:
            result.update({"inputs": ds.sizes["input"], "raw_bytes": int(ds["direction"].size * 4),
                           "file_bytes": path.stat().st_size})
    print(json.dumps(result), flush=True)
    result.update(read_floor(path))
    print(f"floor: {result['floor_mb_per_s']:.0f} MB/s of raw directions", flush=True)
    out = args.dir / "report"
    result.update(run_report(path, out, args.memory, ["--no-bayes"] if args.no_bayes else []))
    passes = {k: v for k, v in result["timings"].items() if k.startswith("one pass")}
    if passes:
        seconds = sum(passes.values())
        result["pass_seconds"] = seconds
        result["pass_mb_per_s"] = result["raw_bytes"] / seconds / 1e6
        result["pass_over_floor"] = result["pass_mb_per_s"] / result["floor_mb_per_s"]
    print(json.dumps(result, indent=1))
    (args.dir / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
