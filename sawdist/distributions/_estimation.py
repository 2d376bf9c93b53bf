"""Estimation kernels shared by the parametric fits. They take validated float64 unit rows (n, d), n >= 2: the
public ``fit`` methods (through :func:`sawdist._validation.as_unit_rows`) and :func:`sawdist.fit` (through
:func:`sawdist._validation.as_rows`) validate once and call them."""

from __future__ import annotations

import numpy as np


def mean_direction_and_rbar(x: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """(mean direction, mean resultant length ||R||/n) of validated rows; errors where no finite MLE exists."""
    resultant = np.einsum("ij->j", x)
    length = float(np.linalg.norm(resultant))
    if length == 0.0:
        raise ValueError(f"'{name}' has a zero resultant: the mean direction is undefined (the rows cancel exactly).")
    rbar = length / x.shape[0]
    if rbar >= 1.0 or np.all(x == x[0]):
        raise ValueError(f"'{name}' rows are all identical: the maximum-likelihood concentration is infinite.")
    return resultant / length, rbar
