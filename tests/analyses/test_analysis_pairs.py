"""Pair sums of sawdist.analyses._pairs: exact against sawdist.stats and against deleting a seed; unbiased alignment."""

import numpy as np

from sawdist.analyses import _pairs
from sawdist.stats import similarity_matrix


def test_per_input_rho_equals_stats_similarity_matrix(shared):
    ps = _pairs.pair_stats(shared, chunk=7)  # several chunks
    for f, fam in enumerate(ps.families):
        ref = similarity_matrix(shared["direction"].sel(family=fam))
        ref = ref.transpose("input", "capacity_1", "capacity_2").values
        b = ps.block(f)
        np.testing.assert_allclose(ps.per_input()[:, b, b], ref, rtol=1e-12, atol=1e-12)


def test_jackknife_replicate_equals_recomputation_without_the_seed(shared):
    ps = _pairs.pair_stats(shared)
    s = 4
    kept = [i for i in range(shared.sizes["seed"]) if i != s]
    direct = _pairs.pair_stats(shared.isel(seed=kept))
    np.testing.assert_allclose(ps.per_input(s), direct.per_input(), rtol=1e-10, atol=1e-12)


def test_rho_and_alignment_recover_the_truth(shared, separate):
    from .conftest import M_TRUE

    ps = _pairs.pair_stats(shared)
    rho, se, _ = ps.statistic(_pairs.mean_rho)
    b = ps.block(0)
    expected = np.outer(M_TRUE, M_TRUE)  # identity 2 with a shared mean
    assert np.all(np.abs(rho[b, b] - expected) < 4 * se[b, b])
    m, m_se, _ = ps.statistic(_pairs.mean_m)
    assert np.all(np.abs(m[b] - M_TRUE) < 4 * m_se[b])
    A, A_se, _ = ps.statistic(_pairs.alignment)
    assert np.all(np.abs(A[b, b] - 1.0) < 4 * A_se[b, b] + 1e-12)
    # Different families have independent mean directions: alignment about 0.
    other = ps.block(1)
    assert np.all(np.abs(A[b, other]) < 4 * A_se[b, other])
    A2, A2_se, _ = _pairs.pair_stats(separate).statistic(_pairs.alignment)
    off = ~np.eye(3, dtype=bool)
    assert np.all(np.abs(A2[b, b][off]) < 4 * A2_se[b, b][off])
