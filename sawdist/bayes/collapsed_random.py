r"""Random summaries from the collapsed model: the generator behind ``pm.sample_prior_predictive`` and
``pm.sample_posterior_predictive`` of the convergence model's observed ``directions`` (the Gram matrices).

What must be drawn. At one input (one architecture), slot j (a capacity of a family) has :math:`n_j` directions
:math:`u_{j s} \sim \mathrm{vMF}(\mu, \kappa_j)` with :math:`\mu` uniform on :math:`S^{d-1}`; the likelihood sees only
:math:`G_{jk} = R_j^\top R_k` with :math:`R_j = \sum_s u_{js}` (and the counts, which are the design). Write each
direction as :math:`u = t\mu + \sqrt{1 - t^2}\, v` with the cosine :math:`t` from the vMF cosine law (density
:math:`\propto e^{\kappa t}(1 - t^2)^{(d-3)/2}`) and :math:`v` uniform on the unit sphere of :math:`\mu^\perp`
(dimension :math:`m = d - 1`), independent of :math:`t`. Then

.. math:: G_{jk} = T_j T_k + W_j^\top W_k, \qquad T_j = \sum_s t_{js}, \qquad
          W_j = \sum_s \sqrt{1 - t_{js}^2}\, v_{js},

and G is rotation invariant, so only the inner products of the :math:`n = \sum_j n_j` vectors :math:`v` matter. With
:math:`v = z / \lVert z\rVert`, :math:`z \sim N(0, I_m)`, the Gram matrix :math:`Z Z^\top` of the z's is
Wishart(m, I_n), which is :math:`A A^\top` for the lower-triangular Bartlett factor A (n x n; diagonal
:math:`\sqrt{\chi^2_{m - i}}`, standard normals below) when :math:`m \ge n`; the rows of A are the z's in an
orthonormal basis of their span. So :math:`W_j^\top W_k = (M M^\top)_{jk}` with
:math:`M_j = \sum_{s \in j} \sqrt{1 - t_s^2}\, A_s / \lVert A_s\rVert`: O(n^2) numbers per input, whatever d (an
explicit draw of the directions is O(n d): 10^5 numbers per input at d = 3072 with 40 seeds). For m < n the z's
themselves (n x m) are drawn.

Separate means (one :math:`\mu_j` per slot, H2 false): :math:`R_j = T_j\mu_j + W_j` with :math:`W_j \perp \mu_j`, so
:math:`\lVert R_j\rVert^2 = T_j^2 + (M M^\top)_{jj}` (the within-slot blocks of one Wishart draw are independent
across slots, rows of different slots being independent), and the directions :math:`R_j / \lVert R_j\rVert` are
independent and uniform on :math:`S^{d-1}`: their Gram matrix is the normalised Bartlett product of J vectors in
:math:`R^d`.

Moments (tests): :math:`E[G_{jj}] = n_j + n_j(n_j - 1) A_d(\kappa_j)^2`; with a shared mean
:math:`E[G_{jk}] = n_j n_k A_d(\kappa_j) A_d(\kappa_k)` for j != k, with separate means 0.

The cosines are drawn by the sampler of :data:`sawdist.vonmises_fisher`,
:func:`sawdist.distributions.vonmises_fisher.vmf_cosines` (Wood's (1994) rejection sampler in ``y = 1 - t``, accurate
for every concentration up to 1e18 and beyond).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..checks import as_generator
from ..distributions.vonmises_fisher import vmf_cosines

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike

__all__ = ["draw_gram", "gram_random"]


def _gram_factor(n_rows: int, m: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """(batch, n_rows, k) rows whose Gram matrix is Wishart(m, I): the Bartlett factor (k = n_rows) when m >= n_rows,
    else the Gaussian vectors themselves (k = m)."""
    if m < n_rows:
        return rng.standard_normal((batch, n_rows, m))
    A = np.zeros((batch, n_rows, n_rows))
    rows, cols = np.tril_indices(n_rows, -1)
    A[:, rows, cols] = rng.standard_normal((batch, rows.size))
    diag = np.arange(n_rows)
    A[:, diag, diag] = np.sqrt(rng.chisquare(m - diag, size=(batch, n_rows)))
    return A


def draw_gram(kappa: ArrayLike, count: ArrayLike, dim: int, *, shared: bool = True,
              rng: np.random.Generator | int | None = None, size: tuple[int, ...] | None = None,
              random_state: np.random.Generator | int | None = None) -> np.ndarray:
    """Gram matrices ``G[j, k] = R_j^T R_k`` of the per-slot resultants drawn from the collapsed model (module
    docstring).

    Parameters
    ----------
    kappa : array_like, (..., J)
        Concentrations of the slots (>= 0).
    count : array_like, (..., J)
        Numbers of directions (whole numbers >= 0; a zero count is a padding slot, its row and column are zero).
    dim : int
        The dimension d >= 2.
    shared : bool
        One mean direction per input shared by the slots (True), or one per slot.
    rng : numpy.random.Generator or int, optional
    size : tuple of int, optional
        Batch shape of the draws (the broadcast batch shape of ``kappa`` and ``count`` by default).
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.

    Returns
    -------
    numpy.ndarray
        ``size + (J, J)``, symmetric positive semi-definite.

    Examples
    --------
    >>> import numpy as np
    >>> from sawdist.bayes.collapsed_random import draw_gram
    >>> G = draw_gram([64.0, 256.0], [4, 4], 64, size=(3,), rng=0)
    >>> G.shape, bool(np.allclose(G, np.swapaxes(G, -1, -2)))
    ((3, 2, 2), True)
    """
    gen = as_generator(rng, random_state)
    kappa = np.asarray(kappa, dtype=np.float64)
    count = np.asarray(count)
    if kappa.ndim < 1 or count.shape[-1:] != kappa.shape[-1:]:
        raise ValueError(f"'kappa' and 'count' must have one last axis of slots, got shapes {kappa.shape} and "
                         f"{count.shape}.")
    J = kappa.shape[-1]
    batch_shape = np.broadcast_shapes(kappa.shape[:-1], count.shape[:-1]) if size is None else tuple(size)
    kappa = np.broadcast_to(kappa, batch_shape + (J,)).reshape(-1, J)
    count_f = np.broadcast_to(count, batch_shape + (J,)).reshape(-1, J)
    if np.any(count_f < 0) or np.any(count_f != np.round(count_f)):
        raise ValueError("'count' must hold whole numbers >= 0.")
    count_i = count_f.astype(np.int64)
    B = kappa.shape[0]
    total = count_i.sum(axis=1)
    n_max = int(total.max()) if B else 0
    G = np.zeros((B, J, J))
    if n_max:
        # seed s of batch element b belongs to slot slot_of[b, s] (seeds ordered by slot; s >= total[b] padding)
        seed_index = np.arange(n_max)
        ends = np.cumsum(count_i, axis=1)
        slot_of = np.minimum((seed_index[None, :, None] >= ends[:, None, :]).sum(-1), J - 1)
        valid = seed_index[None, :] < total[:, None]
        kappa_s = np.where(valid, np.take_along_axis(kappa, slot_of, axis=1), 0.0)
        t, y = vmf_cosines(dim, kappa_s, gen)
        t = np.where(valid, t, 0.0)
        onehot = (slot_of[:, :, None] == np.arange(J)) & valid[:, :, None]  # (B, n_max, J)
        T = np.einsum("bsj,bs->bj", onehot, t)
        A = _gram_factor(n_max, dim - 1, B, gen)
        weight = np.where(valid, np.sqrt(np.clip(y * (2.0 - y), 0.0, None)) / np.linalg.norm(A, axis=-1), 0.0)
        M = np.einsum("bsj,bs,bsc->bjc", onehot, weight, A)
        W = M @ np.swapaxes(M, -1, -2)
        if shared:
            G = T[:, :, None] * T[:, None, :] + W
        else:
            r = np.sqrt(T * T + np.diagonal(W, axis1=-2, axis2=-1))
            V = _gram_factor(J, dim, B, gen)
            V = V / np.linalg.norm(V, axis=-1, keepdims=True)
            G = r[:, :, None] * r[:, None, :] * (V @ np.swapaxes(V, -1, -2))
        G = 0.5 * (G + np.swapaxes(G, -1, -2))
    return G.reshape(batch_shape + (J, J))


def gram_random(dim: int, shared: bool) -> Callable[..., np.ndarray]:
    """The ``random`` of the convergence model's :class:`pymc.CustomDist` ``directions``:
    ``random(kappa, count, rng=None, size=None)`` -> Gram matrices, as :func:`draw_gram`."""

    def random(kappa, count, rng=None, size=None):
        return draw_gram(kappa, count, dim, shared=shared, rng=rng, size=size)

    return random
