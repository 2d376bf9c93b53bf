"""The Dask cluster of a sweep: ``sawdist extract --scheduler local:N`` or ``--scheduler tcp://HOST:PORT``.

:func:`sawdist.extraction.sweep.run_sweep` runs each unit of a sweep (the seeds of one family and capacity that
train together) as one task on the cluster this module connects to. The task trains the unit on its worker, computes
the saliency and writes the unit's part files atomically into the run's parts folder, which therefore has to be on a
file system every worker sees (a local disk for ``local:N``, a shared one on a cluster). The client, the ``sawdist
extract`` process, holds the output's lock, records the decisions, counts finished units on the progress bar and
assembles the output at the end, exactly as a run in one process does: the output file is the same.

Dask does the scheduling: a worker that dies (a node lost, a process killed) has its task run again elsewhere; the
rerun writes the same parts again, atomically, so nothing is lost or duplicated. An interrupted client resumes like
any run: rerun the command, and the units whose parts exist are skipped.

* ``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes (one task at a time each; torch's CPU
  threads split the cores among them). With CUDA, worker i takes GPU ``i mod (number of GPUs)``: ``local:4`` on a
  four-GPU machine trains on all four.
* ``tcp://HOST:PORT`` (or ``tls://``) uses a running cluster: ``dask scheduler`` plus ``dask worker`` processes, or
  dask-jobqueue's ``SLURMCluster`` (docs/extraction-cluster.md). When some workers declare the resource ``GPU``
  (``dask worker --resources GPU=1``) and the sweep trains on CUDA, every task asks for one GPU.

This module knows nothing of sweeps: it connects, tells the workers' device, submits tasks and yields their results.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

from sawdist.cluster import cores, local_cluster
from sawdist.dependencies import require

from .train import resolve_device

__all__ = ["Cluster", "worker_device", "worker_threads"]

_LOCAL = re.compile(r"local:(\d+)")  # a scheduler checked by sawdist.extraction.config.check_scheduler


def worker_device(device: str) -> str:
    """The device a task uses in this process: ``device`` resolved; on CUDA without an index, a LocalCluster's worker
    i takes GPU i mod (number of GPUs)."""
    import torch

    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        try:
            from distributed import get_worker

            name = get_worker().name
        except (ImportError, ValueError):  # not in a Dask worker
            name = None
        if isinstance(name, int):
            return f"cuda:{name % torch.cuda.device_count()}"
    return str(resolved)


def worker_threads() -> int:
    """torch's CPU threads for a task in this Dask worker: the cores this process may use (Slurm's
    ``--cpus-per-task``, a container's limit) shared among the worker's task threads. Dask starts workers with
    ``OMP_NUM_THREADS=1``, which would leave every task on one core."""
    try:
        from distributed import get_worker

        share = getattr(get_worker(), "nthreads", 1) or 1
    except (ImportError, ValueError):  # not in a Dask worker
        share = 1
    return max(1, cores() // share)


def _device_type(device: str) -> str:
    return resolve_device(device).type


class Cluster:
    """A Dask cluster for the tasks of one run (a context manager): connects on entry; on exit closes the client,
    and the LocalCluster it started.

    Parameters
    ----------
    scheduler : str
        ``"local:N"`` or the address of a running scheduler.
    device : str
        The sweep's ``device`` setting (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).

    Attributes
    ----------
    client : distributed.Client
    device_type : str
        ``"cpu"`` or ``"cuda"``: what ``device`` resolves to on the workers (asked of one of them).
    threads : int or None
        torch's CPU threads in each worker of a LocalCluster (its share of this machine's cores); None for a running
        cluster, whose tasks take :func:`worker_threads`.
    """

    def __init__(self, scheduler: str, device: str) -> None:
        self.scheduler = scheduler
        self.device = device
        self.client = None
        self.cluster = None
        self.device_type = "cpu"
        self.resources: dict | None = None
        self.threads: int | None = None

    def __enter__(self) -> Cluster:
        distributed = require("distributed", "--scheduler")
        match = _LOCAL.fullmatch(self.scheduler)
        try:
            if match is None:
                self.client = distributed.Client(self.scheduler, timeout="30s")
                self.device_type = self.client.submit(_device_type, self.device, pure=False).result()
                workers = self.client.scheduler_info()["workers"].values()
                if self.device_type == "cuda" and any("GPU" in w.get("resources", {}) for w in workers):
                    self.resources = {"GPU": 1}
            else:
                # the workers run on this machine: the device resolves here, and tells whether they need GPUs
                self.device_type = _device_type(self.device)
                self.resources = {"GPU": 1} if self.device_type == "cuda" else None
                self.cluster, self.threads = local_cluster(int(match.group(1)), self.resources)
                self.client = distributed.Client(self.cluster)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def describe(self, describe_device: Callable[[str], str]) -> str:
        """``"Dask cluster <scheduler>: <device>; ..."``, with ``describe_device(device)`` run on every worker that is
        up now (workers come and go: no count is given)."""
        names = sorted(set(self.client.run(describe_device, self.device).values()))
        return f"Dask cluster {self.scheduler}: " + "; ".join(names)

    def run(self, function: Callable, tasks: list[tuple[str, tuple]]) -> Iterator[tuple[str, object, Callable]]:
        """Run ``function(*args)`` for each ``(name, args)`` of ``tasks`` on the workers (one GPU each, when the
        workers have them); yield ``(name, result, add)`` as tasks finish, where ``add(name, args)`` submits one more.
        A task's error is raised here. Tasks still queued are cancelled when the caller stops iterating."""
        distributed = require("distributed", "--scheduler")
        names: dict = {}

        def submit(name: str, args: tuple):
            future = self.client.submit(function, *args, resources=self.resources, pure=False,
                                        key=f"sawdist-{name}-{uuid.uuid4().hex[:8]}")
            names[future] = name
            return future

        queue = distributed.as_completed([submit(name, args) for name, args in tasks])

        def add(name: str, args: tuple) -> None:
            queue.add(submit(name, args))

        try:
            for future in queue:
                name = names.pop(future)
                yield name, future.result(), add
        finally:
            for future in names:
                future.cancel()
