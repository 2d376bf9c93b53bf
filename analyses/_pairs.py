r"""Per-input pair statistics of every (family, capacity) slot, with delete-one-seed jackknife replicates.

For slots j, l (a slot is one family at one capacity) and one input x, with unit directions u_{j,s}(x) (zero where
invalid) and resultants R_j = sum_s u_{j,s}, the sums of :func:`sawdist.summaries.summarize` are kept:

    G_x(j, l) = R_j' R_l,   P_x(j, l) = sum_s u_{j,s}' u_{l,s},   n_x(j),   c_x(j, l) = #{s valid at j and l},

and rho_x(j, l) = (G_x - P_x) / (n_x(j) n_x(l) - c_x), the mean cosine over pairs of different seeds, comes from the
one definition of the similarity, :func:`sawdist.stats.similarity_from_sums` (as
:func:`sawdist.stats.similarity_matrix` and :func:`sawdist.summaries.similarity`). On the diagonal it is the unbiased
m_hat^2 of identity 3, off it an unbiased estimate of m_j m_l cos(mu_j, mu_l) (identity 2). Pairs with the same seed
index are left out everywhere (models with the same seed may share their random streams).

Deleting seed s changes R_j to R_j - u_{j,s}, so G_{x,-s} = G_x - u_{j,s}'R_l - R_j'u_{l,s} + u_{j,s}'u_{l,s} and
P_{x,-s} = P_x - u_{j,s}'u_{l,s}: every jackknife replicate costs O(slots^2) per input once the products u_{j,s}'R_l
are formed, O(slots^2 seeds d) in all. The statistics of the findings are functions of the mean of the finite rho_x
over inputs (or over the inputs of the Bayesian fits), so each replicate is kept only as the sums and counts of its
rho_x over inputs, (seed + 1, J, J): the pass over the directions (:mod:`.blocks`) adds them block by block, and
memory never holds the replicates of every input.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._common import jackknife_se


@dataclasses.dataclass
class PairStats:
    """Pair statistics of all slots (family-major: slot = family index * K + capacity index).

    Attributes
    ----------
    families, capacities : list, ndarray
    rho : ndarray (input, J, J)
        rho_x(j, l) of the full data, NaN where no pair of different seeds is valid.
    sums : list of (ndarray, ndarray)
        Per set of inputs (0: all inputs; 1: the inputs of the Bayesian fits, when there are such), the sums and
        counts over its inputs of the finite rho_x(j, l): row 0 for the full data, row s + 1 without seed s;
        (seed + 1, J, J) each.
    """

    families: list
    capacities: np.ndarray
    rho: np.ndarray
    sums: list

    @property
    def n_seeds(self) -> int:
        return self.sums[0][0].shape[0] - 1

    def slot(self, family_index: int, capacity_index: int) -> int:
        return family_index * len(self.capacities) + capacity_index

    def block(self, f: int) -> slice:
        """Slots of family f (as a slice)."""
        K = len(self.capacities)
        return slice(f * K, (f + 1) * K)

    def per_input(self) -> np.ndarray:
        """rho_x(j, l) of the full data, NaN where no pair is valid."""
        return self.rho

    def statistic(self, fn, inputs: int = 0):
        """``fn(total, count)`` of the sums over a set of inputs (0: all; 1: the Bayesian fits' inputs), on the full
        data and on every delete-one-seed replicate: (estimate, se, replicates)."""
        total, count = self.sums[inputs]
        est = np.asarray(fn(total[0], count[0]), dtype=float)
        reps = np.stack([np.asarray(fn(total[s], count[s]), dtype=float) for s in range(1, total.shape[0])])
        return est, jackknife_se(reps, axis=0), reps


def mean_rho(total, count):
    """rho(j, l) averaged over inputs (inputs without a valid pair are skipped)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def mean_m(total, count):
    """m(j) = sqrt(mean_x rho_x(j, j)): the root mean square over inputs of m_x(j), from the unbiased m_hat^2.

    Averaging m_hat^2 before the square root keeps the estimate free of the per-input noise bias that a mean of
    sqrt(max(m_hat_x^2, 0)) would have (Jensen's inequality and the clipping at 0, both of order 1/(n^2 d)).
    """
    return np.sqrt(np.maximum(np.diagonal(mean_rho(total, count)), 0.0))


def rank_one(rho_x):
    """The rank-one prediction averaged over inputs: mean_x m_x(j) m_x(l) (identity 2 with a shared mean)."""
    from ._common import nanmean

    m = np.sqrt(np.maximum(np.diagonal(rho_x, axis1=-2, axis2=-1), 0.0))
    return nanmean(m[:, :, None] * m[:, None, :], axis=0)


def alignment(total, count):
    """Bias-aware cos(mu_j, mu_l) = sum_x rho_x(j, l) / sqrt(sum_x rho_x(j, j) * sum_x rho_x(l, l)).

    Every sum is unbiased (identities 2 and 3), so the ratio has no small-sample bias of its own (a ratio of plug-in
    norms would be biased towards 0 in high dimension; a per-input sqrt of m_hat^2 is biased by its noise). When
    m_x(k) varies over inputs x with profiles that are not proportional, the Cauchy–Schwarz inequality makes this a
    lower bound of the cosine: the estimate is conservative for H2. (``count`` is not used: the sums are over the
    inputs where rho_x is finite.)
    """
    d = np.maximum(np.diagonal(total), 0.0)
    den = np.sqrt(d[:, None] * d[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, total / np.where(den > 0, den, 1.0), np.nan)


def pair_stats(ds, *, memory: int | None = None, excluded=None) -> PairStats:
    """Pair statistics and jackknife sums of every (family, capacity) slot of a saliency dataset, in one pass
    (:func:`sawdist.analyses.blocks.scan`, blocks within ``memory`` bytes); ``excluded`` (family, capacity, seed)
    marks models read as not valid."""
    from . import blocks

    families = [str(f) for f in np.asarray(ds["family"].values).tolist()]
    shape = tuple(ds.sizes[d] for d in ("family", "capacity", "seed"))
    spec = blocks.ScanSpec(*shape, ds.sizes["feature"],
                           excluded=np.zeros(shape, bool) if excluded is None else np.asarray(excluded, bool),
                           cosines=False)
    res = blocks.scan(ds, spec, memory=memory or blocks.DEFAULT_MEMORY)
    return PairStats(families, np.asarray(ds["capacity"].values), res.rho, res.sums)
