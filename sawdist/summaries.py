r"""Per-input summaries of a saliency dataset: everything the Bayesian capacity models and the similarity need.

For each family f, capacity k and input x, over the valid seeds s:

* ``count``            n_k(x) = number of valid seeds,
* ``resultant``        R_k(x) = sum_s u_{k,s}(x), a vector in R^d,
* ``gram``             G[k, k'](x) = R_k(x)' R_{k'}(x),
* ``same_seed_gram``   P[k, k'](x) = sum_s u_{k,s}(x)' u_{k',s}(x) over the seeds valid at both capacities,
* ``same_seed_count``  c[k, k'](x) = number of seeds valid at both capacities.

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

__all__ = ["similarity", "summarize"]


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
        ``n_features`` (scalar): the dimension d of the ambient space.
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
