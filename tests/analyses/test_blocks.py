"""The one pass over the directions (sawdist.analyses.blocks): blocks follow the stored chunks, no number depends on
the blocks or on where they run, memory stays bounded, and a Dask worker killed mid-pass changes nothing."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import xarray as xr

from sawdist.analyses import blocks
from sawdist.io import open_saliency, to_netcdf_atomic

from .conftest import make


def _write(ds, path, rows):
    """``ds`` as a netCDF file whose direction chunks hold ``rows`` inputs of one model."""
    d = ds.sizes["feature"]
    ds.to_netcdf(path, engine="netcdf4",
                 encoding={"direction": {"chunksizes": (1, 1, 1, rows, d), "zlib": True, "complevel": 1}})
    return path


def _spec(ds, **kw):
    shape = tuple(ds.sizes[d] for d in ("family", "capacity", "seed"))
    return blocks.ScanSpec(*shape, ds.sizes["feature"], excluded=np.zeros(shape, bool), **kw)


def test_blocks_are_whole_stored_chunks_within_the_budget(shared, tmp_path):
    ds = open_saliency(_write(shared, tmp_path / "a.nc", rows=8), values=False)
    per_input = blocks.BYTES_PER_VALUE * 2 * 3 * 10 * 32  # 30,720 bytes
    plan = blocks.plan_blocks(ds, 2**20)  # 34 inputs fit: 4 chunks of 8
    assert plan.chunk_extent == 8 and plan.reads_per_chunk == 1
    assert [b - a for a, b in plan.blocks] == [32, 32, 16]
    assert plan.block_bytes == 32 * per_input
    wide = open_saliency(_write(shared, tmp_path / "b.nc", rows=40), values=False)
    plan = blocks.plan_blocks(wide, 2**20)  # a chunk of every model does not fit: split, and read twice
    assert plan.chunk_extent == 40 and plan.reads_per_chunk == 2 and plan.blocks[0] == (0, 34)
    assert blocks.plan_blocks(shared, 2**20).chunk_extent == 1  # in memory: no chunks to follow
    for bad in (2**20 - 1, 1.5e9, True, "1GB"):
        with pytest.raises(ValueError, match=r"^'memory' must be a whole number of bytes >= 1 MiB \(2\*\*20\), got "):
            blocks.plan_blocks(shared, bad)


def test_chunk_aligned_inputs_read_few_chunks():
    from sawdist.analyses.cosine_laws import chunk_aligned, evenly_spaced

    idx = chunk_aligned(10_000, 170, 16)
    assert idx.size == 170 and np.unique(idx // 16).size == 11  # 11 chunks, not 170
    assert np.array_equal(chunk_aligned(450, 12, 450), evenly_spaced(450, 12))  # one chunk: evenly spaced in it
    assert np.array_equal(chunk_aligned(80, 1000, 8), np.arange(80))


def test_the_pass_on_a_file_gives_the_numbers_of_the_pass_in_memory(shared, tmp_path):
    ds = open_saliency(_write(shared, tmp_path / "a.nc", rows=8), values=False)
    subset = np.array([3, 17, 40, 79])
    spec = _spec(shared, summary_inputs=subset, ensemble_sizes=((1, 2, 4, 10),) * 2, ensemble_subsets=16)
    mem = blocks.scan(shared, spec)  # one block
    disk = blocks.scan(ds, spec, memory=2**20)  # three blocks of whole chunks
    assert len(mem.plan.blocks) == 1 and len(disk.plan.blocks) == 3
    np.testing.assert_allclose(disk.rho, mem.rho, rtol=1e-13, atol=1e-15)
    for (t1, c1), (t2, c2) in zip(disk.sums, mem.sums):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(t1, t2, rtol=1e-12, atol=1e-13)
    for f in range(2):
        np.testing.assert_allclose(disk.ensembles[f], mem.ensembles[f], rtol=1e-13)  # subsets drawn per input
        for k in range(3):
            np.testing.assert_allclose(disk.cosines[f][k], mem.cosines[f][k], rtol=1e-12)
    from sawdist.summaries import summarize

    direct = summarize(shared.isel(input=subset))
    assert disk.summary["input"].values.tolist() == subset.tolist()
    for name in direct.data_vars:
        np.testing.assert_allclose(disk.summary[name].values, direct[name].values, rtol=1e-12, atol=1e-12)


def test_failed_models_are_left_out_of_every_part_of_the_pass(shared):
    excluded = np.zeros((2, 3, 10), bool)
    excluded[1, 0, 2] = True
    masked = shared.copy()
    mask = xr.DataArray(excluded, dims=("family", "capacity", "seed"))
    masked["direction"] = shared["direction"].where(~mask)
    masked["valid"] = shared["valid"] & ~mask
    kw = {"summary_inputs": np.arange(0, 80, 9), "ensemble_sizes": ((1, 4),) * 2, "ensemble_subsets": 8}
    a = blocks.scan(shared, blocks.ScanSpec(2, 3, 10, 32, excluded=excluded, **kw))
    b = blocks.scan(masked, _spec(shared, **kw))
    np.testing.assert_array_equal(a.rho, b.rho)
    np.testing.assert_array_equal(a.ensembles[1], b.ensembles[1])
    np.testing.assert_array_equal(a.cosines[1][0], b.cosines[1][0])
    xr.testing.assert_identical(a.summary, b.summary)


def _report_peak_memory(path, out) -> int:
    """The peak resident memory (bytes) of ``sawdist report`` on ``path`` in a new process with ``--memory 16MB``:
    VmHWM, the peak of that process's own memory map (its ru_maxrss would keep the pytest parent's peak across exec).
    """
    code = textwrap.dedent(f"""
        import re, sys
        from sawdist.cli import main
        rc = main(["report", {str(path)!r}, "--out", {str(out)!r}, "--memory", "16MB",
                   "--only", "similarity,shared_mean,cosine_laws,ensembles", "--no-bayes", "--no-progress"])
        with open("/proc/self/status") as status:
            print("peak", int(re.search(r"VmHWM:\\s*(\\d+) kB", status.read()).group(1)) * 1024)
        sys.exit(rc)
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split("peak")[1].split()[0])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the peak memory from /proc (Linux)")
def test_a_report_of_a_dataset_larger_than_its_memory_reads_it_block_by_block(tmp_path):
    """``sawdist report --memory 16MB`` on 206 MB of directions needs no more memory than on 6 MB of them, give or
    take 100 MB (loading them would take 206 MB as float32, twice that as float64): the pass reads block by block."""
    paths = {}
    for n_inputs in (20, 700):
        ds = make(n_inputs=n_inputs, n_seeds=8, dim=3072, families=("a",), invalid_fraction=0.0, rng=5)
        paths[n_inputs] = to_netcdf_atomic(ds, tmp_path / f"{n_inputs}.nc", complevel=0)
        size = ds["direction"].size * 4
        del ds
    assert size > 200e6
    small = _report_peak_memory(paths[20], tmp_path / "small")
    large = _report_peak_memory(paths[700], tmp_path / "large")
    assert large - small < 100e6, (f"peak resident memory {large / 1e6:.0f} MB on {size / 1e6:.0f} MB of "
                                   f"directions, {small / 1e6:.0f} MB on 6 MB")
    assert (tmp_path / "large" / "report.md").is_file()


@pytest.mark.slow
def test_a_dask_worker_killed_mid_pass_changes_no_number(shared, tmp_path):
    distributed = pytest.importorskip("distributed")
    from sawdist.cluster import connect

    path = _write(shared, tmp_path / "a.nc", rows=4)
    ds = open_saliency(path, values=False)
    spec = _spec(shared, summary_inputs=np.arange(0, 80, 7), ensemble_sizes=((1, 2, 4),) * 2, ensemble_subsets=8)
    here = blocks.scan(ds, spec, memory=2**20)
    with connect("local:2") as client:
        pids = list(client.run(os.getpid).values())
        killed = threading.Event()

        def kill_one(done, total):
            if done == 1 and not killed.is_set():
                os.kill(pids[0], signal.SIGKILL)  # a worker lost with blocks queued or running on it
                killed.set()

        there = blocks.scan(ds, spec, memory=2**20, client=client, progress=kill_one)  # 3 blocks
        assert killed.is_set() and len(there.plan.blocks) == 3
        again = blocks.scan(ds, spec, memory=2**20, client=client)
    assert isinstance(client, distributed.Client)
    # the same blocks, wherever and however often they ran: the same numbers, bit for bit
    np.testing.assert_array_equal(there.rho, again.rho)
    for (t1, c1), (t2, c2) in zip(there.sums, again.sums):
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(c1, c2)
    for f in range(2):
        np.testing.assert_array_equal(there.ensembles[f], again.ensembles[f])
    xr.testing.assert_identical(there.summary, again.summary)
    # and those of one process, to rounding (the workers' BLAS runs on one thread)
    np.testing.assert_allclose(there.rho, here.rho, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(there.sums[0][0], here.sums[0][0], rtol=1e-12, atol=1e-13)
