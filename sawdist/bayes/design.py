"""The validated design of a summary: the arrays the convergence model and the predictions read, checked once.

:func:`check_summary` turns the output of :func:`sawdist.summarize` into a :class:`Design`: the Gram matrices and
counts as float and integer arrays (family, input, capacity), the dimension d, and the grouping of families into
architectures (families of one architecture share the mean direction mu(x)) as padded slots. Every message names the
first offending coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from collections.abc import Sequence

    #: the ``architecture`` argument: a dict from family to label, or one label per family, or None (every family
    #: its own architecture)
    ArchitectureLike = dict[str, str] | Sequence[str] | None

__all__ = ["Design", "check_summary"]


@dataclass
class Design:
    """Arrays of a checked summary (family F, input N, capacity K), grouped into architectures A with J slots.

    Built by :func:`check_summary`; the convergence model, the fit and the mean-direction posterior read it instead
    of the summary (the observed similarity checks the summary with it). The parameters are kept as attributes of the
    same names.

    Parameters
    ----------
    dim : int
        The dimension d of the directions.
    families, inputs, capacities : numpy.ndarray
        Coordinates of the summary (capacities are numbers > 0).
    gram : numpy.ndarray
        (F, N, K, K) Gram matrices of the resultants, float64.
    count : numpy.ndarray
        (F, N, K) numbers of directions (seeds), int64, every one >= 2.
    architectures : numpy.ndarray
        (A,) architecture labels in order of first appearance.
    slot_family : numpy.ndarray
        (A, J) family index of each slot of an architecture, -1 for padding.
    slot_capacity : numpy.ndarray
        (A, J) capacity index of each slot.
    group_gram : numpy.ndarray
        (A, N, J, J) Gram matrices of the resultants of all slots of an architecture (zero for padding).
    group_count : numpy.ndarray
        (A, N, J) counts of the slots (zero for padding).
    trivial_groups : bool
        True when every family is its own architecture (``group_gram`` and ``group_count`` are then ``gram`` and
        ``count`` in architecture order, and the summary needs no ``resultant``).
    """

    dim: int
    families: np.ndarray
    inputs: np.ndarray
    capacities: np.ndarray
    gram: np.ndarray
    count: np.ndarray
    architectures: np.ndarray
    slot_family: np.ndarray
    slot_capacity: np.ndarray
    group_gram: np.ndarray
    group_count: np.ndarray
    trivial_groups: bool


def _where(summary, da, mask) -> str:
    """The coordinates of the first True of ``mask`` (dims of ``da``), as ``dim=value, ...`` for a message."""
    idx = np.argwhere(np.asarray(mask))[0]
    return ", ".join(
        f"{dim}={summary[dim].values[i].item()!r}" for dim, i in zip(da.dims, idx) if dim in summary.coords
    )


def check_summary(summary: xr.Dataset, architecture: ArchitectureLike = None) -> Design:
    """Check a summary and return its :class:`Design`.

    Parameters
    ----------
    summary : xarray.Dataset
        Output of :func:`sawdist.summarize`: ``gram`` (family, input, capacity, capacity_b) finite and symmetric,
        with ``gram[k, k]`` in [0, count**2]; ``count`` (family, capacity, input), whole numbers >= 2; coordinates
        on all four dims, capacities numbers > 0 and ``capacity_b`` equal to ``capacity``; the dimension d as
        ``n_features`` (an integer >= 2) or as the size of a ``feature`` dim; ``resultant`` (family, capacity,
        input, feature) when families share an architecture.
    architecture : dict or sequence, optional
        Architecture label of each family (a dict from family to label, or one label per family in order);
        families with the same label share mu(x). By default every family is its own architecture.

    Returns
    -------
    Design
        The arrays of the summary and the slots of its architectures.

    Raises
    ------
    TypeError
        If ``summary`` is not an :class:`xarray.Dataset`.
    ValueError
        If a variable, dim or coordinate is missing or malformed (the message names the first offending
        coordinates), or ``architecture`` does not label every family.

    Examples
    --------
    >>> from sawdist.bayes import simulate_summary
    >>> from sawdist.bayes.design import check_summary
    >>> summary = simulate_summary(dim=8, capacities=[4, 16], n_inputs=3, n_seeds=4, rng=0)
    >>> design = check_summary(summary)
    >>> design.dim, design.gram.shape, design.count.shape, design.trivial_groups
    (8, (1, 3, 2, 2), (1, 3, 2), True)
    """
    if not isinstance(summary, xr.Dataset):
        raise TypeError(f"'summary' must be an xarray.Dataset from sawdist.summarize, got {type(summary).__name__}.")
    for name, dims in (("gram", ("family", "input", "capacity", "capacity_b")),
                       ("count", ("family", "capacity", "input"))):
        if name not in summary.variables:
            raise ValueError(f"'summary' must have a variable {name!r} (see sawdist.summarize), got none.")
        if set(summary[name].dims) != set(dims):
            raise ValueError(f"'summary' variable {name!r} must have dims ({', '.join(dims)}), "
                             f"got ({', '.join(map(str, summary[name].dims))}).")
    for dim in ("family", "input", "capacity", "capacity_b"):
        if dim not in summary.coords:
            raise ValueError(f"'summary' dim {dim!r} must have a coordinate, got none.")
    capacities = np.asarray(summary["capacity"].values)
    if capacities.dtype.kind not in "iuf":
        raise ValueError(f"'summary' capacities must be numbers, got dtype {capacities.dtype}.")
    if np.any(~(capacities > 0)):
        raise ValueError(f"'summary' capacities must be > 0, got {capacities[~(capacities > 0)][0].item()!r}.")
    if not np.array_equal(summary["capacity_b"].values, capacities):
        raise ValueError(f"'summary' coordinate 'capacity_b' must equal 'capacity', got "
                         f"{summary['capacity_b'].values.tolist()} against {capacities.tolist()}.")
    if "n_features" in summary.variables:
        dim = summary["n_features"].values
        if dim.shape != () or dim.dtype.kind not in "iuf" or dim != np.round(dim) or dim < 2:
            raise ValueError(f"'summary' n_features must be an integer >= 2, got {dim.tolist()!r}.")
        dim = int(dim)
    elif "feature" in summary.dims:
        dim = summary.sizes["feature"]
    else:
        raise ValueError("'summary' must give the dimension d by a variable 'n_features' or a dim 'feature', "
                         "got neither.")
    gram_da = summary["gram"].transpose("family", "input", "capacity", "capacity_b")
    count_da = summary["count"].transpose("family", "input", "capacity")
    gram = np.asarray(gram_da.values, dtype=np.float64)
    count = np.asarray(count_da.values)
    bad = ~np.isfinite(gram)
    if bad.any():
        raise ValueError(f"'summary' gram must be finite, got nan or inf at {_where(summary, gram_da, bad)} "
                         "(variables with mismatched coordinates leave NaN after alignment).")
    if count.dtype.kind == "f":
        if np.any(~np.isfinite(count)) or np.any(count != np.round(count)):
            where = _where(summary, count_da, ~np.isfinite(count) | (count != np.round(count)))
            raise ValueError(f"'summary' count must be whole numbers, got a non-integer value at {where} "
                             "(variables with mismatched coordinates leave NaN after alignment).")
    elif count.dtype.kind not in "iu":
        raise ValueError(f"'summary' count must be integers, got dtype {count.dtype}.")
    count = count.astype(np.int64)
    low = count < 2
    if low.any():
        raise ValueError(f"'summary' count must be >= 2 (two valid seeds per family, capacity and input), got "
                         f"{count[low][0].item()} at {_where(summary, count_da, low)}.")
    asym = np.abs(gram - np.swapaxes(gram, -1, -2)) > 1e-8 * (1.0 + np.abs(gram))
    if asym.any():
        raise ValueError(f"'summary' gram must be symmetric in capacity and capacity_b, got an asymmetric matrix at "
                         f"{_where(summary, gram_da, asym.any(axis=(-1, -2)))}.")
    diag = np.diagonal(gram, axis1=-2, axis2=-1)
    off = (diag < -1e-9) | (diag > count.astype(float) ** 2 * (1 + 1e-6))
    if off.any():
        raise ValueError(f"'summary' gram[k, k] (squared resultant length) must lie in [0, count**2], got "
                         f"{diag[off][0].item()!r} at {_where(summary, count_da, off)}.")

    families = summary["family"].values
    F, N, K = count.shape
    if architecture is None:
        labels = families
    else:
        if isinstance(architecture, dict):
            missing = [f for f in families.tolist() if f not in architecture]
            if missing:
                raise ValueError(f"'architecture' must map every family to a label, got no label for {missing[0]!r}.")
            labels = np.array([architecture[f] for f in families.tolist()])
        else:
            labels = np.asarray(architecture)
            if labels.shape != (F,):
                raise ValueError(f"'architecture' must give one label per family ({F}), got shape {labels.shape}.")
    architectures, first = np.unique(labels, return_index=True)
    architectures = architectures[np.argsort(first)]
    members = [np.flatnonzero(labels == a) for a in architectures]
    trivial = all(len(m) == 1 for m in members) and len(members) == F
    J = max(len(m) for m in members) * K
    A = len(architectures)
    slot_family = np.full((A, J), -1)
    slot_capacity = np.zeros((A, J), dtype=int)
    for a, m in enumerate(members):
        slot_family[a, : len(m) * K] = np.repeat(m, K)
        slot_capacity[a, : len(m) * K] = np.tile(np.arange(K), len(m))
    if trivial:
        order = [m[0] for m in members]
        group_gram, group_count = gram[order], count[order]
    else:
        if "resultant" not in summary.variables:
            raise ValueError("'architecture' sharing a mean across families needs the variable 'resultant' in "
                             "'summary', got none.")
        R = np.asarray(summary["resultant"].transpose("family", "capacity", "input", "feature").values, np.float64)
        group_gram = np.zeros((A, N, J, J))
        group_count = np.zeros((A, N, J), dtype=np.int64)
        for a, m in enumerate(members):
            Ra = R[m].reshape(len(m) * K, N, -1).transpose(1, 0, 2)  # (N, slots, d)
            group_gram[a, :, : len(m) * K, : len(m) * K] = Ra @ Ra.transpose(0, 2, 1)
            group_count[a, :, : len(m) * K] = count[m].transpose(1, 0, 2).reshape(N, len(m) * K)
    return Design(dim=dim, families=families, inputs=summary["input"].values, capacities=capacities,
                  gram=gram, count=count, architectures=architectures, slot_family=slot_family,
                  slot_capacity=slot_capacity, group_gram=group_gram, group_count=group_count,
                  trivial_groups=trivial)
