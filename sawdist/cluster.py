"""A Dask cluster for the commands that run beyond one process: ``--scheduler local:N`` or ``tcp://HOST:PORT``.

``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes with one task thread each, on this
machine's cores shared among them; an address connects to a running cluster (``dask scheduler`` with ``dask worker``
processes, or dask-jobqueue's ``SLURMCluster``: docs/extraction-cluster.md). ``sawdist extract`` trains sweep units
on it (:mod:`sawdist.extraction.distributed`), ``sawdist report`` computes the blocks of its pass over the directions
(:mod:`sawdist.analyses.blocks`). Dask schedules: a task of a worker that dies runs again on another.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING

from .dependencies import require

if TYPE_CHECKING:
    from collections.abc import Iterator

    import distributed

__all__ = ["check_scheduler", "connect", "local_cluster"]

_LOCAL = re.compile(r"local:(\d+)")
_ADDRESS = re.compile(r"(tcp|tls)://\S+")


def check_scheduler(scheduler: str, name: str = "'scheduler'") -> str:
    """``scheduler`` if it is ``local:N`` (N >= 1 worker processes) or a Dask scheduler address
    (``tcp://`` or ``tls://``), else a ValueError whose message names ``name``."""
    text = str(scheduler)
    match = _LOCAL.fullmatch(text)
    if (match is None or int(match.group(1)) < 1) and _ADDRESS.fullmatch(text) is None:
        raise ValueError(f"{name} must be local:N (N >= 1 worker processes) or a Dask scheduler address such as "
                         f"tcp://host:8786, got {text!r}.")
    return text


def cores() -> int:
    """The cores this process may use (Slurm's ``--cpus-per-task``, a container's limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def local_cluster(n_workers: int, resources: dict | None = None) -> tuple[distributed.LocalCluster, int]:
    """A :class:`distributed.LocalCluster` of ``n_workers`` processes, one task thread each, and the CPU threads each
    worker's libraries get: ``(cluster, threads)``.

    Dask gives its worker processes, before they start (its "pre-spawn-environ"), OMP_NUM_THREADS=1 (and MKL,
    OpenBLAS alike), which OpenMP reads once, at start; and MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
    adaptive mmap threshold, so that every allocation above 128 KiB is a fresh mmap with its page faults: training in
    a worker ran 1.5x slower with it (benchmarks/RESULTS.md). The workers start instead with their share of the cores
    and glibc's defaults.
    """
    distributed = require("distributed", "--scheduler")
    import dask

    threads = max(1, cores() // n_workers)
    environ = {name: threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    # Dask lets a variable already in this process's environment win over its configuration (and sets the configured
    # ones here as it spawns): both are set for the start, and restored after it.
    saved = {name: os.environ.get(name) for name in environ}
    os.environ.update({name: str(value) for name, value in environ.items()})
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                               dashboard_address=":0", resources=resources)  # any free port
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return cluster, threads


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[distributed.Client]:
    """A :class:`distributed.Client` of ``scheduler`` (``local:N`` or an address), closed on exit with the
    LocalCluster it started."""
    distributed = require("distributed", "--scheduler")
    match = _LOCAL.fullmatch(check_scheduler(scheduler))
    cluster = None
    if match is None:
        client = distributed.Client(scheduler, timeout="30s")
    else:
        cluster, _ = local_cluster(int(match.group(1)))
        try:
            client = distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
