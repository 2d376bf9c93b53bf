r"""Per-input summaries of a saliency dataset: everything the Bayesian capacity models and the similarity need.

For each family f, capacity k and input x, over the valid seeds s:

* ``count``            n_k(x) = number of valid seeds,
* ``resultant``        R_k(x) = sum_s u_{k,s}(x), a vector in R^d,
* ``gram``             G[k, k'](x) = R_k(x)' R_{k'}(x),
* ``same_seed_gram``   P[k, k'](x) = sum_s u_{k,s}(x)' u_{k',s}(x) over the seeds valid at both capacities,
* ``same_seed_count``  c[k, k'](x) = number of seeds valid at both capacities,
* ``contrast_norm_product``, ``contrast_cross_square``, ``contrast_radial``: seed-level moments of the directions of
  one capacity at one input (:func:`contrast_moments`), from which :mod:`sawdist.bayes.calibration` measures how
  much more the cross-seed cosines vary than the von Mises–Fisher model says (docs/bayes.md).

With ``mu(x)`` integrated out, the von Mises–Fisher likelihood of all directions at x depends on the data only
through ``count`` and ``gram`` (docs/theory/bayesian.md), so inference costs O(inputs x K^2) whatever d is. The
resultants are kept for the conditional posterior of the mean direction and for families that share it. The
same-seed sums take out the pairs of one seed from G, which gives the similarity :func:`similarity` (the mean cosine
between models of different seeds, :func:`sawdist.stats.similarity_from_sums`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._validation import check_sphere_dim, dataset_direction_checks, raise_on_dataset_directions
from .io import DIMS, VARIABLES, SchemaError, _source_text
from .stats import similarity_from_sums

__all__ = ["contrast_moments", "similarity", "summarize"]


def _check_dataset(ds) -> None:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"'ds' must be an xarray.Dataset, got {type(ds).__name__}.")
    for name in ("direction", "valid"):
        dims = VARIABLES[name]
        if name not in ds.variables:
            raise ValueError(f"'ds' must have a variable {name!r} with dims ({', '.join(dims)}), got none.")
        if set(ds[name].dims) != set(dims):
            raise ValueError(f"'ds' variable {name!r} must have dims ({', '.join(dims)}), "
                             f"got ({', '.join(map(str, ds[name].dims))}).")
    for dim in DIMS:
        if dim not in ds.coords:
            raise ValueError(f"'ds' dim {dim!r} must have a coordinate, got none.")
    capacity = np.asarray(ds["capacity"].values)
    if capacity.dtype.kind not in "iuf" or np.any(~(capacity > 0)):
        raise ValueError(f"'ds' capacities must be numbers > 0, got {capacity.tolist()!r}.")
    check_sphere_dim(ds.sizes["feature"], "ds", where="its 'feature' dim")


def summarize(ds: xr.Dataset, *, compute: bool = True) -> xr.Dataset:
    r"""Resultants, counts and Gram matrices of a saliency dataset, over valid seeds.

    Parameters
    ----------
    ds : xarray.Dataset
        A saliency dataset (docs/dataset.md): ``direction`` (family, capacity, seed, input, feature) and
        ``valid`` (family, capacity, seed, input), with a coordinate for every dim. Other variables are ignored.
        Dask-backed datasets (``sawdist.io.open_saliency(..., chunks=...)``) are reduced chunk by chunk.
    compute : bool
        Load the result into memory (the default). With ``False`` and a Dask-backed ``ds`` the result stays lazy.

    Returns
    -------
    xarray.Dataset
        ``resultant`` (family, capacity, input, feature), float64: sum of the valid unit directions;
        ``count`` (family, capacity, input), int64: number of valid seeds;
        ``gram`` (family, input, capacity, capacity_b), float64: inner products of the resultants;
        ``same_seed_gram`` (family, input, capacity, capacity_b), float64: sum over the seeds valid at both
        capacities of the inner products of their two directions;
        ``same_seed_count`` (family, input, capacity, capacity_b), int64: number of seeds valid at both capacities;
        ``n_features`` (scalar): the dimension d of the ambient space;
        ``contrast_norm_product``, ``contrast_cross_square``, ``contrast_radial`` (family, capacity, input), float64:
        the seed-level moments of :func:`contrast_moments` (NaN with fewer than 4 valid seeds).
        Coordinates of ``ds`` are kept; ``capacity_b`` repeats ``capacity``.

    Raises
    ------
    ValueError
        When a variable, dim or coordinate is missing or a capacity is not > 0.
    sawdist.io.SchemaError
        (a ValueError) When the values break what the statistics rely on: a direction marked valid is not a finite
        unit vector (within 10 eps sqrt(d) of the stored dtype: float32 in a file, the tolerance of
        :func:`sawdist.io.validate`), or one marked invalid is not NaN. The message names the file ``ds`` was read
        from, when known, and counts the bad vectors. The values are checked while they are reduced, in the same
        pass; a lazy result (``compute=False`` on a Dask-backed ``ds``) is returned unchecked.

    Notes
    -----
    Directions are accumulated in float64 (datasets store float32). Invalid directions (NaN by the schema)
    contribute nothing. The similarity, the mean cosine between the directions of two
    capacities over pairs of different seeds, is ``(gram - same_seed_gram) / (n_k n_k' - same_seed_count)``
    (:func:`similarity`); on the diagonal it is the unbiased squared mean resultant length
    ``(||R_k||^2 - n) / (n (n - 1))`` of identity 3 (docs/theory/identities.md).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sawdist.summaries import summarize
    >>> u = np.random.default_rng(0).normal(size=(1, 2, 3, 4, 5))
    >>> u /= np.linalg.norm(u, axis=-1, keepdims=True)
    >>> dims = ("family", "capacity", "seed", "input", "feature")
    >>> ds = xr.Dataset({"direction": (dims, u), "valid": (dims[:-1], np.ones(u.shape[:-1], bool))},
    ...                 coords={"family": ["mlp"], "capacity": [4, 16], "seed": [0, 1, 2], "input": np.arange(4),
    ...                         "feature": np.arange(5)})
    >>> s = summarize(ds)
    >>> s["gram"].dims, int(s["count"].max())
    (('family', 'input', 'capacity', 'capacity_b'), 3)
    """
    _check_dataset(ds)
    valid = ds["valid"].astype(bool)
    direction = ds["direction"].astype(np.float64)
    # where(valid) then fillna(0): invalid entries are NaN by the schema (a finite one is refused below).
    kept = direction.where(valid).fillna(0.0)
    resultant = kept.sum("seed").transpose("family", "capacity", "input", "feature")
    count = valid.sum("seed").astype(np.int64).transpose("family", "capacity", "input")
    other = resultant.rename(capacity="capacity_b")
    pair_dims = ("family", "input", "capacity", "capacity_b")
    gram = xr.dot(resultant, other, dim="feature").transpose(*pair_dims)
    # Same-seed sums: kept is zero where a direction is invalid, so only seeds valid at both capacities count.
    same_seed_gram = xr.dot(kept, kept.rename(capacity="capacity_b"), dim=["seed", "feature"]).transpose(*pair_dims)
    valid_int = valid.astype(np.int64)
    same_seed_count = xr.dot(valid_int, valid_int.rename(capacity="capacity_b"), dim="seed").transpose(*pair_dims)
    # Cosines between the seeds of one capacity at one input, reduced at once to three moments per cell.
    seed_gram = xr.dot(kept, kept.rename(seed="seed_b"), dim="feature")
    moments = xr.apply_ufunc(
        _stacked_moments, seed_gram, valid,
        input_core_dims=[["seed", "seed_b"], ["seed"]], output_core_dims=[["moment"]], dask="parallelized",
        output_dtypes=[np.float64], dask_gufunc_kwargs={"output_sizes": {"moment": 3}, "allow_rechunk": True},
    ).transpose("family", "capacity", "input", "moment")
    lazy = not compute and ds["direction"].chunks is not None
    checks = {} if lazy else dataset_direction_checks(direction, valid, ds["direction"].dtype)
    out = xr.Dataset(
        {
            "resultant": resultant.assign_attrs(long_name="resultant of the valid unit directions over seeds",
                                                units="1"),
            "count": count.assign_attrs(long_name="number of valid seeds"),
            "gram": gram.assign_attrs(long_name="inner products of the resultants", units="1"),
            "same_seed_gram": same_seed_gram.assign_attrs(
                long_name="sum over seeds valid at both capacities of the inner products of their directions",
                units="1"),
            "same_seed_count": same_seed_count.assign_attrs(long_name="number of seeds valid at both capacities"),
            "n_features": ((), ds.sizes["feature"], {"long_name": "dimension d of the ambient space"}),
            **{name: moments.isel(moment=i).drop_vars("moment", errors="ignore").assign_attrs(long_name=text)
               for i, (name, text) in enumerate(_MOMENT_NAMES.items())},
        }
    )
    out = out.assign_coords(capacity_b=("capacity_b", ds["capacity"].values, ds["capacity"].attrs))
    if lazy:
        return out
    # The checks are reduced in the same pass as the summaries (one read of a Dask-backed dataset).
    names = {f"_check_{key}": key for key in checks}
    out = out.assign({name: checks[key] for name, key in names.items()}).compute()
    _raise_on_values({key: out[name].values for name, key in names.items()}, ds)
    return out.drop_vars(list(names))


_MOMENT_NAMES = {
    "contrast_norm_product": "mean over pairs of disjoint seed pairs of |u_a - u_b|^2 |u_c - u_e|^2",
    "contrast_cross_square": "mean over pairs of disjoint seed pairs of ((u_a - u_b)'(u_c - u_e))^2",
    "contrast_radial": "mean over seed quadruples of (u_a'(u_b - u_c)) (u_e'(u_b - u_c))",
}

#: At most this many sets of 4 seeds per cell enter :func:`contrast_moments` (a fixed subset beyond it).
MAX_SEED_QUADRUPLES = 210


def _quadruples(n_seeds: int) -> np.ndarray:
    """(Q, 4) sets of 4 distinct seed positions: all of them, or a fixed subset of :data:`MAX_SEED_QUADRUPLES`."""
    from itertools import combinations
    from math import comb

    if n_seeds < 4:
        return np.zeros((0, 4), dtype=np.int64)
    if comb(n_seeds, 4) <= MAX_SEED_QUADRUPLES:
        return np.array(list(combinations(range(n_seeds), 4)), dtype=np.int64)
    gen = np.random.default_rng(0)  # fixed: the same seeds enter at every input and in every run
    picks = {tuple(sorted(gen.choice(n_seeds, 4, replace=False))) for _ in range(4 * MAX_SEED_QUADRUPLES)}
    return np.array(sorted(picks)[:MAX_SEED_QUADRUPLES], dtype=np.int64)


def _stacked_moments(seed_gram: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """:func:`contrast_moments` stacked on a last axis, for :func:`summarize`. A non-finite direction (which
    :func:`summarize` refuses, naming it, once the pass is done) only makes its cells NaN here, without a warning."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.stack(contrast_moments(seed_gram, valid), axis=-1)


def contrast_moments(seed_gram: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Seed-level moments of the directions u_1..u_S of one cell (family, capacity, input), from their cosines.

    With e = u - E[u] and :math:`\Sigma = \operatorname{Cov}(u)` (the seeds independent), the contrasts
    y = u_a - u_b of distinct seeds have mean 0 and covariance 2 Sigma whatever E[u], so for distinct a, b, c, e

    * ``norm_product``  :math:`\lVert u_a - u_b\rVert^2 \lVert u_c - u_e\rVert^2` has mean
      :math:`4 (\operatorname{tr}\Sigma)^2`,
    * ``cross_square``  :math:`((u_a - u_b)^\top (u_c - u_e))^2` has mean :math:`4 \operatorname{tr}\Sigma^2`,
    * ``radial``        :math:`u_a^\top (u_b - u_c)\; u_e^\top (u_b - u_c)` has mean
      :math:`2\, E[u]^\top \Sigma\, E[u]` (the variance of u along its mean, times ||E u||^2).

    Each is averaged over the sets of 4 valid seeds of the cell (all of them up to :data:`MAX_SEED_QUADRUPLES`, a
    fixed subset beyond) and over the pairings within a set (3, 3 and 6 of them): unbiased, from the S x S cosines
    alone. ``(tr Sigma)^2 / tr Sigma^2`` is the participation ratio (effective dimension) of the scatter.

    Parameters
    ----------
    seed_gram : array_like, (..., S, S)
        Cosines u_a'u_b of the seeds of each cell (entries of invalid seeds are ignored).
    valid : array_like of bool, (..., S)

    Returns
    -------
    tuple of ndarray, each (...)
        ``(norm_product, cross_square, radial)``; NaN in a cell with fewer than 4 valid seeds.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.summaries import contrast_moments
    >>> u = np.eye(4)  # four orthogonal unit vectors
    >>> [float(x) for x in contrast_moments(u @ u.T, np.ones(4, bool))]
    [4.0, 0.0, 0.0]
    """
    C = np.asarray(seed_gram, dtype=np.float64)
    V = np.asarray(valid, dtype=bool)
    S = C.shape[-1]
    idx = _quadruples(S)
    shape = C.shape[:-2]
    if idx.shape[0] == 0:
        nan = np.full(shape, np.nan)
        return nan, nan.copy(), nan.copy()
    i0, i1, i2, i3 = idx.T
    c = {(a, b): C[..., ia, ib] for (a, ia), (b, ib) in
         [((0, i0), (1, i1)), ((0, i0), (2, i2)), ((0, i0), (3, i3)), ((1, i1), (2, i2)), ((1, i1), (3, i3)),
          ((2, i2), (3, i3))]}

    def cos(a, b):
        return c[(min(a, b), max(a, b))]

    pairings = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))
    norm = sum((2.0 - 2.0 * cos(*p)) * (2.0 - 2.0 * cos(*q)) for p, q in pairings) / 3.0
    cross = sum((cos(p[0], q[0]) - cos(p[0], q[1]) - cos(p[1], q[0]) + cos(p[1], q[1])) ** 2
                for p, q in pairings) / 3.0
    radial = 0.0
    for (b, cc), (a, e) in pairings + tuple((q, p) for p, q in pairings):
        radial = radial + (cos(a, b) - cos(a, cc)) * (cos(e, b) - cos(e, cc))
    radial = radial / 6.0
    ok = V[..., i0] & V[..., i1] & V[..., i2] & V[..., i3]
    n_ok = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = tuple(np.where(n_ok > 0, np.where(ok, x, 0.0).sum(-1) / n_ok, np.nan) for x in (norm, cross, radial))
    return out


def _raise_on_values(checks: dict, ds: xr.Dataset) -> None:
    """Raise the first failure among the computed checks as a SchemaError, naming the file when it is known."""
    source = _source_text(ds)
    try:
        raise_on_dataset_directions(checks, "direction" if source else "ds", ds.sizes["feature"],
                                    ds["direction"].dtype)
    except ValueError as err:
        raise SchemaError(f"{source}: {err}" if source else str(err)) from None


def similarity(summary: xr.Dataset) -> xr.DataArray:
    """The similarity rho(k1, k2) at every input, from a summary: the mean cosine between models of different seeds.

    ``(gram - same_seed_gram) / (n_k1 n_k2 - same_seed_count)`` (:func:`sawdist.stats.similarity_from_sums`): at each
    input, the mean of u_{k1,s}' u_{k2,s'} over the pairs of valid directions with s != s', the same number
    :func:`sawdist.stats.similarity_matrix` computes from the directions themselves. On the diagonal it is the
    unbiased m_hat(k)^2 of identity 3 (docs/theory/identities.md).

    Parameters
    ----------
    summary : xarray.Dataset
        From :func:`summarize` (or :func:`sawdist.bayes.simulate_summary`): ``gram`` and ``same_seed_gram``
        (family, input, capacity, capacity_b), ``count`` (family, capacity, input) and ``same_seed_count``.

    Returns
    -------
    xarray.DataArray
        dims (family, input, capacity, capacity_b); NaN where no pair of different seeds is valid.

    Examples
    --------
    Two capacities of two seeds at one input, u = ((1, 0), (0, 1)) and ((1, 0), (1, 0)) (the example of
    :func:`sawdist.stats.similarity_from_sums`):

    >>> import xarray as xr
    >>> from sawdist.summaries import similarity
    >>> pair = ("family", "input", "capacity", "capacity_b")
    >>> summary = xr.Dataset({"gram": (pair, [[[[2.0, 2.0], [2.0, 4.0]]]]),
    ...                       "same_seed_gram": (pair, [[[[2.0, 1.0], [1.0, 2.0]]]]),
    ...                       "count": (("family", "capacity", "input"), [[[2], [2]]]),
    ...                       "same_seed_count": (pair, [[[[2, 2], [2, 2]]]])})
    >>> similarity(summary).values[0, 0]
    array([[0. , 0.5],
           [0.5, 1. ]])
    """
    if not isinstance(summary, xr.Dataset):
        raise TypeError(f"'summary' must be an xarray.Dataset from sawdist.summarize, got {type(summary).__name__}.")
    missing = [name for name in ("gram", "same_seed_gram", "count", "same_seed_count") if name not in summary]
    if missing:
        raise ValueError(f"'summary' must have the variables gram, same_seed_gram, count and same_seed_count "
                         f"(from sawdist.summarize), got none named {', '.join(map(repr, missing))}.")
    dims = ("family", "input", "capacity", "capacity_b")
    rho = similarity_from_sums(summary["gram"].transpose(*dims).values,
                               summary["same_seed_gram"].transpose(*dims).values,
                               summary["count"].transpose(*dims[:3]).values,
                               summary["same_seed_count"].transpose(*dims).values)
    coords = {name: summary[name] for name in dims if name in summary.coords}
    return xr.DataArray(rho, dims=dims, coords=coords, name="similarity",
                        attrs={"long_name": "mean cosine between the directions of different seeds", "units": "1"})
