"""Pair sums of sawdist.analyses._pairs: exact against sawdist.stats and against deleting a seed; unbiased alignment."""

import numpy as np

from sawdist.analyses import _pairs
from sawdist.stats import similarity_matrix


def test_per_input_rho_equals_stats_similarity_matrix(shared):
    ps = _pairs.pair_stats(shared, memory=2**20)  # blocks of 34 inputs: three blocks
    for f, fam in enumerate(ps.families):
        ref = similarity_matrix(shared["direction"].sel(family=fam))
        ref = ref.transpose("input", "capacity_1", "capacity_2").values
        b = ps.block(f)
        np.testing.assert_allclose(ps.per_input()[:, b, b], ref, rtol=1e-12, atol=1e-12)


def test_jackknife_replicate_equals_recomputation_without_the_seed(shared):
    ps = _pairs.pair_stats(shared, memory=2**20)
    s = 4
    kept = [i for i in range(shared.sizes["seed"]) if i != s]
    direct = _pairs.pair_stats(shared.isel(seed=kept))
    total, count = ps.sums[0]
    np.testing.assert_array_equal(count[s + 1], direct.sums[0][1][0])
    np.testing.assert_allclose(total[s + 1], direct.sums[0][0][0], rtol=1e-10, atol=1e-10)
    # and the per-input values behind the sums: rho without seed s, averaged, is the replicate's statistic
    np.testing.assert_allclose(ps.statistic(_pairs.mean_rho)[2][s],
                               _pairs.mean_rho(*[np.nansum(direct.per_input(), 0),
                                                 np.isfinite(direct.per_input()).sum(0)]), rtol=1e-10)


def test_the_sums_do_not_depend_on_the_blocks(shared):
    one = _pairs.pair_stats(shared)  # one block
    many = _pairs.pair_stats(shared, memory=2**20)
    np.testing.assert_allclose(many.per_input(), one.per_input(), rtol=1e-13, atol=1e-15)
    for (t1, c1), (t2, c2) in zip(one.sums, many.sums):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(t1, t2, rtol=1e-12, atol=1e-13)


def test_excluded_models_count_as_not_valid(shared):
    excluded = np.zeros((2, 3, 10), bool)
    excluded[0, 1, 3] = excluded[1, 2, 0] = True
    masked = shared.copy()
    mask = shared["valid"].copy(data=np.broadcast_to(excluded[..., None], shared["valid"].shape))
    masked["direction"] = shared["direction"].where(~mask)
    masked["valid"] = shared["valid"] & ~mask
    a = _pairs.pair_stats(shared, excluded=excluded)
    b = _pairs.pair_stats(masked)
    np.testing.assert_array_equal(a.per_input(), b.per_input())
    np.testing.assert_array_equal(a.sums[0][0], b.sums[0][0])
    assert not np.allclose(a.sums[0][0], _pairs.pair_stats(shared).sums[0][0])


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
