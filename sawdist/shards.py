"""Shards of a sweep: open them together as one dataset, or merge them into one file.

``sawdist extract --shard I/N`` trains shard I of N of a sweep's units and writes a *shard file*: a saliency dataset
of the whole grid (family x capacity x seed) in which only this shard's models are present. The variable
``in_shard`` (family, capacity, seed) marks them; the other models are absent: their ``direction`` chunks were never
written (they read as NaN, the fill value, and take no space on disk), ``valid`` and ``correct`` are False, and
``grad_norm`` and the accuracies are NaN. The attributes ``sweep`` (a hash of everything that determines the models,
the grid included) and ``shard`` (``"I/N"``) say where it belongs.

* :func:`open_shards` (defined in :mod:`sawdist.io`: what :func:`sawdist.io.open_saliency` does with a list or a glob
  of shard files) checks that the files are the N shards of one sweep, each once, covering every model exactly
  once, and returns the dataset of the whole sweep, lazily: each model's values are read from the shard that
  trained it.
* :func:`merge` (``sawdist merge``) writes that dataset to one file. ``direction``'s compressed chunks are copied as
  they are stored, so the merged file holds the same bits as the file of the same sweep run in one process (on a
  CPU, where training is deterministic), and merging costs little more than copying.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .io import check_complevel, open_shards, shard_of, to_netcdf_atomic, validate
from .lock import OutputLock

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["merge", "open_shards", "shard_of"]

log = logging.getLogger("sawdist.merge")

def _raw_chunk_loader(paths: list, owner: np.ndarray, complevel: int, rows: int):
    """``load(index)`` for :func:`sawdist.io.to_netcdf_atomic`: a model's ``direction`` chunks as its shard stores
    them (when stored with this chunking and compression), else None (the writer then encodes the values)."""
    import h5py

    files: dict = {}

    def load(index):
        path = paths[owner[index]]
        if path not in files:
            files[path] = h5py.File(path, "r")
        dset = files[path]["direction"]
        stored_compressed = dset.compression == "gzip" and bool(dset.shuffle)
        stored_plain = dset.compression is None and not dset.shuffle
        if dset.chunks[3] != rows or not ((complevel > 0 and stored_compressed) or (complevel == 0 and stored_plain)):
            return np.asarray(dset[index], dtype=np.float32)
        chunks = []
        for start in range(0, dset.shape[3], rows):
            mask, data = dset.id.read_direct_chunk(index + (start, 0))
            if mask:  # a filter was skipped for this chunk: decode it instead
                return np.asarray(dset[index], dtype=np.float32)
            chunks.append(data)
        return chunks

    load.close = lambda: [f.close() for f in files.values()]
    return load


def _check_existing(out: Path, ds: xr.Dataset) -> None:
    """An existing ``out`` is kept when it is the merge of these shards, else refused (and left as it is)."""
    try:
        with xr.open_dataset(out, engine="netcdf4") as existing:
            same = existing.attrs.get("sweep") == ds.attrs.get("sweep") and "shard" not in existing.attrs
    except (OSError, ValueError):
        same = False
    if not same:
        raise ValueError(f"'out' {str(out)!r} exists and is not the merge of these shards; sawdist leaves it as it is: "
                         "choose another file.")
    log.info(f"{out} is the merge of these shards already")


def _stored_complevel(path) -> int:
    """The zlib level of ``direction`` in a file (0 when stored uncompressed)."""
    import h5py

    with h5py.File(path, "r") as f:
        dset = f["direction"]
        return int(dset.compression_opts) if dset.compression == "gzip" else 0


def merge(paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *,
          complevel: int | None = None) -> Path:
    """Merge the shard files of one sweep into one saliency dataset ``out`` (``sawdist merge``).

    Parameters
    ----------
    paths : list of path-like
        Every shard file of the sweep, in any order (see :func:`open_shards` for what is checked).
    out : path-like
        The merged file. It is written through a temporary file, under the lock ``<out>.lock``; an existing file is
        never replaced: when it is the merge of these shards already, it is kept and returned, else refused.
    complevel : int, optional
        zlib level of ``out``; by default that of the shards, whose compressed chunks are then copied unchanged.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    from .io import chunk_rows

    paths = [str(p) for p in paths]
    if len(paths) == 0:
        raise ValueError("'paths' must name the shard files of a sweep, got none.")
    out = Path(out)
    if str(out) in paths or any(os.path.exists(p) and out.exists() and os.path.samefile(p, out) for p in paths):
        raise ValueError(f"'out' {str(out)!r} is one of the shards; choose another file.")
    if out.is_dir():
        raise ValueError(f"'out' {str(out)!r} is a folder; pass a file name.")
    with OutputLock(out):
        ds = open_shards(paths)
        try:
            if out.exists():
                _check_existing(out, ds)
                return out
            owner = ds.encoding["shard_owner"]
            # netCDF-C and h5py may use one HDF5 library (older wheels do), and a file open in both at once then
            # fails ("ring type mismatch"). So everything but direction is read now and the shards are closed
            # before h5py reads direction's chunks; direction stays a lazy placeholder here, never computed.
            merged = ds.drop_vars("direction").load()
            merged["direction"] = ds["direction"]
        finally:
            ds.close()
        if complevel is None:
            complevel = _stored_complevel(paths[0])
        complevel = check_complevel(complevel)
        n, d = merged.sizes["input"], merged.sizes["feature"]
        load = _raw_chunk_loader(paths, owner, complevel, chunk_rows(n, d))
        merged.attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        try:
            to_netcdf_atomic(merged, out, complevel=complevel, load=load)
        finally:
            load.close()
    with xr.open_dataset(out, engine="netcdf4") as check:
        validate(check, values=False)
    return out
