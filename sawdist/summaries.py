r"""Per-input summaries of a saliency dataset: everything the Bayesian capacity models need.

For each family f, capacity k and input x, over the valid seeds s:

* ``count``      n_k(x) = number of valid seeds,
* ``resultant``  R_k(x) = sum_s u_s(x), a vector in R^d,
* ``gram``       G[k, k'](x) = R_k(x)' R_{k'}(x).

With ``mu(x)`` integrated out, the von Mises–Fisher likelihood of all directions at x depends on the data only
through ``count`` and ``gram`` (docs/theory/bayesian.md), so inference costs O(inputs x K^2) whatever d is. The
resultants are kept for the conditional posterior of the mean direction and for families that share it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._validation import check_sphere_dim, dataset_direction_checks, raise_on_dataset_directions
from .io import DIMS, VARIABLES

__all__ = ["summarize"]


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
        A saliency dataset (docs/dataset.md): ``direction`` (family, capacity, seed, sample, feature) and
        ``valid`` (family, capacity, seed, sample), with a coordinate for every dim. Other variables are ignored.
        Dask-backed datasets (``sawdist.io.open_saliency(..., chunks=...)``) are reduced chunk by chunk.
    compute : bool
        Load the result into memory (the default). With ``False`` and a Dask-backed ``ds`` the result stays lazy.

    Returns
    -------
    xarray.Dataset
        ``resultant`` (family, capacity, sample, feature), float64: sum of the valid unit directions;
        ``count`` (family, capacity, sample), int64: number of valid seeds;
        ``gram`` (family, sample, capacity, capacity_b), float64: inner products of the resultants;
        ``n_features`` (scalar): the dimension d of the ambient space.
        Coordinates of ``ds`` are kept; ``capacity_b`` repeats ``capacity``.

    Raises
    ------
    ValueError
        When a variable, dim or coordinate is missing, a capacity is not > 0, or a direction marked valid is not a
        finite unit vector (within 10 eps sqrt(d) of the stored dtype). The values are checked while they are
        reduced; a lazy result (``compute=False`` on a Dask-backed ``ds``) is returned unchecked.

    Notes
    -----
    Directions are accumulated in float64 (datasets store float32). Invalid directions (NaN by the schema, or any
    value where ``valid`` is False) contribute nothing. The unbiased squared mean resultant length at one capacity
    is ``(gram[k, k] - n) / (n (n - 1))`` (identity 3 of docs/theory/identities.md), and ``gram[k, k'] / (n_k n_k')``
    is the mean cosine between the seeds of two capacities.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sawdist.summaries import summarize
    >>> u = np.random.default_rng(0).normal(size=(1, 2, 3, 4, 5))
    >>> u /= np.linalg.norm(u, axis=-1, keepdims=True)
    >>> dims = ("family", "capacity", "seed", "sample", "feature")
    >>> ds = xr.Dataset({"direction": (dims, u), "valid": (dims[:-1], np.ones(u.shape[:-1], bool))},
    ...                 coords={"family": ["mlp"], "capacity": [4, 16], "seed": [0, 1, 2], "sample": np.arange(4),
    ...                         "feature": np.arange(5)})
    >>> s = summarize(ds)
    >>> s["gram"].dims, int(s["count"].max())
    (('family', 'sample', 'capacity', 'capacity_b'), 3)
    """
    _check_dataset(ds)
    valid = ds["valid"].astype(bool)
    direction = ds["direction"].astype(np.float64)
    # where(valid) then fillna(0): invalid entries are NaN by the schema; a stray finite value with valid = False
    # is ignored all the same.
    kept = direction.where(valid).fillna(0.0)
    resultant = kept.sum("seed").transpose("family", "capacity", "sample", "feature")
    count = valid.sum("seed").astype(np.int64).transpose("family", "capacity", "sample")
    other = resultant.rename(capacity="capacity_b")
    gram = xr.dot(resultant, other, dim="feature").transpose("family", "sample", "capacity", "capacity_b")
    lazy = not compute and ds["direction"].chunks is not None
    checks = {} if lazy else dataset_direction_checks(direction, valid)
    out = xr.Dataset(
        {
            "resultant": resultant.assign_attrs(long_name="resultant of the valid unit directions over seeds",
                                                units="1"),
            "count": count.assign_attrs(long_name="number of valid seeds"),
            "gram": gram.assign_attrs(long_name="inner products of the resultants", units="1"),
            "n_features": ((), ds.sizes["feature"], {"long_name": "dimension d of the ambient space"}),
        }
    )
    out = out.assign_coords(capacity_b=("capacity_b", ds["capacity"].values, ds["capacity"].attrs))
    if lazy:
        return out
    # The checks are reduced in the same pass as the summaries (one read of a Dask-backed dataset).
    names = {f"_check_{key}": key for key in checks}
    out = out.assign({name: checks[key] for name, key in names.items()}).compute()
    raise_on_dataset_directions({key: out[name].values for name, key in names.items()}, "ds",
                                ds.sizes["feature"], ds["direction"].dtype)
    return out.drop_vars(list(names))
