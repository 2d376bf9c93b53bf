"""Sample statistics of directions on the sphere S^{d-1}, valid in high dimension.

Every function takes a NumPy array whose last axis holds the coordinates, or an :class:`xarray.DataArray` whose feature
dim is ``"feature"`` (or its last dim); xarray in gives xarray out, with the remaining dims and their coordinates kept.
The draws run along ``axis``: for arrays an integer axis (default ``-2``, the rows of an ``(n, d)`` array), for
DataArrays a dim name (default ``"seed"`` when present, else the dim before ``"feature"``). Rows holding a NaN are
invalid directions (the extraction writes NaN there): they are skipped, and :func:`count_valid` counts them. An
infinite entry in any other row is an error, as in :func:`sawdist.fit`.

The identities behind the estimators are those of docs/theory/identities.md (numbered there; "identity N" below
refers to that page). For n i.i.d. draws of a rotationally symmetric law with mean resultant length m = E[t] and
resultant R = sum_i u_i,

    ||R||^2 = n + sum_{i != j} u_i^T u_j,  E[u_i^T u_j] = m^2 (i != j)   =>   E||R||^2 = n + n(n-1) m^2,

so m2_hat = (||R||^2 - n) / (n(n-1)) is unbiased for m^2 while the plug-in ||R|| / n is biased upward by the noise
term n / n^2 = 1/n inside the square: with n = 20 draws in d = 3072 and m = 0.30 it reads about 0.37.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import special as sc

from ._validation import (
    as_directions,
    as_float_array,
    as_generator,
    check_vectors,
    draw_dim_of,
    feature_dim_of,
    is_dataarray,
)
from .results import RayleighResult

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

    DirectionsLike = ArrayLike | xr.DataArray
    Axis = int | str | None

__all__ = [
    "RayleighResult",
    "cosine_similarity",
    "count_valid",
    "ensemble_curve",
    "mean_direction",
    "mean_resultant_length",
    "predicted_similarity",
    "rayleigh_test",
    "resultant",
    "similarity_from_sums",
    "similarity_matrix",
    "spherical_variance",
    "tangent_normal",
]

_METHODS = ("unbiased", "plugin")


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"'method' must be 'unbiased' or 'plugin', got {method!r}.")


def _feature_kw(D):
    if D.template is None:
        return {}
    feature = feature_dim_of(D.template)
    return {"extra_dims": (feature,), "extra_coords": _coords_on(D.template, feature)}


def _coords_on(da, dim):
    return {k: c for k, c in da.coords.items() if c.dims == (dim,)}


def count_valid(directions: DirectionsLike, axis: Axis = None) -> np.ndarray | xr.DataArray:
    """Number of valid (NaN-free) rows along ``axis``.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (or the ``"feature"`` dim); NaN rows are invalid.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.

    Returns
    -------
    n : ndarray or xarray.DataArray
        Valid rows per remaining index; the skipped ones are ``directions.shape[axis] - n``.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.array([[1.0, 0.0], [np.nan, np.nan], [0.0, 1.0]])
    >>> int(stats.count_valid(u))
    2
    """
    D = as_directions(directions, axis, min_rows=0, check_norm=False)
    return D.wrap(D.n, name="n")


def resultant(directions: DirectionsLike, axis: Axis = None) -> np.ndarray | xr.DataArray:
    """Resultant vector R = sum of the valid directions along ``axis``.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (or the ``"feature"`` dim); NaN rows are skipped.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.

    Returns
    -------
    R : ndarray or xarray.DataArray
        Shape of ``directions`` without ``axis``; the feature axis stays last.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> stats.resultant(np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]]))
    array([1., 1.])
    """
    D = as_directions(directions, axis, min_rows=0)
    return D.wrap(D.values.sum(axis=-2), name="resultant", **_feature_kw(D))


def mean_direction(directions: DirectionsLike, axis: Axis = None) -> np.ndarray | xr.DataArray:
    """Sample mean direction R / ||R|| (NaN where R = 0).

    In high dimension this direction is noisy even when the mean resultant length is large: its expected cosine with
    the population mean is about m / sqrt(m^2 + (1 - m^2)/n) (the ensemble law, identity 4 of
    docs/theory/identities.md, with N = n).

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (or the ``"feature"`` dim); NaN rows are skipped.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.

    Returns
    -------
    mu : ndarray or xarray.DataArray
        Unit vectors, the feature axis last.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> stats.mean_direction(np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([0.70710678, 0.70710678])
    """
    D = as_directions(directions, axis, min_rows=1)
    R = D.values.sum(axis=-2)
    norm = np.linalg.norm(R, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(norm > 0, R / np.where(norm > 0, norm, 1.0), np.nan)
    return D.wrap(mu, name="mean_direction", **_feature_kw(D))


def _mean_resultant_length_from_R2(R2, n, method, squared):
    """Mean resultant length from ||R||^2 and n (the kernel behind the public estimators)."""
    n = np.asarray(n, dtype=np.float64)
    if method == "plugin":
        m2 = R2 / n**2
        return m2 if squared else np.sqrt(m2)
    # Identity 3: E||R||^2 = n + n(n-1) m^2. The unbiased m^2 can be negative when the noise term dominates; then
    # the data are consistent with m = 0 and m_hat is reported as 0 (the positive part of m2_hat, square-rooted).
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = (R2 - n) / (n * (n - 1.0))
    return m2 if squared else np.sqrt(np.maximum(m2, 0.0))


def mean_resultant_length(directions: DirectionsLike, axis: Axis = None, *, method: str = "unbiased",
                          squared: bool = False) -> np.ndarray | xr.DataArray:
    """Mean resultant length m = E[t] = ||E u|| of the directions along ``axis``.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (or the ``"feature"`` dim); NaN rows are skipped.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.
    method : {'unbiased', 'plugin'}
        ``'unbiased'`` (default): m2_hat = (||R||^2 - n) / (n (n - 1)), unbiased for m^2 (identity 3 of
        docs/theory/identities.md); needs n >= 2 valid rows. ``'plugin'``: ||R|| / n, biased upward by about
        (1 - m^2) / (2 n m) when n m^2 is large and towards sqrt(1/n) when m -> 0 — badly so in high dimension with
        few draws.
    squared : bool
        Return the estimate of m^2 instead of m. With ``method='unbiased'`` this is m2_hat itself, which is negative
        when the pairwise cosines average below zero.

    Returns
    -------
    m : ndarray or xarray.DataArray
        For ``method='unbiased'`` and ``squared=False``, m_hat = sqrt(max(m2_hat, 0)): a negative m2_hat is reported
        as m_hat = 0 (no detectable concentration). m2_hat is unbiased for m^2; m_hat itself is not exactly unbiased
        for m (Jensen), but its bias, about -Var(m2_hat) / (8 m^3), is second order, unlike the plug-in's.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> float(stats.mean_resultant_length(u, method="plugin"))
    0.3333333333333333
    >>> float(stats.mean_resultant_length(u, squared=True)), float(stats.mean_resultant_length(u))
    (-0.3333333333333333, 0.0)
    """
    _check_method(method)
    D = as_directions(directions, axis, min_rows=2 if method == "unbiased" else 1)
    R = D.values.sum(axis=-2)
    R2 = np.einsum("...i,...i->...", R, R)
    return D.wrap(_mean_resultant_length_from_R2(R2, D.n, method, squared), name="mean_resultant_length")


def spherical_variance(directions: DirectionsLike, axis: Axis = None, *,
                       method: str = "unbiased") -> np.ndarray | xr.DataArray:
    """Spherical variance 1 - m (Mardia & Jupp 2000, §9.2.1) with m from :func:`mean_resultant_length`.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors along the last axis (or the ``"feature"`` dim); NaN rows are skipped.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.
    method : {'unbiased', 'plugin'}
        Estimator of m; the classical definition is ``'plugin'`` (1 - ||R||/n), which in high dimension reads far
        too small a variance for few draws.

    Returns
    -------
    v : ndarray or xarray.DataArray
        In [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> round(float(stats.spherical_variance(u, method="plugin")), 6), round(float(stats.spherical_variance(u)), 6)
    (0.292893, 0.42265)
    """
    m = mean_resultant_length(directions, axis, method=method)
    out = 1.0 - m
    if is_dataarray(out):
        out.name = "spherical_variance"
    return out


def tangent_normal(directions: DirectionsLike,
                   mu: DirectionsLike) -> tuple[np.ndarray | xr.DataArray, np.ndarray | xr.DataArray]:
    """Tangent-normal decomposition u = t mu + sqrt(1 - t^2) v (docs/theory/saw_family.md).

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors u, the feature axis last (or the ``"feature"`` dim). NaN rows give NaN.
    mu : array_like or xarray.DataArray
        Unit vector(s), broadcast against ``directions`` (by position for arrays, by dim name for xarray).

    Returns
    -------
    t : ndarray or xarray.DataArray
        Cosines mu^T u, in [-1, 1].
    v : ndarray or xarray.DataArray
        Unit vectors orthogonal to mu, same shape as the broadcast ``directions``; NaN where u = +-mu, where the
        tangent direction is undefined. v is computed by normalizing u - t mu, which stays accurate as t -> +-1
        where sqrt(1 - t^2) would lose all digits.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> t, v = stats.tangent_normal(np.array([[0.6, 0.8, 0.0]]), np.array([1.0, 0.0, 0.0]))
    >>> t, v
    (array([0.6]), array([[0., 1., 0.]]))
    """
    if is_dataarray(directions) or is_dataarray(mu):
        import xarray as xr

        u = directions if is_dataarray(directions) else None
        m = mu if is_dataarray(mu) else None
        if u is None or m is None:
            raise ValueError("'directions' and 'mu' must both be DataArrays or both be arrays, got a mix.")
        check_vectors(u, "directions")
        check_vectors(m, "mu", nan_rows=False)
        feature = feature_dim_of(u)
        t = xr.dot(u, m, dim=feature)
        r = u - t * m
        norm = np.sqrt(xr.dot(r, r, dim=feature))
        v = xr.where(norm > 0, r / norm.where(norm > 0), np.nan)
        t = t.clip(-1.0, 1.0).rename("t")
        return t, v.transpose(*r.dims).rename("v")
    check_vectors(directions, "directions")
    u = np.asarray(directions, dtype=np.float64)
    m = as_float_array(mu, "mu")
    if u.shape[-1] != m.shape[-1]:
        raise ValueError(f"'mu' must have {u.shape[-1]} features like 'directions', got {m.shape[-1]}.")
    check_vectors(m, "mu", nan_rows=False)
    m = m.astype(np.float64, copy=False)
    t = np.einsum("...i,...i->...", u, m)
    r = u - t[..., None] * m
    norm = np.linalg.norm(r, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(norm > 0, r / np.where(norm > 0, norm, 1.0), np.nan)
    return np.clip(t, -1.0, 1.0), v


def _unit_rows(x):
    """Normalize rows; zero or non-finite rows become NaN."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((norm > 0) & np.isfinite(norm), x / np.where(norm > 0, norm, 1.0), np.nan)


def cosine_similarity(a: DirectionsLike, b: DirectionsLike | None = None,
                      axis: str | None = None) -> np.ndarray | xr.DataArray:
    """Matrix of cosines between the rows of ``a`` and the rows of ``b``.

    Parameters
    ----------
    a, b : array_like or xarray.DataArray
        Vectors (normalized here; they need not be unit) along the last axis or the ``"feature"`` dim. ``b`` defaults
        to ``a``. Arrays: shapes ``(..., n_a, d)`` and ``(..., n_b, d)`` with broadcastable leading axes. NaN rows give
        NaN rows or columns.
    axis : str, optional
        xarray only: the dim indexing the vectors, default ``"seed"`` when present, else the dim before
        ``"feature"``. The output has this dim twice, as ``<axis>_1`` (rows of ``a``) and ``<axis>_2`` (rows of
        ``b``); the other dims broadcast by name.

    Returns
    -------
    C : ndarray or xarray.DataArray
        Shape ``(..., n_a, n_b)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> stats.cosine_similarity(np.array([[1.0, 0.0], [1.0, 1.0]]))
    array([[1.        , 0.70710678],
           [0.70710678, 1.        ]])
    """
    b_given = b is not None
    b = a if b is None else b
    check_vectors(a, "a", unit=False)
    if b_given:
        check_vectors(b, "b", unit=False)
    if is_dataarray(a):
        import xarray as xr

        feature = feature_dim_of(a)
        draw = draw_dim_of(a, axis, feature)
        norm_a = np.sqrt(xr.dot(a, a, dim=feature))
        norm_b = np.sqrt(xr.dot(b, b, dim=feature))
        a1 = (a / norm_a.where(norm_a > 0)).rename({draw: f"{draw}_1"})
        b2 = (b / norm_b.where(norm_b > 0)).rename({draw: f"{draw}_2"})
        return xr.dot(a1, b2, dim=feature).rename("cosine_similarity")
    if axis is not None:
        raise ValueError(f"'axis' is for DataArrays; arrays use their last two axes, got {axis!r}.")
    A = _unit_rows(np.asarray(a, dtype=np.float64))
    B = _unit_rows(np.asarray(b, dtype=np.float64)) if b_given else A
    if A.ndim < 2 or B.ndim < 2:
        raise ValueError(f"'a' and 'b' must have at least 2 dimensions, got shapes {A.shape} and {B.shape}.")
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(f"'b' must have {A.shape[-1]} features like 'a', got {B.shape[-1]}.")
    return np.clip(A @ np.swapaxes(B, -1, -2), -1.0, 1.0)


def _capacity_layout(directions, capacity, axis):
    """Directions laid out as (*batch, K, n, d) with the capacity axis last among the batch axes."""
    if is_dataarray(directions):
        cap = "capacity" if capacity is None else capacity
        if cap not in directions.dims:
            raise ValueError(f"'capacity' must name a dim of 'directions' {directions.dims}, got {cap!r}.")
        D = as_directions(directions, axis, min_rows=0)
        pos = D.batch_dims.index(cap) if cap in D.batch_dims else None
        if pos is None:
            raise ValueError(f"'capacity' must differ from the draw dim {D.draw_dim!r}, got {cap!r}.")
    else:
        arr = np.asarray(directions)
        if arr.ndim < 3:
            raise ValueError(f"'directions' must have at least 3 dimensions (capacity, seed, feature), got {arr.ndim}.")
        ax = -2 if axis is None else int(axis) % arr.ndim
        cax = -3 if capacity is None else int(capacity)
        cax %= arr.ndim
        if cax in (ax % arr.ndim, arr.ndim - 1):
            raise ValueError(f"'capacity' must differ from the seed and feature axes, got {capacity!r}.")
        arr = np.moveaxis(arr, [cax, ax], [-3, -2])
        D = as_directions(arr, -2, min_rows=0)
        pos = D.values.ndim - 3
    X = np.moveaxis(D.values, pos, -3)
    V = np.moveaxis(D.valid, pos, -2)
    return D, X, V, pos


def similarity_from_sums(gram: ArrayLike, same_seed_gram: ArrayLike, count: ArrayLike,
                         same_seed_count: ArrayLike) -> np.ndarray:
    """Similarity rho(k1, k2) from the sums over the draws of each capacity: the one definition of the similarity.

    rho(k1, k2) is the mean cosine u_{k1,s}^T u_{k2,s'} over all pairs of valid draws with different seeds s != s'.
    Pairs with the same seed index are left out for k1 != k2 as well (models with the same seed may share their
    random streams), and for k1 = k2 they are the draws' products with themselves. So, with the resultants
    R_k = sum_s u_{k,s} (over valid draws),

        rho(k1, k2) = (G[k1, k2] - P[k1, k2]) / (n_{k1} n_{k2} - c[k1, k2]),

    where G = R_{k1}^T R_{k2} (the Gram matrix of the resultants), P[k1, k2] = sum_s u_{k1,s}^T u_{k2,s} (over the
    seeds valid at both), n_k the number of valid draws and c[k1, k2] the number of seeds valid at both. On the
    diagonal this is the unbiased m2_hat(k) = (||R_k||^2 - n_k) / (n_k (n_k - 1)) of identity 3
    (docs/theory/identities.md); off it, an unbiased estimate of m(k1) m(k2) cos(mu_{k1}, mu_{k2}) (identity 2).

    :func:`similarity_matrix` (from directions), :func:`sawdist.summaries.similarity` (from the per-input summaries
    of :func:`sawdist.summaries.summarize`) and the pair statistics of the analyses all compute it here.

    Parameters
    ----------
    gram, same_seed_gram : array_like, shape (..., K, K)
        G and P.
    count : array_like, shape (..., K)
        n_k, the number of valid draws of each capacity.
    same_seed_count : array_like, shape (..., K, K)
        c, the number of seeds valid at both capacities (c[k, k] = n_k).

    Returns
    -------
    rho : ndarray, shape (..., K, K)
        NaN where there is no pair of valid draws with different seeds.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])  # K = 2 capacities, 2 seeds, d = 2
    >>> R = u.sum(axis=1)
    >>> stats.similarity_from_sums(R @ R.T, np.einsum("ksd,jsd->kj", u, u), [2, 2], [[2, 2], [2, 2]])
    array([[0. , 0.5],
           [0.5, 1. ]])
    """
    gram = np.asarray(gram, dtype=np.float64)
    n = np.asarray(count, dtype=np.float64)
    pairs = n[..., :, None] * n[..., None, :] - np.asarray(same_seed_count, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (gram - np.asarray(same_seed_gram, dtype=np.float64))
                        / np.where(pairs > 0, pairs, 1.0), np.nan)


def similarity_matrix(directions: DirectionsLike, capacity: int | str | None = None,
                      axis: Axis = None) -> np.ndarray | xr.DataArray:
    """Cross-capacity similarity rho(k1, k2): mean cosine between models of different seeds.

    rho(k1, k2) averages u_{k1,s}^T u_{k2,s'} over all pairs of valid draws with s != s' (for k1 = k2 as well as
    k1 != k2; models with the same seed index may share their random streams, so those pairs are left out). By
    identity 2 of docs/theory/identities.md (the convergence law) its expectation is
    m(k1) m(k2) cos(mu_{k1}, mu_{k2}); on the diagonal it equals the unbiased m2_hat(k) of
    :func:`mean_resultant_length`. Compare it with :func:`predicted_similarity`.

    Computed from resultants by :func:`similarity_from_sums`, in O(K^2 n d): sum_{s != s'} u_{k1,s}^T u_{k2,s'} =
    R_{k1}^T R_{k2} - sum_s u_{k1,s}^T u_{k2,s}, and the count of pairs is n_{k1} n_{k2} - #{s valid at both}.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Arrays: shape ``(..., K, n_seeds, d)`` by default. DataArrays: dims including ``capacity`` and ``axis``
        (``"seed"``) and ``"feature"``; other dims (e.g. ``input``, the inputs) are kept.
    capacity : int or str, optional
        Capacity axis, default ``-3`` for arrays, ``"capacity"`` for DataArrays.
    axis : int or str, optional
        Seed axis, default ``-2`` for arrays, ``"seed"`` for DataArrays.

    Returns
    -------
    rho : ndarray or xarray.DataArray
        Shape ``(..., K, K)``; DataArray dims ``(..., capacity_1, capacity_2)``. NaN where no pair is valid.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])  # K = 2 capacities, 2 seeds
    >>> stats.similarity_matrix(u)
    array([[0. , 0.5],
           [0.5, 1. ]])
    """
    D, X, V, pos = _capacity_layout(directions, capacity, axis)
    R = X.sum(axis=-2)  # (..., K, d)
    vf = V.astype(np.float64)
    rho = similarity_from_sums(R @ np.swapaxes(R, -1, -2), np.einsum("...ksd,...jsd->...kj", X, X), V.sum(axis=-1),
                               vf @ np.swapaxes(vf, -1, -2))
    if D.template is None:
        return rho
    cap = D.batch_dims[pos]
    batch = tuple(d for d in D.batch_dims if d != cap)
    coords = {f"{cap}_{i}": D.template[cap].values for i in (1, 2)} if cap in D.template.coords else {}
    import xarray as xr

    kept = {k: c for k, c in D.template.coords.items() if set(c.dims) <= set(batch)}
    return xr.DataArray(rho, dims=(*batch, f"{cap}_1", f"{cap}_2"), coords={**kept, **coords}, name="rho")


def predicted_similarity(m: ArrayLike | xr.DataArray, mu: DirectionsLike | None = None,
                         capacity: str | None = None) -> np.ndarray | xr.DataArray:
    """Similarity matrix predicted by the convergence law: rho(k1, k2) = m(k1) m(k2) cos(mu_{k1}, mu_{k2}).

    This is identity 2 of docs/theory/identities.md.

    Parameters
    ----------
    m : array_like or xarray.DataArray
        Mean resultant lengths, the capacity axis last (arrays) or dim ``capacity`` (xarray).
    mu : array_like or xarray.DataArray, optional
        Mean directions per capacity, shape ``(..., K, d)``. Omitted: a shared mean direction (hypothesis H2), so the
        prediction is the rank-one matrix m m^T. Plug-in mean directions from few draws in high dimension have
        cosines biased towards 0 (:func:`mean_direction`), so prefer the rank-one form unless mu is known.
    capacity : str, optional
        xarray only: the capacity dim, default ``"capacity"``.

    Returns
    -------
    rho : ndarray or xarray.DataArray
        Shape ``(..., K, K)``; DataArray dims ``(..., capacity_1, capacity_2)``.

    Examples
    --------
    >>> from sawdist import stats
    >>> stats.predicted_similarity([0.5, 0.8])
    array([[0.25, 0.4 ],
           [0.4 , 0.64]])
    """
    if is_dataarray(m):
        cap = "capacity" if capacity is None else capacity
        if cap not in m.dims:
            raise ValueError(f"'capacity' must name a dim of 'm' {m.dims}, got {cap!r}.")
        m1 = m.rename({cap: f"{cap}_1"})
        m2 = m.rename({cap: f"{cap}_2"})
        out = m1 * m2
        if mu is not None:
            out = out * cosine_similarity(mu, axis=cap)
        return out.rename("rho_predicted")
    m = as_float_array(m, "m").astype(np.float64, copy=False)
    out = m[..., :, None] * m[..., None, :]
    if mu is not None:
        out = out * cosine_similarity(np.asarray(mu, dtype=np.float64))
    return out


def ensemble_curve(directions: DirectionsLike, mu: DirectionsLike, sizes: ArrayLike | None = None, axis: Axis = None, *,
                   n_subsets: int = 200, rng: np.random.Generator | int | None = None,
                   random_state: np.random.Generator | int | None = None) -> tuple[np.ndarray | xr.DataArray, ...]:
    """Cosine between the mean of N draws and a reference direction, against N, with its prediction.

    For each ensemble size N, ``n_subsets`` random subsets of N valid draws (without replacement) are averaged
    and the cosine of the average with ``mu`` is averaged over subsets. The prediction is the ensemble law,
    identity 4 of docs/theory/identities.md:

        cos(u_bar_N, mu) ~ E[u_bar_N^T mu] / sqrt(E||u_bar_N||^2) = c / sqrt(m^2 + (1 - m^2) / N),

    with c = mean of the cosines u_i^T mu (= m cos(mu_pop, mu) for a reference mu fixed independently of the draws)
    and m^2 the unbiased m2_hat of :func:`mean_resultant_length`. It is a ratio of expectations, exact as N grows or
    as d grows (the norm concentrates), and slightly off for N ~ 1 in low d.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors, draws along ``axis``; NaN rows are skipped.
    mu : array_like or xarray.DataArray
        Reference unit vector(s) (e.g. the mean direction of a large-capacity family), broadcast against the
        directions without their draw axis. It must not be computed from the same draws, or the curve is biased up.
    sizes : array_like of int, optional
        Ensemble sizes, default ``1 .. n``. Sizes above the valid count of an element give NaN there.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.
    n_subsets : int
        Subsets per size: random ones, or all of them when there are no more than ``n_subsets`` (exact average).
    rng : numpy.random.Generator or int, optional
        Source of the subsets.
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.

    Returns
    -------
    observed, predicted : ndarray or xarray.DataArray
        Shape ``(..., len(sizes))``; DataArray dim ``"ensemble_size"`` with the sizes as coordinate.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> u = np.eye(4)[:3]  # three orthogonal draws
    >>> obs, pred = stats.ensemble_curve(u, np.ones(4) / 2, sizes=[1, 3], rng=0)
    >>> np.round(obs, 6)
    array([0.5     , 0.866025])
    """
    D = as_directions(directions, axis, min_rows=2)
    n_max = D.valid.shape[-1]
    sizes = np.arange(1, n_max + 1) if sizes is None else np.atleast_1d(np.asarray(sizes))
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or sizes.min() < 1:
        raise ValueError(f"'sizes' must be positive integers, got {sizes!r}.")
    if int(n_subsets) < 1:
        raise ValueError(f"'n_subsets' must be a positive integer, got {n_subsets!r}.")
    rng = as_generator(rng, random_state)
    if D.template is not None:
        if not is_dataarray(mu):
            raise ValueError("'mu' must be a DataArray when 'directions' is one.")
        feature = feature_dim_of(D.template)
        mu_b = mu.broadcast_like(D.template.isel({D.draw_dim: 0}, drop=True))
        mu_arr = mu_b.transpose(*D.batch_dims, feature).values.astype(np.float64)
    else:
        mu_arr = as_float_array(mu, "mu")
    if mu_arr.shape[-1] != D.dim:
        raise ValueError(f"'mu' must have {D.dim} features like 'directions', got {mu_arr.shape[-1]}.")
    check_vectors(mu if D.template is not None else mu_arr, "mu", nan_rows=False)
    mu_arr = mu_arr.astype(np.float64, copy=False)
    mu_arr = np.broadcast_to(mu_arr, D.values.shape[:-2] + D.values.shape[-1:])
    t = np.einsum("...nd,...d->...n", D.values, mu_arr)  # (..., n), zero on invalid rows
    n = D.n
    c = t.sum(axis=-1) / n
    R = D.values.sum(axis=-2)
    m2 = _mean_resultant_length_from_R2(np.einsum("...i,...i->...", R, R), n, "unbiased", squared=True)
    N = sizes.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = c[..., None] / np.sqrt(m2[..., None] + (1.0 - m2[..., None]) / N)
    predicted = np.where(sizes <= n[..., None], predicted, np.nan)
    # Subsets of the valid rows of every batch element at once. Random: key every row uniformly, key invalid rows
    # +inf; the N smallest keys index a uniform N-subset of the valid rows. Exhaustive, when every element has the
    # same valid count and there are at most n_subsets subsets: all combinations of the valid rows, so the average
    # is exact (and equals the prediction at N = 1 and N = n, where identity 4 is an algebraic identity).
    batch = D.values.shape[:-2]
    X = D.values[..., None, :, :]  # (..., 1, n, d)
    n_common = int(n.flat[0]) if n.size and np.all(n == n.flat[0]) else None
    valid_first = np.argsort(~D.valid, axis=-1, kind="stable")
    observed = np.empty((*batch, sizes.size))
    for j, size in enumerate(sizes):
        size = int(size)
        if size > n_max:
            observed[..., j] = np.nan
            continue
        if n_common is not None and size <= n_common and math.comb(n_common, size) <= n_subsets:
            combos = np.array(list(itertools.combinations(range(n_common), size)), dtype=np.intp)
            idx = valid_first[..., combos]  # (..., C, N)
        else:
            keys = np.where(D.valid[..., None, :], rng.random((*batch, n_subsets, n_max)), np.inf)
            idx = np.argsort(keys, axis=-1)[..., :size]  # (..., n_subsets, N)
        S = np.take_along_axis(X, idx[..., None], axis=-2).sum(axis=-2)  # (..., subsets, d)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.einsum("...sd,...d->...s", S, mu_arr) / np.linalg.norm(S, axis=-1)
        observed[..., j] = np.where(size <= n, cos.mean(axis=-1), np.nan)
    kw = {"extra_dims": ("ensemble_size",), "extra_coords": {"ensemble_size": sizes}}
    return D.wrap(observed, name="cosine", **kw), D.wrap(predicted, name="cosine_predicted", **kw)


def rayleigh_test(directions: DirectionsLike, axis: Axis = None, *, method: str = "moments") -> RayleighResult:
    """Rayleigh test of uniformity on S^{d-1}, valid for any n and any d (including d >> n).

    The statistic is ||R||^2. Under uniformity its exact finite-n moments are

        E||R||^2 = n,   Var||R||^2 = 2 n (n - 1) / d.

    Derivation: ||R||^2 = n + 2 sum_{i<j} c_ij with c_ij = u_i^T u_j. For independent uniform u_i, u_j,
    E[c_ij] = 0 and E[c_ij^2] = E[u_i^T E[u_j u_j^T] u_i] = 1/d; distinct pairs are uncorrelated, since
    E[c_ij c_ik] = E[u_j]^T E[u_i u_i^T] E[u_k] = 0 for j != k. Hence Var = 4 (n choose 2) / d.

    Parameters
    ----------
    directions : array_like or xarray.DataArray
        Unit vectors, draws along ``axis``; NaN rows are skipped. At least 2 valid rows.
    axis : int or str, optional
        Axis (or dim) of the draws; see the module docstring.
    method : {'moments', 'normal', 'chisq'}
        Null distribution of ||R||^2:

        - ``'moments'`` (default): the scaled chi-square a chi2_nu with the exact mean and variance,
          a = (n - 1)/d and nu = n d / (n - 1). It tends to the classical limit (n -> oo, d fixed: d ||R||^2 / n ~
          chi2_d) and to the high-d normal limit (d -> oo, any n >= 2), so it is accurate in both regimes.
        - ``'normal'``: the high-d limit, zscore ~ N(0, 1) (the sqrt(d) c_ij become independent standard normal).
        - ``'chisq'``: the classical large-n limit d ||R||^2 / n ~ chi2_d (Mardia & Jupp 2000, §10.4.1). Its variance
          2 d exceeds the exact 2 d (n - 1) / n, so for small n it is conservative (loses power); use it for n >> 1.

    Returns
    -------
    RayleighResult

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist import stats
    >>> rng = np.random.default_rng(0)
    >>> u = rng.standard_normal((20, 3072))
    >>> u /= np.linalg.norm(u, axis=1, keepdims=True)
    >>> res = stats.rayleigh_test(u)
    >>> bool(res.pvalue > 1e-3)
    True
    """
    if method not in ("moments", "normal", "chisq"):
        raise ValueError(f"'method' must be 'moments', 'normal' or 'chisq', got {method!r}.")
    D = as_directions(directions, axis, min_rows=2)
    R = D.values.sum(axis=-2)
    stat = np.einsum("...i,...i->...", R, R)
    n = D.n.astype(np.float64)
    d = float(D.dim)
    z = (stat - n) / np.sqrt(2.0 * n * (n - 1.0) / d)
    if method == "moments":
        a = (n - 1.0) / d
        p = sc.chdtrc(n * d / (n - 1.0), stat / a)
    elif method == "normal":
        p = sc.ndtr(-z)
    else:
        p = sc.chdtrc(d, d * stat / n)
    w = D.wrap
    return RayleighResult(
        statistic=w(stat, name="statistic"),
        zscore=w(z, name="zscore"),
        pvalue=w(p, name="pvalue"),
        n=w(D.n, name="n"),
        n_skipped=w(D.n_skipped, name="n_skipped"),
        dim=D.dim,
        method=method,
    )
