"""Intervals of cosines (cosine_interval): Fisher z, inside [-1, 1], first-order equal to the plain interval far from
the bounds, monotone in the estimate, and used by every table of a cosine."""

import numpy as np
import pandas as pd
import pytest

from sawdist.analyses._common import Z95, cosine_interval, fmt_ci, interval


def test_the_old_rule_went_past_one_and_the_new_one_does_not():
    # the shared-mean cell of the digits run quoted in issue 14: 0.845 +- 1.96 x 0.1244 = [0.601, 1.089]
    r, se = 0.8448, 0.1244
    assert interval(r, se)[1] > 1.0
    lo, hi = cosine_interval(r, se)

    def bound(at, sign):  # the delta method on the Fisher-z scale, taken at `at`
        return np.tanh(np.arctanh(at) + sign * Z95 * se / (1 - at**2))

    # The plain interval reaches past 1, so r lies beyond r* (where the lower bound peaks): lower = L(r*).
    r_star = np.sqrt(1 + (Z95 * se) ** 2) - Z95 * se
    assert r_star < r
    np.testing.assert_allclose([lo, hi], [bound(r_star, -1), bound(r, 1)], rtol=1e-12)
    np.testing.assert_allclose([lo, hi], [0.39941, 0.96982], atol=5e-6)
    assert bound(r, -1) < lo  # taken at r itself, the lower bound would be lower (0.368)
    assert fmt_ci(r, se, cosine=True) == "0.845 [0.399, 0.970]"


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_intervals_of_cosines_near_the_bounds_stay_inside(sign):
    r = sign * np.linspace(0.8, 1.3, 201)[:, None]  # estimates up to 0.3 past the bound
    se = np.geomspace(1e-4, 0.5, 40)[None, :]
    lo, hi = cosine_interval(r, se)
    assert np.all((-1 <= lo) & (lo <= hi) & (hi <= 1))
    assert np.any(np.abs(np.stack(interval(r, se))) > 1)  # where the plain rule leaves [-1, 1]
    inside = np.abs(r) < 1
    r_in = np.broadcast_to(r, lo.shape)[np.broadcast_to(inside, lo.shape)]
    assert np.all(lo[np.broadcast_to(inside, lo.shape)] <= r_in)
    assert np.all(r_in <= hi[np.broadcast_to(inside, lo.shape)])
    # an estimate at or past the bound: the interval ends at the bound on that side
    past = np.broadcast_to(np.abs(r) >= 1, lo.shape)
    np.testing.assert_array_equal((hi if sign > 0 else lo)[past], sign)


def test_far_from_the_bounds_the_interval_is_the_plain_one_to_first_order():
    r = 0.3
    errors = []
    for se in (1e-2, 5e-3, 2.5e-3):
        lo, hi = cosine_interval(r, se)
        plain_lo, plain_hi = interval(r, se)
        errors.append(max(abs(lo - plain_lo), abs(hi - plain_hi)))
        assert errors[-1] < 2 * se**2  # second order: tanh(z +- 1.96 s_z) = r +- 1.96 s + O(s^2)
    # halving the SE quarters the difference
    np.testing.assert_allclose(np.array(errors[:-1]) / np.array(errors[1:]), 4.0, rtol=0.02)


def test_a_larger_estimate_never_gets_a_smaller_lower_bound():
    # The plain delta method on the z scale would fall to -1 as r -> 1 with a fixed SE; the rule keeps the
    # lower bound at its largest value L(r*) beyond r* = sqrt(1 + (1.96 s)^2) - 1.96 s.
    se = 0.02
    r = np.linspace(0.5, 1.1, 601)
    lo, hi = cosine_interval(r, se)
    assert np.all(np.diff(lo) >= -1e-12) and np.all(np.diff(hi) >= -1e-12)
    k = Z95 * se
    r_star = np.sqrt(1 + k * k) - k
    expected = np.tanh(np.arctanh(r_star) - k / (1 - r_star**2))
    np.testing.assert_allclose(lo[r >= r_star], expected, rtol=1e-12)
    # the alignment cell of 1.027 (se 0.018) of the digits run: reported as measured, interval [0.905, 1]
    assert fmt_ci(1.0268, 0.018, cosine=True) == "1.027 [0.905, 1.000]"


def test_degenerate_inputs():
    np.testing.assert_array_equal(cosine_interval(0.5, 0.0), (0.5, 0.5))
    np.testing.assert_array_equal(cosine_interval(1.2, 0.0), (1.0, 1.0))
    assert np.isnan(cosine_interval(np.nan, 0.1)).all() and np.isnan(cosine_interval(0.5, np.nan)).all()
    lo, hi = cosine_interval([0.1, 0.9], 0.05)
    assert lo.shape == hi.shape == (2,)


def test_tables_of_cosines_use_the_bounded_intervals(shared, tmp_path):
    from sawdist.analyses import ensembles, shared_mean, similarity
    from sawdist.analyses.context import Context, Options

    ctx = Context(shared, tmp_path, Options(bayes=False))
    for module, name, column in ((similarity, "similarity", "rho"), (shared_mean, "shared_mean_alignment",
                                                                     "alignment"), (ensembles, "ensembles", "cosine")):
        module.analyze(shared, tmp_path, context=ctx)
        table = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        lo, hi = cosine_interval(table[column], table["se"])
        np.testing.assert_allclose(table["lower"], lo, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(table["upper"], hi, rtol=1e-5, atol=1e-6)
        assert table["lower"].min() >= -1 and table["upper"].max() <= 1
        if name == "shared_mean_alignment":  # H2 true: alignments scatter about 1, the old rule went past it
            assert (table[column] + Z95 * table["se"] > 1).any()
