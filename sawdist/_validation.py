"""Argument checks shared by the public API: each failure is one sentence naming the argument and the bad value.

Direction arrays go through one function, :func:`check_directions`: the coordinates lie along the last axis, every
other axis indexes vectors. It checks, in this order, the dtype (real numbers), the dimension (d >= 2), finiteness
(a row holding a NaN is an invalid direction, the extraction's marker, where the API allows it; an infinite entry in
any other row is an error), the number of valid rows, and the unit norm to the tolerance of :func:`unit_tolerance`,
``10 * eps(dtype) * sqrt(d)`` (the NumPyro convention) with ``eps`` of the caller's floating dtype. Built on it:

* :func:`check_unit_vectors` — parameters and evaluation points (``mu``, ``x``): no NaN allowed;
* :func:`as_unit_rows` — the ``(n, d)`` rows of the distributions' ``fit`` methods;
* :func:`as_rows` — the rows of :func:`sawdist.fit` and :func:`sawdist.semiparametric.fit_semiparametric` (any
  leading dims flattened, NaN rows dropped and counted);
* :func:`as_directions` — the ``(*batch, draw, feature)`` layout of :mod:`sawdist.stats` and
  :func:`sawdist.capacity.fit_family`, for NumPy arrays and :class:`xarray.DataArray` alike (:class:`Directions`
  turns results back into the caller's type);
* :func:`dataset_direction_checks` / :func:`raise_on_dataset_directions` — the same checks, lazily, on the
  ``direction`` variable of a saliency dataset (:func:`sawdist.summaries.summarize`), with the schema's NaN where
  ``valid`` is False.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike, DTypeLike

FEATURE_DIM = "feature"
SEED_DIM = "seed"
LAST_AXIS = "its last axis"


# --- the tolerance and the messages shared by every direction check ----------------------------------------------


def unit_tolerance(dim: Any, dtype: DTypeLike = np.float64) -> Any:
    """Allowed deviation of a vector's norm from 1: ``10 eps sqrt(d)``, the one unit-norm tolerance of sawdist.

    Parameters
    ----------
    dim : int or symbolic scalar
        The dimension d (number of coordinates). A PyTensor scalar (d known only when a graph runs) gives a
        symbolic tolerance: the PyMC distributions check their parameters with the same formula.
    dtype : dtype-like
        The precision of the vectors: eps is its machine epsilon (float64's for integers and other non-floats).

    Returns
    -------
    float or symbolic scalar
        The largest accepted ``|norm - 1|``.
    """
    dtype = np.dtype(dtype)
    eps = float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)
    if isinstance(dim, numbers.Real):
        return 10.0 * eps * float(np.sqrt(dim))
    return 10.0 * eps * dim**0.5


def unit_norm_error(name: str, tol: float, norm: float, at: str = "", *, where: str = LAST_AXIS,
                    hint: str = "") -> ValueError:
    """The error for a vector whose norm is off by more than `tol`; `at` locates it (" in row 3")."""
    return ValueError(f"'{name}' must contain unit vectors along {where} (|norm - 1| <= {tol:.2g}), "
                      f"got norm {float(norm)!r}{at}{hint}.")


def check_sphere_dim(dim: int, name: str, *, where: str = LAST_AXIS) -> None:
    """`dim` coordinates make a sphere S^(d-1) only for d >= 2."""
    if dim < 2:
        raise ValueError(f"'{name}' must have at least 2 coordinates along {where} (sphere dimension d >= 2), "
                         f"got {dim}.")


def _row_text(index: tuple, dims: tuple | None) -> str:
    """A vector's position: ``3`` for one leading axis, ``(0, 3)`` for several, ``(seed=0, input=3)`` by name."""
    index = tuple(int(i) for i in index)
    if dims is not None:
        return "(" + ", ".join(f"{dim}={i}" for dim, i in zip(dims, index)) + ")"
    return str(index[0]) if len(index) == 1 else str(index)


# --- scalars and plain arrays -------------------------------------------------------------------------------------


def as_float_array(value: ArrayLike, name: str) -> np.ndarray:
    """`value` as an array of real numbers (bool, int or float; not converted), or a ValueError naming `name`."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"'{name}' must be array-like of numbers, got {type(value).__name__}.") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"'{name}' must be array-like of real numbers, got dtype {arr.dtype}.")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    """Every entry of `arr` is finite; the error shows the first that is not, with its index."""
    bad = ~np.isfinite(arr)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"'{name}' must be finite, got {arr[index].item()!r} at index {index}.")


def check_kappa(value: ArrayLike, name: str = "kappa") -> np.ndarray:
    """Check a concentration: finite and >= 0.

    Parameters
    ----------
    value : array_like
        The concentration(s).
    name : str
        The argument's name, for the message.

    Returns
    -------
    ndarray
        `value` as float64.

    Raises
    ------
    ValueError
        Naming `name` and the first bad value (NaN, negative or infinite).
    """
    arr = as_float_array(value, name).astype(np.float64)
    nan = np.isnan(arr)
    if np.any(nan):
        raise ValueError(f"'{name}' must be >= 0, got nan.")
    neg = arr < 0
    if np.any(neg):
        raise ValueError(f"'{name}' must be >= 0, got {float(arr[neg].flat[0])!r}.")
    inf = np.isinf(arr)
    if np.any(inf):
        raise ValueError(f"'{name}' must be finite, got {float(arr[inf].flat[0])!r}.")
    return arr


def check_dim(value: Any, name: str = "dim") -> int:
    """An integer dimension d >= 2 (an integral float is accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if not (isinstance(value, numbers.Real) and float(value).is_integer()):
            raise ValueError(f"'{name}' must be an integer >= 2, got {value!r}.")
    if int(value) < 2:
        raise ValueError(f"'{name}' must be an integer >= 2, got {value!r}.")
    return int(value)


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """An integer count >= `minimum` (a bool or a non-integral float is an error; an integral NumPy int passes)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"'{name}' must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_nonnegative(value: Any, name: str) -> float:
    """A finite real number >= 0 (a smoothing parameter, a penalty)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= float(value) < np.inf):
        raise ValueError(f"'{name}' must be a finite number >= 0, got {value!r}.")
    return float(value)


# --- direction arrays: the one check ------------------------------------------------------------------------------


def _valid_rows(x: np.ndarray, name: str, nan_rows: bool) -> np.ndarray:
    """Validity mask of the vectors of `x` (float64, coordinates last); errors on non-finite entries not allowed."""
    valid = np.ones(x.shape[:-1], dtype=bool)
    # One cheap pass (row sums) finds the rows that may hold NaN or inf; only those are inspected further.
    suspect = ~np.isfinite(np.einsum("...i->...", x))
    if not suspect.any():
        return valid
    if not nan_rows:
        check_finite(x, name)
        return valid  # the sums overflowed, the entries are finite
    rows = x[suspect]
    has_nan = np.isnan(rows).any(axis=-1)
    corrupt = ~has_nan & ~np.isfinite(rows).all(axis=-1)
    if corrupt.any():
        # NaN marks an invalid direction; any other non-finite value is corrupt data, an error rather than a row
        # silently dropped.
        row = rows[corrupt][0]
        raise ValueError(f"'{name}' must be finite, or NaN in the rows of invalid directions, got "
                         f"{float(row[~np.isfinite(row)][0])!r} in {int(corrupt.sum())} row(s).")
    valid[suspect] = ~has_nan
    return valid


def check_directions(
    values: ArrayLike,
    name: str = "directions",
    *,
    nan_rows: bool = True,
    min_rows: int = 0,
    rows_axis: int | None = None,
    check_norm: bool = True,
    normalize: bool = False,
    renormalize: bool | None = None,
    dims: tuple | None = None,
    where: str = LAST_AXIS,
    hint: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Check an array of directions, coordinates along the last axis; the one check behind every public entry.

    Parameters
    ----------
    values : array_like, shape (..., d)
        Vectors along the last axis; the leading axes index them.
    name : str
        The argument's name, for the messages.
    nan_rows : bool
        A vector holding a NaN is an invalid direction (skipped by the caller and counted); an infinite entry in any
        other vector is an error. False: every entry must be finite.
    min_rows : int
        Minimum number of valid vectors: in all (``rows_axis=None``) or along ``rows_axis`` of the leading axes
        (per batch element).
    check_norm : bool
        Check that the valid vectors have unit norm within :func:`unit_tolerance` of the input dtype.
    normalize : bool
        Scale the vectors to unit norm instead of checking it; a zero vector is then an error.
    renormalize : bool or None
        Divide the checked vectors by their norms: always (True), never (False), or only when the input is of a
        lower precision than float64 (None), whose tolerance admits norms far from 1 in float64.
    dims : tuple of str, optional
        Names of the leading axes (xarray input), to locate a bad vector by name in the messages.
    where : str
        Where the coordinates lie, for the messages (``"its last axis"``, ``"its 'feature' dim"``).
    hint : str
        Appended to the unit-norm message (e.g. how to normalize).

    Returns
    -------
    x : ndarray, float64, shape (..., d)
        The vectors (no copy for valid float64 input that is not renormalized); invalid vectors left as they are.
    valid : ndarray of bool, shape (...)
        Validity of each vector.
    """
    arr = as_float_array(values, name)
    if arr.ndim == 0:
        raise ValueError(f"'{name}' must have a last axis of coordinates, got a scalar.")
    check_sphere_dim(arr.shape[-1], name, where=where)
    in_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    x = np.asarray(arr, dtype=np.float64)
    valid = _valid_rows(x, name, nan_rows)
    if min_rows > 0:
        counts = np.asarray(valid.sum(axis=rows_axis))
        if counts.size and counts.min() < min_rows:
            raise ValueError(f"'{name}' must have at least {min_rows} {'valid ' if nan_rows else ''}rows, "
                             f"got {int(counts.min())}.")
    if not (check_norm or normalize) or x.size == 0:
        return x, valid
    norms = np.sqrt(np.einsum("...i,...i->...", x, x))
    if normalize:
        bad = valid & (norms == 0)
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), bad.shape)
            raise ValueError(f"'{name}' has a zero row at index {_row_text(index, dims)}, which has no direction.")
    else:
        tol = unit_tolerance(x.shape[-1], in_dtype)
        bad = valid & (np.abs(norms - 1.0) > tol)
        if bad.any():
            index = np.unravel_index(int(np.argmax(bad)), bad.shape)
            at = f" in row {_row_text(index, dims)}" if index else ""
            raise unit_norm_error(name, tol, norms[index], at, where=where, hint=hint)
    if normalize or renormalize or (renormalize is None and in_dtype != np.float64):
        with np.errstate(invalid="ignore", divide="ignore"):  # invalid (NaN) rows stay NaN
            x = x / norms[..., None]
    return x, valid


def check_unit_vectors(value: ArrayLike, name: str, dim: int | None = None, *,
                       renormalize: bool = True) -> np.ndarray:
    """Check unit vectors along the last axis: finite, of norm 1 within :func:`unit_tolerance` of their dtype.

    Parameters
    ----------
    value : array_like, shape (..., d)
        The vectors; no NaN.
    name : str
        The argument's name, for the messages.
    dim : int, optional
        The required length d of the last axis.
    renormalize : bool
        Divide the vectors by their norms (removes the rounding a lower precision leaves).

    Returns
    -------
    ndarray, float64, shape (..., d)
        The vectors.

    Raises
    ------
    ValueError
        Naming `name`, the bad vector and its norm.
    """
    arr = as_float_array(value, name)
    if arr.ndim == 0:
        raise ValueError(f"'{name}' must have a last axis of coordinates, got a scalar.")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"'{name}' must have a last axis of length d = {dim}, got {arr.shape[-1]}.")
    return check_directions(arr, name, nan_rows=False, renormalize=renormalize)[0]


def as_unit_rows(x: ArrayLike, name: str, *, min_rows: int = 2) -> np.ndarray:
    """`x` as float64 unit rows of shape (n, d) with n >= `min_rows`, renormalized; no NaN."""
    arr = as_float_array(x, name)
    if arr.ndim != 2:
        raise ValueError(f"'{name}' must be a 2-D array of shape (n, d), got shape {arr.shape}.")
    return check_directions(arr, name, nan_rows=False, min_rows=min_rows, renormalize=True)[0]


# --- xarray layouts -----------------------------------------------------------------------------------------------


def is_dataarray(obj: Any) -> bool:
    """Whether `obj` is an :class:`xarray.DataArray` (checked by type name: importing xarray is not needed)."""
    return type(obj).__name__ == "DataArray" and hasattr(obj, "dims")


def feature_dim_of(da: xr.DataArray) -> str:
    """The feature dim of a DataArray: ``"feature"`` if present, else the last dim."""
    return FEATURE_DIM if FEATURE_DIM in da.dims else da.dims[-1]


def draw_dim_of(da: xr.DataArray, axis: int | str | None, feature: str) -> str:
    """Resolve the draw dim of a DataArray from ``axis`` (a name, a position or None)."""
    if axis is None:
        if SEED_DIM in da.dims:
            return SEED_DIM
        others = [d for d in da.dims if d != feature]
        if not others:
            raise ValueError(f"'directions' must have a draw dim besides {feature!r}, got dims {da.dims}.")
        return others[-1]
    if isinstance(axis, str):
        if axis not in da.dims or axis == feature:
            raise ValueError(f"'axis' must name a non-feature dim of 'directions' {da.dims}, got {axis!r}.")
        return axis
    name = da.dims[int(axis)]
    if name == feature:
        raise ValueError(f"'axis' must not be the feature axis, got {axis!r}.")
    return name


def _feature_last(values: ArrayLike | xr.DataArray) -> tuple[Any, tuple | None, str]:
    """(values with the coordinates last, the names of the other dims in order, where the coordinates lie): a
    DataArray is transposed to put its feature dim last; an array is returned as it is, with no names."""
    if not is_dataarray(values):
        return values, None, LAST_AXIS
    feature = feature_dim_of(values)
    others = tuple(d for d in values.dims if d != feature)
    return values.transpose(*others, feature).values, others, f"its {feature!r} dim"


@dataclass
class Directions:
    """Directions laid out as ``(*batch, draw, feature)`` with their validity mask.

    ``values`` has the invalid rows set to zero, so sums over the draw axis are sums over the valid rows.
    """

    values: np.ndarray  # float64, (*batch, n, d); invalid rows zeroed
    valid: np.ndarray  # bool, (*batch, n)
    template: Any  # the input DataArray (for rebuilding outputs) or None
    batch_dims: tuple  # names of the batch dims (xarray) or ()
    draw_dim: Any  # name of the draw dim (xarray) or None

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


def as_directions(directions: ArrayLike | xr.DataArray, axis: int | str | None = None, *, name: str = "directions",
                  check_norm: bool = True, min_rows: int = 1) -> Directions:
    """Validate ``directions`` (:func:`check_directions`) and lay them out as ``(*batch, draw, feature)``.

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
    if is_dataarray(directions):
        raw, dims, where = _feature_last(directions)
        draw = draw_dim_of(directions, axis, feature_dim_of(directions))
        ax = dims.index(draw)
        batch_dims = tuple(d for d in dims if d != draw)
        template = directions
    else:
        raw = as_float_array(directions, name)
        if raw.ndim < 2:
            raise ValueError(f"'{name}' must have at least 2 dimensions (draws, features), got shape {raw.shape}.")
        ax = -2 if axis is None else int(axis)
        if not -raw.ndim <= ax < raw.ndim:
            raise ValueError(f"'axis' must be an axis of '{name}' (ndim {raw.ndim}), got {axis!r}.")
        ax %= raw.ndim
        if ax == raw.ndim - 1:
            raise ValueError(f"'axis' must not be the feature axis, got {axis!r}.")
        template, batch_dims, draw, dims, where = None, (), None, None, LAST_AXIS
    x, valid = check_directions(raw, name, min_rows=min_rows, rows_axis=ax, check_norm=check_norm,
                                renormalize=False, dims=dims, where=where)
    values, valid = np.moveaxis(x, ax, -2), np.moveaxis(valid, ax, -1)
    if not valid.all():
        values = np.where(valid[..., None], values, 0.0)
    return Directions(values, valid, template, batch_dims, draw)


def as_rows(directions: ArrayLike | xr.DataArray, name: str = "directions", *, min_rows: int = 2,
            normalize: bool = False, hint: str = "") -> tuple[np.ndarray, int]:
    """The valid rows of ``directions`` as float64 unit vectors (n, d), and the number of NaN rows dropped.

    A DataArray's non-feature dims (and an array's leading axes) are flattened into rows. Rows of a lower-precision
    input (float32 saliency files) pass at that precision's tolerance and are renormalized in float64; with
    ``normalize`` every row is scaled to unit norm instead of checked.
    """
    raw, dims, where = _feature_last(directions)
    arr = as_float_array(raw, name)
    if arr.ndim < 2:
        raise ValueError(f"'{name}' must have shape (n, d) (rows are directions), got shape {arr.shape}.")
    x, valid = check_directions(arr, name, min_rows=min_rows, normalize=normalize, dims=dims, where=where, hint=hint)
    x, valid = x.reshape(-1, x.shape[-1]), valid.reshape(-1)
    n_skipped = int(valid.size - np.count_nonzero(valid))
    return (x[valid] if n_skipped else x), n_skipped


def check_vectors(values: ArrayLike | xr.DataArray, name: str, *, unit: bool = True, nan_rows: bool = True) -> None:
    """Check vectors along the last axis (a DataArray: along its feature dim) and leave them as they are: finite or
    NaN rows (unless ``nan_rows=False``), unit norm when `unit`. For the statistics that compute on the caller's
    array itself (cosines, tangent-normal decomposition, reference directions)."""
    raw, dims, where = _feature_last(values)
    check_directions(raw, name, nan_rows=nan_rows, check_norm=unit, renormalize=False, dims=dims, where=where)


# --- the direction variable of a saliency dataset (lazy) ---------------------------------------------------------


def dataset_direction_checks(direction: xr.DataArray | np.ndarray, valid: xr.DataArray | np.ndarray,
                             dtype: DTypeLike, feature: str = FEATURE_DIM) -> dict:
    """Reductions that :func:`raise_on_dataset_directions` turns into errors: the valid rows must be finite unit
    vectors (to :func:`unit_tolerance` of the stored ``dtype``), the invalid ones NaN (the schema's mark, on which the
    statistics that skip NaN rows rely). One norm per row gives them all (a NaN makes it NaN). The one check of
    :func:`sawdist.io.validate`, :func:`sawdist.io.check_direction_values` and :func:`sawdist.summaries.summarize`.

    The same checks for a DataArray (``feature`` its coordinate dim; lazy for Dask-backed data, computed with the
    caller's other reductions in one pass) and for a NumPy array (coordinates along the last axis; computed now)."""
    import xarray as xr

    if isinstance(direction, xr.DataArray):
        norm = np.sqrt(xr.dot(direction, direction, dim=feature))
        d = direction.sizes[feature]
    else:
        direction, valid = np.asarray(direction), np.asarray(valid, dtype=bool)
        norm = np.sqrt(np.einsum("...i,...i->...", direction, direction, dtype=np.float64))
        d = direction.shape[-1]
    finite = np.isfinite(norm)
    ok = valid & finite
    off = ok & (abs(norm - 1.0) > unit_tolerance(d, dtype))
    if isinstance(norm, xr.DataArray):
        norm_ok = norm.where(ok)
        norm_min, norm_max = norm_ok.min(), norm_ok.max()
    else:  # the extremes only matter (and exist) when a row is off
        norm_min, norm_max = (norm[off].min(), norm[off].max()) if off.any() else (np.nan, np.nan)
    return {
        "n_nan": (valid & np.isnan(norm)).sum(),
        "n_inf": (valid & np.isinf(norm)).sum(),
        "n_not_nan": (~valid & ~np.isnan(norm)).sum(),
        "n_off": off.sum(),
        "norm_min": norm_min,
        "norm_max": norm_max,
    }


def raise_on_dataset_directions(checks: dict, name: str, dim: int, dtype: DTypeLike, where: str = "") -> None:
    """Raise the first failure among the computed :func:`dataset_direction_checks`, with the number of bad rows;
    `where` ends the message (``" (in the sample checked at open: ...)"``)."""
    n_nan, n_inf = int(checks["n_nan"]), int(checks["n_inf"])
    if n_nan or n_inf:
        value = "nan" if n_nan else "inf"
        raise ValueError(f"'{name}' must be finite where 'valid' is True, got {value} in {n_nan + n_inf} "
                         f"row(s){where}.")
    if int(checks["n_not_nan"]):
        raise ValueError(f"'{name}' must be NaN where 'valid' is False (the schema's mark of an invalid direction), "
                         f"got numbers in {int(checks['n_not_nan'])} row(s){where}.")
    n_off = int(checks["n_off"])
    if n_off:
        lo, hi = float(checks["norm_min"]), float(checks["norm_max"])
        worst = hi if abs(hi - 1.0) >= abs(lo - 1.0) else lo
        raise unit_norm_error(name, unit_tolerance(dim, dtype), worst,
                              f" where 'valid' is True, in {n_off} row(s){where}", where=f"its {FEATURE_DIM!r} dim")


# --- random generators and sizes ----------------------------------------------------------------------------------


def _to_generator(value, name: str) -> np.random.Generator:
    if isinstance(value, np.random.Generator):
        return value
    if value is None or isinstance(value, np.random.SeedSequence):
        return np.random.default_rng(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return np.random.default_rng(int(value))
    raise ValueError(f"'{name}' must be a numpy.random.Generator, a non-negative int seed or None, got {value!r}.")


def as_generator(rng: Any = None, random_state: Any = None, *,
                 default: np.random.Generator | None = None) -> np.random.Generator:
    """The Generator to draw from: `rng`, or scipy's spelling `random_state`.

    Parameters
    ----------
    rng, random_state : numpy.random.Generator, int, numpy.random.SeedSequence or None
        The same values under either name (a non-negative int is a seed); passing both is an error.
    default : numpy.random.Generator, optional
        The Generator when neither is given (a frozen distribution's seeded Generator); else fresh OS entropy.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    ValueError
        When both are given, or one is not a Generator, a non-negative int seed or None.
    """
    if rng is not None and random_state is not None:
        raise ValueError(f"pass 'rng' or its scipy spelling 'random_state', not both; got {rng!r} and "
                         f"{random_state!r}.")
    if random_state is not None:
        return _to_generator(random_state, "random_state")
    if rng is None and default is not None:
        return default
    return _to_generator(rng, "rng")


def seeded_generator(seed) -> np.random.Generator | None:
    """The Generator of a frozen distribution's ``seed=`` (scipy's keyword); None when no seed was given."""
    return None if seed is None else _to_generator(seed, "seed")


def as_size(size) -> tuple[int, ...]:
    """A ``size`` argument (None, an int or a tuple of ints) as a shape tuple."""
    if size is None:
        return ()
    try:
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            shape = (int(size),)
        else:
            shape = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"'size' must be None, an int or a tuple of ints, got {size!r}.") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"'size' must not contain negative entries, got {size!r}.")
    return shape
