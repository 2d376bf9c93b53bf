"""Reading, writing and validating saliency datasets (schema and guarantees: docs/dataset.md).

A saliency dataset is an :class:`xarray.Dataset` stored as netCDF4 (zlib-compressed, float32):

=================  ===============================================  ================================================
variable           dims                                             meaning
=================  ===============================================  ================================================
``direction``      family, capacity, seed, input, feature           unit saliency vector; NaN where not valid
``grad_norm``      family, capacity, seed, input                    norm of the input gradient before normalizing
``valid``          family, capacity, seed, input                    gradient finite and non-zero
``correct``        family, capacity, seed, input                    the model's prediction equals the label
``test_accuracy``  family, capacity, seed                           accuracy of each trained model on the test split
``n_params``       family, capacity                                 trainable parameters
``label``          input                                            class label (a coordinate)
=================  ===============================================  ================================================

Every dimension has a coordinate; ``feature`` indexes the flattened input and ``attrs["input_shape"]`` reshapes it.
The attributes record the dataset, the saliency target, the training recipe (JSON), library versions, the device and
the creation time. Other variables (e.g. ``train_accuracy``) may be present.

Importing this module loads only NumPy, xarray and the standard library; reading and writing use netCDF4 and h5py
as well (:func:`open_saliency` checks a file's chunk index with h5py; :func:`to_netcdf_atomic` compresses
``direction`` on every core, see there). The extraction side writes a dataset
one model at a time through its part store (:mod:`sawdist.extraction.parts`), which stores the chunks of
``direction`` encoded as here (:func:`chunk_rows`, :func:`encode_chunk`, :func:`decode_chunk`) and hands them to
:func:`to_netcdf_atomic` at the end.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import json
import os
import secrets
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
from xarray.backends import BackendEntrypoint, CachingFileManager, NetCDF4DataStore
from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK, NetCDF4ArrayWrapper
from xarray.backends.store import StoreBackendEntrypoint
from xarray.core import indexing  # LazilyIndexedArray: how xarray's own stores wrap a variable

from ._validation import dataset_direction_checks, raise_on_dataset_directions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Literal

    from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "DIMS",
    "VARIABLES",
    "REQUIRED_ATTRS",
    "SCHEMA_VERSION",
    "SchemaError",
    "encoding",
    "model_part",
    "open_saliency",
    "open_shards",
    "shard_of",
    "to_netcdf_atomic",
    "validate",
]

#: Dimensions of a saliency dataset, in storage order.
DIMS = ("family", "capacity", "seed", "input", "feature")

#: Required variables (data variables or coordinates) and their dims.
VARIABLES = {
    "direction": DIMS,
    "grad_norm": DIMS[:4],
    "valid": DIMS[:4],
    "correct": DIMS[:4],
    "test_accuracy": DIMS[:3],
    "n_params": DIMS[:2],
    "label": ("input",),
}

#: Required dataset attributes.
REQUIRED_ATTRS = ("dataset", "target", "recipe", "versions", "device", "created", "input_shape")

#: Version of this schema, stored by ``sawdist extract`` as ``attrs["schema_version"]`` and in the run's identity
#: (so a run resumes only from parts, and keeps only a finished file, of the same schema). Version 2 named the
#: dimension of the inputs ``input`` (version 1: ``sample``); :func:`open_saliency` refuses a file of another version.
SCHEMA_VERSION = "2"

#: CF-style metadata of the variables and coordinates.
METADATA = {
    "direction": {"long_name": "unit input-saliency direction", "units": "1"},
    "grad_norm": {"long_name": "norm of the input gradient of the target"},
    "valid": {"long_name": "gradient is finite and non-zero"},
    "correct": {"long_name": "model prediction equals the label"},
    "test_accuracy": {"long_name": "test-split accuracy of the model", "units": "1"},
    "train_accuracy": {"long_name": "training-split accuracy of the model", "units": "1"},
    "n_params": {"long_name": "number of trainable parameters", "units": "1"},
    "in_shard": {"long_name": "the model was trained in this shard (absent models read as NaN and not valid)"},
    "label": {"long_name": "class label"},
    "family": {"long_name": "architecture family"},
    "capacity": {"long_name": "capacity k", "units": "1"},
    "seed": {"long_name": "training seed"},
    "input": {"long_name": "index of the input in the test split"},
    "feature": {"long_name": "index of the flattened input feature (C order of input_shape)"},
}

_DTYPE_KINDS = {"direction": "f", "grad_norm": "f", "valid": "b", "correct": "b", "test_accuracy": "f",
                "n_params": "iu", "label": "iu"}


class SchemaError(ValueError):
    """A dataset does not follow the saliency-dataset schema."""


# --- validation ----------------------------------------------------------------------------------------------------


#: The sampled check of :func:`validate` (``values="sample"``, the default of :func:`open_saliency`) reads at most
#: this many vectors of ``direction``, from the first chunk of one model per family and capacity.
_SAMPLE_VECTORS = 4096


def validate(ds: xr.Dataset, *, values: bool | str = True) -> xr.Dataset:
    """Check that ``ds`` follows the saliency-dataset schema; return it unchanged.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset (in memory or opened lazily).
    values : bool or "sample"
        True: also check the values: valid directions have unit norm (within 10 eps sqrt(d), eps of the stored dtype:
        float32 in a file) and a positive ``grad_norm``, invalid ones are NaN (never partly NaN), accuracies lie
        in [0, 1]. This reads all of ``direction``
        (chunk by chunk when ``ds`` is backed by Dask). ``"sample"``: check what the statistics rely on (unit norm
        where valid, NaN exactly where not valid) on a small fixed sample: the first inputs of the first seed of
        every family and capacity, at most 4096 vectors, which lie in the first stored chunk of those models; a file
        that is wrong throughout is refused at small cost (:func:`sawdist.summaries.summarize` checks every vector as
        it reads them). False: check the structure only, reading no data.

    Raises
    ------
    SchemaError
        (a ``ValueError``) naming the first problem found.

    Examples
    --------
    >>> import sawdist.io
    >>> ds = sawdist.io.open_saliency("saliency.nc")  # doctest: +SKIP
    >>> sawdist.io.validate(ds)  # doctest: +SKIP
    """
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"'ds' must be an xarray.Dataset, got {type(ds).__name__}.")
    for name, dims in VARIABLES.items():
        if name not in ds.variables:
            raise SchemaError(f"'ds' has no variable {name!r}; a saliency dataset needs {', '.join(VARIABLES)}.")
        if ds[name].dims != dims:
            got = ", ".join(map(str, ds[name].dims))
            raise SchemaError(f"{name!r} must have dims ({', '.join(dims)}), got ({got}).")
        kind = ds[name].dtype.kind
        if kind not in _DTYPE_KINDS[name]:
            raise SchemaError(f"{name!r} must have a dtype of kind {_DTYPE_KINDS[name]!r}, got {ds[name].dtype}.")
    for dim in ds.dims:
        if dim not in ds.coords:
            raise SchemaError(f"dim {dim!r} has no coordinate.")
    for attr in REQUIRED_ATTRS:
        if attr not in ds.attrs:
            raise SchemaError(f"'ds' has no attribute {attr!r}; required are {', '.join(REQUIRED_ATTRS)}.")
    shape = input_shape(ds)
    if int(np.prod(shape)) != ds.sizes["feature"]:
        raise SchemaError(f"'input_shape' {list(shape)} does not match the {ds.sizes['feature']} features.")
    for attr in ("recipe", "versions"):
        try:
            json.loads(ds.attrs[attr])
        except (TypeError, ValueError):
            raise SchemaError(f"attribute {attr!r} must be a JSON string, got {ds.attrs[attr]!r}.") from None
    if values == "sample":
        _validate_values(ds, sample=True)
    elif values is True or (isinstance(values, np.bool_) and values):
        _validate_values(ds)
    elif not (values is False or isinstance(values, np.bool_)):
        raise ValueError(f"'values' must be True, False or 'sample', got {values!r}.")
    return ds


def _validate_values(ds: xr.Dataset, *, sample: bool = False) -> None:
    d = ds.sizes["feature"]
    source = _source_text(ds)
    at = f"{source}: " if source else ""  # a file's name, when ds was read from one
    where = ""
    if sample:
        slots = ds.sizes["family"] * ds.sizes["capacity"]
        rows = max(1, min(ds.sizes["input"], chunk_rows(ds.sizes["input"], d), _SAMPLE_VECTORS // max(1, slots)))
        # Inputs 0..rows-1 of one model lie in its first chunk of direction: one chunk read per family and capacity.
        ds = ds[["direction", "valid"]].isel(seed=slice(0, 1), input=slice(0, rows)).load()
        where = f" (in the sample checked at open: inputs 0-{rows - 1} of the first seed of each family and capacity)"
    # The checks of every reader of directions (sawdist._validation.dataset_direction_checks: one norm per vector),
    # and what only the schema check asks: no vector partly NaN, even an invalid one.
    valid = ds["valid"].astype(bool)
    checks = dataset_direction_checks(ds["direction"].astype("float64"), valid, ds["direction"].dtype)
    raw = ds["direction"]
    checks["partly_nan"] = (np.isfinite(raw).any("feature") & np.isnan(raw).any("feature")).sum()
    if not sample:
        checks["bad_grad_norm"] = (ds["valid"] & ~(ds["grad_norm"] > 0)).sum()
        checks["bad_accuracy"] = (~((ds["test_accuracy"] >= 0) & (ds["test_accuracy"] <= 1))).sum()
    checks = {key: value.values for key, value in xr.Dataset(checks).compute().items()}
    if checks["partly_nan"]:
        raise SchemaError(f"{at}'direction' has {int(checks['partly_nan'])} vectors that are partly NaN{where}.")
    try:
        raise_on_dataset_directions(checks, "direction", d, ds["direction"].dtype, where)
    except ValueError as err:
        raise SchemaError(f"{at}{err}") from None
    if sample:
        return
    if checks["bad_grad_norm"]:
        raise SchemaError(f"{at}'grad_norm' is not positive at {int(checks['bad_grad_norm'])} valid places.")
    if checks["bad_accuracy"]:
        raise SchemaError(f"{at}'test_accuracy' lies outside [0, 1] at {int(checks['bad_accuracy'])} places.")


def check_direction_values(direction: np.ndarray, valid: np.ndarray, *, source: str | None = None,
                           dtype: DTypeLike = np.float32) -> None:
    """Check directions read from a saliency dataset for what the statistics rely on: finite unit vectors exactly
    where ``valid``, NaN elsewhere; the checks and messages of :func:`validate` and
    :func:`sawdist.summaries.summarize`, block by block.

    Parameters
    ----------
    direction : numpy.ndarray, shape (..., feature)
        The directions, as read (often cast to float64).
    valid : numpy.ndarray of bool, shape (...)
        Their ``valid`` flags.
    source : str, optional
        The file(s) they were read from, named in the message.
    dtype : dtype-like
        The dtype the directions are stored in, whose :func:`sawdist.checks.unit_tolerance` applies (a block cast to
        float64 keeps the rounding of its storage); default float32, the schema's.

    Raises
    ------
    SchemaError
        Naming ``source`` (when given) and counting the bad vectors. Costs one norm per vector: the analyses call it
        on every block they read (:mod:`sawdist.analyses`).
    """
    direction = np.asarray(direction)
    checks = dataset_direction_checks(direction, valid, dtype)  # NumPy: computed here
    try:
        raise_on_dataset_directions(checks, "direction", direction.shape[-1], dtype)
    except ValueError as err:
        raise SchemaError(f"{source}: {err}" if source else str(err)) from None


def source_text(ds: xr.Dataset) -> str | None:
    """The file or files ``ds`` was read from, quoted for a message (``"'runs/a.nc'"``), or None when unknown."""
    return _source_text(ds)


def input_shape(ds: xr.Dataset) -> tuple[int, ...]:
    """The shape of one input, from ``attrs["input_shape"]`` (a list, or a string such as ``"1 8 8"``)."""
    raw = ds.attrs.get("input_shape", ds["feature"].attrs.get("input_shape") if "feature" in ds else None)
    if raw is None:
        raise SchemaError("'ds' has no attribute 'input_shape'.")
    return _shape(raw)


def _shape(raw) -> tuple[int, ...]:
    """A stored ``input_shape`` (a list, an array, or a string such as ``"1 8 8"``) as a tuple."""
    if isinstance(raw, str):
        raw = raw.replace(",", " ").replace("x", " ").split()
    return tuple(int(s) for s in np.atleast_1d(raw))


# --- reading -------------------------------------------------------------------------------------------------------


def open_saliency(path: str | os.PathLike[str] | list[str | os.PathLike[str]] | tuple[str | os.PathLike[str], ...], *,
                  chunks: dict[str, int | str] | Literal["auto"] | None = None, validate_schema: bool = True,
                  values: bool | str = "sample", allow_shard: bool = False) -> xr.Dataset:
    """Open a saliency dataset (one netCDF file, a glob pattern or a list of files).

    Parameters
    ----------
    path : str, path-like or list
        A file, a glob pattern (``"runs/*.nc"``) or a list of files; several files are combined by their coordinates
        with :func:`xarray.open_mfdataset` (lazily, with Dask), and their attributes as :func:`_combined_attrs`
        says. The shard files of a sweep (``sawdist extract --shard I/N``) are combined into the sweep's dataset by
        :func:`open_shards` (lazily; ``chunks`` is then one model per chunk).
    chunks : dict, "auto" or None
        Dask chunks; ``None`` opens a single file without Dask (values load on access).
    validate_schema : bool
        Check the schema with :func:`validate`, with ``values``.
    values : "sample", True or False
        Which values :func:`validate` checks besides the structure: ``"sample"`` (the default) what the statistics
        rely on (unit norm where valid, NaN where not) in at most 4096 vectors of ``direction``, the first inputs of
        the first seed of every family and capacity (one stored chunk each): a file that is wrong throughout is
        refused at open at small cost, and :func:`sawdist.summaries.summarize` checks every vector as it reads it;
        True: every value (reads all of ``direction``); False: none (reads no data).
    allow_shard : bool
        Open a single shard file as it is (its absent models read as not valid). By default a single shard is
        refused: alone it is not the sweep's dataset.

    Raises
    ------
    SchemaError
        When a file records a ``schema_version`` other than :data:`SCHEMA_VERSION` (it must be extracted again), when
        several files disagree on ``dataset``, ``target`` or ``input_shape``, or, with ``validate_schema``, when the
        dataset does not follow the schema.
    OSError
        When a file is damaged or not netCDF4: the message starts with the file's name. A damaged part that is read
        only later (values load on access) raises the same error then.
    """
    if isinstance(path, list | tuple):
        paths = [str(p) for p in path]
    elif any(ch in str(path) for ch in "*?["):
        paths = sorted(glob.glob(str(path)))
        if not paths:
            raise FileNotFoundError(f"'path' {str(path)!r} matches no file.")
    else:
        paths = [str(path)]
    if len(paths) == 1:
        ds = xr.open_dataset(paths[0], engine=_Engine, chunks=chunks)
        try:
            _check_version(ds, paths[0])
            if "shard" in ds.attrs and not allow_shard:
                raise SchemaError(f"{paths[0]!r} is shard {ds.attrs['shard']} of a sweep: open it together with the "
                                  "other shards (a list of files or a glob), or merge them with sawdist merge.")
        except SchemaError:
            ds.close()
            raise
    elif _any_shard(paths):
        return open_shards(paths, validate_schema=validate_schema, values=values)
    else:
        read: list = []  # (file, attributes) of each file, in the order of paths

        def preprocess(part):
            read.append((part.encoding.get("source", "?"), dict(part.attrs)))
            return _check_version(part, part.encoding.get("source", "?"))

        # "drop_conflicts" drops a dataset attribute whose files disagree (two runs' "created" always do): the
        # attributes are combined again below, from every file's, so that the required ones stay.
        ds = xr.open_mfdataset(paths, engine=_Engine, combine="by_coords", chunks=chunks or {},
                               data_vars="minimal", coords="minimal", compat="override", join="exact",
                               combine_attrs="drop_conflicts", preprocess=preprocess)
        try:
            ds.attrs = _combined_attrs(read)
        except BaseException:
            ds.close()
            raise
        ds.encoding["sources"] = paths
    if validate_schema:
        try:
            validate(ds, values=values)
        except BaseException:
            ds.close()
            raise
    return ds


#: Required attributes that say what the directions are: files that disagree on one are not one dataset.
_SAME_ATTRS = ("dataset", "target", "input_shape")
#: Required attributes that are JSON: files that disagree store a JSON list of their distinct values.
_JSON_ATTRS = ("recipe", "versions")


def _combined_attrs(files: list[tuple[str, dict]]) -> dict:
    """The attributes of a dataset combined from several files, given each ``(file, attributes)`` in order.

    An attribute on which the files that have it agree is kept; among those on which they disagree, the required
    ones (:data:`REQUIRED_ATTRS`) are combined and the others dropped (xarray's ``"drop_conflicts"``): ``device`` and
    ``created`` become the files' distinct values joined by ``"; "`` (as a merged shard's ``device``), ``recipe``
    and ``versions`` a JSON list of the files' distinct values (still JSON, as :func:`validate` checks), in the
    order of the files.

    Raises
    ------
    SchemaError
        When two files disagree on ``dataset``, ``target`` or ``input_shape`` (directions of other data, of another
        saliency target, or of other inputs do not make one dataset), naming both files and values.
    """
    combined: dict = {}
    for key in dict.fromkeys(k for _, attrs in files for k in attrs):
        found = [(source, attrs[key]) for source, attrs in files if key in attrs]
        distinct: list = []  # (file, value), the first file of each distinct value
        for source, value in found:
            if not any(_same_attr(key, value, seen) for _, seen in distinct):
                distinct.append((source, value))
        if len(distinct) == 1:
            combined[key] = distinct[0][1]
        elif key in _SAME_ATTRS:
            (a, va), (b, vb) = distinct[:2]
            raise SchemaError(f"{str(a)!r} and {str(b)!r} disagree on the attribute {key!r} ({_attr_text(va)} "
                              f"against {_attr_text(vb)}): files of other data, targets or inputs do not make one "
                              "dataset; open them separately.")
        elif key in _JSON_ATTRS:
            try:
                combined[key] = json.dumps([json.loads(value) for _, value in distinct], sort_keys=True)
            except (TypeError, ValueError):  # not JSON: kept as found, for validate to name
                combined[key] = "; ".join(str(value) for _, value in distinct)
        elif key in REQUIRED_ATTRS:
            # a file's value may already be joined (a merged file's device): split, so no value is listed twice
            parts = [part for _, value in distinct for part in str(value).split("; ")]
            combined[key] = "; ".join(dict.fromkeys(parts))
    return combined


def _same_attr(key: str, a, b) -> bool:
    """Whether two files' values of attribute ``key`` agree (arrays element-wise; input shapes as shapes)."""
    if key == "input_shape":
        try:
            return _shape(a) == _shape(b)
        except (TypeError, ValueError):
            pass
    if isinstance(a, np.ndarray | list | tuple) or isinstance(b, np.ndarray | list | tuple):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype.kind == b.dtype.kind and bool(np.all(a == b))
    return bool(a == b)


def _attr_text(value) -> str:
    return repr(np.asarray(value).tolist() if isinstance(value, np.ndarray) else value)


def _source_text(ds: xr.Dataset) -> str | None:
    """The file or files ``ds`` was read from, quoted for a message (``"'runs/a.nc'"``), or None when unknown."""
    paths = ds.encoding.get("sources") or ds.encoding.get("source_shards")
    if not paths:
        source = ds.encoding.get("source")
        return None if source is None else repr(str(source))
    names = ", ".join(repr(str(p)) for p in paths[:3])
    return names if len(paths) <= 3 else f"{names} and {len(paths) - 3} more files"


class _DamagedFileError(OSError):
    """A file netCDF-C/HDF5 cannot read: its message starts with the file's name (the library's does not)."""

    def __init__(self, path, problem: str):
        super().__init__(f"{str(path)!r} is {problem}.")
        # what is wrong, without the name: for a caller that names the file itself (sawdist report)
        self.strerror = problem.removeprefix("damaged or not a netCDF4 file: ")


def _damaged(path, err: BaseException, reading: str | None = None) -> OSError:
    reason = (err.strerror if isinstance(err, OSError) and err.strerror else str(err)).rstrip(".")
    if reading is None:
        return _DamagedFileError(path, f"damaged or not a netCDF4 file: {reason}")
    return _DamagedFileError(path, f"damaged: reading {reading!r} failed with {reason}")


def _library_error(err: BaseException) -> bool:
    """Whether ``err`` comes from netCDF-C or HDF5 (a RuntimeError, or an OSError with a negative netCDF code) rather
    than from the system (file not found, permission denied: left as they are)."""
    if isinstance(err, _DamagedFileError):
        return False
    return isinstance(err, RuntimeError) or (isinstance(err, OSError) and (err.errno is None or err.errno < 0))


def _is_hdf5(path) -> bool:
    """Whether ``path`` is an HDF5 file (netCDF4 is; a missing file, a CSV or netCDF3 are not)."""
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except (OSError, ValueError, TypeError):
        return False


def _check_chunk_index(path) -> None:
    """Refuse a file whose chunk index is damaged.

    Fletcher-32 and zlib check the bytes of a chunk, not the B-tree (HDF5's version 1, which netCDF-C writes and no
    checksum covers) that says where each chunk lies: a flipped byte there hides a chunk or marks its filters as
    skipped, and the chunk then silently reads as the fill value or as raw bytes. So every chunk must be aligned,
    inside the variable, once, with no filter skipped; the variables other than ``direction`` (small) must have all
    their chunks, each found by the lookup that reading does. ``direction``'s chunks are not read here, and may be
    absent (a shard's absent models): one that reads as NaN where ``valid`` is true is refused by the value checks
    (:func:`validate`, :func:`sawdist.summaries.summarize`).
    """
    import h5py

    def visit(dset, name):
        seen: set = set()
        bad: list = []

        def record(info):
            offset = tuple(info.chunk_offset)
            if (info.filter_mask or offset in seen or len(offset) != dset.ndim
                    or any(o % c or not 0 <= o < n for o, c, n in zip(offset, dset.chunks, dset.shape))):
                bad.append(offset)
            seen.add(offset)

        if hasattr(dset.id, "chunk_iter"):
            dset.id.chunk_iter(record)
        else:  # h5py built on HDF5 < 1.14
            for i in range(dset.id.get_num_chunks()):
                record(dset.id.get_chunk_info(i))
        expected = int(np.prod([-(-n // c) for n, c in zip(dset.shape, dset.chunks)]))
        if bad or (len(seen) != expected and name != "direction"):
            return f"a chunk at {bad[0]}" if bad else f"{len(seen)} chunks of {expected}"
        if name != "direction":
            for offset in seen:
                dset.id.read_direct_chunk(offset)  # the lookup of a read: fails for a chunk the index hides
        return None

    try:
        with h5py.File(path, "r") as f:
            for name, dset in f.items():
                if not isinstance(dset, h5py.Dataset) or dset.chunks is None:
                    continue
                try:
                    problem = visit(dset, name)
                except (KeyError, ValueError, RuntimeError, OSError) as err:
                    problem = str(err.args[0] if err.args else err)
                if problem:
                    raise _DamagedFileError(path, f"damaged: the chunk index of {name!r} is inconsistent ({problem})")
    except (KeyError, ValueError, OSError, RuntimeError) as err:  # h5py: unreadable metadata (an object, a link)
        if isinstance(err, _DamagedFileError):
            raise
        raise _damaged(path, RuntimeError(err.args[0] if err.args else err)) from err


class _Array(NetCDF4ArrayWrapper):
    """A variable of a netCDF4 file, read lazily; a netCDF-C/HDF5 error names the file."""

    __slots__ = ("path",)

    def _getitem(self, key):
        try:
            return super()._getitem(key)
        except (OSError, RuntimeError) as err:
            if not _library_error(err):
                raise
            raise _damaged(self.path, err, self.variable_name) from err


class _Store(NetCDF4DataStore):
    """xarray's netCDF4 store, whose variables are :class:`_Array`."""

    @classmethod
    def open_read(cls, path: str) -> _Store:
        """The store of the netCDF4 file ``path``, read-only.

        netCDF-C is not thread-safe: every call into it must hold xarray's netCDF lock, and reads do. Its file manager
        opens (and reopens) the file under a lock of its own in xarray < 2025 (a new lock per manager): a Dask thread
        that reopened a file to read a chunk then ran netCDF-C beside the main thread opening another file, and
        crashed (a segmentation fault in 3 of 4 runs of a loop of 100-150 damaged files, xarray 2024.9).
        So the manager is given the reads' lock, as newer xarray gives it.
        """
        import netCDF4

        manager = CachingFileManager(netCDF4.Dataset, path, mode="r", lock=NETCDF4_PYTHON_LOCK)
        return cls(manager, mode="r", lock=NETCDF4_PYTHON_LOCK)

    def open_store_variable(self, name, var):
        variable = super().open_store_variable(name, var)
        array = _Array(name, self)
        array.path = variable.encoding.get("source")
        variable.data = indexing.LazilyIndexedArray(array)
        return variable

    def close(self, **kwargs):
        # Under the lock that reads take: Dask's threaded scheduler returns at a task's error while other tasks still
        # read, and a ``with open_saliency(...)`` block left by that error would otherwise close the file under them
        # (netCDF-C crashed so, in 2 of 3 runs of a damaged-chunk test). The manager has this same lock (open_read),
        # which is not reentrant: so it is told not to take its lock. A read that comes after reopens the file.
        with self.lock:
            self._manager.close(needs_lock=False)


class _Engine(BackendEntrypoint):
    """xarray's netCDF4 backend with errors that name the file (``xr.open_dataset(path, engine=_Engine)``).

    netCDF-C reports a damaged file as "NetCDF: HDF error", without the file's name, when it is opened (an OSError)
    or, later, when a lazily loaded value is read (a RuntimeError, possibly in a Dask worker). This backend turns
    both into an OSError whose message starts with the file's name, checks the file's chunk index at open
    (:func:`_check_chunk_index`), and otherwise reads as ``engine="netcdf4"`` does.
    """

    description = "netCDF4 files, with errors that name the file (sawdist.io)"

    def open_dataset(self, filename_or_obj, *, mask_and_scale=True, decode_times=True, concat_characters=True,
                     decode_coords=True, drop_variables=None, use_cftime=None, decode_timedelta=None):
        path = os.fspath(filename_or_obj)
        # The chunk index is checked before netCDF-C opens the file: netCDF-C and h5py may use one HDF5 library
        # (older wheels do), and a file open in both at once then fails ("ring type mismatch").
        if _is_hdf5(path):
            _check_chunk_index(path)
        try:
            store = _Store.open_read(path)
        except (OSError, RuntimeError) as err:
            if not _library_error(err):
                raise
            raise _damaged(path, err) from err
        try:
            with store._manager.acquire_context():
                return StoreBackendEntrypoint().open_dataset(
                    store, mask_and_scale=mask_and_scale, decode_times=decode_times,
                    concat_characters=concat_characters, decode_coords=decode_coords,
                    drop_variables=drop_variables, use_cftime=use_cftime, decode_timedelta=decode_timedelta)
        except BaseException as err:
            store.close()
            if isinstance(err, OSError | RuntimeError) and _library_error(err):
                raise _damaged(path, err) from err
            raise


def _any_shard(paths) -> bool:
    """Whether one of ``paths`` is a shard file (its ``shard`` attribute, read without loading any data)."""
    import netCDF4

    for path in paths:
        try:
            with NETCDF4_PYTHON_LOCK, netCDF4.Dataset(path) as nc:  # netCDF-C is not thread-safe (_Store.open_read)
                if "shard" in nc.ncattrs():
                    return True
        except OSError:
            return False  # open_mfdataset names the unreadable file
    return False


def _check_version(ds: xr.Dataset, path) -> xr.Dataset:
    """``ds`` unchanged, or a :class:`SchemaError` when it records a schema version other than this one's."""
    found = ds.attrs.get("schema_version")
    if found is not None and str(found) != SCHEMA_VERSION:
        raise SchemaError(f"{str(path)!r} is a saliency dataset of schema version {found}, which this version of "
                          f"sawdist cannot read (it reads version {SCHEMA_VERSION}): re-extract it with this version "
                          "of sawdist.")
    return ds


# --- shards of a sweep (sawdist.shards merges them) ------------------------------------------------------------


#: The attributes of a shard file that a merged file does not carry.
_SHARD_ATTRS = ("shard",)


def shard_of(ds: xr.Dataset) -> tuple[int, int] | None:
    """``(I, N)`` when ``ds`` is shard I of N of a sweep, else None."""
    text = ds.attrs.get("shard")
    if text is None:
        return None
    index, _, count = str(text).partition("/")
    return int(index), int(count)


def _models_text(keys) -> str:
    """``"mlp k=4 seeds 0-2, 5; cnn_small k=8 seed 1"``: models named compactly, by family and capacity."""
    groups: dict = {}
    for family, capacity, seed in keys:
        groups.setdefault((family, int(capacity)), []).append(int(seed))
    parts = []
    for (family, capacity), seeds in groups.items():
        seeds, runs, start = sorted(seeds), [], None
        for i, seed in enumerate(seeds):
            start = seed if start is None else start
            if i + 1 == len(seeds) or seeds[i + 1] != seed + 1:
                runs.append(str(seed) if seed == start else f"{start}-{seed}")
                start = None
        parts.append(f"{family} k={capacity} seed{'s' if len(seeds) > 1 else ''} {', '.join(runs)}")
    return "; ".join(parts)


def _check(datasets: list, paths: list) -> np.ndarray:
    """Check that ``datasets`` are the shards of one sweep, each once, covering every model once; return the owner
    of each model: the position in ``datasets`` of the shard that holds it, an int array (family, capacity, seed)."""
    first, first_path = datasets[0], paths[0]
    count = None
    by_index: dict = {}
    for ds, path in zip(datasets, paths):
        shard = shard_of(ds)
        if shard is None:
            raise SchemaError(f"{str(path)!r} is not a shard (it has no attribute 'shard'); pass only the shard files "
                              "of one sweep.")
        if ds.attrs.get("sweep") != first.attrs.get("sweep"):
            raise SchemaError(f"{str(path)!r} is a shard of another sweep than {str(first_path)!r} (sweep "
                              f"{ds.attrs.get('sweep')} against {first.attrs.get('sweep')}).")
        if count is not None and shard[1] != count:
            raise SchemaError(f"{str(path)!r} is shard {shard[0]}/{shard[1]}, and {str(first_path)!r} one of "
                              f"{count} shards: pass the shards of one split.")
        count = shard[1]
        by_index.setdefault(shard[0], []).append(path)
        for name in ("family", "capacity", "seed", "input", "feature"):
            if not np.array_equal(ds[name].values, first[name].values):
                raise SchemaError(f"{str(path)!r} has other {name} coordinates than {str(first_path)!r}.")
    twice = {i: p for i, p in by_index.items() if len(p) > 1}
    if twice:
        i, p = min(twice.items())
        raise SchemaError(f"shard {i}/{count} is given {len(p)} times: {', '.join(repr(str(x)) for x in p)}.")
    present = np.stack([ds["in_shard"].values.astype(bool) for ds in datasets])
    grid = [(f, int(k), int(s)) for f in first["family"].values for k in first["capacity"].values
            for s in first["seed"].values]
    holders = present.sum(axis=0).ravel()
    missing = [key for key, n in zip(grid, holders) if n == 0]
    if missing:
        absent = sorted(set(range(count)) - set(by_index))
        which = f"shard{'s' if len(absent) > 1 else ''} {', '.join(f'{i}/{count}' for i in absent)} " if absent else ""
        raise SchemaError(f"{which or 'a shard '}is missing: no file holds the models {_models_text(missing)}.")
    doubled = [key for key, n in zip(grid, holders) if n > 1]
    if doubled:
        raise SchemaError(f"the models {_models_text(doubled)} are in more than one shard.")
    return present.argmax(axis=0)


def _merged_attrs(datasets: list) -> dict:
    """The attributes of the whole sweep: the first shard's, without the shard's own, with the devices and the
    training decisions of all shards."""
    attrs = {k: v for k, v in datasets[0].attrs.items() if k not in _SHARD_ATTRS}
    devices = []
    modes: dict = {}
    for ds in datasets:
        if ds.attrs.get("device") not in devices:
            devices.append(ds.attrs.get("device"))
        modes.update(json.loads(ds.attrs.get("training_modes", "{}")))
    attrs["device"] = "; ".join(str(d) for d in devices)
    if "training_modes" in attrs:
        attrs["training_modes"] = json.dumps(modes, sort_keys=True)
    if "identity" in attrs:  # the identity of the unsharded run: a merged file is that run's finished file
        identity = json.loads(attrs["identity"])
        identity.pop("shard", None)
        attrs["identity"] = json.dumps(identity, sort_keys=True)
    return attrs


def open_shards(paths: Iterable[str | os.PathLike[str]], *, validate_schema: bool = True,
                values: bool | str = "sample") -> xr.Dataset:
    """Open the shard files of one sweep as the dataset of the whole sweep (lazily, with Dask).

    Parameters
    ----------
    paths : list of path-like
        Every shard file of the sweep (``sawdist extract --shard I/N``), in any order.
    validate_schema, values
        As for :func:`sawdist.io.open_saliency`.

    Raises
    ------
    SchemaError
        Naming what is wrong: a file that is not a shard, a shard of another sweep or split, a shard given twice, a
        shard missing (with its models).
    """
    import dask.array as da

    paths = [str(p) for p in paths]
    datasets = [open_saliency(p, chunks={}, validate_schema=False,
                              allow_shard=True) for p in paths]
    try:
        owner = _check(datasets, paths)
        first = datasets[0]
        shape = owner.shape
        data_vars = {}
        for name, var in first.data_vars.items():
            if name == "in_shard":
                continue
            if var.dims[:3] == DIMS[:3]:
                # each model from the shard that trained it: one block per model, read lazily from that file
                blocks = [datasets[owner[index]][name].data[index] for index in np.ndindex(*shape)]
                data = da.stack(blocks).reshape(shape + var.shape[3:])
                data_vars[name] = xr.Variable(var.dims, data, var.attrs)
            else:
                data_vars[name] = var.variable
        ds = xr.Dataset(data_vars, first.coords, attrs=_merged_attrs(datasets))
        ds.encoding["source_shards"] = paths
        ds.encoding["shard_owner"] = owner
        if validate_schema:
            validate(ds, values=values)
    except BaseException:
        for d in datasets:
            d.close()
        raise
    # The shards stay open while the dataset is used (their files hold the data); closing it closes them.
    ds.set_close(lambda: [d.close() for d in datasets])
    return ds


# --- writing -------------------------------------------------------------------------------------------------------


def encoding(ds: xr.Dataset, complevel: int = 1) -> dict:
    """netCDF4 encoding: zlib with shuffle for every data variable (``direction`` at ``complevel`` 0: stored raw);
    ``direction`` in chunks of :data:`CHUNK_VALUES` values within one model; a checksum on every variable: HDF5's
    Fletcher-32 (coordinates included, strings stored as characters so that the checksum covers them), or, for
    ``direction`` compressed, zlib's Adler-32."""
    result = {}
    for name, var in ds.variables.items():
        if name not in ds.data_vars:
            enc = {"fletcher32": True}
        else:
            enc = {"zlib": True, "complevel": complevel, "shuffle": True}
            if var.dtype.kind == "f":
                enc["dtype"] = "float32"
        if name == "direction":
            d = var.sizes["feature"]
            enc["chunksizes"] = (1, 1, 1, chunk_rows(var.sizes["input"], d), d)
            if complevel == 0:
                # Raw chunks (what _write_direction stores): no zlib stream, whose Adler-32 would check them, so
                # Fletcher-32 does. Compressed, zlib's Adler-32 checks them and a second checksum would cost a pass.
                enc.update(zlib=False, shuffle=False, fletcher32=True)
        else:
            enc["fletcher32"] = True
        if var.dtype.kind in "OUS":
            # a variable-length string lives in HDF5's global heap, which no checksum covers: store characters
            enc["dtype"] = "S1"
        result[name] = enc
    return result


def _one_thread_unless_distributed():
    """Dask's synchronous scheduler for a block, unless a distributed Client is active."""
    import sys

    import dask

    distributed = sys.modules.get("distributed")  # not imported: no Client can be active
    if distributed is not None:
        try:
            distributed.default_client()
            return contextlib.nullcontext()
        except ValueError:
            pass
    return dask.config.set(scheduler="synchronous")


def to_netcdf_atomic(ds: xr.Dataset, path: str | os.PathLike[str], *, complevel: int = 1, threads: int | None = None,
                     load: Callable[[tuple[int, ...]], np.ndarray | list[bytes] | None] | None = None,
                     direct: bool = True) -> Path:
    """Write ``ds`` to ``path`` (netCDF4, compressed) through a temporary file, so ``path`` is never half written.

    ``direction`` (dims :data:`DIMS`) is compressed on ``threads`` threads (default: every core this process may
    use); the other variables are small and written by xarray. The file is the one ``ds.to_netcdf`` writes with
    :func:`encoding`, byte for byte in its values.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset; ``direction`` may be a NumPy or a Dask array (one model is loaded at a time).
    path : path-like
    complevel : int
        zlib level 0-9 (0: no compression). Level 1 compresses saliency directions nearly as well as 9 (to
        about 86 % of their size), and faster.
    threads : int, optional
    load : callable, optional
        ``load(index)`` gives the directions of the model at ``index`` (its positions along family, capacity and
        seed): an array (input, feature), or the list of its chunks already encoded at ``complevel`` by
        :func:`encode_chunk` (the part files of :mod:`sawdist.extraction.parts` hold them so), or None for a model
        whose chunks are not written (they read as NaN, the fill value: an absent model of a shard). Default: the
        model's slice of ``ds["direction"]``.
    direct : bool
        False: netCDF-C writes ``direction`` as well, on one core, and h5py is not used. For data read lazily from
        netCDF files (:func:`sawdist.shards.merge`): older h5py and netCDF4 wheels share one HDF5 library, which
        crashes when both use it at once.

    Raises
    ------
    OSError
        With errno ``ENOSPC`` and ``path`` as its file name when the disk fills up while writing (netCDF-C and h5py
        report that as an HDF5 error, without the cause: see :func:`_disk_full`); the temporary file is removed.
    """
    complevel, threads = check_complevel(complevel), check_threads(threads)
    path = Path(path)
    tmp = temporary_path(path)
    # An unlimited dimension has no extent until data is written along it, so direct chunk writes cannot fill it:
    # such a dataset goes through netCDF-C's filters, on one core.
    unlimited = ds.encoding.get("unlimited_dims") or ()
    unlimited = {unlimited} if isinstance(unlimited, str) else set(unlimited)
    direct = direct and "direction" in ds.data_vars and ds["direction"].dims == DIMS and not unlimited & set(DIMS)
    try:
        rest = ds.drop_vars("direction") if direct else ds
        # One thread: netCDF-C runs one call at a time under xarray's locks anyway, and older xarray (2024.9 here)
        # orders the locks of a CombinedLock by a set's iteration, so a write's (netCDF-C, HDF5, the file's) and the
        # reads' (netCDF-C, HDF5) can take the two they share in opposite orders: a Dask thread reading a source file
        # and one writing then waited for each other forever (sawdist merge onto a full disk, on the floors in CI).
        # (Where a distributed Client is active, xarray writes through it, under distributed locks.)
        with _one_thread_unless_distributed():
            rest.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding(rest, complevel))
        if direct:
            data = ds["direction"].data
            _write_direction(tmp, ds, complevel, threads, load or (lambda index: _load_model(data, index)))
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        # Checked before the temporary file is removed, while the disk is as full as the failed write found it.
        if _disk_full(err, tmp.parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise
    finally:
        if tmp.exists():
            # Emptied before it is removed: netCDF-C keeps a file open when closing it fails (it cannot flush to a
            # full disk), and a removed file that is still open keeps its space until this process ends.
            with contextlib.suppress(OSError):
                os.truncate(tmp, 0)
            tmp.unlink(missing_ok=True)
    return path


#: A write that fails with less than this much space left on its file system failed for want of space (see
#: :func:`_disk_full`). HDF5 writes the last bytes that fit before it fails, so a full disk has about a block left;
#: the margin covers other writers on the same disk.
_FULL_DISK_BYTES = 16 * 2**20


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether ``err``, raised while writing a file in ``folder``, means that the disk (or the quota) is full.

    An ``OSError`` says so by its errno. netCDF-C turns every failed write into "NetCDF: HDF error" (a RuntimeError,
    or an OSError with a negative code), and a file it cannot create into "Permission denied" (EACCES), dropping the
    system's errno: such an error (EACCES only where ``folder`` is writable) counts as a full disk when less than
    :data:`_FULL_DISK_BYTES` are left to this user in ``folder``'s file system.
    """
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    library = isinstance(err, RuntimeError) or isinstance(err, OSError) and (err.errno is None or err.errno < 0)
    cannot_create = isinstance(err, OSError) and err.errno == errno.EACCES and os.access(folder, os.W_OK)
    if not (library or cannot_create):
        return False  # a system error with its own errno (a folder that is not writable, ...): not a full disk
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows), or the folder is gone
        return False
    return stat.f_bavail * stat.f_frsize < _FULL_DISK_BYTES


def temporary_path(path: str | os.PathLike[str]) -> Path:
    """A temporary name next to ``path`` (``<name>.<pid>-<random>.tmp``), unique to this process and call: writers
    of one path (two Dask workers that both ran a unit, a resumed run) never write into, or delete, each other's
    temporary file."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def check_complevel(complevel: int) -> int:
    """``complevel`` checked: a zlib level from 0 (no compression) to 9."""
    if isinstance(complevel, bool) or not isinstance(complevel, int | np.integer) or not 0 <= complevel <= 9:
        raise ValueError(f"'complevel' must be an integer from 0 to 9, got {complevel!r}.")
    return int(complevel)


def check_threads(threads: int | None) -> int:
    """``threads`` checked; None: every core this process may use."""
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(threads, bool) or int(threads) != threads or threads < 1:
        raise ValueError(f"'threads' must be a positive integer, got {threads!r}.")
    return int(threads)


# Writing ``direction``. Its chunks are shuffled and deflated here, in a thread pool (zlib releases the GIL), and
# stored with HDF5's direct chunk write, which bypasses the filter pipeline: netCDF-C would compress them one after
# another on one core (about 30 MB/s on a laptop core, so 20 GB of CIFAR directions would take 11 minutes). The
# bytes are those HDF5's own filters produce, so any netCDF4/HDF5 reader decompresses them as usual:
#   shuffle (H5Z_FILTER_SHUFFLE, element size 4): the chunk's bytes reordered as byte plane 0 of every element, then
#     plane 1, 2, 3 - ``a.view(uint8).reshape(-1, 4).T``;
#   deflate (H5Z_FILTER_DEFLATE): zlib's compress2 stream (with zlib header), which is ``zlib.compress``.
# At complevel 0 neither filter runs, and Fletcher-32 (H5Z_FILTER_FLETCHER32) checks the raw chunk instead: its
# checksum (_fletcher32) is appended to the chunk's bytes.
# Chunks are always stored whole; the rows past the end of an edge chunk are never read, and hold the fill value.
# chunk_rows, encode_chunk and decode_chunk (and check_complevel, check_threads above) have no leading underscore:
# the part store of the extraction side (sawdist.extraction.parts) stores chunks in this encoding. They are not in
# __all__: the format of the chunks is no promise to users.


#: Values per chunk of ``direction`` (float32: 96 KiB; 8 inputs at d = 3072). The analyses read blocks of inputs across
#: every model (:mod:`sawdist.analyses.blocks`); a chunk of few inputs lets a block of whole chunks fit their memory
#: budget at the paper's scale (2,560 models at d = 3072: 1.0 GB per block of 8 inputs), so each chunk is read once.
#: Chunks of 8 inputs read 35 % faster than chunks of 4 (benchmarks/RESULTS.md, "Layout").
CHUNK_VALUES = 24_576


def chunk_rows(n_inputs: int, n_feature: int) -> int:
    """Inputs per chunk of ``direction``: as many as fit in :data:`CHUNK_VALUES` values, at least one, never more
    than one model."""
    return max(1, min(n_inputs, CHUNK_VALUES // max(1, n_feature)))


def encode_chunk(block: np.ndarray, rows: int, complevel: int) -> bytes:
    """The bytes HDF5 stores for one chunk of ``direction``: ``block`` (at most ``rows`` inputs, padded with NaN to
    ``rows``) as little-endian float32, shuffled and deflated at ``complevel`` (as is when 0: the writer then appends
    the chunk's Fletcher-32 checksum, :func:`_stored_chunk`; the part files hold the chunk without it)."""
    block = np.ascontiguousarray(block, dtype="<f4")
    if block.shape[0] < rows:
        block = np.concatenate([block, np.full((rows - block.shape[0], block.shape[1]), np.nan, "<f4")])
    if complevel == 0:
        return block.tobytes()
    return zlib.compress(block.view(np.uint8).reshape(-1, 4).T.tobytes(), complevel)


def decode_chunk(data: bytes, rows: int, n_feature: int, compressed: bool) -> np.ndarray:
    """The inverse of :func:`encode_chunk`: a (rows, n_feature) float32 block, padding rows included."""
    raw = np.frombuffer(zlib.decompress(data) if compressed else data, dtype=np.uint8)
    if compressed:
        raw = raw.reshape(4, -1).T
    return np.ascontiguousarray(raw).view("<f4").reshape(rows, n_feature)


#: Words per row in :func:`_fletcher32`: a row's weighted sum (at most 1024 * 1023 * 65535) is exact in int64.
_FLETCHER_ROW = 1024


@functools.lru_cache(maxsize=1)
def _fletcher_columns() -> np.ndarray:
    return np.arange(_FLETCHER_ROW, dtype=np.int64)


def _fletcher32(data: bytes) -> bytes:
    """HDF5's Fletcher-32 checksum of ``data`` as its filter appends it to a chunk (4 bytes, little-endian).

    HDF5 (``H5_checksum_fletcher32``) reads ``data`` as big-endian 16-bit words w_1..w_n (an odd last byte as the
    high byte of a word) and sums sum1 = w_1 + ... + w_n and sum2 = n w_1 + (n-1) w_2 + ... + w_n, folding both
    into 16 bits modulo 65535 as it goes; a folded sum is 0 only when all words are 0, and 65535 otherwise for a
    multiple of 65535. The checksum is sum2 << 16 | sum1. The same sums are computed here with NumPy, in rows of
    1024 words: about 2 ms for a chunk of 4 MiB, on a thread of the writer's pool.
    """
    if len(data) % 2:
        data = bytes(data) + b"\0"
    words = np.frombuffer(data, dtype=">u2")
    n = words.size
    full = n - n % _FLETCHER_ROW
    rows = words[:full].reshape(-1, _FLETCHER_ROW)
    row_sums = rows.sum(axis=1, dtype=np.int64)
    tail = words[full:].astype(np.int64)
    total = int(row_sums.sum()) + int(tail.sum())
    if total == 0:
        return bytes(4)
    # sum of i w_i over the 0-based word index i; sum2 = n * total - that
    starts = np.arange(0, full, _FLETCHER_ROW, dtype=np.int64) % 65535
    within = np.einsum("ij,j->i", rows, _fletcher_columns()) % 65535
    indexed = (int((starts * (row_sums % 65535)).sum()) + int(within.sum())
               + full * int(tail.sum()) + int((tail * np.arange(tail.size)).sum()))
    sum1 = total % 65535 or 65535
    sum2 = (n * total - indexed) % 65535 or 65535
    return (sum2 << 16 | sum1).to_bytes(4, "little")


def _stored_chunk(block: np.ndarray | bytes, rows: int, complevel: int) -> bytes:
    """The bytes stored for a chunk of ``direction``: ``block`` encoded (:func:`encode_chunk`), unless it is encoded
    already (bytes), and at ``complevel`` 0 followed by its Fletcher-32 checksum."""
    chunk = block if isinstance(block, bytes) else encode_chunk(block, rows, complevel)
    return chunk if complevel else chunk + _fletcher32(chunk)


def _load_model(data, index) -> np.ndarray:
    block = data[index]
    if hasattr(block, "compute"):  # a Dask array: load this model alone, here in the worker thread
        block = block.compute(scheduler="synchronous")
    return np.asarray(block, dtype=np.float32)


def _write_direction(path: Path, ds: xr.Dataset, complevel: int, threads: int, load) -> None:
    import h5py
    import netCDF4

    var = ds["direction"]
    chunks = encoding(ds[["direction"]], complevel)["direction"]["chunksizes"]
    rows = chunks[3]
    coordinates = " ".join(str(name) for name, c in ds.coords.items()
                           if name not in ds.dims and set(c.dims) <= set(DIMS))
    with NETCDF4_PYTHON_LOCK, netCDF4.Dataset(path, "a") as nc:  # netCDF-C is not thread-safe (_Store.open_read)
        for dim in DIMS:
            if dim not in nc.dimensions:
                nc.createDimension(dim, var.sizes[dim])
        v = nc.createVariable("direction", "f4", DIMS, zlib=complevel > 0, complevel=max(complevel, 1),
                              shuffle=complevel > 0, fletcher32=complevel == 0, chunksizes=chunks, endian="little",
                              fill_value=np.float32(np.nan))
        attrs = {k: val for k, val in var.attrs.items() if k != "_FillValue"}
        if coordinates:
            attrs["coordinates"] = coordinates
        v.setncatts(attrs)

    models = list(np.ndindex(*var.shape[:3]))
    n = var.shape[3]
    with h5py.File(path, "r+") as f, ThreadPoolExecutor(threads) as pool:
        dset = f["direction"]
        # Models load two ahead; chunks are compressed at most 4 per worker ahead of the (single-threaded) writes.
        loads = deque(pool.submit(load, m) for m in models[:2])
        pending: deque = deque()
        for i, model in enumerate(models):
            block = loads.popleft().result()
            if i + 2 < len(models):
                loads.append(pool.submit(load, models[i + 2]))
            if block is None:
                continue
            for j, start in enumerate(range(0, n, rows)):
                if isinstance(block, list) and complevel:  # chunks encoded already (a part file's), stored as they are
                    future = Future()
                    future.set_result(block[j])
                else:
                    chunk = block[j] if isinstance(block, list) else block[start: start + rows]
                    future = pool.submit(_stored_chunk, chunk, rows, complevel)
                pending.append((model + (start, 0), future))
                while len(pending) > 4 * threads:
                    offset, future = pending.popleft()
                    dset.id.write_direct_chunk(offset, future.result())
        while pending:
            offset, future = pending.popleft()
            dset.id.write_direct_chunk(offset, future.result())


def model_part(*, family: str, capacity: int, seed: int, direction: ArrayLike, grad_norm: ArrayLike, valid: ArrayLike,
               correct: ArrayLike, test_accuracy: float, n_params: int, label: ArrayLike,
               input_index: ArrayLike | None = None, extra: dict | None = None) -> xr.Dataset:
    """The part of a saliency dataset that one trained model contributes (family, capacity, seed of length 1).

    Parameters
    ----------
    direction : array (n_inputs, n_feature)
    grad_norm, valid, correct : arrays (n_inputs,)
    test_accuracy : float
    n_params : int
    label : array (n_inputs,)
    input_index : array (n_inputs,), optional
        Indices of the inputs in the test split, the coordinate ``input`` (default ``0..n_inputs-1``).
    extra : dict, optional
        More per-model scalars, e.g. ``{"train_accuracy": 0.99}``, stored with dims (family, capacity, seed).
    """
    direction = np.asarray(direction, dtype=np.float32)
    n_inputs, n_feature = direction.shape
    grid = DIMS[:3]

    def per_input(a, dtype):
        return np.asarray(a, dtype=dtype).reshape(1, 1, 1, n_inputs)

    data_vars = {
        "direction": (DIMS, direction.reshape(1, 1, 1, n_inputs, n_feature)),
        "grad_norm": (DIMS[:4], per_input(grad_norm, np.float32)),
        "valid": (DIMS[:4], per_input(valid, bool)),
        "correct": (DIMS[:4], per_input(correct, bool)),
        "test_accuracy": (grid, np.full((1, 1, 1), test_accuracy, dtype=np.float32)),
        "n_params": (DIMS[:2], np.full((1, 1), n_params, dtype=np.int64)),
    }
    for name, value in (extra or {}).items():
        data_vars[name] = (grid, np.full((1, 1, 1), value, dtype=np.float32))
    coords = {
        "family": [family],
        "capacity": [int(capacity)],
        "seed": [int(seed)],
        "input": np.arange(n_inputs) if input_index is None else np.asarray(input_index, dtype=np.int64),
        "feature": np.arange(n_feature),
        "label": ("input", np.asarray(label, dtype=np.int64)),
    }
    ds = xr.Dataset(data_vars, coords)
    for name, meta in METADATA.items():
        if name in ds.variables:
            ds[name].attrs.update(meta)
    return ds
