"""Estimation kernels shared by the parametric fits. They take validated float64 unit rows (n, d), n >= 2:
the public ``fit`` methods and :func:`sawdist.fit` validate once and call them."""

from __future__ import annotations

import numpy as np

from .._validation import check_unit_vectors


def validated_rows(x, name: str) -> np.ndarray:
    """`x` as float64 unit rows of shape (n, d) with n >= 2, or a ValueError naming `name`."""
    x = check_unit_vectors(x, name)
    if x.ndim != 2:
        raise ValueError(f"'{name}' must be a 2-D array of shape (n, d), got shape {x.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"'{name}' must have at least 2 rows, got {x.shape[0]}.")
    return x


def mean_direction_and_rbar(x: np.ndarray, name: str):
    """(mean direction, mean resultant length ||R||/n) of validated rows; errors where no finite MLE exists."""
    resultant = np.einsum("ij->j", x)
    length = float(np.linalg.norm(resultant))
    if length == 0.0:
        raise ValueError(f"'{name}' has a zero resultant: the mean direction is undefined (the rows cancel exactly).")
    rbar = length / x.shape[0]
    if rbar >= 1.0 or np.all(x == x[0]):
        raise ValueError(f"'{name}' rows are all identical: the maximum-likelihood concentration is infinite.")
    return resultant / length, rbar
