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
are formed, O(slots^2 seeds d) in all. Inputs are processed in chunks, so a CIFAR-size dataset never sits in memory as
float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sawdist.stats import similarity_from_sums

from ._common import families_of, family_layout, input_chunks, jackknife_se, nanmean

__all__ = ["PairStats", "pair_stats"]


@dataclasses.dataclass
class PairStats:
    """Pair sums of all slots (family-major: slot = family index * K + capacity index).

    Attributes
    ----------
    families, capacities : list, ndarray
    gram, same_seed_gram : ndarray (input, J, J)
        G = R_j'R_l and P = sum_s u_{j,s}'u_{l,s}.
    count : ndarray (input, J)
        Valid seeds of each slot.
    same_seed_count : ndarray (input, J, J)
        Seeds valid at both slots.
    seed_gram, seed_resultant : ndarray (seed, input, J, J)
        Per seed s: u_{j,s}'u_{l,s} and u_{j,s}'R_l (for the delete-one-seed replicates).
    seed_valid : ndarray (seed, input, J)
        Validity of each seed's direction, as float.
    """

    families: list
    capacities: np.ndarray
    gram: np.ndarray
    same_seed_gram: np.ndarray
    count: np.ndarray
    same_seed_count: np.ndarray
    seed_gram: np.ndarray
    seed_resultant: np.ndarray
    seed_valid: np.ndarray

    @property
    def n_seeds(self) -> int:
        return self.seed_gram.shape[0]

    def slot(self, family_index: int, capacity_index: int) -> int:
        return family_index * len(self.capacities) + capacity_index

    def block(self, f: int, g: int | None = None) -> slice:
        """Slots of family f (as a slice)."""
        K = len(self.capacities)
        return slice(f * K, (f + 1) * K)

    def per_input(self, deleted: int | None = None) -> np.ndarray:
        """rho_x(j, l), NaN where no pair is valid; with ``deleted``, the replicate without that seed."""
        if deleted is None:
            return similarity_from_sums(self.gram, self.same_seed_gram, self.count, self.same_seed_count)
        uu, uR, v = self.seed_gram[deleted], self.seed_resultant[deleted], self.seed_valid[deleted]
        return similarity_from_sums(self.gram - uR - np.swapaxes(uR, -1, -2) + uu, self.same_seed_gram - uu,
                                    self.count - v, self.same_seed_count - v[..., :, None] * v[..., None, :])

    def statistic(self, fn):
        """``fn(rho_x)`` on the full data and on every delete-one-seed replicate: (estimate, se, replicates)."""
        est = np.asarray(fn(self.per_input()), dtype=float)
        reps = np.stack([np.asarray(fn(self.per_input(s)), dtype=float) for s in range(self.n_seeds)])
        return est, jackknife_se(reps, axis=0), reps


def mean_rho(rho_x):
    """rho(j, l) averaged over inputs (inputs without a valid pair are skipped)."""
    return nanmean(rho_x, axis=0)


def mean_m(rho_x):
    """m(j) = sqrt(mean_x rho_x(j, j)): the root mean square over inputs of m_x(j), from the unbiased m_hat^2.

    Averaging m_hat^2 before the square root keeps the estimate free of the per-input noise bias that a mean of
    sqrt(max(m_hat_x^2, 0)) would have (Jensen's inequality and the clipping at 0, both of order 1/(n^2 d)).
    """
    d = np.diagonal(rho_x, axis1=-2, axis2=-1)
    return np.sqrt(np.maximum(nanmean(d, axis=0), 0.0))


def rank_one(rho_x):
    """The rank-one prediction averaged over inputs: mean_x m_x(j) m_x(l) (identity 2 with a shared mean)."""
    m = np.sqrt(np.maximum(np.diagonal(rho_x, axis1=-2, axis2=-1), 0.0))
    return nanmean(m[:, :, None] * m[:, None, :], axis=0)


def alignment(rho_x):
    """Bias-aware cos(mu_j, mu_l) = sum_x rho_x(j, l) / sqrt(sum_x rho_x(j, j) * sum_x rho_x(l, l)).

    Every sum is unbiased (identities 2 and 3), so the ratio has no small-sample bias of its own (a ratio of plug-in
    norms would be biased towards 0 in high dimension; a per-input sqrt of m_hat^2 is biased by its noise). When
    m_x(k) varies over inputs x with profiles that are not proportional, the Cauchy–Schwarz inequality makes this a
    lower bound of the cosine: the estimate is conservative for H2.
    """
    ok = np.isfinite(rho_x)
    s = np.where(ok, rho_x, 0.0).sum(0)
    d = np.maximum(np.diagonal(s), 0.0)
    den = np.sqrt(d[:, None] * d[None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, s / np.where(den > 0, den, 1.0), np.nan)


def pair_stats(ds, *, chunk: int | None = None) -> PairStats:
    """Pair sums and jackknife replicates of every (family, capacity) slot of a saliency dataset."""
    families = families_of(ds)
    caps = np.asarray(ds["capacity"].values)
    n_inputs = ds.sizes["input"]
    n_seeds = ds.sizes["seed"]
    J = len(families) * len(caps)
    chunks = input_chunks(ds, J) if chunk is None else [np.arange(i, min(i + chunk, n_inputs))
                                                        for i in range(0, n_inputs, chunk)]
    gram = np.empty((n_inputs, J, J))
    count = np.empty((n_inputs, J))
    seed_gram = np.empty((n_seeds, n_inputs, J, J))
    seed_resultant = np.empty((n_seeds, n_inputs, J, J))
    seed_valid = np.empty((n_seeds, n_inputs, J))
    for idx in chunks:
        parts = [family_layout(ds, f, idx) for f in families]
        U = np.concatenate([p[0] for p in parts])  # (J, S, n, d)
        V = np.concatenate([p[1] for p in parts]).astype(np.float64)  # (J, S, n)
        R = U.sum(axis=1)  # (J, n, d)
        gram[idx] = np.einsum("jnd,lnd->njl", R, R)
        seed_gram[:, idx] = np.einsum("jsnd,lsnd->snjl", U, U)  # same-seed products
        seed_resultant[:, idx] = np.einsum("jsnd,lnd->snjl", U, R)  # u_{j,s}' R_l
        seed_valid[:, idx] = V.transpose(1, 2, 0)
        count[idx] = V.sum(axis=1).T
    same_seed_count = np.einsum("snj,snl->njl", seed_valid, seed_valid)
    return PairStats(families, caps, gram, seed_gram.sum(axis=0), count, same_seed_count, seed_gram, seed_resultant,
                     seed_valid)
