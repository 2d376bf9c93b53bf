# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
"""Sweeps beyond one process: shards and their merge, a Dask LocalCluster, the output lock, and the refusal to touch
files that are not the run's. Every multi-process result is compared bit for bit with the one-process run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

import sawdist.io as sio
from sawdist.extraction.config import check_scheduler, check_shard
from sawdist.extraction.sweep import extract
from sawdist.lock import LockError, OutputLock
from sawdist.shards import merge

from .extraction_fixtures import TINY, _one_torch_thread, quick_recipe, reference_sweep, tiny  # noqa: F401


def assert_same_data(path, reference):
    """Same variables, coordinates and values, bit for bit (NaN where NaN); the attributes but the creation time and
    the device description."""
    with xr.open_dataset(path) as x, xr.open_dataset(reference) as y:
        assert set(x.variables) == set(y.variables)
        for name in y.variables:
            a, b = x[name].values, y[name].values
            if a.dtype.kind == "f":
                assert np.array_equal(a.view(np.uint32 if a.dtype == np.float32 else np.uint64),
                                      b.view(np.uint32 if b.dtype == np.float32 else np.uint64)), name
            else:
                assert np.array_equal(a, b), name
        ignore = {"created", "device"}
        assert {k: str(v) for k, v in x.attrs.items() if k not in ignore} == \
            {k: str(v) for k, v in y.attrs.items() if k not in ignore}


def _cli(out, *extra) -> list[str]:
    """``sawdist extract`` with the settings of the reference sweep (TINY, one epoch, one torch thread)."""
    return [sys.executable, "-m", "sawdist", "extract", "--families", "mlp,cnn_small", "--capacities", "4,8",
            "--seeds", "3", "--inputs", "40", "--mode", "batched", "--chunk-size", "2", "--epochs", "1",
            "--batch-size", "128", "--threads", "1", "--no-progress", "--out", str(out), *extra]


# --- shards --------------------------------------------------------------------------------------------------------


def test_shards_merge_to_the_one_process_run(tmp_path, reference_sweep, quick_recipe, tiny):
    shards = []
    for i in range(3):
        result = extract(tmp_path / f"s{i}.nc", recipe=quick_recipe, shard=f"{i}/3", **tiny)
        assert result.complete
        shards.append(tmp_path / f"s{i}.nc")
    # 8 units (family, capacity, seed chunk) of 2 or 1 seeds, each to the shard with the fewest models so far
    counts = [int(xr.load_dataset(p)["in_shard"].sum()) for p in shards]
    assert counts == [4, 4, 4]
    with xr.open_dataset(shards[1]) as one:  # an absent model: not valid, NaN, and no chunk on disk
        absent = ~one["in_shard"].values
        assert not one["valid"].values[absent].any() and np.isnan(one["test_accuracy"].values[absent]).all()
        assert one.attrs["shard"] == "1/3"
    import h5py

    with h5py.File(shards[2]) as f, h5py.File(reference_sweep) as g:  # one chunk per model here (40 inputs)
        assert f["direction"].id.get_num_chunks() == 4 and g["direction"].id.get_num_chunks() == 12

    out = merge(list(reversed(shards)), tmp_path / "merged.nc")
    assert_same_data(out, reference_sweep)
    ds = sio.open_saliency([str(p) for p in shards], values=True)  # lazily, as one dataset
    try:
        with xr.open_dataset(reference_sweep) as ref:
            for name in ref.data_vars:
                np.testing.assert_array_equal(ds[name].values, ref[name].values)
    finally:
        ds.close()
    # merging again: the output is that merge already, and stays as it is
    before = out.stat().st_mtime_ns
    merge(shards, out)
    assert out.stat().st_mtime_ns == before


def test_merge_names_what_is_wrong(tmp_path, reference_sweep, quick_recipe, tiny):
    s0, s1 = tmp_path / "s0.nc", tmp_path / "s1.nc"
    extract(s0, recipe=quick_recipe, shard=(0, 2), **tiny)
    extract(s1, recipe=quick_recipe, shard=(1, 2), **tiny)
    other = tmp_path / "other.nc"
    extract(other, recipe=quick_recipe, shard=(1, 2), **{**tiny, "seeds": 2})
    with pytest.raises(sio.SchemaError, match=r"^shard 1/2 is missing: no file holds the models mlp k=4 seed 2; "
                                              r"mlp k=8 seeds 0-1; cnn_small k=4 seed 2; cnn_small k=8 seeds 0-1\.$"):
        merge([s0], tmp_path / "m.nc")
    with pytest.raises(sio.SchemaError, match=r"^shard 0/2 is given 2 times: '.*s0\.nc', '.*s0\.nc'\.$"):
        merge([s0, s0, s1], tmp_path / "m.nc")
    with pytest.raises(sio.SchemaError, match=r"^'.*reference\.nc' is not a shard \(it has no attribute 'shard'\)"):
        merge([s0, reference_sweep], tmp_path / "m.nc")
    with pytest.raises(sio.SchemaError, match=r"^'.*other\.nc' is a shard of another sweep than '.*s0\.nc' "):
        merge([s0, other], tmp_path / "m.nc")
    with pytest.raises(sio.SchemaError, match=r"^'.*s0\.nc' is shard 0/2 of a sweep: open it together with the "
                                              r"other shards"):
        sio.open_saliency(s0)
    foreign = tmp_path / "notes.nc"
    foreign.write_bytes(b"my notes")
    with pytest.raises(ValueError, match=r"^'out' '.*notes\.nc' exists and is not the merge of these shards; "
                                         r"sawdist leaves it as it is"):
        merge([s0, s1], foreign)
    assert foreign.read_bytes() == b"my notes"
    assert not (tmp_path / "m.nc").exists() and not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow  # 20-50 s from a fresh cache (fits and their compiles): more than the floors' fast run affords
def test_two_shards_started_together_one_killed_and_restarted(tmp_path, reference_sweep):
    """Two shard processes at once; shard 0 is killed with SIGKILL once its first part is on disk, then restarted:
    it resumes (a dead run's lock is taken over), and the merge equals the one-process run."""
    outs = [tmp_path / "s0.nc", tmp_path / "s1.nc"]
    procs = [subprocess.Popen(_cli(out, "--shard", f"{i}/2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i, out in enumerate(outs)]
    parts = tmp_path / "s0.nc.parts"
    deadline = time.monotonic() + 300
    while not list(parts.glob("*.npz")) and procs[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = procs[0].poll() is None
    if killed:
        procs[0].send_signal(signal.SIGKILL)
    procs[0].communicate()
    err = procs[1].communicate(timeout=300)[1]
    assert procs[1].returncode == 0, err
    assert killed, "shard 0 finished before it could be killed"
    assert not outs[0].exists() and (tmp_path / "s0.nc.lock").exists()  # what SIGKILL leaves
    again = subprocess.run(_cli(outs[0], "--shard", "0/2"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "taking over the lock of process" in again.stderr and "which is no longer running" in again.stderr
    merged = tmp_path / "merged.nc"
    run = subprocess.run([sys.executable, "-m", "sawdist", "merge", *map(str, outs), "--out", str(merged)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout == f"wrote {merged} (2 shards)\n", run.stderr
    assert_same_data(merged, reference_sweep)
    assert not list(tmp_path.glob("*.lock")) and not parts.exists()


def test_shard_and_scheduler_arguments():
    assert check_shard("2/4") == (2, 4) and check_shard((0, 1)) == (0, 1)
    for bad in ("4/4", "-1/2", "1", "a/b", (1, 1), (True, 2)):
        with pytest.raises(ValueError, match=r"^'shard' must be I/N with 0 <= I < N \(e\.g\. 0/4\), got "):
            check_shard(bad)
    assert check_scheduler("local:2") == "local:2" and check_scheduler("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    for bad in ("local:0", "local", "slurm", "tcp://"):
        with pytest.raises(ValueError, match=r"^'scheduler' must be local:N \(N >= 1 worker processes\) or a Dask "):
            check_scheduler(bad)


def test_shard_flags(tmp_path):
    run = subprocess.run(_cli(tmp_path / "x.nc", "--shard", "2/2"), capture_output=True, text=True)
    assert run.returncode == 2 and "argument --shard: expected I/N with 0 <= I < N (e.g. 0/4), got '2/2'" in run.stderr
    run = subprocess.run(_cli(tmp_path / "x.nc", "--shard", "0/2", "--save-models", str(tmp_path / "m")),
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "error: --save-models cannot be combined with --shard: a shard holds only some models" in run.stderr
    run = subprocess.run(_cli(tmp_path / "x.nc", "--scheduler", "local:0"), capture_output=True, text=True)
    assert run.returncode == 2 and "argument --scheduler: expected local:N (N >= 1)" in run.stderr
    run = subprocess.run(_cli(tmp_path / "x.nc", "--device", "gpu"), capture_output=True, text=True)
    assert run.returncode == 2 and "argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu'" in run.stderr
    assert not list(tmp_path.iterdir())


# --- a Dask cluster ------------------------------------------------------------------------------------------------


def test_local_cluster_with_a_worker_killed_gives_the_same_file(tmp_path, reference_sweep, quick_recipe, tiny):
    pytest.importorskip("distributed")
    from distributed import default_client

    killed = []

    def kill_a_worker(key, n_done, n_total):
        if not killed:  # after the first unit: SIGKILL a worker (its nanny starts a new one; its task runs again)
            pids = default_client().run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    out = tmp_path / "cluster.nc"
    result = extract(out, recipe=quick_recipe, scheduler="local:2", on_model=kill_a_worker, **tiny)
    assert result.complete and result.n_done == 12 and killed
    assert sorted(result.unit_seconds) == sorted(f"{f}-k{k}-s{s}" for f in ("mlp", "cnn_small") for k in (4, 8)
                                                 for s in ("0..1", "2"))
    assert_same_data(out, reference_sweep)
    with xr.open_dataset(out) as ds:
        assert ds.attrs["device"].startswith("Dask cluster local:2: cpu")


def test_local_workers_start_with_their_cores_and_glibcs_malloc():
    """Dask's defaults for worker processes (one OpenMP thread; MALLOC_TRIM_THRESHOLD_, which made training 1.5x
    slower) are replaced for a LocalCluster: its workers start with their share of the cores."""
    pytest.importorskip("distributed")
    from sawdist.extraction.distributed import Cluster

    def environment():
        return {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MALLOC_TRIM_THRESHOLD_")}

    with Cluster("local:1", "cpu") as cluster:
        cores = len(os.sched_getaffinity(0))
        assert cluster.threads == cores and cluster.device_type == "cpu" and cluster.resources is None
        assert list(cluster.client.run(environment).values()) == [{"OMP_NUM_THREADS": str(cores),
                                                                  "MALLOC_TRIM_THRESHOLD_": None}]
        assert cluster.describe(lambda device: f"{device} here") == "Dask cluster local:1: cpu here"


# --- nothing touched that is not the run's -------------------------------------------------------------------------


def test_a_held_lock_refuses_a_second_run(tmp_path, quick_recipe, tiny):
    out = tmp_path / "run.nc"
    with OutputLock(out):
        record = json.loads((tmp_path / "run.nc.lock").read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(LockError, match=rf"^'out' '.*run\.nc' is being written by process {os.getpid()} on "
                                            rf"{socket.gethostname()} since .*; wait for that run to finish, or give "
                                            r"this one another output file\.$"):
            extract(out, recipe=quick_recipe, **tiny)
    assert not (tmp_path / "run.nc.lock").exists() and not out.exists()
    assert not (tmp_path / "run.nc.parts").exists()


def test_a_dead_runs_lock_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run.nc"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {"sawdist-lock": 1, "host": socket.gethostname(), "pid": int(dead.stdout), "started": "then",
             "command": "sawdist extract"}
    (tmp_path / "run.nc.lock").write_text(json.dumps(stale))
    with OutputLock(out):
        assert json.loads((tmp_path / "run.nc.lock").read_text())["pid"] == os.getpid()
    assert f"taking over the lock of process {int(dead.stdout)} on " in caplog.text


def test_files_that_are_not_the_runs_are_refused_and_left_unchanged(tmp_path, quick_recipe, tiny):
    csv = tmp_path / "table.csv"
    csv.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"^'out' '.*table\.csv' exists and is not a saliency dataset written by "
                                         r"sawdist; sawdist leaves it as it is: choose another output file\.$"):
        extract(csv, recipe=quick_recipe, **tiny)
    assert csv.read_bytes() == b"a,b\n1,2\n"

    folder = tmp_path / "run.nc.parts"  # a folder of the user's where the parts would go
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"^'out' has a folder '.*run\.nc\.parts' that sawdist did not make \(no "
                                         r"manifest\.json of a part store\); sawdist leaves it as it is"):
        extract(tmp_path / "run.nc", recipe=quick_recipe, **tiny)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and (folder / "keep.txt").read_text() == "mine"

    lock = tmp_path / "x.nc.lock"  # a file of the user's where the lock would go
    lock.write_text("not a lock")
    with pytest.raises(LockError, match=r"^'out' '.*x\.nc' has a file '.*x\.nc\.lock' that is not a sawdist lock"):
        extract(tmp_path / "x.nc", recipe=quick_recipe, **tiny)
    assert lock.read_text() == "not a lock"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc.parts", "table.csv", "x.nc.lock"]


def test_two_runs_on_one_output_started_together(tmp_path, reference_sweep):
    out = tmp_path / "run.nc"
    procs = [subprocess.Popen(_cli(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.returncode, err) for p in procs for _, err in [p.communicate(timeout=300)]]
    assert 0 in [rc for rc, _ in results], results
    for rc, err in results:  # the other one finished after the first (nothing to do) or was refused at once
        assert rc == 0 or (rc == 1 and "is being written by " in err), results
    assert_same_data(out, reference_sweep)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]
