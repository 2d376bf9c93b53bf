"""Small estimation helpers shared by the parametric fits."""

from __future__ import annotations

import numpy as np

from .._validation import check_unit_vectors


def mean_direction_and_rbar(x, name: str):
    """(mean direction, mean resultant length ||R||/n, n, d) of unit rows `x` (n, d), with the fit's checks."""
    x = check_unit_vectors(x, name)
    if x.ndim != 2:
        raise ValueError(f"'{name}' must be a 2-D array of shape (n, d), got shape {x.shape}.")
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"'{name}' must have at least 2 rows, got {n}.")
    resultant = x.sum(axis=0)
    length = float(np.linalg.norm(resultant))
    if length == 0.0:
        raise ValueError(f"'{name}' has a zero resultant: the mean direction is undefined (the rows cancel exactly).")
    rbar = length / n
    if np.all(x == x[0]) or rbar >= 1.0:
        raise ValueError(
            f"'{name}' rows are all identical: the maximum-likelihood concentration is infinite."
        )
    return resultant / length, rbar, n, dim
