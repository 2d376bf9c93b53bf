"""Benchmark of the value checks of a saliency dataset: the sample checked at open and the check inside summarize.

A synthetic file (by default 2 families x 4 capacities x 8 seeds x 2000 inputs x 3072 features, float32, zlib level
4 as `sawdist extract` writes it; 1.6 GB of directions, about 1.35 GB on disk) is read in the ways sawdist reads a
file, and each cost is printed side by side with the cost of the unchecked read, as a ratio:

* open: `open_saliency(path, values=False)` (the structure and the chunk index, no value), against xarray's own
  `xr.open_dataset(path, engine="netcdf4")`, and `open_saliency(path)` (the default: plus the sampled value check);
* summarize: `summarize(ds)` (every vector checked in the same pass) against `summarize(ds, compute=False).compute()`
  (the same reductions, unchecked), on the file opened with Dask (`chunks={}`); and the full check of
  `validate(ds, values=True)`, which reads every direction a second time.

The file stays in the page cache after the first read, so the times are those of inflating and reducing, not of the
disk.

Run:  python benchmarks/value_checks.py                  (writes /tmp/sawdist-value-checks.nc once; a few minutes)
      python benchmarks/value_checks.py --inputs 500 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import xarray as xr

import sawdist
import sawdist.io as sio
from sawdist.summaries import summarize


def best_of(steps: dict, repeat: int) -> dict:
    """The best time of each step; the steps take turns, so a change in the machine's load biases none of them."""
    times: dict = {name: [] for name in steps}
    for _ in range(repeat):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: min(values) for name, values in times.items()}


def write(path: Path, families: int, capacities: int, seeds: int, inputs: int, dim: int) -> None:
    """A saliency file of random unit directions (1 % invalid, NaN), one model generated at a time."""
    import dask.array as da

    shape = (families, capacities, seeds, inputs)
    gen = np.random.default_rng(0)
    valid = gen.random(shape) >= 0.01
    norm = np.where(valid, gen.gamma(2.0, size=shape), 0.0).astype(np.float32)

    def load(index):
        u = np.random.default_rng(np.ravel_multi_index(index, shape[:3])).standard_normal((inputs, dim))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        u[~valid[index]] = np.nan
        return u.astype(np.float32)

    dims4 = sio.DIMS[:4]
    ds = xr.Dataset(
        {
            "direction": (sio.DIMS, da.empty(shape + (dim,), chunks=(1, 1, 1, inputs, dim), dtype=np.float32)),
            "grad_norm": (dims4, norm),
            "valid": (dims4, valid),
            "correct": (dims4, valid),
            "test_accuracy": (dims4[:3], np.full(shape[:3], 0.9, np.float32)),
            "n_params": (dims4[:2], np.full(shape[:2], 1000, np.int64)),
        },
        coords={"family": [f"f{i}" for i in range(families)], "capacity": 2 ** np.arange(1, capacities + 1),
                "seed": np.arange(seeds), "input": np.arange(inputs), "feature": np.arange(dim),
                "label": ("input", np.arange(inputs) % 10)},
        attrs={"dataset": "synthetic", "target": "label_logit", "recipe": "{}", "versions": "{}", "device": "cpu",
               "created": "2026-01-01T00:00:00+00:00", "input_shape": [dim]},
    )
    sio.to_netcdf_atomic(ds, path, load=load)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=2)
    ap.add_argument("--capacities", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--inputs", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=3072)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--file", type=Path, default=None, help="the synthetic file (kept; written when absent)")
    args = ap.parse_args()
    grid = (args.families, args.capacities, args.seeds, args.inputs, args.dim)
    path = args.file or Path(f"/tmp/sawdist-value-checks-{'x'.join(map(str, grid))}.nc")
    if not path.exists():
        t0 = time.perf_counter()
        write(path, *grid)
        print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")
    print(f"sawdist {sawdist.__version__}, numpy {np.__version__}, xarray {xr.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{' x '.join(map(str, grid))} (family x capacity x seed x input x feature), "
          f"{path.stat().st_size / 1e9:.2f} GB on disk; best of {args.repeat} runs\n")

    def opened(**kw):
        with sio.open_saliency(path, **kw) as ds:
            return ds.sizes

    def xarray_open():
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.sizes

    def summary(checked):
        with sio.open_saliency(path, values=False, chunks={}) as ds:
            return summarize(ds) if checked else summarize(ds, compute=False).compute()

    def full():
        with sio.open_saliency(path, values=False, chunks={}) as ds:
            sio.validate(ds, values=True)

    opened(values=False)  # warm-up: imports, page cache
    summary(False)
    t = best_of({"xarray": xarray_open, "open": lambda: opened(values=False), "sample": lambda: opened(values="sample"),
                 "unchecked": lambda: summary(False), "checked": lambda: summary(True), "full": full}, args.repeat)
    base = t["unchecked"]
    rows = [
        ("xr.open_dataset(engine='netcdf4')  [no check]", t["xarray"], ""),
        ("open_saliency(values=False)  [structure, chunk index]", t["open"], ""),
        ("open_saliency()  [+ sampled values, the default]", t["sample"],
         f"+{t['sample'] - t['open']:.3f} s = {(t['sample'] - t['open']) / base:.4f} x summarize"),
        ("summarize(ds, compute=False).compute()  [unchecked]", base, "1.00"),
        ("summarize(ds)  [every vector checked, same pass]", t["checked"], f"{t['checked'] / base:.3f}"),
        ("validate(ds, values=True)  [full check, 2nd read]", t["full"], f"{t['full'] / base:.3f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'best':>9}  / unchecked summarize")
    for name, seconds, ratio in rows:
        print(f"{name:<{width}}  {seconds:8.3f}s  {ratio}")


if __name__ == "__main__":
    main()
