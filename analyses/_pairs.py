r"""Per-input pair statistics of every (family, capacity) slot, with delete-one-seed jackknife replicates.

For slots j, l (a slot is one family at one capacity) and one input x, with unit directions u_{j,s}(x) (zero where
invalid) and resultants R_j = sum_s u_{j,s}:

    C_x(j, l) = sum over pairs (s, s') with s != s' of u_{j,s}' u_{l,s'} = R_j' R_l - sum_s u_{j,s}' u_{l,s},
    P_x(j, l) = number of such pairs of valid directions,

so rho_x(j, l) = C_x / P_x is the mean cosine between different seeds (:func:`sawdist.stats.similarity_matrix`); on
the diagonal it is the unbiased m_hat^2 of identity 3, off it an unbiased estimate of m_j m_l cos(mu_j, mu_l)
(identity 2). Pairs with the same seed index are left out everywhere (the same seed may share an initialisation).

Deleting seed s changes R_j to R_j - u_{j,s}, so C_{x,-s} = C_x - u_{j,s}'R_l - R_j'u_{l,s} + 2 u_{j,s}'u_{l,s}: every
jackknife replicate costs O(slots^2) per input once the products u_{j,s}'R_l are formed, O(slots^2 seeds d) in all.
Inputs are processed in chunks, so a CIFAR-size dataset never sits in memory as float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ._common import families_of, family_layout, jackknife_se, nanmean, sample_chunks

__all__ = ["PairStats", "pair_stats"]


@dataclasses.dataclass
class PairStats:
    """Pair sums of all slots (family-major: slot = family index * K + capacity index).

    Attributes
    ----------
    families, capacities : list, ndarray
    C, P : ndarray (sample, J, J)
        Sums of cosines over pairs of different seeds, and their counts.
    C_del, P_del : ndarray (seed, sample, J, J)
        The same with one seed deleted (jackknife).
    """

    families: list
    capacities: np.ndarray
    C: np.ndarray
    P: np.ndarray
    C_del: np.ndarray
    P_del: np.ndarray

    @property
    def n_seeds(self) -> int:
        return self.C_del.shape[0]

    def slot(self, family_index: int, capacity_index: int) -> int:
        return family_index * len(self.capacities) + capacity_index

    def block(self, f: int, g: int | None = None) -> slice:
        """Slots of family f (as a slice)."""
        K = len(self.capacities)
        return slice(f * K, (f + 1) * K)

    def per_input(self, deleted: int | None = None) -> np.ndarray:
        """rho_x(j, l), NaN where no pair is valid; with ``deleted``, the replicate without that seed."""
        C, P = (self.C, self.P) if deleted is None else (self.C_del[deleted], self.P_del[deleted])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(P > 0, C / np.where(P > 0, P, 1.0), np.nan)

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
    n_samples = ds.sizes["sample"]
    n_seeds = ds.sizes["seed"]
    J = len(families) * len(caps)
    chunks = sample_chunks(ds, J) if chunk is None else [np.arange(i, min(i + chunk, n_samples))
                                                           for i in range(0, n_samples, chunk)]
    C = np.empty((n_samples, J, J))
    P = np.empty((n_samples, J, J))
    C_del = np.empty((n_seeds, n_samples, J, J))
    P_del = np.empty((n_seeds, n_samples, J, J))
    for idx in chunks:
        parts = [family_layout(ds, f, idx) for f in families]
        U = np.concatenate([p[0] for p in parts])  # (J, S, n, d)
        V = np.concatenate([p[1] for p in parts]).astype(np.float64)  # (J, S, n)
        R = U.sum(axis=1)  # (J, n, d)
        cross = np.einsum("jnd,lnd->njl", R, R)
        uu = np.einsum("jsnd,lsnd->snjl", U, U)  # same-seed products
        uR = np.einsum("jsnd,lnd->snjl", U, R)  # u_{j,s}' R_l
        same = uu.sum(axis=0)
        c = cross - same
        n = V.sum(axis=1)  # (J, n)
        vv = np.einsum("jsn,lsn->snjl", V, V)
        vv_sum = vv.sum(axis=0)
        p = n.T[:, :, None] * n.T[:, None, :] - vv_sum
        C[idx] = c
        P[idx] = p
        C_del[:, idx] = c[None] - uR - np.swapaxes(uR, -1, -2) + 2.0 * uu
        nd = n.T[None] - np.moveaxis(V, 1, 0).transpose(0, 2, 1)  # (S, n, J): counts without seed s
        P_del[:, idx] = nd[..., :, None] * nd[..., None, :] - (vv_sum[None] - vv)
    return PairStats(families, caps, C, P, C_del, P_del)
