"""Sweeps: train every (family, capacity, seed), compute saliency, and write the dataset one model at a time.

:func:`extract` is what ``sawdist extract`` runs. It writes each finished model to its own part file (see
:class:`sawdist.extraction.parts.PartStore`), so an interrupted run — Ctrl-C, a crash, a lost machine — resumes by
running the same command again: finished models are skipped, unreadable parts are redone, and the result is the same
file an uninterrupted run writes (the training mode chosen for each (family, capacity) is recorded and reused, so a
resumed run trains the remaining models exactly as the first run would have).

A sweep goes in four steps, one function each:

1. :class:`Sweep`: the settings, checked — what is trained (dataset, families, capacities, seeds, inputs, target,
   recipe, training mode, chunk size) and how it is written (output file, compression, kept models, device,
   progress bar);
2. :func:`prepare`: what the settings leave open — the device, the data, the saliency inputs — resolved into the
   run's identity, which a resumed run must match;
3. :func:`plan`: the decisions per (family, capacity) — the training path and the chunk size — taken once and
   recorded in the parts folder, and the remaining work cut into units (:class:`Unit`: the seeds of one family
   and capacity that train together, with a stable id);
4. :func:`run_sweep`: the loop over the units (train, saliency, parts written in the background) and the assembly
   of the parts into the output file.

Examples
--------
>>> from sawdist.extraction.sweep import extract
>>> from sawdist.extraction.train import Recipe
>>> result = extract("tiny.nc", families=["mlp"], capacities=[8, 16], seeds=2, recipe=Recipe(epochs=1),
...                  progress=False)  # doctest: +SKIP
>>> result.complete  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import platform
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr

from sawdist.io import SCHEMA_VERSION, check_complevel, temporary_path, validate
from sawdist.lock import OutputLock

from .config import check_scheduler, check_shard
from .data import Dataset, load_dataset
from .distributed import Cluster, worker_device, worker_threads
from .models import check_capacity, check_family, count_params
from .parts import PartStore, PartWriter, key_name
from .recipe import MODES, Recipe
from .saliency import check_target, saliency
from .train import resolve_device, train_models

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence

__all__ = ["ExtractResult", "extract"]

#: Where the sweep's messages go (Ctrl-C, resuming, unreadable parts, GPU memory), all at level WARNING: the
#: ``sawdist`` command prints them above the progress bar; from Python, logging's default handler prints them on
#: stderr unless logging is configured otherwise.
log = logging.getLogger("sawdist.extract")


@dataclasses.dataclass
class ExtractResult:
    """Outcome of :func:`extract`.

    Attributes
    ----------
    path : pathlib.Path
        The output file (exists only when ``complete``).
    complete : bool
        False when the run stopped early (Ctrl-C); rerun the same command to resume.
    n_done, n_total : int
        Models finished (including those of earlier runs) and models requested.
    trained : int
        Models trained by this call.
    redone : list of str
        Part files that were unreadable and have been trained again.
    modes : dict
        Training mode and chunk size per ``"<family>-k<capacity>"``.
    unit_seconds : dict
        Wall time of each unit trained by this call, by unit id (``"mlp-k8-s0..15"``): training, saliency and, on a
        Dask worker, writing its parts (in one process the parts are written in the background).
    """

    path: Path
    complete: bool
    n_done: int
    n_total: int
    trained: int = 0
    redone: list = dataclasses.field(default_factory=list)
    modes: dict = dataclasses.field(default_factory=dict)
    unit_seconds: dict = dataclasses.field(default_factory=dict)


class _StopFlag:
    """First Ctrl-C: finish the current model and stop; second Ctrl-C: stop at once (parts stay consistent)."""

    def __init__(self, write):
        self.stop = False
        self._write = write
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        self._write("Ctrl-C: stopping after the current model (press Ctrl-C again to stop at once).")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _weights_path(store, family: str, capacity: int, seed: int) -> Path:
    return store.folder / "weights" / (key_name(family, capacity, seed) + ".pt")


def _save_weights(store, stack, i: int) -> None:
    """Model ``i`` of ``stack``, atomically, in the parts folder."""
    path = _weights_path(store, stack.family, stack.capacity, stack.seeds[i])
    path.parent.mkdir(exist_ok=True)
    blob = {"params": {k: v[i].detach().cpu().clone() for k, v in stack.params.items()},
            "buffers": {k: v[i].detach().cpu().clone() for k, v in stack.buffers.items()},
            "test_accuracy": float(stack.test_accuracy[i])}
    # A name of this process and call: when Dask runs a unit twice (a worker lost, then back), two writers of one
    # model's weights must not write into, or rename, each other's half-written file.
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(blob, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only there when the write failed: a full disk, an interrupted save


def _write_model_pool(prepared: Prepared, store) -> None:
    """Stack the saved weights of each (family, capacity) into the folder ``save_models`` (a
    :class:`.pool.TorchModelPool`)."""
    from .pool import TorchModelPool
    from .train import ModelStack

    sweep, data, x = prepared.sweep, prepared.data, prepared.inputs
    seeds = sweep.seeds
    stacks = {}
    for family in sweep.families:
        for capacity in sweep.capacities:
            blobs = [torch.load(_weights_path(store, family, capacity, s), weights_only=True) for s in seeds]
            params = {k: torch.stack([b["params"][k] for b in blobs]) for k in blobs[0]["params"]}
            buffers = {k: torch.stack([b["buffers"][k] for b in blobs]) for k in blobs[0]["buffers"]}
            accuracy = np.array([b["test_accuracy"] for b in blobs])
            stacks[(family, int(capacity))] = ModelStack(family, int(capacity), list(seeds), None, params, buffers,
                                                      test_accuracy=accuracy)
    meta = {"dataset": data.name, "options": data.options, "input_shape": list(data.input_shape),
            "n_classes": data.n_classes, "n_inputs": int(x.shape[0]), "recipe": sweep.recipe.to_dict(),
            "sweep": prepared.sweep_id}
    TorchModelPool(stacks, x, prepared.labels, meta=meta).save(Path(sweep.save_models))


def _check_model_folder(folder: Path, sweep_id: str) -> None:
    """``save_models`` must be new, empty, or this sweep's model pool: sawdist writes no file into others' folders."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"'save_models' {str(folder)!r} is a file; pass a folder.")
    if not any(folder.iterdir()):
        return
    try:
        meta = json.loads((folder / "pool.json").read_text()).get("meta", {})
    except (OSError, ValueError, AttributeError):
        meta = {}
    if meta.get("sweep") != sweep_id:
        raise ValueError(f"'save_models' {str(folder)!r} holds files that are not this run's model pool; sawdist "
                         "leaves them as they are: choose a new or empty folder.")


def _versions() -> str:
    import sawdist

    return json.dumps({
        "python": platform.python_version(),
        "sawdist": sawdist.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "xarray": xr.__version__,
    }, sort_keys=True)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _device_name_here(device: str) -> str:
    """The device a sweep with the setting ``device`` trains on in this process, described (what Dask workers
    report)."""
    return _device_name(torch.device(worker_device(device)))


def _seed_list(seeds) -> list[int]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"'seeds' must be a positive number of seeds, got {seeds}.")
        return list(range(int(seeds)))
    seeds = sorted({int(s) for s in seeds})
    if not seeds or seeds[0] < 0:
        raise ValueError(f"'seeds' must be a positive count or a list of non-negative seeds, got {seeds!r}.")
    return seeds


def _existing_output(out: Path, identity: str, grid: dict, what: str = "'out'") -> bool:
    """True when ``out`` is a finished file of this very run; raise when it is anything else (left as it is)."""
    try:
        with xr.open_dataset(out, engine="netcdf4") as ds:
            # A finished file of another schema version is another run.
            same = str(ds.attrs.get("schema_version", SCHEMA_VERSION)) == SCHEMA_VERSION
            if same:
                validate(ds, values=False)
                same = ds.attrs.get("identity") == identity and all(
                    ds[name].values.tolist() == values for name, values in grid.items())
    except (OSError, ValueError, KeyError):
        # Outputs are written to a temporary name and renamed whole: a file that is not one was not written by
        # a run of sawdist extract, and is never touched.
        raise ValueError(f"{what} {str(out)!r} exists and is not a saliency dataset written by sawdist; sawdist leaves "
                         "it as it is: choose another output file.") from None
    if not same:
        raise ValueError(f"{what} {str(out)!r} already holds a different run; choose another file or delete it.")
    return True


# --- 1. the settings -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sweep:
    """The settings of a sweep, checked: what is trained and how it is written (the arguments of :func:`extract`).

    Creating one checks every setting, with the messages of :func:`extract`, and completes some: ``recipe`` defaults
    to the dataset's (:data:`sawdist.extraction.config.DATASET_DEFAULTS`), ``capacities`` are sorted and unique,
    ``seeds`` become the seeds themselves, ``out`` a path. Nothing is loaded or timed here.
    """

    # what is trained
    dataset: str
    dataset_options: dict | None
    families: tuple
    capacities: tuple
    seeds: tuple
    inputs: int | None
    target: str
    recipe: Recipe | None
    mode: str
    chunk_size: int | None
    # how it is written
    out: Path
    complevel: int
    save_models: object
    device: object
    progress: bool
    # how the work is shared
    shard: tuple | None = None
    scheduler: str | None = None

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        if self.recipe is None:
            from .config import DATASET_DEFAULTS

            put("recipe", Recipe(**DATASET_DEFAULTS.get(self.dataset, {}).get("recipe", {})))
        check_target(self.target)
        if self.mode not in MODES:
            raise ValueError(f"'mode' must be one of {', '.join(MODES)}, got {self.mode!r}.")
        chunk = self.chunk_size
        if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1):
            raise ValueError(f"'chunk_size' must be a positive integer, got {chunk!r}.")
        put("complevel", check_complevel(self.complevel))
        if self.inputs is not None and (int(self.inputs) != self.inputs or self.inputs < 1):
            raise ValueError(f"'inputs' must be a positive integer or None, got {self.inputs!r}.")
        put("families", tuple(self.families))
        if not self.families:
            raise ValueError("'families' must name at least one family, got none.")
        for family in self.families:
            check_family(family)
        put("capacities", tuple(sorted({check_capacity(k) for k in self.capacities})))
        if not self.capacities:
            raise ValueError("'capacities' must name at least one capacity, got none.")
        put("seeds", tuple(_seed_list(self.seeds)))
        put("out", Path(self.out))
        if self.shard is not None:
            put("shard", check_shard(self.shard))
            if self.save_models is not None:
                raise ValueError("'save_models' cannot be combined with 'shard': a shard holds only some models of "
                                 "each capacity; keep the models of an unsharded run (one process, or a scheduler).")
        if self.scheduler is not None:
            put("scheduler", check_scheduler(self.scheduler))


# --- 2. what the settings leave open -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A :class:`Sweep` with what it leaves open resolved (:func:`prepare`).

    Attributes
    ----------
    sweep : Sweep
    device : torch.device
        Where the models train (``"auto"`` resolved).
    data : sawdist.extraction.data.Dataset
        The training and test data, on ``device``.
    inputs, labels : torch.Tensor
        The first ``inputs`` test inputs and their labels: where saliency is computed.
    n_params : dict
        Trainable parameters of each (family, capacity).
    identity : dict
        Everything that determines the models (schema version, data, inputs, target, recipe, device type, training
        mode and chunk size; the shard, for a shard): parts and a finished file are reused only by a run with the
        same identity.
    decision : dict
        How every (family, capacity) trains unless its parts folder records otherwise: ``{"mode", "chunk_size"}``.
    units : list of Unit
        The units this run trains (a shard's share of the sweep's units), before any CUDA out-of-memory halving.
    """

    sweep: Sweep
    device: torch.device
    data: Dataset
    inputs: torch.Tensor
    labels: torch.Tensor
    n_params: dict
    identity: dict
    decision: dict
    units: list

    @property
    def identity_json(self) -> str:
        return json.dumps(self.identity, sort_keys=True)

    @property
    def sweep_id(self) -> str:
        """A short hash of the sweep (the identity without the shard, and the grid): equal for all its shards."""
        identity = {k: v for k, v in self.identity.items() if k != "shard"}
        text = json.dumps({"identity": identity, "grid": self.grid}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def grid(self) -> dict:
        """The coordinates of the output: ``{"family": [...], "capacity": [...], "seed": [...]}``."""
        return {"family": list(self.sweep.families), "capacity": list(self.sweep.capacities),
                "seed": list(self.sweep.seeds)}

    @property
    def keys(self) -> list[tuple]:
        """Every model of the sweep, ``(family, capacity, seed)``, in the order of the output."""
        return [(f, k, s) for f in self.sweep.families for k in self.sweep.capacities for s in self.sweep.seeds]

    @property
    def models(self) -> list[tuple]:
        """The models this run trains (all of :attr:`keys`, or a shard's), in the order of the output."""
        mine = {(u.family, u.capacity, s) for u in self.units for s in u.seeds}
        return [key for key in self.keys if key in mine]


def default_decision(sweep: Sweep, device_type: str) -> dict:
    """How each (family, capacity) trains: ``{"mode", "chunk_size"}``, a function of the settings and the device type
    alone, so that every resume, shard and worker cuts the same units and trains them the same way.

    ``mode="auto"`` is the batched path (all seeds of a chunk in one vectorised model) whenever a chunk holds more
    than one seed, else the sequential one. It is not chosen by timing: a timed choice can differ between two runs
    of one command, and the two paths give directions that differ in the last bits (about 1e-7). The chunk size is
    ``chunk_size``, by default 16 seeds on a CPU and 64 on CUDA (1 for the sequential path).
    """
    chunk = sweep.chunk_size or (64 if device_type == "cuda" else 16)
    mode = sweep.mode
    if mode == "auto":
        mode = "batched" if min(chunk, len(sweep.seeds)) > 1 else "sequential"
    return {"mode": mode, "chunk_size": int(chunk) if mode == "batched" else 1}


def prepare(sweep: Sweep, *, device_type: str | None = None) -> Prepared:
    """Resolve the device, load the data (onto the device), take the saliency inputs and cut the units: the run's
    identity.

    ``device_type`` (``"cpu"`` or ``"cuda"``), for the client of a Dask cluster, is the device type of the workers:
    it goes into the identity, and the data stays on this process's CPU (the client trains nothing).
    """
    if device_type is None:
        device = resolve_device(sweep.device)
    else:
        device = torch.device(device_type)
    data = load_dataset(sweep.dataset, **(sweep.dataset_options or {}))
    n_params = {(f, k): count_params(f, k, data.input_shape, data.n_classes) for f in sweep.families
                for k in sweep.capacities}
    if device_type is None:
        data = data.to(device)
    n = data.x_test.shape[0] if sweep.inputs is None else min(int(sweep.inputs), data.x_test.shape[0])
    decision = default_decision(sweep, device.type)
    identity = {"schema": SCHEMA_VERSION, "dataset": data.describe(), "inputs": n, "target": sweep.target,
                "recipe": sweep.recipe.to_dict(), "device": device.type, "mode": sweep.mode,
                "chunk_size": decision["chunk_size"]}
    work = [u for f in sweep.families for k in sweep.capacities for u in units(f, k, sweep.seeds, decision)]
    if sweep.shard is not None:
        index, count = sweep.shard
        identity["shard"] = [index, count]
        work = [unit for unit, owner in zip(work, shard_owners(work, count)) if owner == index]
    return Prepared(sweep, device, data, data.x_test[:n], data.y_test[:n], n_params, identity, decision, work)


# --- 3. decisions and units ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Unit:
    """The seeds of one family and capacity that train together: the unit of work of a sweep.

    A unit is trained whole even when some of its models are finished already, so that its models are exactly
    those of an uninterrupted run. Its :attr:`id` is stable: the same decisions cut the same units in every run.
    """

    family: str
    capacity: int
    seeds: tuple
    mode: str

    @property
    def id(self) -> str:
        """``"<family>-k<capacity>-s<first seed>..<last seed>"`` (``"...-s<seed>"`` for a single seed)."""
        last = f"..{self.seeds[-1]}" if len(self.seeds) > 1 else ""
        return key_name(self.family, self.capacity, self.seeds[0]) + last

    def halves(self) -> tuple[Unit, Unit]:
        """The unit cut in two, the first half the larger (what is tried when it does not fit in GPU memory)."""
        half = (len(self.seeds) + 1) // 2
        return dataclasses.replace(self, seeds=self.seeds[:half]), dataclasses.replace(self, seeds=self.seeds[half:])


def units(family: str, capacity: int, seeds: Iterable[int], decision: dict) -> list[Unit]:
    """The units of one family and capacity under ``decision``: seed s goes to chunk ``s // chunk_size``, so a chunk
    holds the same seeds whichever of them are finished."""
    groups: dict[int, list[int]] = {}
    for seed in seeds:
        groups.setdefault(seed // decision["chunk_size"], []).append(seed)
    return [Unit(family, capacity, tuple(group), decision["mode"]) for group in groups.values()]


def shard_owners(work: list[Unit], count: int) -> list[int]:
    """The shard of each unit of ``work`` (in order) when the sweep is cut into ``count`` shards: each unit goes to the
    shard with the fewest models so far (the first such), so that shards hold nearly equal numbers of models and
    each gets small and large capacities alike. A function of the units alone: every shard computes the same cut."""
    loads, owners = [0] * count, []
    for unit in work:
        owner = loads.index(min(loads))
        owners.append(owner)
        loads[owner] += len(unit.seeds)
    return owners


def plan(prepared: Prepared, store: PartStore, done: set) -> list[Unit]:
    """The units to train: those of ``prepared.units`` with a model not in ``done``, in the order of the output.

    Each (family, capacity) trains as :attr:`Prepared.decision` says, recorded in the manifest of ``store``, unless
    the manifest records otherwise (after CUDA ran out of memory, a smaller chunk: the unit is then cut into the
    smaller chunks).
    """
    work = []
    for unit in prepared.units:
        if all((unit.family, unit.capacity, s) in done for s in unit.seeds):
            continue
        decision = store.decision(unit.family, unit.capacity)
        if decision is None:
            decision = dict(prepared.decision)
            store.record(unit.family, unit.capacity, decision)
        for part in units(unit.family, unit.capacity, unit.seeds, decision):
            if any((part.family, part.capacity, s) not in done for s in part.seeds):
                work.append(part)
    return work


# --- 4. training and assembly --------------------------------------------------------------------------------------


def run_sweep(sweep: Sweep, *, on_model: Callable[[tuple[str, int, int], int, int], None] | None = None,
              resume_hint: str | None = None) -> ExtractResult:
    """Run a sweep (:func:`extract` after checking its arguments): prepare, plan, train the units, assemble.

    The run holds the lock of its output (:class:`sawdist.lock.OutputLock`) throughout: a second run on
    the same output is refused.
    """
    with OutputLock(sweep.out), contextlib.ExitStack() as stack:
        cluster = None
        if sweep.scheduler is not None:
            cluster = stack.enter_context(Cluster(sweep.scheduler, sweep.device))
        prepared = prepare(sweep, device_type=None if cluster is None else cluster.device_type)
        models = prepared.models
        n_total = len(models)
        if sweep.out.exists() and _existing_output(sweep.out, prepared.identity_json, prepared.grid):
            if sweep.save_models is not None and not (Path(sweep.save_models) / "pool.json").is_file():
                raise ValueError(f"'save_models' {str(sweep.save_models)!r} holds no model pool, and "
                                 f"{str(sweep.out)!r} is a finished run whose weights are gone, unless it kept them in "
                                 "another folder; delete that file to train the models again.")
            return ExtractResult(sweep.out, True, n_total, n_total)
        if sweep.save_models is not None:
            _check_model_folder(Path(sweep.save_models), prepared.sweep_id)
        store = PartStore(sweep.out, prepared.identity, complevel=sweep.complevel).open()
        done = store.done(models)
        if sweep.save_models is not None:  # models finished by a run that did not keep weights are trained again
            done = {key for key in done if _weights_path(store, *key).is_file()}
        result = ExtractResult(sweep.out, False, len(done), n_total, redone=list(store.removed))
        hint = resume_hint or "call extract() again with the same arguments"
        # Announced here, once the output, its lock and parts folder and the data are checked: a refusal is then the
        # only line the command prints.
        log.info(f"extracting {n_total} models ({', '.join(sweep.families)}; capacities "
                 f"{', '.join(map(str, sweep.capacities))}; {len(sweep.seeds)} seeds; {sweep.dataset}) "
                 f"into {sweep.out}")
        if cluster is not None:
            finished = _train_on_cluster(prepared, store, done, result, on_model, hint, cluster)
        else:
            finished = _train(prepared, store, done, result, on_model, hint)
        if finished:
            _assemble(prepared, store, device=None if cluster is None else cluster.describe(_device_name_here))
            result.complete = True
    return result


def run_unit(prepared: Prepared, store: PartStore, unit: Unit, missing: Collection[int],
             writer: PartWriter | None = None, on_trained: Callable[[], None] | None = None) -> int:
    """Train ``unit``, keep its weights when asked, compute its saliency and write the parts of its ``missing`` seeds
    (through ``writer``, a :class:`PartWriter`, in the background; else here, before returning). ``on_trained()`` is
    called between the training and the saliency. Returns the number of models trained.

    A unit that does not fit in CUDA memory raises :class:`torch.cuda.OutOfMemoryError`.
    """
    sweep = prepared.sweep
    stack = train_models(unit.family, unit.capacity, list(unit.seeds), prepared.data, sweep.recipe, mode=unit.mode,
                         device=prepared.device)
    if sweep.save_models is not None:  # before the parts: a model with a part has its weights
        for i, seed in enumerate(unit.seeds):
            if seed in missing:
                _save_weights(store, stack, i)
    if on_trained is not None:
        on_trained()
    sal = saliency(stack, prepared.inputs, prepared.labels, sweep.target)
    for i, seed in enumerate(unit.seeds):
        if seed not in missing:
            continue
        accuracy = float(stack.test_accuracy[i])
        part = dict(family=unit.family, capacity=unit.capacity, seed=seed, direction=sal.direction[i],
                    grad_norm=sal.grad_norm[i], valid=sal.valid[i], correct=sal.correct[i], test_accuracy=accuracy,
                    n_params=prepared.n_params[(unit.family, unit.capacity)], label=prepared.labels.cpu().numpy(),
                    input_index=np.arange(prepared.inputs.shape[0]),
                    extra={"train_accuracy": float(stack.train_accuracy[i])})
        if writer is not None:
            writer.submit((unit.family, unit.capacity, seed), accuracy, **part)
        else:
            store.write_model(**part)
    return len(unit.seeds)


def _train(prepared: Prepared, store: PartStore, done: set, result: ExtractResult, on_model, hint: str) -> bool:
    """Plan, then train each unit, compute its saliency and write its parts; True when every model has its part.

    Parts are written in the background while the next unit trains. The first Ctrl-C stops after the current unit;
    a second one, or an error, stops at once, with the part being written finished.
    """
    from tqdm.auto import tqdm

    sweep, n_total = prepared.sweep, result.n_total
    bar = tqdm(total=n_total, initial=len(done), unit="model", disable=not sweep.progress, dynamic_ncols=True,
               desc=sweep.out.name)

    def show(key, accuracy: float) -> None:
        bar.set_postfix(model=f"{key[0]} k={key[1]}", test_acc=f"{accuracy:.3f}", refresh=False)
        bar.update(1)

    writer = PartWriter(store, show)

    def record(wait: bool) -> None:
        for key in writer.finished(wait):
            done.add(key)
            result.n_done = len(done)
            if on_model is not None:
                on_model(key, len(done), n_total)

    if store.removed:
        log.warning(f"redoing {len(store.removed)} unreadable part file(s): {', '.join(store.removed)}")
    try:
        with _StopFlag(log.warning) as flag:
            pending = deque(plan(prepared, store, done))
            result.modes.update({key_name(u.family, u.capacity): store.decision(u.family, u.capacity) for u in pending})
            while pending and not flag.stop:
                unit = pending.popleft()
                missing = [s for s in unit.seeds if (unit.family, unit.capacity, s) not in done]
                if not missing:
                    continue
                try:
                    # The previous unit's parts were written while this one trained; waiting for them before its
                    # saliency keeps at most one unit of directions in memory.
                    start = time.perf_counter()
                    result.trained += run_unit(prepared, store, unit, missing, writer,
                                               on_trained=lambda: record(wait=True))
                    result.unit_seconds[unit.id] = time.perf_counter() - start
                except torch.cuda.OutOfMemoryError:
                    if len(unit.seeds) == 1:
                        raise
                    pending.extendleft(reversed(_halve(unit, store, result)))
                    continue
                record(wait=False)
            record(wait=True)
        if result.n_done < n_total:
            log.warning(f"stopped: {result.n_done} of {n_total} models are saved in {store.folder}; to resume, {hint}.")
            return False
    except BaseException:  # a second Ctrl-C, or an error: stop at once, with the part being written finished
        done.update(writer.close(cancel=True))
        log.warning(f"interrupted: {len(done)} of {n_total} models are saved in {store.folder}; to resume, {hint}.")
        raise
    finally:
        writer.close()
        bar.close()
    return True


def _train_on_cluster(prepared: Prepared, store: PartStore, done: set, result: ExtractResult, on_model, hint: str,
                      cluster: Cluster) -> bool:
    """The loop of :func:`_train` on a Dask cluster: each unit is a task (:func:`_run_unit_task`) that writes its own
    parts; True when every model has its part. The progress bar counts units."""
    from tqdm.auto import tqdm

    sweep = prepared.sweep
    work = plan(prepared, store, done)
    result.modes.update({key_name(u.family, u.capacity): store.decision(u.family, u.capacity) for u in work})
    if store.removed:
        log.warning(f"redoing {len(store.removed)} unreadable part file(s): {', '.join(store.removed)}")
    identity = prepared.identity_json

    def task(unit: Unit) -> tuple[str, tuple]:
        missing = [s for s in unit.seeds if (unit.family, unit.capacity, s) not in done]
        return unit.id, (sweep, identity, unit, missing, cluster.threads)

    units_by_id = {unit.id: unit for unit in work}
    bar = tqdm(total=len(work), unit="unit", disable=not sweep.progress, dynamic_ncols=True, desc=sweep.out.name)
    try:
        for name, outcome, add in cluster.run(_run_unit_task, [task(unit) for unit in work]):
            unit = units_by_id.pop(name)
            if outcome is None:  # out of CUDA memory on its worker: the halves, as in _train
                if len(unit.seeds) == 1:
                    raise RuntimeError(f"one model of {unit.family} k={unit.capacity} does not fit in GPU memory.")
                for half in _halve(unit, store, result):
                    units_by_id[half.id] = half
                    add(*task(half))
                bar.total += 1
                continue
            result.trained += len(unit.seeds)
            result.unit_seconds[unit.id] = outcome["seconds"]
            for seed in outcome["seeds"]:
                done.add((unit.family, unit.capacity, seed))
                result.n_done = len(done)
                if on_model is not None:
                    on_model((unit.family, unit.capacity, seed), len(done), result.n_total)
            bar.set_postfix(unit=unit.id, models=f"{result.n_done}/{result.n_total}", refresh=False)
            bar.update(1)
    except BaseException:
        log.warning(f"interrupted: {len(done)} of {result.n_total} models are saved in {store.folder}; to resume, "
                    f"{hint}.")
        raise
    finally:
        bar.close()
    return result.n_done >= result.n_total


# In a Dask worker process: the prepared sweep (data loaded onto the worker's device), reused by its next units.
_worker_prepared: dict = {}
_worker_lock = threading.Lock()


def _run_unit_task(sweep: Sweep, identity: str, unit: Unit, missing: list, threads: int | None) -> dict | None:
    """A Dask task: train one unit on this worker (on ``threads`` torch threads; None: the worker's share of its
    cores, :func:`sawdist.extraction.distributed.worker_threads`) and write the parts of its ``missing`` seeds;
    return those seeds and the seconds it took (``{"seeds", "seconds"}``), or None when the unit does not fit in CUDA
    memory."""
    start = time.perf_counter()
    torch.set_num_threads(threads or worker_threads())
    with _worker_lock:
        key = (identity, str(sweep.out))
        if key not in _worker_prepared:
            prepared = prepare(dataclasses.replace(sweep, device=worker_device(sweep.device), scheduler=None))
            if prepared.identity_json != identity:
                raise ValueError(f"a Dask worker prepares a different sweep than the client (its identity is "
                                 f"{prepared.identity_json}, the client's {identity}): check that the workers see the "
                                 "same dataset files and the same version of sawdist.")
            _worker_prepared.clear()
            _worker_prepared[key] = prepared
        prepared = _worker_prepared[key]
    store = PartStore(sweep.out, prepared.identity, complevel=sweep.complevel)
    try:
        run_unit(prepared, store, unit, set(missing))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None
    return {"seeds": list(missing), "seconds": time.perf_counter() - start}


def _halve(unit: Unit, store: PartStore, result: ExtractResult) -> tuple[Unit, Unit]:
    """After CUDA ran out of memory on ``unit``: record the smaller chunk size and return the unit's halves."""
    torch.cuda.empty_cache()
    halves = unit.halves()
    decision = {**store.decision(unit.family, unit.capacity), "chunk_size": len(halves[0].seeds)}
    store.record(unit.family, unit.capacity, decision)
    result.modes[key_name(unit.family, unit.capacity)] = decision
    log.warning(f"out of GPU memory with {len(unit.seeds)} models of {unit.family} k={unit.capacity}; trying chunks of "
                f"{len(halves[0].seeds)}")
    return halves


def _assemble(prepared: Prepared, store: PartStore, device: str | None = None) -> None:
    """Write the output file from the parts (and, when asked, the model pool), with the run's attributes
    (``device``: the device that trained, when it is not this process's)."""
    sweep, data = prepared.sweep, prepared.data
    attrs = {
        "title": "input saliency directions of model families",
        "Conventions": "CF-1.10",
        "dataset": data.name,
        "dataset_options": json.dumps(data.options, sort_keys=True),
        "target": sweep.target,
        "recipe": sweep.recipe.to_json(),
        "training_modes": json.dumps(store.decisions, sort_keys=True),
        "versions": _versions(),
        "device": device or _device_name(prepared.device),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "identity": prepared.identity_json,
        "sweep": prepared.sweep_id,
        "schema_version": SCHEMA_VERSION,
    }
    models = None
    if sweep.shard is not None:
        attrs["shard"] = f"{sweep.shard[0]}/{sweep.shard[1]}"
        models = prepared.models
    if sweep.save_models is not None:
        _write_model_pool(prepared, store)
    store.assemble(sweep.families, sweep.capacities, sweep.seeds, attrs, input_shape=data.input_shape, models=models,
                   n_params=prepared.n_params)


def extract(out: str | os.PathLike[str], *, dataset: str = "digits", dataset_options: dict | None = None,
            families: Sequence[str] = ("mlp", "cnn_small"), capacities: Sequence[int] = (2, 4, 8, 16, 32),
            seeds: int | Sequence[int] = 16, recipe: Recipe | None = None, target: str = "label_logit",
            inputs: int | None = 1000, device: str | torch.device = "auto", mode: str = "auto",
            chunk_size: int | None = None, complevel: int = 1, save_models: str | os.PathLike[str] | None = None,
            progress: bool = True, on_model: Callable[[tuple[str, int, int], int, int], None] | None = None,
            resume_hint: str | None = None, shard: tuple[int, int] | str | None = None,
            scheduler: str | None = None) -> ExtractResult:
    """Train ``seeds`` models of every (family, capacity), compute their saliency, and write the dataset ``out``.

    Parameters
    ----------
    out : path-like
        netCDF file to write. Parts live in ``<out>.parts`` until the run is complete.
    dataset : str
        A name of :data:`sawdist.extraction.data.DATASETS`; ``dataset_options`` are the loader's keywords
        (e.g. ``{"root": "~/data"}``).
    families : sequence of str
        Model families (:data:`sawdist.extraction.models.FAMILIES`).
    capacities : sequence of int
        Capacities k of every family (the width multiplier of its layers, :mod:`sawdist.extraction.models`).
    seeds : int or sequence of int
        A number of seeds (``0 .. seeds-1``) or the seeds themselves.
    recipe : Recipe, optional
        Training recipe (default: :class:`sawdist.extraction.recipe.Recipe` with the dataset's defaults of
        :data:`sawdist.extraction.config.DATASET_DEFAULTS`, e.g. 10 epochs on digits).
    target : str
        Saliency target, one of :data:`sawdist.extraction.saliency.TARGETS`.
    inputs : int or None
        Saliency is computed on the first ``inputs`` test inputs (all of them when None or larger).
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (GPU N). The whole dataset is moved
        to the device.
    mode : {"auto", "batched", "sequential"}
        Training path; ``"auto"`` is ``"batched"`` when a chunk holds more than one seed (:func:`default_decision`:
        decided by rule, not by timing, so that every run of one command writes the same numbers).
    chunk_size : int, optional
        Seeds trained together in the batched mode (default 16 on CPU, 64 on CUDA, halved on CUDA out-of-memory).
    complevel : int
        zlib level 0-9 of the output file (0: uncompressed). Directions compress to about 86 % of their size at any
        level; each model's are compressed on every core while the next models train.
    save_models : path-like, optional
        Also keep the trained models: a folder that :meth:`sawdist.extraction.pool.TorchModelPool.load` reads (and
        ``sawdist report --models`` takes), with every model's weights and the saliency inputs. It is written when
        the run completes; until then each model's weights wait in the parts folder next to its part. A resumed run
        trains again the finished models whose weights an earlier call did not keep (they come out the same).
    progress : bool
        Show a tqdm progress bar (models done, ETA, last accuracy).
    on_model : callable, optional
        Called as ``on_model(key, n_done, n_total)`` for each model whose part is written; ``key`` is
        (family, capacity, seed). Parts are written in the background, so the calls come in order but up to one chunk
        late (once the next chunk has trained).
    resume_hint : str, optional
        The command to show when the run stops early (default: "call extract() again with the same arguments").
    shard : (int, int) or str, optional
        ``(I, N)`` or ``"I/N"``: train only shard I of N of the sweep's units (:func:`shard_owners`: nearly equal
        numbers of models per shard) and write them to ``out``, a shard file: a dataset of the whole grid in which
        the models of the other shards are absent (``in_shard`` False, ``direction`` NaN, taking no space). Run
        every shard, on any machines, then combine them with :func:`sawdist.shards.merge` (``sawdist merge``) or
        open them together with :func:`sawdist.io.open_saliency`. Not with ``save_models``.
    scheduler : str, optional
        Train the units as tasks on a Dask cluster: ``"local:N"`` starts N worker processes on this machine,
        ``"tcp://HOST:PORT"`` uses a running scheduler (:mod:`sawdist.extraction.distributed`). The parts folder
        must be on a file system every worker sees. The output is the same file a run in one process writes.

    Returns
    -------
    ExtractResult
    """
    sweep = Sweep(dataset=dataset, dataset_options=dataset_options, families=families, capacities=capacities,
                  seeds=seeds, inputs=inputs, target=target, recipe=recipe, mode=mode, chunk_size=chunk_size, out=out,
                  complevel=complevel, save_models=save_models, device=device, progress=progress, shard=shard,
                  scheduler=scheduler)
    return run_sweep(sweep, on_model=on_model, resume_hint=resume_hint)


def main_hint(argv: list[str] | None = None) -> str:
    """The command line to show in the resume message."""
    argv = sys.argv if argv is None else argv
    return "rerun: " + " ".join(argv)
