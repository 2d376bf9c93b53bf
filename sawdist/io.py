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

Importing this module loads only NumPy, xarray and the standard library; writing uses netCDF4 and h5py as well
(:func:`to_netcdf_atomic` compresses ``direction`` on every core, see there). The extraction side writes a dataset
one model at a time through its part store (:mod:`sawdist.extraction.parts`), which stores the chunks of
``direction`` encoded as here (:func:`chunk_rows`, :func:`encode_chunk`, :func:`decode_chunk`) and hands them to
:func:`to_netcdf_atomic` at the end.
"""

from __future__ import annotations

import glob
import json
import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

__all__ = [
    "DIMS",
    "VARIABLES",
    "REQUIRED_ATTRS",
    "SCHEMA_VERSION",
    "SchemaError",
    "encoding",
    "model_part",
    "open_saliency",
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


def _tolerance(d: int) -> float:
    """Allowed deviation of a stored unit vector's norm from 1 (float32 storage, d features)."""
    return 10 * float(np.finfo(np.float32).eps) * np.sqrt(d)


def validate(ds: xr.Dataset, *, values: bool = True) -> xr.Dataset:
    """Check that ``ds`` follows the saliency-dataset schema; return it unchanged.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset (in memory or opened lazily).
    values : bool
        Also check the values: valid directions have unit norm (within 10 eps sqrt(d) in float32) and a positive
        ``grad_norm``, invalid ones are NaN, accuracies lie in [0, 1]. This reads all of ``direction``
        (chunk by chunk when ``ds`` is backed by Dask).

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
    if values:
        _validate_values(ds)
    return ds


def _validate_values(ds: xr.Dataset) -> None:
    d = ds.sizes["feature"]
    direction = ds["direction"].astype("float64")
    norm = np.sqrt((direction**2).sum("feature", skipna=False))
    finite = np.isfinite(ds["direction"]).all("feature")
    any_finite = np.isfinite(ds["direction"]).any("feature")
    checks = xr.Dataset({
        "finite_mismatch": (finite != ds["valid"]).sum(),
        "partly_nan": (any_finite & ~finite).sum(),
        "bad_norm": (ds["valid"] & (abs(norm - 1) > _tolerance(d))).sum(),
        "bad_grad_norm": (ds["valid"] & ~(ds["grad_norm"] > 0)).sum(),
        "bad_accuracy": (~((ds["test_accuracy"] >= 0) & (ds["test_accuracy"] <= 1))).sum(),
    }).compute()
    if checks["partly_nan"]:
        raise SchemaError(f"'direction' has {int(checks['partly_nan'])} vectors that are partly NaN.")
    if checks["finite_mismatch"]:
        raise SchemaError(f"'valid' disagrees with the finiteness of 'direction' at {int(checks['finite_mismatch'])} "
                          "places (invalid directions must be NaN, valid ones finite).")
    if checks["bad_norm"]:
        raise SchemaError(f"'direction' has {int(checks['bad_norm'])} valid vectors whose norm differs from 1 by more "
                          f"than {_tolerance(d):.2g}.")
    if checks["bad_grad_norm"]:
        raise SchemaError(f"'grad_norm' is not positive at {int(checks['bad_grad_norm'])} valid places.")
    if checks["bad_accuracy"]:
        raise SchemaError(f"'test_accuracy' lies outside [0, 1] at {int(checks['bad_accuracy'])} places.")


def input_shape(ds: xr.Dataset) -> tuple[int, ...]:
    """The shape of one input, from ``attrs["input_shape"]`` (a list, or a string such as ``"1 8 8"``)."""
    raw = ds.attrs.get("input_shape", ds["feature"].attrs.get("input_shape") if "feature" in ds else None)
    if raw is None:
        raise SchemaError("'ds' has no attribute 'input_shape'.")
    if isinstance(raw, str):
        raw = raw.replace(",", " ").replace("x", " ").split()
    return tuple(int(s) for s in np.atleast_1d(raw))


# --- reading -------------------------------------------------------------------------------------------------------


def open_saliency(path, *, chunks=None, validate_schema: bool = True, values: bool = False) -> xr.Dataset:
    """Open a saliency dataset (one netCDF file, a glob pattern or a list of files).

    Parameters
    ----------
    path : str, path-like or list
        A file, a glob pattern (``"runs/*.nc"``) or a list of files; several files are combined by their coordinates
        with :func:`xarray.open_mfdataset` (lazily, with Dask).
    chunks : dict, "auto" or None
        Dask chunks; ``None`` opens a single file without Dask (values load on access).
    validate_schema : bool
        Check the schema with :func:`validate` (``values`` is passed on; by default only the structure is checked,
        which reads no data).

    Raises
    ------
    SchemaError
        When a file records a ``schema_version`` other than :data:`SCHEMA_VERSION` (it must be extracted again), or,
        with ``validate_schema``, when the dataset does not follow the schema.
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
        ds = xr.open_dataset(paths[0], engine="netcdf4", chunks=chunks)
        try:
            _check_version(ds, paths[0])
        except SchemaError:
            ds.close()
            raise
    else:
        ds = xr.open_mfdataset(paths, engine="netcdf4", combine="by_coords", chunks=chunks or {},
                               data_vars="minimal", coords="minimal", compat="override", join="exact",
                               combine_attrs="drop_conflicts",
                               preprocess=lambda part: _check_version(part, part.encoding.get("source", "?")))
    if validate_schema:
        validate(ds, values=values)
    return ds


def _check_version(ds: xr.Dataset, path) -> xr.Dataset:
    """``ds`` unchanged, or a :class:`SchemaError` when it records a schema version other than this one's."""
    found = ds.attrs.get("schema_version")
    if found is not None and str(found) != SCHEMA_VERSION:
        raise SchemaError(f"{str(path)!r} is a saliency dataset of schema version {found}, which this version of "
                          f"sawdist cannot read (it reads version {SCHEMA_VERSION}): re-extract it with this version "
                          "of sawdist.")
    return ds


# --- writing -------------------------------------------------------------------------------------------------------


def encoding(ds: xr.Dataset, complevel: int = 4) -> dict:
    """netCDF4 encoding: zlib with shuffle for every data variable; ``direction`` in chunks of about 2**20 values
    within one model."""
    result = {}
    for name, var in ds.data_vars.items():
        enc = {"zlib": True, "complevel": complevel, "shuffle": True}
        if var.dtype.kind == "f":
            enc["dtype"] = "float32"
        if name == "direction":
            d = var.sizes["feature"]
            enc["chunksizes"] = (1, 1, 1, chunk_rows(var.sizes["input"], d), d)
        result[name] = enc
    return result


def to_netcdf_atomic(ds: xr.Dataset, path, *, complevel: int = 4, threads: int | None = None, load=None) -> Path:
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
        :func:`encode_chunk` (the part files of :mod:`sawdist.extraction.parts` hold them so). Default: the model's
        slice of ``ds["direction"]``.
    """
    complevel, threads = check_complevel(complevel), check_threads(threads)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    # An unlimited dimension has no extent until data is written along it, so direct chunk writes cannot fill it:
    # such a dataset goes through netCDF-C's filters, on one core.
    unlimited = ds.encoding.get("unlimited_dims") or ()
    unlimited = {unlimited} if isinstance(unlimited, str) else set(unlimited)
    direct = "direction" in ds.data_vars and ds["direction"].dims == DIMS and not unlimited & set(DIMS)
    try:
        rest = ds.drop_vars("direction") if direct else ds
        rest.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding(rest, complevel))
        if direct:
            data = ds["direction"].data
            _write_direction(tmp, ds, complevel, threads, load or (lambda index: _load_model(data, index)))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_complevel(complevel) -> int:
    """``complevel`` checked: a zlib level from 0 (no compression) to 9."""
    if isinstance(complevel, bool) or not isinstance(complevel, int | np.integer) or not 0 <= complevel <= 9:
        raise ValueError(f"'complevel' must be an integer from 0 to 9, got {complevel!r}.")
    return int(complevel)


def check_threads(threads) -> int:
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
# Chunks are always stored whole; the rows past the end of an edge chunk are never read, and hold the fill value.
# chunk_rows, encode_chunk and decode_chunk (and check_complevel, check_threads above) have no leading underscore:
# the part store of the extraction side (sawdist.extraction.parts) stores chunks in this encoding. They are not in
# __all__: the format of the chunks is no promise to users.


def chunk_rows(n_inputs: int, n_feature: int) -> int:
    """Inputs per chunk of ``direction``: about 2**20 values (4 MiB), never more than one model."""
    return max(1, min(n_inputs, 2**20 // max(1, n_feature)))


def encode_chunk(block: np.ndarray, rows: int, complevel: int) -> bytes:
    """The bytes HDF5 stores for one chunk of ``direction``: ``block`` (at most ``rows`` inputs, padded with NaN to
    ``rows``) as little-endian float32, shuffled and deflated at ``complevel`` (as is when 0)."""
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
    with netCDF4.Dataset(path, "a") as nc:
        for dim in DIMS:
            if dim not in nc.dimensions:
                nc.createDimension(dim, var.sizes[dim])
        v = nc.createVariable("direction", "f4", DIMS, zlib=complevel > 0, complevel=max(complevel, 1),
                              shuffle=complevel > 0, chunksizes=chunks, endian="little", fill_value=np.float32(np.nan))
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
            for j, start in enumerate(range(0, n, rows)):
                if isinstance(block, list):  # chunks encoded already (a part file's)
                    future = Future()
                    future.set_result(block[j])
                else:
                    future = pool.submit(encode_chunk, block[start: start + rows], rows, complevel)
                pending.append((model + (start, 0), future))
                while len(pending) > 4 * threads:
                    offset, future = pending.popleft()
                    dset.id.write_direct_chunk(offset, future.result())
        while pending:
            offset, future = pending.popleft()
            dset.id.write_direct_chunk(offset, future.result())


def model_part(*, family: str, capacity: int, seed: int, direction, grad_norm, valid, correct, test_accuracy: float,
               n_params: int, label, input_index=None, extra: dict | None = None) -> xr.Dataset:
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
