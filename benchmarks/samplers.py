"""Benchmark: fit_convergence with every installed sampler, side by side, on the power-law convergence model.

Designs (d = 3072, simulated by sawdist.bayes.simulate_summary with its default law, seed 1):

* ``small``: 5 capacities x 500 inputs x 8 seeds (503 free parameters), 4 chains x 1000 draws;
* ``large``: 8 capacities x 10,000 inputs x 16 seeds (10,003 free parameters), 4 chains x 1000 draws; the posterior
  keeps ``alpha`` and ``mu_concentration`` besides the free variables (``kappa`` and the mean resultant length
  would add 5 GB; they follow from ``a`` and ``beta``).

Each sampler runs in a fresh Python process (its own compile and its own peak memory), one after the other, with
``cores=2`` and ``tune`` tuning steps (300, as the analyses use). End to end is the time of the fit_convergence call:
model, compile, Laplace start, tuning, draws, log-likelihood; the "phases" column splits it (compile: nutpie's model
compile; laplace: the Laplace start; sample: the sampler's own call, including XLA's compile for the JAX samplers;
log_likelihood). The 1-minute load average is printed before and after each run: other sessions share the cores,
and timings scale with it.

    python benchmarks/samplers.py [--design small large] [--samplers nutpie numpyro blackjax pymc] [--tune 300]
                                  [--target-accept 0.8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

DESIGNS = {
    "small": dict(capacities=[4, 8, 16, 32, 64], n_inputs=500, n_seeds=8, chunk=500),
    "large": dict(capacities=[4, 8, 16, 32, 64, 128, 256, 512], n_inputs=10_000, n_seeds=16, chunk=250),
    # the size of one fit of `sawdist run` (bayes_inputs = 100; capacities 2..32; 16 seeds), for --draws 300
    "analyses": dict(capacities=[2, 4, 8, 16, 32], n_inputs=100, n_seeds=16, chunk=100),
}
DIM = 3072


def simulate(design: str, path: Path) -> None:
    """The design's summary (chunks of inputs, so that the directions of the large design never fill the memory),
    without the resultants, saved to ``path``."""
    import numpy as np
    import xarray as xr

    from sawdist.bayes import simulate_summary

    spec = DESIGNS[design]
    parts = []
    gen = np.random.default_rng(1)
    for start in range(0, spec["n_inputs"], spec["chunk"]):
        n = min(spec["chunk"], spec["n_inputs"] - start)
        part = simulate_summary(dim=DIM, capacities=spec["capacities"], n_inputs=n, n_seeds=spec["n_seeds"], rng=gen)
        part = part.drop_vars(["resultant", "feature"]).assign_coords(input=np.arange(start, start + n))
        parts.append(part)
    xr.concat(parts, dim="input", data_vars="minimal").to_netcdf(path)


def worker(sampler: str, design: str, path: Path, tune: int, target_accept: float | None,
           draws: int = 1000) -> dict:
    warnings.filterwarnings("ignore")
    import arviz as az
    import xarray as xr

    from sawdist.bayes import fit_convergence

    summary = xr.load_dataset(path)
    phases = _time_phases()
    kwargs = dict(draws=draws, tune=tune, chains=4, cores=2, random_seed=1)
    if target_accept is not None:
        kwargs["target_accept"] = target_accept
    if design == "large":
        kwargs["var_names"] = ["alpha", "mu_concentration"]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    idata = fit_convergence(summary, "power", sampler=sampler, **kwargs)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    rhat = az.rhat(idata, var_names=["alpha_ref", "beta", "sigma", "a"])
    ess = az.ess(idata, var_names=["alpha", "beta", "sigma"])
    ess_all = az.ess(idata, var_names=["alpha_ref", "beta", "sigma", "a"])
    stats = idata.sample_stats
    return {
        "sampler": sampler, "design": design, "draws": draws, "tune": tune, "target_accept": target_accept,
        "wall_s": wall,
        "load_before": load_before, "load_after": load_after,
        "rhat_max": float(rhat.to_array().max()),
        "rhat_law": float(az.rhat(idata, var_names=["alpha", "beta", "sigma"]).to_array().max()),
        "ess_bulk_min_law": float(ess.to_array().min()),
        "ess_bulk_min_all": float(ess_all.to_array().min()), "steps_per_draw": float(stats["n_steps"].mean()),
        "divergences": int(stats["diverging"].sum()),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "beta": float(idata.posterior["beta"].mean()),
        "phases": {name: round(seconds, 2) for name, seconds in phases.items()},
    }


def _time_phases() -> dict:
    """Wall time of the phases of a fit (wrapping the library functions that run them): nutpie's compile, the
    Laplace start, the sampler's own call (XLA compiles inside it), the log-likelihood."""
    import importlib

    import pymc as pm

    import sawdist.bayes.initialization as init_module
    import sawdist.bayes.samplers as samplers

    phases: dict[str, float] = {}
    targets = [(samplers, "laplace", "laplace"), (init_module, "laplace_start", "laplace"),
               (pm, "compute_log_likelihood", "log_likelihood"), (pm, "sample", "sample"),
               (samplers, "_blackjax", "sample")]
    for module_name, attr, phase in (("nutpie", "compile_pymc_model", "compile"), ("nutpie", "sample", "sample"),
                                     ("pymc.sampling.jax", "sample_jax_nuts", "sample")):
        try:
            targets.append((importlib.import_module(module_name), attr, phase))
        except ImportError:
            pass

    def wrap(fn, phase):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - t0
        return timed

    for module, attr, phase in targets:
        setattr(module, attr, wrap(getattr(module, attr), phase))
    return phases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", nargs="+", default=["small"], choices=sorted(DESIGNS))
    parser.add_argument("--samplers", nargs="+", default=None)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=None, help="NUTS target acceptance (default 0.8)")
    parser.add_argument("--worker", nargs=3, metavar=("SAMPLER", "DESIGN", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sampler, design, path = args.worker
        print(json.dumps(worker(sampler, design, Path(path), args.tune, args.target_accept, args.draws)))
        return

    from sawdist.bayes.samplers import installed_samplers

    samplers = args.samplers or list(installed_samplers())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for design in args.design:
            path = Path(tmp) / f"{design}.nc"
            t0 = time.perf_counter()
            simulate(design, path)
            print(f"# {design}: simulated in {time.perf_counter() - t0:.0f} s", flush=True)
            for sampler in samplers:
                extra = [] if args.target_accept is None else ["--target-accept", str(args.target_accept)]
                out = subprocess.run([sys.executable, __file__, "--tune", str(args.tune), "--draws", str(args.draws),
                                      *extra, "--worker", sampler,
                                      design, str(path)], capture_output=True, text=True)
                if out.returncode:
                    print(f"{sampler} failed:\n{out.stderr[-3000:]}", flush=True)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| design | sampler | draws / tune | end to end | phases | load (before / after) "
          "| R-hat max alpha/beta/sigma (all free) "
          "| bulk ESS min alpha/beta/sigma (all free) | steps/draw | divergences | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items())
        print(f"| {r['design']} | {r['sampler']} | {r['draws']} / {r['tune']} | {r['wall_s']:.1f} s | {phases} "
              f"| {r['load_before']:.1f} / {r['load_after']:.1f} | {r['rhat_law']:.3f} ({r['rhat_max']:.3f}) "
              f"| {r['ess_bulk_min_law']:.0f} ({r['ess_bulk_min_all']:.0f}) "
              f"| {r['steps_per_draw']:.1f} | {r['divergences']} | {r['peak_rss_gib']:.2f} GiB |")


if __name__ == "__main__":
    main()
