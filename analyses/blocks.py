r"""One pass over the directions, block by block of inputs: what the analyses need from them, in bounded memory.

A report reads ``direction`` (family, capacity, seed, input, feature) once, in blocks of consecutive inputs that hold
every model (:func:`plan_blocks`). For each block, :func:`block_statistics` computes, in float64,

* the pair sums of every slot (a slot is one family at one capacity, J of them) and the per-input similarity
  rho_x(j, l) (:mod:`._pairs`), with the delete-one-seed replicates already reduced over the block's inputs: sums
  and counts of the finite rho_x for the full data and for each deleted seed, (S + 1, J, J), over all inputs and
  over the inputs of the Bayesian fits;
* the bias-corrected cosines of the cosine laws (:func:`pooled_cosines`);
* the ensemble cosines of :mod:`.ensembles`, with random subsets drawn per input from a generator seeded by
  (seed, family, input), so that no number depends on how the inputs are cut into blocks;
* :func:`sawdist.summaries.summarize` of the inputs of the Bayesian fits that fall in the block;

and :func:`scan` concatenates (per-input values) or adds, in block order (the sums), what the blocks return. The
memory of a report is therefore one block plus what is kept per input: rho_x, (input, J, J) float64 (128 MB for
10,000 inputs and 40 slots), the cosines (input x seeds x slots) and the ensemble curves, never the dataset.

**Blocks follow the stored chunks.** A block spans whole chunks of ``direction`` along ``input`` (the chunk extent of
the file, or of the Dask array), so each stored chunk is decompressed once in the pass; only when one chunk extent
of every model does not fit the budget is a chunk split between blocks, and then read ceil(extent / block) times
(:attr:`Plan.reads_per_chunk`). The memory budget (``--memory``, :data:`DEFAULT_MEMORY`) counts
:data:`BYTES_PER_VALUE` bytes per value of a block: the float32 read, the next block's read (it overlaps the
computation) and one seed-major float64 copy, the layout the same-seed products batch over.

**On a Dask cluster** (``sawdist report --scheduler``, :func:`scan` with a ``client``) every block is a task that
opens the dataset's files on its worker and returns the same arrays; the client adds them in block order, so the
numbers are those of one process bit for bit, and a worker lost mid-report only has its blocks run again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from sawdist.stats import similarity_from_sums

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import distributed
    import xarray as xr

__all__ = ["DEFAULT_MEMORY", "Plan", "ScanResult", "ScanSpec", "block_statistics", "plan_blocks", "read_block", "scan"]

#: Default memory budget of one block, in bytes (``sawdist report --memory``).
DEFAULT_MEMORY = 2**30
#: Bytes of working memory per value of a block: the float32 read, the next block's float32 read (read while this one
#: is computed) and the seed-major float64 copy.
BYTES_PER_VALUE = 16


@dataclasses.dataclass(frozen=True)
class Plan:
    """Blocks of inputs of one pass.

    Attributes
    ----------
    blocks : list of (start, stop)
        Consecutive ranges of input positions that cover every input once.
    chunk_extent : int
        Inputs per stored chunk of ``direction`` (1 when the dataset is in memory).
    reads_per_chunk : int
        How many times the pass reads each stored chunk: 1 unless a chunk of every model exceeds the budget.
    block_bytes : int
        Working memory of the largest block (:data:`BYTES_PER_VALUE` per value).
    """

    blocks: list
    chunk_extent: int
    reads_per_chunk: int
    block_bytes: int


def chunk_extent(ds: xr.Dataset) -> int:
    """Inputs per stored chunk of ``direction``: the file's chunking, or the Dask array's, or 1 in memory."""
    da = ds["direction"]
    axis = da.dims.index("input")
    if da.chunks is not None:
        return int(max(da.chunks[axis]))
    sizes = da.encoding.get("chunksizes")
    if sizes and not isinstance(da.variable._data, np.ndarray):
        return int(sizes[axis])
    return 1


def plan_blocks(ds: xr.Dataset, memory: int = DEFAULT_MEMORY) -> Plan:
    """Blocks of whole stored chunks of inputs whose working memory stays within ``memory`` bytes (module docs)."""
    memory = check_memory(memory)
    n = ds.sizes["input"]
    per_input = BYTES_PER_VALUE * ds.sizes["feature"] * math.prod(ds.sizes[d] for d in ("family", "capacity", "seed"))
    extent = min(chunk_extent(ds), n) or 1
    fit = memory // max(per_input, 1)
    if fit >= extent:
        step, reads = (fit // extent) * extent, 1
    else:
        step = max(1, fit)
        reads = -(-extent // step)
    blocks = [(a, min(a + step, n)) for a in range(0, n, step)]
    return Plan(blocks, extent, reads, per_input * min(step, n))


def check_memory(memory: int) -> int:
    if isinstance(memory, bool) or not isinstance(memory, int | np.integer) or memory < 2**20:
        raise ValueError(f"'memory' must be a whole number of bytes >= 1 MiB (2**20), got {memory!r}.")
    return int(memory)


@dataclasses.dataclass(frozen=True)
class ScanSpec:
    """What a block's computation needs besides the directions (sent to Dask workers with each task).

    Attributes
    ----------
    n_families, n_capacities, n_seeds, dim : int
    excluded : ndarray (family, capacity, seed) of bool
        Failed models (:mod:`.quality`): read as not valid.
    summary_inputs : ndarray of int or None
        Positions of the inputs of the Bayesian fits (their :func:`sawdist.summaries.summarize` and pair sums are
        kept); None: no Bayesian fit.
    cosines : bool
        Compute the cosine laws' corrected cosines.
    ensemble_sizes : tuple of tuple of int, or None
        Ensemble sizes N per family (None: no ensembles).
    ensemble_subsets : int
    seed : int
    source : str or None
        The file(s) being read, quoted for messages.
    """

    n_families: int
    n_capacities: int
    n_seeds: int
    dim: int
    excluded: np.ndarray
    summary_inputs: np.ndarray | None = None
    cosines: bool = True
    ensemble_sizes: tuple | None = None
    ensemble_subsets: int = 64
    seed: int = 0
    source: str | None = None


def read_block(ds: xr.Dataset, start: int, stop: int, spec: ScanSpec) -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """The directions of inputs [start, stop) of every model: (the block as a Dataset, U, V).

    ``U`` (family, capacity, seed, input, feature) float64, zero where not valid; ``V`` the validity, with failed
    models (``spec.excluded``) not valid. The values are checked as the statistics need them
    (:func:`sawdist.io.check_direction_values`: unit vectors where the file says valid, NaN elsewhere), naming the
    file. The Dataset holds the float32 values, NaN where ``V`` is False (for :func:`sawdist.summaries.summarize`).
    """
    return prepare_block(load_block(ds, start, stop), spec)


def load_block(ds: xr.Dataset, start: int, stop: int) -> xr.Dataset:
    """``direction`` and ``valid`` of inputs [start, stop), read (the I/O half of :func:`read_block`)."""
    order = ("family", "capacity", "seed", "input", "feature")
    return ds[["direction", "valid"]].isel(input=slice(start, stop)).transpose(*order, ...).load()


def prepare_block(sub: xr.Dataset, spec: ScanSpec,
                  buffer: np.ndarray | None = None) -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """The checks, the failed models and the float64 copy of a block read by :func:`load_block`; the copy goes into
    ``buffer`` (a float64 array) when it is large enough. A pass reuses one buffer: a fresh array of a block's size
    for every block cost more in page faults (0.85 s for 530 MB) than filling it (0.12 s)."""
    from sawdist.io import check_direction_values

    raw = np.asarray(sub["direction"].values)
    V = np.asarray(sub["valid"].values, dtype=bool)
    check_direction_values(raw, V, source=spec.source)
    if spec.excluded.any():
        V = V & ~spec.excluded[:, :, :, None]
        raw = np.where(V[..., None], raw, np.nan).astype(raw.dtype, copy=False)
        sub["direction"] = (sub["direction"].dims, raw)
        sub["valid"] = (sub["valid"].dims, V)
    # One float64 copy, seed-major (seed, input, family, capacity, feature): the layout the same-seed products of
    # pair_block batch over; U is a (family, capacity, seed, input, feature) view of it.
    F, K, S, B, d = raw.shape
    size = S * B * F * K * d
    if buffer is not None and buffer.size >= size:
        seed_major = buffer.reshape(-1)[:size].reshape(S, B, F, K, d)
    else:
        seed_major = np.empty((S, B, F, K, d))
    np.copyto(seed_major, raw.transpose(2, 3, 0, 1, 4))
    seed_major[~V.transpose(2, 3, 0, 1)] = 0.0
    return sub, seed_major.transpose(2, 3, 0, 1, 4), V


def pair_block(U: np.ndarray, V: np.ndarray, subsets: Sequence[np.ndarray]) -> dict:
    """Pair statistics of one block: per-input rho (B, J, J) and, for each boolean mask of ``subsets`` over the
    block's inputs, the sums and counts of the finite rho_x over those inputs for the full data (row 0) and without
    each seed (rows 1..S), (S + 1, J, J) each (derivation: :mod:`._pairs`)."""
    F, K, S, B, d = U.shape
    J = F * K
    # (S, B, J, d), matmul batching over (S, B): no copy when U is read_block's view of a seed-major array
    X = U.transpose(2, 3, 0, 1, 4).reshape(S, B, J, d)
    v = V.reshape(J, S, B).transpose(1, 2, 0).astype(np.float64)  # (S, B, J)
    uu = np.matmul(X, np.swapaxes(X, -1, -2))  # (S, B, J, J): u_{j,s}'u_{l,s}
    R = X.sum(axis=0)  # (B, J, d)
    uR = np.matmul(X, np.swapaxes(R, -1, -2)[None])  # (S, B, J, J): u_{j,s}'R_l
    G = np.matmul(R, np.swapaxes(R, -1, -2))  # (B, J, J)
    P = uu.sum(axis=0)
    n = v.sum(axis=0)  # (B, J)
    c = np.einsum("sbj,sbl->bjl", v, v)
    rho = similarity_from_sums(G, P, n, c)
    reps = similarity_from_sums(G[None] - uR - np.swapaxes(uR, -1, -2) + uu, P[None] - uu, n[None] - v,
                                c[None] - v[..., :, None] * v[..., None, :])  # (S, B, J, J)
    every = np.concatenate([rho[None], reps])  # (S + 1, B, J, J)
    ok = np.isfinite(every)
    kept = np.where(ok, every, 0.0)
    sums = [(kept[:, mask].sum(axis=1), ok[:, mask].sum(axis=1)) for mask in subsets]
    return {"rho": rho, "sums": sums}


def default_sizes(n_seeds: int) -> list[int]:
    """Ensemble sizes 1, 2, 4, ... below ``n_seeds``, and ``n_seeds``."""
    sizes = [1]
    while sizes[-1] * 2 < n_seeds:
        sizes.append(sizes[-1] * 2)
    if n_seeds > 1:
        sizes.append(n_seeds)
    return sizes


def pooled_cosines(U: np.ndarray, V: np.ndarray, dim: int) -> list[np.ndarray]:
    """Bias-corrected cosines of one family: a list over capacities of 1-D arrays pooled over inputs.

    ``U`` (capacity, seed, input, feature) zero where invalid, ``V`` the validity. Inputs where a capacity has
    fewer than 2 valid directions are skipped.
    """
    from sawdist.semiparametric import corrected_cosines

    K, S, N, _ = U.shape
    out = [[] for _ in range(K)]
    groups_all = np.repeat(np.arange(K), S)
    for x in range(N):
        v = V[:, :, x].reshape(-1)
        g = groups_all[v]
        if np.any(np.bincount(g, minlength=K) < 2):
            continue
        X = U[:, :, x].reshape(K * S, -1)[v]
        c0 = corrected_cosines(X, dim, groups=g)
        m_hat = np.sqrt(np.maximum(c0["m2"], 0.0))
        w = m_hat / (1.0 - np.minimum(m_hat, 1.0 - 1e-12) ** 2)
        if not np.any(w > 0):
            continue  # no direction at all: this input has no mean
        c = corrected_cosines(X, dim, groups=g, weights=w, m2=c0["m2"])
        for k in range(K):
            out[k].append(c["t_c"][g == k])
    return [np.concatenate(t) if t else np.empty(0) for t in out]


def ensemble_block(Us: np.ndarray, Vs: np.ndarray, UL: np.ndarray, VL: np.ndarray, sizes: Sequence[int],
                   n_subsets: int, seed: int, family: int, inputs: np.ndarray) -> np.ndarray:
    """Per input, the mean of cos(u_bar_N, u_L) over random N-subsets of valid small seeds and the valid large models.

    ``Us`` (seed, input, d) small directions zero where invalid, ``Vs`` validity; ``UL``, ``VL`` the large ones;
    ``inputs`` the inputs' positions in the dataset. The subsets of input x come from a generator seeded by
    (seed, family, x): N seeds drawn without replacement among the valid ones, ``n_subsets`` times per size.

    With a subset's 0/1 row w over the small seeds, its sum is w X (X the seeds' directions), and

        sum over large models l of cos(w X, u_l) = w (X R_L) / sqrt(w G w'),   G = X X',  R_L = sum_l u_l,

    so each input costs one seeds x seeds Gram matrix and one projection, whatever the subsets and sizes.
    Returns (input, len(sizes)), NaN where an input has fewer than N valid small seeds or no valid large model.
    """
    S, B, _ = Us.shape
    n_valid = Vs.sum(axis=0)
    nL = VL.sum(axis=0)
    out = np.full((B, len(sizes)), np.nan)
    rngs = [np.random.default_rng([seed, family, int(x)]) for x in inputs]
    X = np.moveaxis(Us, 0, 1)  # (B, S, d)
    G = np.matmul(X, np.swapaxes(X, -1, -2))  # (B, S, S)
    proj = np.einsum("bsd,bd->bs", X, UL.sum(axis=0))  # (B, S): u_s' R_L (invalid large rows are zero)
    for j, size in enumerate(sizes):
        keys = np.stack([rng.random((n_subsets, S)) for rng in rngs])  # (B, subsets, S), drawn for every size
        keys = np.where(Vs.T[:, None, :], keys, np.inf)
        pick = np.argsort(keys, axis=-1)[..., :size]
        w = np.zeros((B, n_subsets, S))
        np.put_along_axis(w, pick, 1.0, axis=-1)
        norm2 = np.einsum("bts,bsu,btu->bt", w, G, w)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (np.einsum("bts,bs->bt", w, proj) / np.sqrt(norm2)).sum(axis=1) / (n_subsets * nL)
        out[:, j] = np.where((n_valid >= size) & (nL > 0), c, np.nan)
    return out


def block_statistics(block: xr.Dataset, U: np.ndarray, V: np.ndarray, start: int, spec: ScanSpec) -> dict:
    """Everything the analyses need from one block (module docstring), from :func:`read_block`'s output."""
    F, K, S, B, d = U.shape
    inputs = np.arange(start, start + B)
    subsets = [np.ones(B, bool)]
    in_fit = None
    if spec.summary_inputs is not None:
        in_fit = np.isin(inputs, spec.summary_inputs)
        subsets.append(in_fit)
    out = pair_block(U, V, subsets)
    if spec.cosines:
        out["cosines"] = [pooled_cosines(U[f], V[f], spec.dim) for f in range(F)]
    if spec.ensemble_sizes is not None:
        out["ensembles"] = [
            ensemble_block(U[f, 0], V[f, 0], U[f, K - 1], V[f, K - 1], spec.ensemble_sizes[f],
                           spec.ensemble_subsets, spec.seed, f, inputs) for f in range(F)]
    if in_fit is not None and in_fit.any():
        from sawdist.summaries import summarize

        out["summary"] = summarize(block.isel(input=np.flatnonzero(in_fit)))
    return out


@dataclasses.dataclass
class ScanResult:
    """What :func:`scan` returns.

    Attributes
    ----------
    rho : ndarray (input, J, J)
        Per-input similarity of every pair of slots (NaN where no pair of different seeds is valid).
    sums : list of (ndarray, ndarray)
        For all inputs (item 0) and, with a Bayesian subset, its inputs (item 1): sums and counts over inputs of the
        finite rho_x, full data in row 0 and without seed s in row s + 1, (S + 1, J, J).
    cosines : list (family) of list (capacity) of ndarray, or None
    ensembles : list (family) of ndarray (input, sizes), or None
    summary : xarray.Dataset or None
        :func:`sawdist.summaries.summarize` of the Bayesian subset.
    plan : Plan
    """

    rho: np.ndarray
    sums: list
    cosines: list | None
    ensembles: list | None
    summary: xr.Dataset | None
    plan: Plan


def scan(ds: xr.Dataset, spec: ScanSpec, *, memory: int = DEFAULT_MEMORY, client: distributed.Client | None = None,
         progress: Callable[[int, int], None] | None = None) -> ScanResult:
    """One pass over ``ds`` in blocks (:func:`plan_blocks`); the blocks' statistics combined in block order.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset, in memory or opened lazily (:func:`sawdist.io.open_saliency`).
    spec : ScanSpec
    memory : int
        Working memory of one block, in bytes.
    client : distributed.Client, optional
        Run the blocks as tasks of this Dask cluster; each worker opens the dataset's files (``ds`` must have been
        opened from files every worker can read).
    progress : callable, optional
        Called as ``progress(done, total)`` after each block.
    """
    plan = plan_blocks(ds, memory)
    results = []
    total = len(plan.blocks)
    if client is None:
        # The next block is read on a thread while this one is computed (netCDF-C and zlib release the GIL), so the
        # pass takes about the longer of reading and computing rather than their sum.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as reader:
            ahead = reader.submit(load_block, ds, *plan.blocks[0])
            buffer = None
            for i, (a, _) in enumerate(plan.blocks):
                sub = ahead.result()
                if i + 1 < total:
                    ahead = reader.submit(load_block, ds, *plan.blocks[i + 1])
                block = prepare_block(sub, spec, buffer)
                buffer = block[1].base if buffer is None else buffer  # the first block's copy serves the next ones
                results.append(block_statistics(*block, a, spec))
                del sub, block
                if progress is not None:
                    progress(i + 1, total)
    else:
        sources = dataset_sources(ds)
        futures = [client.submit(_block_task, sources, a, b, spec, pure=False) for a, b in plan.blocks]
        from distributed import as_completed

        done = 0
        for _ in as_completed(futures):
            done += 1
            if progress is not None:
                progress(done, total)
        results = client.gather(futures)  # in block order: the sums add up as in one process
    return combine(results, spec, plan)


def combine(results: Sequence[dict], spec: ScanSpec, plan: Plan) -> ScanResult:
    """The blocks' statistics as one :class:`ScanResult`: per-input arrays concatenated, sums added in order."""
    rho = np.concatenate([r["rho"] for r in results])
    sums = []
    for i in range(len(results[0]["sums"])):
        total = np.zeros_like(results[0]["sums"][i][0])
        count = np.zeros_like(results[0]["sums"][i][1])
        for r in results:
            total += r["sums"][i][0]
            count += r["sums"][i][1]
        sums.append((total, count))
    cosines = ensembles = summary = None
    if spec.cosines:
        cosines = [[np.concatenate([r["cosines"][f][k] for r in results])
                    for k in range(spec.n_capacities)] for f in range(spec.n_families)]
    if spec.ensemble_sizes is not None:
        ensembles = [np.concatenate([r["ensembles"][f] for r in results]) for f in range(spec.n_families)]
    parts = [r["summary"] for r in results if "summary" in r]
    if parts:
        import xarray as xr

        summary = parts[0] if len(parts) == 1 else xr.concat(parts, dim="input", data_vars="minimal",
                                                             coords="minimal", compat="override")
    return ScanResult(rho, sums, cosines, ensembles, summary, plan)


def dataset_sources(ds: xr.Dataset) -> list[str]:
    """The files ``ds`` was opened from (one, or the list of a multi-file or sharded dataset)."""
    paths = ds.encoding.get("sources") or ds.encoding.get("source_shards")
    if paths is None and ds.encoding.get("source"):
        paths = [ds.encoding["source"]]
    if not paths:
        raise ValueError("'ds' must be opened from files (sawdist.io.open_saliency) to be read by a Dask cluster; "
                         "this one is in memory.")
    return [str(p) for p in paths]


_OPEN: dict = {}


def _block_task(sources: list[str], start: int, stop: int, spec: ScanSpec) -> dict:
    """A block's statistics on a Dask worker, which opens the dataset once and keeps it open for its next blocks."""
    from sawdist.io import open_saliency

    key = tuple(sources)
    ds = _OPEN.get(key)
    if ds is None:
        ds = _OPEN[key] = open_saliency(sources if len(sources) > 1 else sources[0], values=False,
                                        allow_shard=len(sources) == 1)
    return block_statistics(*read_block(ds, start, stop, spec), start, spec)
