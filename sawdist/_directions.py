"""Input handling shared by :mod:`sawdist.stats` and the semi-parametric fit.

Every public statistic accepts a NumPy array whose last axis holds the sphere's coordinates, or an
:class:`xarray.DataArray` whose feature dim is named ``"feature"`` (or is the last dim). This module turns either
into a float64 array laid out as ``(*batch, sample, feature)`` plus a validity mask, and turns results back into the
caller's type with the batch dims (names and coordinates) kept.

A row is *invalid* when any of its entries is NaN (the extraction writes NaN where a saliency direction does not
exist). Invalid rows are skipped by every statistic and counted; an infinite entry in any other row is an error.
Finite rows must be unit vectors to the tolerance ``10 * eps(dtype) * sqrt(d)`` (the NumPyro convention), with
``eps`` of the caller's floating dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_DIM = "feature"
SEED_DIM = "seed"


def _is_dataarray(obj) -> bool:
    # xarray is a core dependency, but checking by type name keeps this module importable without touching it.
    return type(obj).__name__ == "DataArray" and hasattr(obj, "dims")


@dataclass
class Directions:
    """Directions laid out as ``(*batch, sample, feature)`` with their validity mask.

    ``values`` has the invalid rows set to zero, so sums over the sample axis are sums over the valid rows.
    """

    values: np.ndarray  # float64, (*batch, n, d); invalid rows zeroed
    valid: np.ndarray  # bool, (*batch, n)
    template: object  # the input DataArray (for rebuilding outputs) or None
    batch_dims: tuple  # names of the batch dims (xarray) or ()
    sample_dim: object  # name of the sample dim (xarray) or None

    @property
    def n(self) -> np.ndarray:
        """Number of valid rows per batch element."""
        return self.valid.sum(axis=-1)

    @property
    def n_skipped(self) -> np.ndarray:
        """Number of invalid rows per batch element."""
        return self.valid.shape[-1] - self.n

    @property
    def dim(self) -> int:
        return self.values.shape[-1]

    def wrap(self, values, extra_dims=(), extra_coords=None, name=None, attrs=None):
        """Return ``values`` (shape ``(*batch, *extra)``) as the caller's type.

        For NumPy input the array (or NumPy scalar) comes back unchanged. For xarray input a DataArray with the batch
        dims and ``extra_dims``, carrying every input coordinate that lives on those dims.
        """
        if self.template is None:
            return values[()] if isinstance(values, np.ndarray) and values.ndim == 0 else values
        import xarray as xr

        dims = (*self.batch_dims, *extra_dims)
        coords = {
            key: coord
            for key, coord in self.template.coords.items()
            if set(coord.dims) <= set(dims) and key not in (extra_coords or {})
        }
        coords.update(extra_coords or {})
        return xr.DataArray(np.asarray(values), dims=dims, coords=coords, name=name, attrs=attrs or {})


def feature_dim_of(da) -> str:
    """The feature dim of a DataArray: ``"feature"`` if present, else the last dim."""
    return FEATURE_DIM if FEATURE_DIM in da.dims else da.dims[-1]


def sample_dim_of(da, axis, feature) -> str:
    """Resolve the sample dim of a DataArray from ``axis`` (a name, a position or None)."""
    if axis is None:
        if SEED_DIM in da.dims:
            return SEED_DIM
        others = [d for d in da.dims if d != feature]
        if not others:
            raise ValueError(f"'directions' must have a sample dim besides {feature!r}, got dims {da.dims}.")
        return others[-1]
    if isinstance(axis, str):
        if axis not in da.dims or axis == feature:
            raise ValueError(f"'axis' must name a non-feature dim of 'directions' {da.dims}, got {axis!r}.")
        return axis
    name = da.dims[int(axis)]
    if name == feature:
        raise ValueError(f"'axis' must not be the feature axis, got {axis!r}.")
    return name


def as_directions(directions, axis=None, *, name="directions", check_norm=True, min_rows=1) -> Directions:
    """Validate ``directions`` and lay them out as ``(*batch, sample, feature)``.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (NumPy) or along the ``"feature"`` dim (xarray). NaN rows are invalid.
    axis : int or str, optional
        The axis holding the draws. NumPy: an integer axis, default ``-2``. xarray: a dim name or position, default
        ``"seed"`` when present, else the dim before ``"feature"``.
    check_norm : bool
        Check that valid rows have unit norm.
    min_rows : int
        Minimum number of valid rows required in every batch element.
    """
    if _is_dataarray(directions):
        da = directions
        feature = feature_dim_of(da)
        sample = sample_dim_of(da, axis, feature)
        batch_dims = tuple(d for d in da.dims if d not in (sample, feature))
        raw = da.transpose(*batch_dims, sample, feature).values
        template = da
    else:
        raw = np.asarray(directions)
        if raw.ndim < 2:
            raise ValueError(f"'{name}' must have at least 2 dimensions (samples, features), got shape {raw.shape}.")
        ax = -2 if axis is None else int(axis)
        if ax % raw.ndim == raw.ndim - 1:
            raise ValueError(f"'axis' must not be the feature axis, got {axis!r}.")
        raw = np.moveaxis(raw, ax, -2)
        template, batch_dims, sample = None, (), None
    if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
        raise ValueError(f"'{name}' must be a real floating-point array, got dtype {raw.dtype}.")
    if raw.shape[-1] < 2:
        raise ValueError(f"'{name}' must have at least 2 features (sphere dimension d >= 2), got {raw.shape[-1]}.")
    eps = np.finfo(raw.dtype).eps if np.issubdtype(raw.dtype, np.floating) else np.finfo(np.float64).eps
    values = np.asarray(raw, dtype=np.float64)
    valid = np.isfinite(values).all(axis=-1)
    all_valid = bool(valid.all())
    if not all_valid:
        # A row holding a NaN is an invalid direction (the extraction's marker); any other inf is corrupt data, and
        # an error here as in sawdist.fit, rather than a row silently dropped.
        corrupt = ~valid & ~np.isnan(values).any(axis=-1)
        if corrupt.any():
            row = values[corrupt][0]
            value = row[~np.isfinite(row)][0]
            raise ValueError(f"'{name}' must be finite, or NaN in the rows of invalid directions, got "
                             f"{float(value)!r} in {int(corrupt.sum())} row(s).")
        values = np.where(valid[..., None], values, 0.0)
    if check_norm and values.size:
        norms = np.sqrt(np.einsum("...i,...i->...", values, values))
        tol = 10.0 * eps * np.sqrt(values.shape[-1])
        bad = valid & (np.abs(norms - 1.0) > tol)
        if bad.any():
            worst = norms[bad][np.argmax(np.abs(norms[bad] - 1.0))]
            raise ValueError(f"'{name}' must hold unit vectors (or NaN rows), got a row of norm {worst:.6g}.")
    counts = valid.sum(axis=-1)
    if min_rows > 0 and counts.size and counts.min() < min_rows:
        raise ValueError(f"'{name}' must have at least {min_rows} valid rows, got {int(counts.min())}.")
    return Directions(values, valid, template, batch_dims, sample)
