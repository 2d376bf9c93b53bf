"""Which on-disk layout (format, compressor, chunk shape) suits the analyses' read pattern of saliency datasets.

The analyses (``sawdist report``, :mod:`analyses`) read ``direction`` in blocks of a few inputs across *all* models
(every family x capacity x seed for inputs ``i .. i+B``; ``analyses/blocks.py``), while the writer stored one chunk
per model and ~341 inputs before this measurement (:func:`sawdist.io.chunk_rows`).
This script writes a synthetic dataset of float32 unit vectors (d = 3072, CIFAR-shaped) in many layouts and measures,
for each:

* write: wall time, raw MB/s, bytes on disk / raw bytes (and, for Zarr, the number of files);
* read: the analysis pattern, blocks of B = chunk-extent inputs read for all models at once into one float32 array
  through xarray (``isel(input=...).values``; netCDF4 engine for the .nc files, ``open_zarr`` for Zarr);
* floor: the same stored chunks read once each in storage order straight from the file (``os.pread`` at the byte
  offsets HDF5 reports, or the Zarr chunk/shard files) and decompressed (codec + unshuffle), nothing else; on 1 and
  on all cores; ``read/floor`` is the time ratio of the xarray read to the 1-core floor;
* misaligned blocks (B < chunk extent): each stored chunk is then decompressed once per block that touches it (the
  count is computed; HDF5's chunk cache is switched off for this, as at paper scale one block row of 2,560 models'
  chunks never fits it), and the slowdown against aligned blocks is measured (time-limited, on a prefix of blocks);
* whether plain ``xarray.open_dataset(path)`` (default engine), ``engine="h5netcdf"`` and ``xarray.open_zarr`` open
  each variant and read the right values (each in a fresh process, with ``HDF5_PLUGIN_PATH`` as it was before this
  script imported netCDF4, which sets it).

Variants (``--variants``): ``nc-*`` are written by netCDF-C through ``xarray.to_netcdf`` (one core); ``ncd-*`` are
netCDF4 files whose ``direction`` chunks are compressed on every core and stored with h5py's direct chunk writes
(``ncd-zlib1`` is sawdist's own writer, :func:`sawdist.io.to_netcdf_atomic`; ``ncd-zstd1`` does the same with HDF5's
zstd filter 32015); ``zarr-*`` are Zarr v3 stores written by ``xarray.to_zarr`` (``zarr-shard-*``: one shard per
model, inner chunks of the extent). An in-memory codec probe (ratio, compress and decompress MB/s on one core) runs on
a sample of each data kind.

Run from the repository root (about 25 minutes at 1 GB on 2 cores)::

    python benchmarks/layout.py                      # 1 GB, every variant and chunk extent
    python benchmarks/layout.py --size-gb 0.1 --out /tmp/layout-smoke   # a quick smoke test
    python benchmarks/layout.py --variants ncd-zstd1,zarr-blz4-bit --extents 16,64 --data random

It prints a table and writes ``layout.json`` and ``layout.md`` into ``--out``. Scratch files (one variant at a time,
about the dataset's size) go to ``--scratch`` (default: ``<out>/scratch``) and are deleted (``--keep`` keeps them).
Reads are from the page cache (the files were just written): they measure CPU cost, not the disk.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# netCDF4 sets HDF5_PLUGIN_PATH when imported: the open checks run with the value the user had.
_USER_PLUGIN_PATH = os.environ.get("HDF5_PLUGIN_PATH")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

DIMS = ("family", "capacity", "seed", "input", "feature")
FEATURES = 3072  # CIFAR: 3 x 32 x 32
GRID = (5, 2, 4)  # families, capacities, seeds of the synthetic dataset: 40 models
PAPER = {"families": 5, "capacities": 8, "seeds": 64, "inputs": 10_000, "features": FEATURES}
PAPER_MODELS = PAPER["families"] * PAPER["capacities"] * PAPER["seeds"]
MODEL_EXTENT = max(1, 2**20 // FEATURES)  # sawdist.io.chunk_rows: 341 inputs (4 MiB) per chunk, one model
MB = 1e6


def _zarr_codecs():
    from zarr.codecs import BloscCodec, ZstdCodec

    return {
        "zstd1": lambda: ZstdCodec(level=1),
        "bzstd1-shuf": lambda: BloscCodec(cname="zstd", clevel=1, shuffle="shuffle", typesize=4, blocksize=2**20),
        "bzstd1-bit": lambda: BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", typesize=4),
        "blz4-bit": lambda: BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=4),
    }


#: name -> (format, codec description, parameters)
VARIANTS = {
    "nc-none": ("nc", "none", {}),
    "nc-zlib1": ("nc", "zlib 1 + shuffle", {"zlib": True, "complevel": 1, "shuffle": True}),
    "nc-zlib4": ("nc", "zlib 4 + shuffle", {"zlib": True, "complevel": 4, "shuffle": True}),
    # netCDF4-python (1.7.5) applies `shuffle` with zlib only: compression="zstd", shuffle=True stores zstd alone
    "nc-zstd1": ("nc", "zstd 1 (shuffle=True ignored)", {"compression": "zstd", "complevel": 1, "shuffle": True}),
    "nc-zstd1-shuf": ("ncd", "zstd 1 + shuffle (netCDF-C writes)", {"codec": "zstd", "level": 1, "direct": False}),
    "nc-bzstd1": ("nc", "blosc zstd 1 + bitshuffle", {"compression": "blosc_zstd", "complevel": 1, "blosc_shuffle": 2}),
    "nc-blz4": ("nc", "blosc lz4 5 + bitshuffle", {"compression": "blosc_lz4", "complevel": 5, "blosc_shuffle": 2}),
    "ncd-zlib1": ("ncd", "zlib 1 + shuffle (sawdist writer)", {"codec": "zlib", "level": 1}),
    "ncd-zstd1": ("ncd", "zstd 1 + shuffle (direct writes)", {"codec": "zstd", "level": 1, "direct": True}),
    "zarr-zstd1": ("zarr", "zstd 1 (no shuffle)", {"codec": "zstd1"}),
    "zarr-bzstd1-shuf": ("zarr", "blosc zstd 1 + shuffle, 1 MiB blocks", {"codec": "bzstd1-shuf"}),
    "zarr-bzstd1-bit": ("zarr", "blosc zstd 1 + bitshuffle", {"codec": "bzstd1-bit"}),
    "zarr-blz4-bit": ("zarr", "blosc lz4 5 + bitshuffle", {"codec": "blz4-bit"}),
    "zarr-shard-bzstd1-shuf": ("zarr", "sharded (1 shard/model), blosc zstd 1 + shuffle", {"codec": "bzstd1-shuf",
                                                                                           "shard": True}),
}
#: Variants measured at two extents only, to keep the run short: the same stored format as a variant measured at
#: every extent (nc-zlib1 and ncd-zlib1, nc-zstd1-shuf and ncd-zstd1 differ only in the writer), or a codec that
#: differs from a neighbour mainly in ratio (zlib 4, zstd without shuffle, blosc zstd with bitshuffle).
VARIANT_EXTENTS = {name: (16, MODEL_EXTENT) for name in ("nc-zlib1", "nc-zlib4", "nc-zstd1", "nc-zstd1-shuf",
                                                          "nc-bzstd1", "zarr-zstd1", "zarr-bzstd1-bit")}


# --- data ----------------------------------------------------------------------------------------------------------


def _unit(x):
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def make_dataset(kind: str, n_inputs: int, seed: int = 0) -> xr.Dataset:
    """A synthetic saliency dataset (direction, valid) of ``GRID`` models x ``n_inputs`` inputs.

    ``random``: independent random unit vectors (float32, noise in every mantissa bit, like real gradients).
    ``structured``: per input a direction shared by all models and one shared by each family, plus per-model noise
    (cosine ~0.4 between models of a family, ~0.25 across families). 0.5 % of the vectors are invalid (NaN).
    """
    rng = np.random.default_rng(seed)
    F, K, S = GRID
    direction = np.empty((F, K, S, n_inputs, FEATURES), np.float32)
    shared = _unit(rng.standard_normal((n_inputs, FEATURES), dtype=np.float32)) if kind == "structured" else None
    for f in range(F):
        family = _unit(rng.standard_normal((n_inputs, FEATURES), dtype=np.float32)) if shared is not None else None
        for k in range(K):
            for s in range(S):
                x = _unit(rng.standard_normal((n_inputs, FEATURES), dtype=np.float32))
                if shared is not None:
                    x = 0.5 * shared + 0.4 * family + 0.77 * x
                direction[f, k, s] = _unit(x)
    invalid = rng.random((F, K, S, n_inputs)) < 0.005
    direction[invalid] = np.nan
    coords = {"family": [f"fam{i}" for i in range(F)], "capacity": np.arange(1, K + 1), "seed": np.arange(S),
              "input": np.arange(n_inputs), "feature": np.arange(FEATURES),
              "label": ("input", rng.integers(0, 10, n_inputs))}
    return xr.Dataset({"direction": (DIMS, direction), "valid": (DIMS[:4], ~invalid)}, coords,
                      attrs={"input_shape": "3 32 32", "note": f"synthetic ({kind}) for benchmarks/layout.py"})


# --- codec probe ---------------------------------------------------------------------------------------------------


def _shuffle(a: np.ndarray):
    """HDF5's shuffle filter for float32 (byte 0 of every value, then byte 1, 2, 3), numcodecs' C implementation:
    the same bytes as ``a.view(np.uint8).reshape(-1, 4).T.tobytes()``, about twice as fast."""
    from numcodecs import Shuffle

    return Shuffle(4).encode(np.ascontiguousarray(a, "<f4"))


def _unshuffle(buf) -> np.ndarray:
    from numcodecs import Shuffle

    return np.frombuffer(Shuffle(4).decode(buf), "<f4")


def codec_probe(ds: xr.Dataset, n_chunks: int = 8, repeat: int = 2) -> list[dict]:
    """Ratio and one-core compress/decompress MB/s of each codec on ``n_chunks`` chunks of one model x 341 inputs."""
    import numcodecs
    from numcodecs import Blosc, Zstd

    numcodecs.blosc.use_threads = False
    flat = ds["direction"].values.reshape(-1, FEATURES)
    chunks = [np.ascontiguousarray(flat[i * MODEL_EXTENT: (i + 1) * MODEL_EXTENT]) for i in range(n_chunks)]
    chunks = [c for c in chunks if c.shape[0]]
    raw = sum(c.nbytes for c in chunks)

    def blosc(cname, clevel, shuffle, blocksize=0):
        codec = Blosc(cname, clevel, shuffle, blocksize)
        return codec.encode, codec.decode

    codecs = {
        "zlib 1 + shuffle": (lambda c: zlib.compress(_shuffle(c), 1), lambda b: _unshuffle(zlib.decompress(b))),
        "zlib 4 + shuffle": (lambda c: zlib.compress(_shuffle(c), 4), lambda b: _unshuffle(zlib.decompress(b))),
        "zstd 1": (Zstd(1).encode, Zstd().decode),
    }
    for level in (1, 3, 9):
        codecs[f"zstd {level} + shuffle"] = ((lambda lv: lambda c: Zstd(lv).encode(_shuffle(c)))(level),
                                             lambda b: _unshuffle(Zstd().decode(b)))
    codecs.update({
        "blosc zstd 1 + shuffle (auto blocks)": blosc("zstd", 1, Blosc.SHUFFLE),
        "blosc zstd 1 + shuffle, 1 MiB blocks": blosc("zstd", 1, Blosc.SHUFFLE, 2**20),
        "blosc zstd 1 + bitshuffle": blosc("zstd", 1, Blosc.BITSHUFFLE),
        "blosc zstd 5 + bitshuffle": blosc("zstd", 5, Blosc.BITSHUFFLE),
        "blosc lz4 5 + shuffle": blosc("lz4", 5, Blosc.SHUFFLE),
        "blosc lz4 5 + bitshuffle": blosc("lz4", 5, Blosc.BITSHUFFLE),
    })
    rows = []
    for name, (encode, decode) in codecs.items():
        t_enc = t_dec = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            encoded = [encode(c) for c in chunks]
            t_enc = min(t_enc, time.perf_counter() - t0)
            t0 = time.perf_counter()
            decoded = [decode(b) for b in encoded]
            t_dec = min(t_dec, time.perf_counter() - t0)
        ok = all(np.array_equal(np.frombuffer(d, "<f4").reshape(c.shape) if not isinstance(d, np.ndarray)
                                else d.reshape(c.shape).view("<f4"), c, equal_nan=True)
                 for d, c in zip(decoded, chunks))
        rows.append({"codec": name, "ratio": sum(map(len, encoded)) / raw, "compress_MBps": raw / t_enc / MB,
                     "decompress_MBps": raw / t_dec / MB, "roundtrip_ok": bool(ok)})
    return rows


# --- writing -------------------------------------------------------------------------------------------------------


def write_nc(ds, path, extent, params):
    enc = {"direction": {"chunksizes": (1, 1, 1, extent, FEATURES), "dtype": "float32", **params},
           "valid": {"zlib": True, "complevel": 1, "shuffle": True}}
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=enc)


def write_ncd(ds, path, extent, params, threads):
    if params["codec"] == "zlib":  # sawdist's own writer, with the chunk extent changed
        import sawdist.io as sio

        saved = sio.chunk_rows
        sio.chunk_rows = lambda n_inputs, n_feature: min(n_inputs, extent)
        try:
            sio.to_netcdf_atomic(ds, path, complevel=params["level"], threads=threads)
        finally:
            sio.chunk_rows = saved
        return
    write_zstd(ds, path, extent, params["level"], threads, direct=params["direct"])


def _netcdf_c():
    """The netCDF-C library netCDF4-python uses (ctypes), for what netCDF4-python does not expose."""
    import ctypes
    import ctypes.util

    import netCDF4

    libs = sorted((Path(netCDF4.__file__).resolve().parents[1] / "netcdf4.libs").glob("libnetcdf-*.so*"))
    return ctypes.CDLL(str(libs[0]) if libs else ctypes.util.find_library("netcdf"))


def write_zstd(ds, path, extent, level, threads, *, direct):
    """``direction`` with HDF5's shuffle + zstd filters (shuffle, then 32015 with cd_values [level]).

    netCDF-C creates the variable; netCDF4-python ignores ``shuffle`` unless the compression is zlib, so the shuffle
    filter is added with netCDF-C's ``nc_def_var_deflate(ncid, varid, shuffle=1, deflate=0, 0)`` (ctypes).
    ``direct=False``: netCDF-C writes the values (its filters, one core). ``direct=True``: as
    :func:`sawdist.io.to_netcdf_atomic`, h5py stores the chunks, compressed on ``threads`` threads: a chunk's bytes are
    the byte-shuffled float32 values compressed by ZSTD_compress (one zstd frame with its content size), which is what
    the zstd filter of netCDF-C (and hdf5plugin) writes and reads.
    """
    import h5py
    import netCDF4
    from numcodecs import Zstd

    zstd = Zstd(level)
    rest = ds.drop_vars("direction")
    rest.to_netcdf(path, engine="netcdf4", format="NETCDF4",
                   encoding={"valid": {"zlib": True, "complevel": 1, "shuffle": True}})
    var = ds["direction"]
    chunks = (1, 1, 1, min(extent, var.sizes["input"]), var.sizes["feature"])
    data = var.values
    with netCDF4.Dataset(path, "a") as nc:
        v = nc.createVariable("direction", "f4", DIMS, compression="zstd", complevel=level, shuffle=True,
                              chunksizes=chunks, endian="little", fill_value=np.float32(np.nan))
        err = _netcdf_c().nc_def_var_deflate(v._grpid, v._varid, 1, 0, 0)
        if err or not v.filters()["shuffle"]:
            raise RuntimeError(f"netCDF-C could not add the shuffle filter (error {err})")
        v.setncatts(var.attrs)
        if not direct:
            for model in np.ndindex(*data.shape[:3]):
                v[model] = data[model]
            return
    rows = chunks[3]

    def encode(block):
        if block.shape[0] < rows:
            block = np.concatenate([block, np.full((rows - block.shape[0], block.shape[1]), np.nan, "<f4")])
        return zstd.encode(_shuffle(np.ascontiguousarray(block, "<f4")))

    n = data.shape[3]
    with h5py.File(path, "r+") as f, ThreadPoolExecutor(threads) as pool:
        dset = f["direction"]
        pending = []
        for model in np.ndindex(*data.shape[:3]):
            for start in range(0, n, rows):
                pending.append((model + (start, 0), pool.submit(encode, data[model][start: start + rows])))
                while len(pending) > 4 * threads:
                    offset, fut = pending.pop(0)
                    dset.id.write_direct_chunk(offset, fut.result())
        for offset, fut in pending:
            dset.id.write_direct_chunk(offset, fut.result())


def write_zarr(ds, path, extent, params):
    codec = _zarr_codecs()[params["codec"]]()
    n = ds.sizes["input"]
    enc = {"chunks": (1, 1, 1, min(extent, n), FEATURES), "compressors": [codec]}
    if params.get("shard"):
        enc["shards"] = (1, 1, 1, -(-n // extent) * min(extent, n), FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding={"direction": enc})


def write(variant, ds, path, extent, threads):
    fmt, _, params = VARIANTS[variant]
    if fmt == "nc":
        write_nc(ds, path, extent, params)
    elif fmt == "ncd":
        write_ncd(ds, path, extent, params, threads)
    else:
        write_zarr(ds, path, extent, params)


def disk_usage(path: Path) -> tuple[int, int, int]:
    """(apparent bytes, allocated bytes, number of files)."""
    files = [path] if path.is_file() else [Path(r) / f for r, _, fs in os.walk(path) for f in fs]
    stats = [os.stat(p) for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats), len(files)


# --- reading -------------------------------------------------------------------------------------------------------


def open_variant(variant, path):
    if VARIANTS[variant][0] == "zarr":
        return xr.open_zarr(path, chunks=None, consolidated=False)
    return xr.open_dataset(path, engine="netcdf4", cache=False)


def read_blocks(variant, path, block, n_inputs, *, time_limit=None, expected=None):
    """Read ``direction`` and ``valid`` of all models in blocks of ``block`` inputs (as the analyses do); return
    (seconds, raw bytes of direction delivered, inputs read). With ``time_limit``, stop after the first block that
    ends past it. ``expected`` (the dataset in memory): check the first block's values."""
    ds = open_variant(variant, path)
    try:
        var, valid = ds["direction"], ds["valid"]
        nbytes, start = 0, 0
        t0 = time.perf_counter()
        while start < n_inputs:
            sel = slice(start, min(start + block, n_inputs))
            a = var.isel(input=sel).values
            _ = valid.isel(input=sel).values
            if expected is not None and start == 0:
                t_check = time.perf_counter()
                want = expected["direction"].isel(input=sel).values
                if a.dtype != np.float32 or not np.array_equal(a, want, equal_nan=True):
                    raise AssertionError(f"{variant}: the values read differ from those written")
                t0 += time.perf_counter() - t_check
            nbytes += a.nbytes
            start = sel.stop
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                break
        return time.perf_counter() - t0, nbytes, start
    finally:
        ds.close()


def best_read(variant, path, block, n_inputs, repeat, expected=None, budget=4.0):
    """Best of up to ``repeat`` full reads (a second one only when the first took less than ``budget`` s)."""
    best = math.inf
    for i in range(repeat):
        seconds, nbytes, _ = read_blocks(variant, path, block, n_inputs, expected=expected if i == 0 else None)
        best = min(best, seconds)
        if seconds > budget:
            break
    return best, nbytes


def decompressions(extent, block, n_inputs, stop=None):
    """Stored chunks decompressed per model when blocks of ``block`` inputs (from 0) cover inputs [0, stop) and no
    chunk stays cached between blocks; and the number of chunks per model in that range."""
    stop = n_inputs if stop is None else stop
    total = 0
    for b0 in range(0, stop, block):
        b1 = min(b0 + block, n_inputs)
        total += (b1 - 1) // extent - b0 // extent + 1
    return total, -(-stop // extent)


# --- floor: the stored bytes, decompressed, nothing else ---------------------------------------------------------


def _hdf5_plan(path):
    """Byte ranges of direction's chunks in storage order, and a decoder for them (from the filter pipeline)."""
    import h5py

    with h5py.File(path, "r") as f:
        dset = f["direction"]
        plist = dset.id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        items = []
        t0 = time.perf_counter()
        dset.id.chunk_iter(lambda info: items.append((info.byte_offset, info.size)))
        iter_seconds = time.perf_counter() - t0
        chunk_shape = dset.chunks
    items.sort()
    shuffle = 2 in filters
    codecs = [x for x in filters if x != 2]
    if codecs == [1]:
        inner = zlib.decompress
    elif codecs == [32015]:
        from numcodecs import Zstd

        inner = Zstd().decode
    elif codecs == [32001]:  # blosc does its own shuffling
        from numcodecs import Blosc

        inner = Blosc().decode
    elif not codecs:
        inner = bytes
    else:
        raise ValueError(f"unknown HDF5 filters {filters}")

    def decode(buf):
        out = inner(buf)
        return _unshuffle(out) if shuffle else np.frombuffer(out, "<f4").copy()

    return items, decode, chunk_shape, iter_seconds


def _zarr_plan(path):
    from numcodecs import Blosc, Zstd

    meta = json.loads((Path(path) / "direction" / "zarr.json").read_text())
    codecs = meta["codecs"]
    shard = codecs[0]["name"] == "sharding_indexed"
    if shard:
        inner_codecs = codecs[0]["configuration"]["codecs"]
        inner_shape = codecs[0]["configuration"]["chunk_shape"]
    else:
        inner_codecs, inner_shape = codecs, meta["chunk_grid"]["configuration"]["chunk_shape"]
    names = [c["name"] for c in inner_codecs]
    if names[-1] == "zstd":
        inner = Zstd().decode
    elif names[-1] == "blosc":
        inner = Blosc().decode
    elif names[-1] == "bytes":
        inner = bytes
    else:
        raise ValueError(f"unknown zarr codecs {names}")

    def decode(buf):
        return np.frombuffer(inner(buf), "<f4").copy()

    root = Path(path) / "direction" / "c"
    files = sorted((Path(r) / f for r, _, fs in os.walk(root) for f in fs),
                   key=lambda p: [int(x) for x in p.relative_to(root).parts])
    return files, decode, shard, inner_shape


def floor(variant, path, threads):
    """Seconds and raw bytes to read every stored chunk of direction once, in storage order, and decompress it."""
    import numcodecs

    numcodecs.blosc.use_threads = False  # one thread per chunk; parallelism comes from the pool
    if VARIANTS[variant][0] == "zarr":
        files, decode, shard, inner_shape = _zarr_plan(path)
        chunk_bytes = 4 * int(np.prod(inner_shape))

        def work(p):
            data = p.read_bytes()
            if shard:
                return _decode_shard(data, decode)
            decode(data)
            return 1

        t0 = time.perf_counter()
        if threads == 1:
            n = sum(work(p) for p in files)
        else:
            with ThreadPoolExecutor(threads) as pool:
                n = sum(pool.map(work, files))
        return time.perf_counter() - t0, n * chunk_bytes
    items, decode, chunk_shape, _ = _hdf5_plan(path)
    chunk_bytes = 4 * int(np.prod(chunk_shape))
    fd = os.open(path, os.O_RDONLY)
    try:
        def work(item):
            decode(os.pread(fd, item[1], item[0]))

        t0 = time.perf_counter()
        if threads == 1:
            for item in items:
                work(item)
        else:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(work, items):
                    pass
        return time.perf_counter() - t0, len(items) * chunk_bytes
    finally:
        os.close(fd)


_SHARD_INNER: dict = {}


def _decode_shard(data: bytes, decode) -> int:
    """Decode every inner chunk of a Zarr v3 shard (index at the end: (offset, nbytes) uint64 pairs + crc32c)."""
    n_inner = _SHARD_INNER["n"]
    index = np.frombuffer(data[len(data) - 16 * n_inner - 4: len(data) - 4], "<u8").reshape(n_inner, 2)
    count = 0
    for offset, nbytes in index:
        if offset == 2**64 - 1:
            continue
        decode(data[offset: offset + nbytes])
        count += 1
    return count


def check_floor_decoder(variant, path, expected):
    """The floor's decoder gives the stored values: the first chunk in storage order equals the data."""
    if VARIANTS[variant][0] == "zarr":
        files, decode, shard, inner_shape = _zarr_plan(path)
        data = files[0].read_bytes()
        if shard:
            n_inner = _SHARD_INNER["n"]
            index = np.frombuffer(data[len(data) - 16 * n_inner - 4: len(data) - 4], "<u8").reshape(n_inner, 2)
            offset, nbytes = index[0]
            data = data[offset: offset + nbytes]
        got = decode(data)
        rows = inner_shape[3]
    else:
        items, decode, chunk_shape, _ = _hdf5_plan(path)
        with open(path, "rb") as fh:
            fh.seek(items[0][0])
            got = decode(fh.read(items[0][1]))
        rows = chunk_shape[3]
    # the first chunk in storage order is that of the first model and inputs 0..rows-1 (both writers go in order)
    want = expected["direction"].values[0, 0, 0, :rows]
    if not np.array_equal(got.reshape(-1, FEATURES)[: want.shape[0]], want, equal_nan=True):
        raise AssertionError(f"{variant}: the floor's decoder does not reproduce the data")


# --- can plain xarray open it? -------------------------------------------------------------------------------------

_OPEN_CHECK = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
how, path = sys.argv[1], sys.argv[2]
out = {}
try:
    if how == "h5netcdf after import netCDF4":
        import netCDF4
    if how == "h5netcdf + hdf5plugin":
        import hdf5plugin
    import xarray as xr
    if how == "open_dataset":
        from xarray.backends.plugins import guess_engine
        out["engine"] = guess_engine(path)
        ds = xr.open_dataset(path)
    elif how.startswith("h5netcdf"):
        ds = xr.open_dataset(path, engine="h5netcdf")
    elif how == "open_zarr":
        ds = xr.open_zarr(path)
    sel = dict(family=0, capacity=0, seed=0, input=slice(0, 2), feature=slice(0, 6))
    out["values"] = ds["direction"].isel(sel).values.tolist()
    out["netCDF4_imported"] = "netCDF4" in sys.modules
    out["ok"] = True
except BaseException as err:
    out["ok"] = False
    out["error"] = f"{type(err).__name__}: {err}"[:400]
print(json.dumps(out))
"""


def open_checks(variant, path, expected) -> dict:
    fmt = VARIANTS[variant][0]
    hows = ["open_dataset", "open_zarr"] if fmt == "zarr" else ["open_dataset", "h5netcdf",
                                                                 "h5netcdf after import netCDF4",
                                                                 "h5netcdf + hdf5plugin"]
    env = dict(os.environ)
    env.pop("HDF5_PLUGIN_PATH", None)
    if _USER_PLUGIN_PATH is not None:
        env["HDF5_PLUGIN_PATH"] = _USER_PLUGIN_PATH
    want = expected["direction"].values[0, 0, 0, :2, :6]
    results = {}
    for how in hows:
        try:
            proc = subprocess.run([sys.executable, "-c", _OPEN_CHECK, how, str(path)], env=env, capture_output=True,
                                  text=True, timeout=120)
        except subprocess.TimeoutExpired:
            results[how] = {"ok": False, "error": "timed out"}
            continue
        if proc.returncode != 0 or not proc.stdout.strip():
            results[how] = {"ok": False, "error": f"process died (rc {proc.returncode}): {proc.stderr[-300:]}"}
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if res.get("ok") and not np.array_equal(np.asarray(res.pop("values"), np.float32), want, equal_nan=True):
            res = {"ok": False, "error": "opened, but read wrong values"}
        res.pop("values", None)
        if not res.get("ok"):
            res["error"] = res.get("error", "").replace("\n", " ")
        results[how] = res
    return results


def _short(check: dict) -> str:
    if check.get("ok"):
        return "ok"
    err = check.get("error", "")
    if "hdf5plugin" in err and "No module" in err:
        return "no hdf5plugin"
    if "process died" in err:
        return "CRASH"
    if any(w in err.lower() for w in ("filter", "plugin", "can't read data", "inflate")):
        return "filter missing"
    return "ERROR"


# --- one measurement -----------------------------------------------------------------------------------------------


def measure(variant, extent, ds, scratch, args, kind, do_open_checks) -> dict:
    import netCDF4

    fmt, codec, params = VARIANTS[variant]
    n = ds.sizes["input"]
    extent = min(extent, n)
    raw = ds["direction"].nbytes
    path = scratch / f"{kind}-{variant}-{extent}.{'zarr' if fmt == 'zarr' else 'nc'}"
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    row = {"data": kind, "variant": variant, "format": {"nc": "netCDF4 (netCDF-C)", "ncd": "netCDF4 (direct)",
                                                        "zarr": "Zarr v3"}[fmt],
           "codec": codec, "extent": extent, "chunk_KiB": extent * FEATURES * 4 / 1024}
    t0 = time.perf_counter()
    write(variant, ds, path, extent, args.threads)
    row["write_s"] = time.perf_counter() - t0
    row["write_MBps"] = raw / row["write_s"] / MB
    size, allocated, files = disk_usage(path)
    row.update(size_ratio=size / raw, disk_ratio=allocated / raw, files=files)
    if fmt == "zarr" and params.get("shard"):
        _SHARD_INNER["n"] = -(-n // extent)
    check_floor_decoder(variant, path, ds)
    if fmt != "zarr":
        items, _, _, iter_s = _hdf5_plan(path)
        chunk_bytes = sum(s for _, s in items)
        row.update(n_chunks=len(items), chunk_iter_us=iter_s / len(items) * 1e6,
                   hdf5_overhead_B_per_chunk=(size - chunk_bytes - ds["valid"].size) / len(items))
    else:
        row["n_chunks"] = int(np.prod(GRID)) * -(-n // extent)
    # open
    t0 = time.perf_counter()
    open_variant(variant, path).close()
    row["open_s"] = time.perf_counter() - t0
    # aligned read: blocks of one chunk extent
    seconds, nbytes = best_read(variant, path, extent, n, args.repeat, expected=ds)
    row["read_MBps"] = nbytes / seconds / MB
    # floor
    for key, threads in (("floor1", 1), ("floorN", args.threads)):
        if key == "floorN" and threads == 1:
            row["floorN_MBps"] = row["floor1_MBps"]
            break
        best = math.inf
        for _ in range(args.repeat):
            s, fbytes = floor(variant, path, threads)
            best = min(best, s)
            if s > 4:
                break
        row[f"{key}_MBps"] = fbytes / best / MB
    row["read_over_floor1"] = row["floor1_MBps"] / row["read_MBps"]
    row["read_over_floorN"] = row["floorN_MBps"] / row["read_MBps"]
    # misaligned blocks: chunk cache off (paper scale: a block row of all models' chunks never fits it)
    row["misaligned"] = {}
    for block, only in args.misaligned:
        if block >= extent or only not in (None, extent):
            continue
        default_cache = netCDF4.get_chunk_cache()
        netCDF4.set_chunk_cache(0, default_cache[1], default_cache[2])
        try:
            s, b, stop = read_blocks(variant, path, block, n, time_limit=args.time_limit)
        finally:
            netCDF4.set_chunk_cache(*default_cache)
        total, chunks = decompressions(extent, block, n, stop)
        full, full_chunks = decompressions(extent, block, n)
        row["misaligned"][block] = {"inputs_read": stop, "read_MBps": b / s / MB,
                                    "decompressions_per_chunk": full / full_chunks,
                                    "decompressions_per_chunk_in_prefix": total / chunks,
                                    "slowdown": (b / s / MB) and row["read_MBps"] / (b / s / MB)}
    if do_open_checks:
        row["open_checks"] = open_checks(variant, path, ds)
    if not args.keep:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return row


# --- output --------------------------------------------------------------------------------------------------------


COLUMNS = ["data", "variant", "extent", "chunk KiB", "write s", "write MB/s", "size", "files", "read MB/s",
           "floor1 MB/s", "floorN MB/s", "read/floor1", "B=6: dec/chunk", "B=6 MB/s", "B=6 slow",
           "B=16: dec/chunk", "B=16 MB/s", "B=16 slow"]


def table_rows(rows):
    out = []
    for r in rows:
        mis = {int(k): v for k, v in r.get("misaligned", {}).items()}
        cells = [r["data"], r["variant"], str(r["extent"]), f"{r['chunk_KiB']:.0f}", f"{r['write_s']:.1f}",
                 f"{r['write_MBps']:.0f}", f"{r['size_ratio']:.3f}", str(r["files"]), f"{r['read_MBps']:.0f}",
                 f"{r['floor1_MBps']:.0f}", f"{r['floorN_MBps']:.0f}", f"{r['read_over_floor1']:.2f}"]
        for block in (6, 16):
            if block in mis:
                m = mis[block]
                cells += [f"{m['decompressions_per_chunk']:.1f}", f"{m['read_MBps']:.0f}", f"{m['slowdown']:.1f}x"]
            else:
                cells += ["-", "-", "-"]
        out.append(cells)
    return out


def print_table(rows, file=sys.stdout):
    body = table_rows(rows)
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.rjust(w) for c, w in zip(COLUMNS, widths)), file=file)
    for b in body:
        print("  ".join(c.rjust(w) for c, w in zip(b, widths)), file=file)


def markdown(rows, probes, info) -> str:
    lines = [f"Machine: {info['machine']}; {info['date']}; load before: {info['load_before']}, after: "
             f"{info.get('load_after', '?')}. Dataset: {info['grid']} models x {info['inputs']} inputs x "
             f"{FEATURES} float32 = {info['raw_GB']:.2f} GB per data kind. Threads: {info['threads']}.", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows = [r for r in rows if "error" not in r]
    lines += ["| " + " | ".join(b) + " |" for b in table_rows(rows)]
    lines += ["", "size = bytes on disk / raw bytes; read = xarray blocks of B = extent inputs x all models; "
              "floor1/N = read each stored chunk once + decompress on 1/N threads; read/floor1 = time ratio; "
              "B=6/B=16: blocks smaller than the chunk extent (HDF5 chunk cache off), dec/chunk = decompressions per "
              "stored chunk, slow = aligned MB/s / misaligned MB/s.", ""]
    checks = [(r["variant"], r["open_checks"]) for r in rows if r.get("open_checks")]
    if checks:
        lines += ["| variant | " + " | ".join(sorted({h for _, c in checks for h in c})) + " |"]
        hows = sorted({h for _, c in checks for h in c})
        lines += ["|" + "---|" * (len(hows) + 1)]
        for name, c in checks:
            lines.append(f"| {name} | " + " | ".join(_short(c[h]) if h in c else "-" for h in hows) + " |")
        lines.append("")
    for kind, probe in probes.items():
        lines += [f"Codec probe ({kind} data, {probe['raw_MB']:.0f} MB, one core):", "",
                  "| codec | ratio | compress MB/s | decompress MB/s |", "|---|---|---|---|"]
        lines += [f"| {p['codec']} | {p['ratio']:.3f} | {p['compress_MBps']:.0f} | {p['decompress_MBps']:.0f} |"
                  for p in probe["rows"]]
        lines.append("")
    return "\n".join(lines)


def _load():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0, help="raw size of each synthetic dataset (default 1)")
    parser.add_argument("--out", type=Path, default=Path("layout_results"), help="folder for layout.json/.md")
    parser.add_argument("--scratch", type=Path, help="folder for the files written (default <out>/scratch)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--extents", default=f"4,8,16,32,64,{MODEL_EXTENT}", help="inputs per chunk (comma list)")
    parser.add_argument("--data", default="random,structured", help="data kinds: random, structured")
    parser.add_argument("--structured-variants", default="ncd-zlib1,ncd-zstd1,nc-blz4,zarr-bzstd1-shuf,zarr-blz4-bit",
                        help="variants measured on the structured data (default: a few)")
    parser.add_argument("--structured-extents", default="16", help="extents measured on the structured data")
    parser.add_argument("--misaligned", default=f"6,16@{MODEL_EXTENT}",
                        help="block sizes B < extent to measure: B (every extent > B) or B@extent; comma list, '' "
                             "none (default: 6, the block of `sawdist report`'s 1 GiB budget at paper scale, and "
                             f"16 at extent {MODEL_EXTENT})")
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds per misaligned read (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many reads/floors (default 2)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="cores for writers/floor")
    parser.add_argument("--no-open-checks", action="store_true", help="skip the xarray open checks")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    args = parser.parse_args(argv)
    args.misaligned = [(int(x.split("@")[0]), int(x.split("@")[1]) if "@" in x else None)
                       for x in args.misaligned.split(",") if x.strip()]
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    extents = [int(x) for x in args.extents.split(",")]
    out = args.out
    scratch = args.scratch or out / "scratch"
    out.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    models = int(np.prod(GRID))
    n_inputs = max(1, round(args.size_gb * 1e9 / (models * FEATURES * 4) / MODEL_EXTENT)) * MODEL_EXTENT

    import h5py
    import netCDF4
    import numcodecs
    import zarr

    info = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                       f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), Python "
                       f"{platform.python_version()}",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": _load(), "grid": "x".join(map(str, GRID)), "inputs": n_inputs, "threads": args.threads,
            "raw_GB": models * n_inputs * FEATURES * 4 / 1e9,
            "versions": {"netCDF4": netCDF4.__version__, "netcdf-c": netCDF4.__netcdf4libversion__,
                         "hdf5 (netCDF4)": netCDF4.__hdf5libversion__, "h5py": h5py.version.version,
                         "hdf5 (h5py)": h5py.version.hdf5_version, "zarr": zarr.__version__,
                         "numcodecs": numcodecs.__version__, "xarray": xr.__version__, "numpy": np.__version__},
            "netcdf_chunk_cache": list(netCDF4.get_chunk_cache()),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    print(f"{info['machine']}; {info['date']}; load {info['load_before']}; {info['grid']} models x {n_inputs} inputs "
          f"x {FEATURES} = {info['raw_GB']:.2f} GB raw", flush=True)
    rows, probes = [], {}

    def save():
        info["load_after"] = _load()
        (out / "layout.json").write_text(json.dumps({"info": info, "probe": probes, "rows": rows}, indent=1,
                                                    default=float))
        (out / "layout.md").write_text(markdown(rows, probes, info))

    for kind in [k for k in args.data.split(",") if k]:
        t0 = time.perf_counter()
        ds = make_dataset(kind, n_inputs)
        print(f"[{kind}] data made in {time.perf_counter() - t0:.0f} s", flush=True)
        probe = codec_probe(ds)
        probes[kind] = {"raw_MB": 8 * MODEL_EXTENT * FEATURES * 4 / MB, "rows": probe}
        for p in probe:
            print(f"  probe {p['codec']:<40} ratio {p['ratio']:.3f}  compress {p['compress_MBps']:5.0f} MB/s  "
                  f"decompress {p['decompress_MBps']:5.0f} MB/s", flush=True)
        chosen = variants if kind == "random" else [v for v in args.structured_variants.split(",") if v in variants]
        kind_extents = extents if kind == "random" else [int(x) for x in args.structured_extents.split(",")]
        for variant in chosen:
            for i, extent in enumerate(e for e in kind_extents if e in VARIANT_EXTENTS.get(variant, kind_extents)):
                t0 = time.perf_counter()
                try:
                    row = measure(variant, extent, ds, scratch, args, kind,
                                  do_open_checks=not args.no_open_checks and kind == "random" and i == 0)
                except Exception as err:  # report and go on: one broken variant must not lose the rest
                    print(f"  {variant} extent {extent}: FAILED {type(err).__name__}: {err}", flush=True)
                    rows.append({"data": kind, "variant": variant, "extent": extent, "error": str(err)})
                    continue
                row["load"] = _load()
                rows.append(row)
                mis = ", ".join(f"B={b}: {m['decompressions_per_chunk']:.1f} dec/chunk {m['read_MBps']:.0f} MB/s "
                                f"({m['slowdown']:.1f}x slower)" for b, m in row["misaligned"].items())
                print(f"  {variant:<24} C={extent:<4} write {row['write_s']:5.1f} s ({row['write_MBps']:4.0f} MB/s) "
                      f"size {row['size_ratio']:.3f}  read {row['read_MBps']:5.0f} MB/s  floor1 "
                      f"{row['floor1_MBps']:5.0f}  read/floor1 {row['read_over_floor1']:.2f}  {mis}  "
                      f"[{time.perf_counter() - t0:.0f} s, load {row['load']}]", flush=True)
                if row.get("open_checks"):
                    print("    open: " + "; ".join(f"{h}: {_short(c)}" + (f" ({c['error'][:120]})" if not c['ok']
                                                                          else "")
                                                    for h, c in row["open_checks"].items()), flush=True)
                save()
        del ds
    save()
    print()
    print_table([r for r in rows if "error" not in r])
    print(f"\nwrote {out / 'layout.json'} and {out / 'layout.md'}")
    if not args.keep and args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
