"""Estimation kernels shared by the parametric fits. They take validated float64 unit rows (n, d), n >= 2: the
public ``fit`` methods (through :func:`sawdist._validation.as_unit_rows`) and :func:`sawdist.fit` (through
:func:`sawdist._validation.as_rows`) validate once and call them."""

from __future__ import annotations

import numpy as np

#: Smallest 1 - (mean resultant length) a parametric fit accepts (see mean_direction_and_mean_resultant_length).
MIN_GAP = 1e-10


def mean_direction_and_mean_resultant_length(x: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """(mean direction, mean resultant length ||R||/n) of validated rows; errors where no finite MLE exists."""
    resultant = np.einsum("ij->j", x)
    length = float(np.linalg.norm(resultant))
    if length == 0.0:
        raise ValueError(f"'{name}' has a zero resultant: the mean direction is undefined (the rows cancel exactly).")
    m = length / x.shape[0]
    if np.all(x == x[0]):
        raise ValueError(f"'{name}' rows are all identical: the maximum-likelihood concentration is infinite.")
    if m > 0.9:
        # Near 1, 1 - ||R||/n cancels, and the rows' norm slop (up to 10 eps sqrt(d), accepted by the unit check and
        # not renormalized for float64 input) shifts ||R||/n by as much: rows 1e-10 apart gave m >= 1 and were called
        # identical. 1 - m is measured instead from the spread of the exactly normalized rows about their mean,
        # 1 - m^2 = mean_i ||u_i - u_bar||^2 (an identity for unit rows), whose terms are differences of nearby rows
        # and carry no cancellation.
        u = x / np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
        dev = u - np.einsum("ij->j", u) / x.shape[0]
        spread = float(np.einsum("ij,ij->", dev, dev)) / x.shape[0]
        gap = spread / (1.0 + np.sqrt(max(1.0 - spread, 0.0)))  # 1 - m
        if gap == 0.0:
            raise ValueError(f"'{name}' rows are all identical: the maximum-likelihood concentration is infinite.")
        if gap < MIN_GAP:
            # The MLE exists, but m is a float64 near 1 (spacing 1.1e-16): below MIN_GAP its last bits are a
            # relative error above ~1e-6 in kappa ~ (d - 1) / (2 (1 - m)), and the log-likelihood
            # n (log C(kappa) + kappa m) loses its digits to cancellation. Refusing beats a silent wrong number.
            raise ValueError(f"'{name}' rows are nearly identical (1 - mean resultant length = {gap:.3g}, below the "
                             f"{MIN_GAP:g} that float64 resolves): the maximum-likelihood concentration is too large "
                             f"to compute accurately.")
        m = 1.0 - gap
    return resultant / length, m
