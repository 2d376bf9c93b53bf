"""Argument checks shared by the public API: each failure is one sentence naming the argument and the bad value."""

from __future__ import annotations

import numbers

import numpy as np


def unit_tolerance(dim: int, dtype=np.float64) -> float:
    """Allowed deviation of a vector's norm from 1: 10 eps sqrt(d) for the input's floating dtype."""
    eps = np.finfo(dtype if np.issubdtype(np.dtype(dtype), np.floating) else np.float64).eps
    return 10.0 * float(eps) * float(np.sqrt(dim))


def as_float_array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"'{name}' must be array-like of numbers, got {type(value).__name__}.") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"'{name}' must be array-like of real numbers, got dtype {arr.dtype}.")
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"'{name}' must be finite, got {arr[index].item()!r} at index {index}.")


def check_unit_vectors(value, name: str, dim: int | None = None) -> np.ndarray:
    """Return `value` as float64 unit vectors along the last axis, renormalised within the dtype's tolerance."""
    arr = as_float_array(value, name)
    if arr.ndim == 0:
        raise ValueError(f"'{name}' must have a last axis of coordinates, got a scalar.")
    if dim is None and arr.shape[-1] < 2:
        raise ValueError(f"'{name}' must have at least 2 coordinates (dimension d >= 2), got shape {arr.shape}.")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"'{name}' must have a last axis of length d = {dim}, got {arr.shape[-1]}.")
    check_finite(arr, name)
    in_dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    arr = arr.astype(np.float64, copy=False)
    norms = np.linalg.norm(arr, axis=-1)
    tol = unit_tolerance(arr.shape[-1], in_dtype)
    off = np.abs(norms - 1.0) > tol
    if np.any(off):
        index = tuple(int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            f"'{name}' must contain unit vectors along its last axis (|norm - 1| <= {tol:.2g}), "
            f"got norm {float(norms[index])!r} at index {index}."
        )
    return arr / norms[..., None]


def check_kappa(value, name: str = "kappa") -> np.ndarray:
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


def check_dim(value, name: str = "dim") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if not (isinstance(value, numbers.Real) and float(value).is_integer()):
            raise ValueError(f"'{name}' must be an integer >= 2, got {value!r}.")
    if int(value) < 2:
        raise ValueError(f"'{name}' must be an integer >= 2, got {value!r}.")
    return int(value)


def as_generator(rng) -> np.random.Generator:
    """`rng` as a Generator: a Generator is used as is, an int (or None) seeds a new one."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    raise ValueError(f"'rng' must be a numpy.random.Generator, an int seed or None, got {rng!r}.")


def as_size(size) -> tuple[int, ...]:
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
