"""The part store of a sweep: one file per trained model, resumable, assembled into a saliency dataset at the end.

:func:`sawdist.extraction.sweep.extract` writes one trained model at a time into its own *part file* (written to a
temporary name and moved into place, so a part either exists whole or not at all) in the folder ``<out>.parts``,
with ``direction`` already compressed as the output file stores it; when every model is there, the parts are copied
into ``<out>`` (again through a temporary file, :func:`sawdist.io.to_netcdf_atomic`) and the folder is removed. A
rerun skips finished parts, redoes unreadable ones, and so completes an interrupted run without losing finished
models. The schema of the output is :mod:`sawdist.io`'s (docs/dataset.md).

Needs NumPy, xarray and Dask, not PyTorch.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from sawdist.io import (
    DIMS,
    METADATA,
    check_complevel,
    check_threads,
    chunk_rows,
    decode_chunk,
    encode_chunk,
    temporary_path,
    to_netcdf_atomic,
    validate,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator

    from numpy.typing import ArrayLike

__all__ = ["PartStore", "PartWriter", "key_name", "load_direction"]

log = logging.getLogger("sawdist.extract")

_PER_INPUT = {"grad_norm": np.float32, "valid": bool, "correct": bool}
#: Marks a parts folder's manifest as sawdist's (manifests before 2026-11-29 have "identity" and no format).
_FORMAT = "sawdist-parts-1"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file (flushed to disk, then renamed over ``path``)."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def key_name(family: str, capacity: int, seed: int | None = None) -> str:
    """``"<family>-k<capacity>"`` (a family at one capacity: its recorded decisions) or
    ``"<family>-k<capacity>-s<seed>"`` (one model: its part file and its weights)."""
    name = f"{family}-k{int(capacity)}"
    return name if seed is None else f"{name}-s{int(seed)}"


def _part_chunks(z) -> list[bytes]:
    """The encoded chunks of ``direction`` stored in an open part file."""
    data = memoryview(z["direction_chunks"])
    ends = np.cumsum(z["direction_sizes"])
    return [bytes(data[end - size: end]) for size, end in zip(z["direction_sizes"].tolist(), ends.tolist())]


def _direction_info(z, meta: dict) -> dict:
    """How a part stores ``direction``: ``n_inputs``, ``n_feature`` and, for encoded chunks, ``rows`` and
    ``complevel``. Parts written before 2026-11-26 hold the plain array (``"direction"``); they stay valid."""
    if "direction" in z.files:
        n_inputs, n_feature = z["direction"].shape
        return {"n_inputs": n_inputs, "n_feature": n_feature}
    return meta["direction"]


def _decode_part(z, info: dict) -> np.ndarray:
    if "rows" not in info:
        return z["direction"]
    blocks = [decode_chunk(c, info["rows"], info["n_feature"], info["complevel"] > 0) for c in _part_chunks(z)]
    return np.concatenate(blocks)[: info["n_inputs"]]


def _encode_model(direction: np.ndarray, rows: int, complevel: int, pool) -> list[bytes]:
    blocks = [direction[start: start + rows] for start in range(0, direction.shape[0], rows)]
    return list(pool.map(lambda block: encode_chunk(block, rows, complevel), blocks))


def load_direction(path: str | os.PathLike[str]) -> np.ndarray:
    """The directions of one part file, decoded: ``(n_inputs, n_feature)`` float32."""
    with open(path, "rb") as f, np.load(f) as z:
        return _decode_part(z, _direction_info(z, json.loads(str(z["meta"]))))


class PartStore:
    """The per-model part files of one run, in the folder ``<out>.parts`` next to the output file ``out``.

    Parameters
    ----------
    out : path-like
        The final netCDF file.
    identity : dict
        JSON-serialisable description of everything that determines the models (dataset, inputs, recipe,
        target, device type). Parts are reused only by a run with the same identity.
    complevel : int
        zlib level 0-9 of the output (0: uncompressed); the parts hold ``direction`` already encoded for it.
    threads : int, optional
        Threads that compress a part's chunks (default: every core this process may use).

    Notes
    -----
    The folder holds ``manifest.json`` (the identity, and per-(family, capacity) decisions such as the training
    mode, so that a resumed run repeats them) and one file per finished model, ``<family>-k<capacity>-s<seed>.npz``
    (NumPy's zip format, with CRC-32 checksums; written through a temporary file and :func:`os.replace`). A part
    stores ``direction`` as the compressed chunks of the output file, so the compression, the slow step, happens
    while the run goes on (:func:`sawdist.extraction.sweep.extract` writes parts in the background while the next models
    train), and :meth:`assemble` copies the chunks into the netCDF4 output without compressing them again.
    """

    def __init__(self, out: str | os.PathLike[str], identity: dict, *, complevel: int = 1,
                 threads: int | None = None) -> None:
        self.complevel = check_complevel(complevel)
        self.threads = check_threads(threads)
        self.out = Path(out)
        self.folder = self.out.with_name(self.out.name + ".parts")
        self.identity = json.loads(json.dumps(identity, sort_keys=True))
        self.manifest_path = self.folder / "manifest.json"
        self.decisions: dict = {}
        self.removed: list[str] = []

    # manifest --------------------------------------------------------------------------------------------------
    def open(self) -> PartStore:
        """Create the folder, or check that an existing one holds this run's parts; clean this run's temporary files.

        A folder at ``<out>.parts`` that sawdist did not make (no ``manifest.json`` of a part store) or that holds
        another run's parts is refused, and left as it is.
        """
        if self.folder.exists() or self.folder.is_symlink():
            manifest = None
            if self.folder.is_dir() and self.manifest_path.is_file():
                try:
                    manifest = json.loads(self.manifest_path.read_text())
                except (OSError, ValueError):
                    manifest = None
            if not isinstance(manifest, dict) or (manifest.get("format") != _FORMAT and "identity" not in manifest):
                raise ValueError(
                    f"'out' has a folder {str(self.folder)!r} that sawdist did not make (no manifest.json of a part "
                    "store); sawdist leaves it as it is: move it away or choose another output file.")
            if manifest.get("identity") != self.identity:
                raise ValueError(
                    f"'out' has unfinished parts of a different run in {self.folder}; "
                    "rerun that run's command, delete the folder, or choose another output file."
                )
            self.decisions = manifest.get("decisions", {})
        self.folder.mkdir(parents=True, exist_ok=True)
        # Temporary files of this run's earlier, interrupted processes: the caller holds the output's lock
        # (sawdist.lock), so no process of a live run writes here.
        for tmp in [*self.folder.glob("*.tmp"), *self.folder.glob("weights/*.tmp")]:
            tmp.unlink()
        self._write_manifest()
        return self

    def _write_manifest(self) -> None:
        content = {"format": _FORMAT, "identity": self.identity, "decisions": self.decisions}
        write_atomic(self.manifest_path, json.dumps(content, indent=1, sort_keys=True).encode())

    def decision(self, family: str, capacity: int) -> dict | None:
        """The decisions recorded for (family, capacity), or None."""
        return self.decisions.get(key_name(family, capacity))

    def record(self, family: str, capacity: int, decision: dict) -> None:
        """Record decisions for (family, capacity) in the manifest (kept for resumed runs)."""
        self.decisions[key_name(family, capacity)] = decision
        self._write_manifest()

    # parts -----------------------------------------------------------------------------------------------------
    def path(self, family: str, capacity: int, seed: int) -> Path:
        return self.folder / (key_name(family, capacity, seed) + ".npz")

    def done(self, keys: Iterable[tuple[str, int, int]]) -> set:
        """The keys ``(family, capacity, seed)`` among ``keys`` whose part is present and readable.

        A part that cannot be read or is not the model it is named for is deleted (and listed in
        :attr:`removed`), so that its model is trained again.
        """
        finished = set()
        for key in keys:
            path = self.path(*key)
            if not path.exists():
                continue
            if self._readable(path, key):
                finished.add(tuple(key))
            else:
                path.unlink()
                self.removed.append(path.name)
        return finished

    @staticmethod
    def _readable(path: Path, key) -> bool:
        try:
            with open(path, "rb") as f, np.load(f) as z:  # reading every member checks its CRC-32
                meta = json.loads(str(z["meta"]))
                info, n = _direction_info(z, meta), z["label"].shape[0]
                if "rows" in info:  # a chunk table that covers the inputs and the stored bytes exactly
                    sizes = z["direction_sizes"]
                    stored_ok = (len(sizes) == -(-n // info["rows"]) and bool((sizes > 0).all())
                                 and int(sizes.sum()) == z["direction_chunks"].shape[0])
                else:
                    stored_ok = z["direction"].ndim == 2
                shapes_ok = (stored_ok and info["n_inputs"] == n
                             and all(z[name].shape == (n,) for name in _PER_INPUT))
                return bool(shapes_ok and [meta["family"], meta["capacity"], meta["seed"]] == list(key))
        except Exception:  # any failure to read (truncated zip, garbage bytes) means: redo this model
            return False

    def write_model(self, *, family: str, capacity: int, seed: int, direction: ArrayLike, grad_norm: ArrayLike,
                    valid: ArrayLike, correct: ArrayLike, test_accuracy: float, n_params: int, label: ArrayLike,
                    input_index: ArrayLike | None = None, extra: dict | None = None) -> Path:
        """Write one model's part atomically (arguments as for :func:`sawdist.io.model_part`)."""
        direction = np.asarray(direction, dtype=np.float32)
        n, d = direction.shape
        rows = chunk_rows(n, d)
        with ThreadPoolExecutor(self.threads) as pool:
            chunks = _encode_model(direction, rows, self.complevel, pool)
        meta = {"family": str(family), "capacity": int(capacity), "seed": int(seed), "n_params": int(n_params),
                "test_accuracy": float(test_accuracy), "extra": {k: float(v) for k, v in (extra or {}).items()},
                "direction": {"n_inputs": n, "n_feature": d, "rows": rows, "complevel": self.complevel}}
        arrays = {
            "meta": np.array(json.dumps(meta)),
            "direction_chunks": np.frombuffer(b"".join(chunks), dtype=np.uint8),
            "direction_sizes": np.array([len(c) for c in chunks], dtype=np.int64),
            "grad_norm": np.asarray(grad_norm, dtype=np.float32).reshape(n),
            "valid": np.asarray(valid, dtype=bool).reshape(n),
            "correct": np.asarray(correct, dtype=bool).reshape(n),
            "label": np.asarray(label, dtype=np.int64).reshape(n),
            "input": np.arange(n) if input_index is None else np.asarray(input_index, dtype=np.int64).reshape(n),
        }
        path = self.path(family, capacity, seed)
        tmp = temporary_path(path)
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def write(self, part: xr.Dataset) -> Path:
        """Write one model's part (a :func:`sawdist.io.model_part` dataset) atomically."""
        grid = DIMS[:3]
        extra = {name: float(var.values.ravel()[0]) for name, var in part.data_vars.items()
                 if var.dims == grid and name != "test_accuracy"}
        return self.write_model(
            family=str(part["family"].values[0]), capacity=int(part["capacity"].values[0]),
            seed=int(part["seed"].values[0]), direction=part["direction"].values[0, 0, 0],
            grad_norm=part["grad_norm"].values.ravel(), valid=part["valid"].values.ravel(),
            correct=part["correct"].values.ravel(), test_accuracy=float(part["test_accuracy"].values.ravel()[0]),
            n_params=int(part["n_params"].values.ravel()[0]), label=part["label"].values,
            input_index=part["input"].values, extra=extra,
        )

    # assembly --------------------------------------------------------------------------------------------------
    def assemble(self, families: Iterable[str], capacities: Iterable[int], seeds: Iterable[int], attrs: dict, *,
                 input_shape: Iterable[int], models: Iterable[tuple[str, int, int]] | None = None,
                 n_params: dict | None = None) -> Path:
        """Combine the parts into the output file (atomically), check its schema, and remove the parts folder.

        The output is compressed at :attr:`complevel`. ``direction`` is never held in memory whole: each part's
        chunks are copied into the file as they are (or decoded and encoded again, for parts written with another
        ``complevel`` by an earlier run).

        ``models``, the keys ``(family, capacity, seed)`` to take from parts (default: every model of the grid),
        leaves the others absent: a shard of a sweep (:mod:`sawdist.shards`). An absent model's
        ``direction`` chunks are never written (they read as NaN, the fill value, and take no space), its
        ``valid`` and ``correct`` are False, its ``grad_norm`` and accuracies NaN; ``n_params`` gives the
        parameters of each (family, capacity) that has no part.
        """
        families, capacities, seeds = list(families), [int(c) for c in capacities], [int(s) for s in seeds]
        shape = (len(families), len(capacities), len(seeds))
        keys = [(f, c, s) for f in families for c in capacities for s in seeds]
        present = set(keys) if models is None else {(f, int(c), int(s)) for f, c, s in models}
        paths = [self.path(*key) if key in present else None for key in keys]
        first_path = next(p for p in paths if p is not None)
        with open(first_path, "rb") as f, np.load(f) as z:
            first = json.loads(str(z["meta"]))
            info = _direction_info(z, first)
            n, d = info["n_inputs"], info["n_feature"]
            label, input_index = z["label"], z["input"]
            extra_names = sorted(first["extra"])
        absent = {"grad_norm": np.nan, "valid": False, "correct": False}
        per_input = {name: np.full(shape + (n,), absent[name], dtype=dtype) for name, dtype in _PER_INPUT.items()}
        per_model = {name: np.full(shape, np.nan, dtype=np.float32) for name in ["test_accuracy", *extra_names]}
        n_params_grid = np.array([[int((n_params or {}).get((f, c), -1)) for c in capacities] for f in families],
                                 dtype=np.int64)
        for index, path in zip(np.ndindex(*shape), paths):
            if path is None:
                continue
            with open(path, "rb") as f, np.load(f) as z:
                meta = json.loads(str(z["meta"]))
                for name in per_input:
                    per_input[name][index] = z[name]
                per_model["test_accuracy"][index] = meta["test_accuracy"]
                for name in extra_names:
                    per_model[name][index] = meta["extra"][name]
                n_params_grid[index[:2]] = meta["n_params"]
        if (n_params_grid < 0).any():
            raise ValueError("'n_params' must give the parameters of every (family, capacity) without a part.")
        import dask
        import dask.array as da

        # The dataset's direction is lazy (each block decodes one part) and is never computed here: ``load`` gives
        # the writer the stored chunks.
        blocks = [da.full((n, d), np.nan, dtype=np.float32) if p is None
                  else da.from_delayed(dask.delayed(load_direction)(p), (n, d), np.float32) for p in paths]
        direction = da.stack(blocks).reshape(shape + (n, d))
        rows, complevel = chunk_rows(n, d), self.complevel

        def load(index):
            path = paths[int(np.ravel_multi_index(index, shape))]
            if path is None:
                return None  # an absent model: no chunk is written
            with open(path, "rb") as f, np.load(f) as z:
                info = _direction_info(z, json.loads(str(z["meta"])))
                if info.get("rows") == rows and (info["complevel"] > 0) == (complevel > 0):
                    return _part_chunks(z)  # any zlib level inflates alike
                return _decode_part(z, info)

        data_vars = {
            "direction": (DIMS, direction),
            **{name: (DIMS[:4], values) for name, values in per_input.items()},
            **{name: (DIMS[:3], values) for name, values in per_model.items()},
            "n_params": (DIMS[:2], n_params_grid),
        }
        if models is not None:
            data_vars["in_shard"] = (DIMS[:3], np.array([key in present for key in keys]).reshape(shape))
        coords = {
            "family": np.array(families, dtype=object), "capacity": np.array(capacities, dtype=np.int64),
            "seed": np.array(seeds, dtype=np.int64), "input": input_index, "feature": np.arange(d),
            "label": ("input", label),
        }
        ds = xr.Dataset(data_vars, coords, attrs=dict(attrs))
        ds.attrs["input_shape"] = [int(s) for s in input_shape]
        ds["feature"].attrs["input_shape"] = ds.attrs["input_shape"]
        for name, meta in METADATA.items():
            if name in ds.variables:
                ds[name].attrs.update(meta)
        to_netcdf_atomic(ds, self.out, complevel=complevel, threads=self.threads, load=load)
        with xr.open_dataset(self.out, engine="netcdf4") as check:
            validate(check, values=False)
        self.remove(keys)
        return self.out

    def remove(self, keys: Collection[tuple[str, int, int]]) -> None:
        """Remove the parts folder: the files this run wrote there (parts of ``keys``, their weights, the manifest,
        temporary files). Anything else found there is left, with the folder, and named in a warning."""
        ours = [self.path(*key) for key in keys]
        ours += [self.folder / "weights" / (key_name(*key) + ".pt") for key in keys]
        ours += [*self.folder.glob("*.tmp"), *self.folder.glob("weights/*.tmp")]
        for path in ours:
            path.unlink(missing_ok=True)
        weights = self.folder / "weights"
        if weights.is_dir() and not any(weights.iterdir()):
            weights.rmdir()
        left = sorted(p.name for p in self.folder.iterdir() if p != self.manifest_path)
        if left:
            log.warning(f"left the folder {self.folder} in place: it holds files this run did not write "
                        f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})")
            return
        self.manifest_path.unlink(missing_ok=True)
        self.folder.rmdir()


class PartWriter:
    """Writes parts on one background thread, so that the next models train while a part is compressed and written;
    the bookkeeping (the keys written, callbacks) stays on the calling thread, in the order of submission.

    Parameters
    ----------
    store : PartStore
    on_written : callable
        Called on the writer thread as ``on_written(key, accuracy)`` after each part (a progress bar).
    """

    def __init__(self, store: PartStore, on_written: Callable[[tuple[str, int, int], float], None]) -> None:
        self.store = store
        self.on_written = on_written
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sawdist-parts")
        self.pending: deque = deque()

    def submit(self, key: tuple[str, int, int], accuracy: float, **part: Any) -> None:
        """Queue the part of model ``key`` (the keywords of :meth:`PartStore.write_model`)."""
        def write():
            self.store.write_model(**part)
            self.on_written(key, accuracy)

        self.pending.append((key, self.pool.submit(write)))

    def finished(self, wait: bool) -> Iterator[tuple[str, int, int]]:
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
