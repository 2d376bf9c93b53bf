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
* :func:`merge` (``sawdist merge``) writes that dataset to one file, through netCDF-C alone, with the encoding of
  :func:`sawdist.io.encoding`: it holds the same values, bit for bit, as the file of the same sweep run in one
  process (on a CPU, where training is deterministic).
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import xarray as xr

from .io import check_complevel, open_shards, shard_of, to_netcdf_atomic, validate
from .lock import OutputLock

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["merge", "open_shards", "shard_of"]

log = logging.getLogger("sawdist.merge")

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
        zlib level of ``out``; by default that of the shards. netCDF-C compresses ``direction`` again, on one core
        (about 35 MB/s): merging a sweep costs about what writing it once did.

    Returns
    -------
    pathlib.Path
        ``out``.
    """

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
            if complevel is None:
                complevel = int(ds["direction"].encoding.get("complevel", 4) if ds["direction"].encoding.get("zlib")
                                else 0)
            complevel = check_complevel(complevel)
            ds.attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            # netCDF-C alone reads the shards and writes the merge (direct=False): older h5py and netCDF4 wheels
            # share one HDF5 library, and h5py writing while netCDF-C reads crashed it (the dependency floors).
            to_netcdf_atomic(ds, out, complevel=complevel, direct=False)
        finally:
            ds.close()
    with xr.open_dataset(out, engine="netcdf4") as check:
        validate(check, values=False)
    return out
