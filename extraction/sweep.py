"""Sweeps: train every (family, width, seed), compute saliency, and write the dataset one model at a time.

:func:`extract` is what ``sawdist extract`` runs. It writes each finished model to its own part file (see
:class:`sawdist.io.PartStore`), so an interrupted run — Ctrl-C, a crash, a lost machine — resumes by running the same
command again: finished models are skipped, unreadable parts are redone, and the result is the same file an
uninterrupted run writes (the training mode chosen for each (family, width) is recorded and reused, so a resumed
run trains the remaining models exactly as the first run would have).

Examples
--------
>>> from sawdist.extraction.sweep import extract
>>> from sawdist.extraction.train import Recipe
>>> result = extract("tiny.nc", families=["mlp"], widths=[8, 16], seeds=2, recipe=Recipe(epochs=1),
...                  progress=False)  # doctest: +SKIP
>>> result.complete  # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import signal
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from sawdist import io as sio

from .data import load_dataset
from .models import check_family, check_width, count_params
from .recipe import MODES, Recipe
from .saliency import check_target, saliency
from .train import choose_mode, resolve_device, train_models

__all__ = ["ExtractResult", "extract"]

#: Where the sweep's messages go (Ctrl-C, resuming, unreadable parts, GPU memory), all at level WARNING: the
#: ``sawdist`` command prints them above the progress bar; from Python, logging's default handler prints them on
#: stderr unless logging is configured otherwise.
log = logging.getLogger("sawdist.extract")

#: Schema version written to the files' attributes.
SCHEMA_VERSION = "1"


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
        Training mode and chunk size per ``"<family>-k<width>"``.
    """

    path: Path
    complete: bool
    n_done: int
    n_total: int
    trained: int = 0
    redone: list = dataclasses.field(default_factory=list)
    modes: dict = dataclasses.field(default_factory=dict)


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


class _PartWriter:
    """Writes part files on one background thread, so that the next models train while a chunk is compressed and
    written; the bookkeeping (done set, callbacks) stays on the calling thread, in the order of submission."""

    def __init__(self, store, on_written):
        self.store = store
        self.on_written = on_written  # called on the writer thread after each part (the progress bar)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sawdist-parts")
        self.pending: deque = deque()

    def submit(self, key, accuracy: float, **part) -> None:
        def write():
            self.store.write_model(**part)
            self.on_written(key, accuracy)

        self.pending.append((key, self.pool.submit(write)))

    def finished(self, wait: bool):
        """The keys written so far, in order (all of them when ``wait``); a failed write raises here."""
        while self.pending and (wait or self.pending[0][1].done()):
            key, future = self.pending.popleft()
            future.result()
            yield key

    def close(self, cancel: bool = False) -> list:
        """Finish the write under way (a part is never left half written) and, unless ``cancel``, the queued ones;
        return the keys written since the last :meth:`finished`."""
        self.pool.shutdown(wait=True, cancel_futures=cancel)
        written = [key for key, future in self.pending if not future.cancelled() and future.exception() is None]
        self.pending.clear()
        return written


def _weights_path(store, family: str, width: int, seed: int) -> Path:
    return store.folder / "weights" / f"{family}-k{int(width)}-s{int(seed)}.pt"


def _save_weights(store, stack, i: int) -> None:
    """Model ``i`` of ``stack``, atomically, in the parts folder."""
    path = _weights_path(store, stack.family, stack.width, stack.seeds[i])
    path.parent.mkdir(exist_ok=True)
    blob = {"params": {k: v[i].detach().cpu().clone() for k, v in stack.params.items()},
            "buffers": {k: v[i].detach().cpu().clone() for k, v in stack.buffers.items()},
            "test_accuracy": float(stack.test_accuracy[i])}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(blob, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _write_model_pool(folder: Path, store, families, widths, seeds, data, x, y, recipe) -> None:
    """Stack the saved weights of each (family, width) into a model pool folder (:class:`.pool.TorchModelPool`)."""
    from .pool import TorchModelPool
    from .train import ModelStack

    stacks = {}
    for family in families:
        for width in widths:
            blobs = [torch.load(_weights_path(store, family, width, s), weights_only=True) for s in seeds]
            params = {k: torch.stack([b["params"][k] for b in blobs]) for k in blobs[0]["params"]}
            buffers = {k: torch.stack([b["buffers"][k] for b in blobs]) for k in blobs[0]["buffers"]}
            accuracy = np.array([b["test_accuracy"] for b in blobs])
            stacks[(family, int(width))] = ModelStack(family, int(width), list(seeds), None, params, buffers,
                                                      test_accuracy=accuracy)
    meta = {"dataset": data.name, "options": data.options, "input_shape": list(data.input_shape),
            "n_classes": data.n_classes, "n_inputs": int(x.shape[0]), "recipe": recipe.to_dict()}
    TorchModelPool(stacks, x, y, meta=meta).save(folder)


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


def _seed_list(seeds) -> list[int]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"'seeds' must be a positive number of seeds, got {seeds}.")
        return list(range(int(seeds)))
    seeds = sorted({int(s) for s in seeds})
    if not seeds or seeds[0] < 0:
        raise ValueError(f"'seeds' must be a positive count or a list of non-negative seeds, got {seeds!r}.")
    return seeds


def _existing_output(out: Path, identity: str, grid: dict) -> bool:
    """True when ``out`` is a finished file of this very run; raise when it holds another run; delete if corrupt."""
    try:
        with xr.open_dataset(out, engine="netcdf4") as ds:
            sio.validate(ds, values=False)
            same = ds.attrs.get("identity") == identity and all(
                ds[name].values.tolist() == values for name, values in grid.items())
    except (OSError, ValueError, KeyError):
        out.unlink()  # unreadable or not a saliency dataset written completely: redo it
        return False
    if not same:
        raise ValueError(f"'out' {str(out)!r} already holds a different run; choose another file or delete it.")
    return True


def extract(out, *, dataset: str = "digits", dataset_options: dict | None = None, families=("mlp", "cnn_small"),
            widths=(2, 4, 8, 16, 32), seeds=16, recipe: Recipe | None = None, target: str = "label_logit",
            samples: int | None = 1000, device="auto", mode: str = "auto", chunk_size: int | None = None,
            complevel: int = 4, save_models=None, progress: bool = True, on_model=None,
            resume_hint: str | None = None) -> ExtractResult:
    """Train ``seeds`` models of every (family, width), compute their saliency, and write the dataset ``out``.

    Parameters
    ----------
    out : path-like
        netCDF file to write. Parts live in ``<out>.parts`` until the run is complete.
    dataset : str
        A name of :data:`sawdist.extraction.data.DATASETS`; ``dataset_options`` are the loader's keywords
        (e.g. ``{"root": "~/data"}``).
    families : sequence of str
        Model families (:data:`sawdist.extraction.models.FAMILIES`).
    widths : sequence of int
        Widths k of every family.
    seeds : int or sequence of int
        A number of seeds (``0 .. seeds-1``) or the seeds themselves.
    recipe : Recipe, optional
        Training recipe (default: :class:`sawdist.extraction.recipe.Recipe` with the dataset's defaults of
        :data:`sawdist.extraction.config.DATASET_DEFAULTS`, e.g. 10 epochs on digits).
    target : str
        Saliency target, one of :data:`sawdist.extraction.saliency.TARGETS`.
    samples : int or None
        Saliency is computed on the first ``samples`` test inputs (all of them when None or larger).
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` uses CUDA when available. The whole dataset is moved to the device.
    mode : {"auto", "batched", "sequential"}
        Training path; ``"auto"`` times one step of each per (family, width) and takes the faster one.
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
        (family, width, seed). Parts are written in the background, so the calls come in order but up to one chunk
        late (once the next chunk has trained).
    resume_hint : str, optional
        The command to show when the run stops early (default: "call extract() again with the same arguments").

    Returns
    -------
    ExtractResult
    """
    from tqdm.auto import tqdm

    out = Path(out)
    if recipe is None:
        from .config import DATASET_DEFAULTS

        recipe = Recipe(**DATASET_DEFAULTS.get(dataset, {}).get("recipe", {}))
    check_target(target)
    if mode not in MODES:
        raise ValueError(f"'mode' must be one of {', '.join(MODES)}, got {mode!r}.")
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1):
        raise ValueError(f"'chunk_size' must be a positive integer, got {chunk_size!r}.")
    sio._check_complevel(complevel)
    if samples is not None and (int(samples) != samples or samples < 1):
        raise ValueError(f"'samples' must be a positive integer or None, got {samples!r}.")
    families = list(families)
    if not families:
        raise ValueError("'families' must name at least one family, got none.")
    for family in families:
        check_family(family)
    widths = sorted({check_width(k) for k in widths})
    if not widths:
        raise ValueError("'widths' must name at least one width, got none.")
    seed_list = _seed_list(seeds)
    device = resolve_device(device)
    data = load_dataset(dataset, **(dataset_options or {}))
    n_params = {(f, k): count_params(f, k, data.input_shape, data.n_classes) for f in families for k in widths}
    data = data.to(device)
    n_samples = data.x_test.shape[0] if samples is None else min(int(samples), data.x_test.shape[0])
    x_sal, y_sal = data.x_test[:n_samples], data.y_test[:n_samples]

    identity = {"schema": SCHEMA_VERSION, "dataset": data.describe(), "samples": n_samples, "target": target,
                "recipe": recipe.to_dict(), "device": device.type}
    identity_json = json.dumps(identity, sort_keys=True)
    grid = {"family": families, "capacity": widths, "seed": seed_list}
    keys = [(f, k, s) for f in families for k in widths for s in seed_list]
    hint = resume_hint or "call extract() again with the same arguments"
    if out.exists() and _existing_output(out, identity_json, grid):
        if save_models is not None and not (Path(save_models) / "pool.json").is_file():
            raise ValueError(f"'save_models' {str(save_models)!r} holds no model pool, and {str(out)!r} is a finished "
                             "run whose weights are gone, unless it kept them in another folder; delete that file to "
                             "train the models again.")
        return ExtractResult(out, True, len(keys), len(keys))

    store = sio.PartStore(out, identity, complevel=complevel).open()
    done = store.done(keys)
    if save_models is not None:  # models finished by a run that did not keep weights are trained again
        for tmp in (store.folder / "weights").glob("*.tmp"):
            tmp.unlink()
        done = {key for key in done if _weights_path(store, *key).is_file()}
    result = ExtractResult(out, False, len(done), len(keys), redone=list(store.removed))
    bar = tqdm(total=len(keys), initial=len(done), unit="model", disable=not progress, dynamic_ncols=True,
               desc=out.name)

    def say(message: str) -> None:
        log.warning(message)

    def show(key, accuracy: float) -> None:
        bar.set_postfix(model=f"{key[0]} k={key[1]}", test_acc=f"{accuracy:.3f}", refresh=False)
        bar.update(1)

    writer = _PartWriter(store, show)

    def record(wait: bool) -> None:
        for key in writer.finished(wait):
            done.add(key)
            result.n_done = len(done)
            if on_model is not None:
                on_model(key, len(done), len(keys))

    if store.removed:
        say(f"redoing {len(store.removed)} unreadable part file(s): {', '.join(store.removed)}")
    default_chunk = chunk_size or (64 if device.type == "cuda" else 16)
    try:
        with _StopFlag(say) as flag:
            for family in families:
                for width in widths:
                    todo = [s for s in seed_list if (family, width, s) not in done]
                    if not todo:
                        continue
                    if flag.stop:
                        break
                    decision = store.decision(family, width)
                    if decision is None:
                        chosen = mode
                        if mode == "auto":
                            n_chunk = min(default_chunk, len(todo))
                            chosen, _ = choose_mode(family, width, n_chunk, data, recipe, device=device)
                        decision = {"mode": chosen, "chunk_size": default_chunk if chosen == "batched" else 1}
                        store.record(family, width, decision)
                    result.modes[f"{family}-k{width}"] = decision
                    chunk = decision["chunk_size"]
                    groups: dict[int, list[int]] = {}
                    for s in seed_list:
                        groups.setdefault(s // chunk, []).append(s)
                    pending = list(groups.values())
                    while pending:
                        group = pending.pop(0)
                        missing = [s for s in group if (family, width, s) not in done]
                        if not missing:
                            continue
                        if flag.stop:
                            break
                        # The whole chunk is retrained so that its models are exactly those of an uninterrupted run.
                        try:
                            stack = train_models(family, width, group, data, recipe, mode=decision["mode"],
                                                 device=device)
                        except torch.cuda.OutOfMemoryError:
                            if len(group) == 1:
                                raise
                            torch.cuda.empty_cache()
                            half = (len(group) + 1) // 2
                            decision = {**decision, "chunk_size": half}
                            store.record(family, width, decision)
                            result.modes[f"{family}-k{width}"] = decision
                            say(f"out of GPU memory with {len(group)} models of {family} k={width}; "
                                f"trying chunks of {half}")
                            pending[:0] = [group[:half], group[half:]]
                            continue
                        if save_models is not None:  # before the parts: a model with a part has its weights
                            for i, seed in enumerate(group):
                                if seed in missing:
                                    _save_weights(store, stack, i)
                        # The previous chunk's parts were written while this one trained; waiting for them here
                        # keeps at most one chunk of directions in memory.
                        record(wait=True)
                        sal = saliency(stack, x_sal, y_sal, target)
                        result.trained += len(group)
                        for i, seed in enumerate(group):
                            if seed in missing:
                                writer.submit(
                                    (family, width, seed), float(stack.test_accuracy[i]),
                                    family=family, capacity=width, seed=seed, direction=sal.direction[i],
                                    grad_norm=sal.grad_norm[i], valid=sal.valid[i], correct=sal.correct[i],
                                    test_accuracy=float(stack.test_accuracy[i]), n_params=n_params[(family, width)],
                                    label=y_sal.cpu().numpy(), sample=np.arange(n_samples),
                                    extra={"train_accuracy": float(stack.train_accuracy[i])},
                                )
                        del sal
                        record(wait=False)
                if flag.stop:
                    break
            record(wait=True)
        if result.n_done < len(keys):
            say(f"stopped: {result.n_done} of {len(keys)} models are saved in {store.folder}; to resume, {hint}.")
            return result
    except BaseException:  # a second Ctrl-C, or an error: stop at once, with the part being written finished
        done.update(writer.close(cancel=True))
        say(f"interrupted: {len(done)} of {len(keys)} models are saved in {store.folder}; to resume, {hint}.")
        raise
    finally:
        writer.close()
        bar.close()

    attrs = {
        "title": "input saliency directions of model families",
        "Conventions": "CF-1.10",
        "dataset": data.name,
        "dataset_options": json.dumps(data.options, sort_keys=True),
        "target": target,
        "recipe": recipe.to_json(),
        "training_modes": json.dumps(store.decisions, sort_keys=True),
        "versions": _versions(),
        "device": _device_name(device),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "identity": identity_json,
        "schema_version": SCHEMA_VERSION,
    }
    if save_models is not None:
        _write_model_pool(Path(save_models), store, families, widths, seed_list, data, x_sal, y_sal, recipe)
    store.assemble(families, widths, seed_list, attrs, input_shape=data.input_shape)
    result.complete = True
    return result


def main_hint(argv: list[str] | None = None) -> str:
    """The command line to show in the resume message."""
    argv = sys.argv if argv is None else argv
    return "rerun: " + " ".join(argv)
