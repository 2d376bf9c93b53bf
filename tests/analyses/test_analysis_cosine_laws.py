"""Finding 2 on synthetic data: m(k) recovered, laws concentrate (holds) or spread (fails)."""

import numpy as np
import pandas as pd

from sawdist.analyses import cosine_laws

from .conftest import M_TRUE, make


def test_cosine_laws_recover_m_and_hold(shared, tmp_path):
    f = cosine_laws.analyze(shared, tmp_path)
    assert f.status == "holds"
    for fam in ("a", "b"):
        m, se = np.array(f.numbers[f"{fam}/m"]), np.array(f.numbers[f"{fam}/m_se"])
        assert np.all(np.abs(m - M_TRUE) < 4 * se)
    table = pd.read_csv(tmp_path / f.tables[0])
    # The fitted shapes' E[t] (the mean of the corrected cosines) is close to the truth too.
    assert np.all(np.abs(table["m_shape_fit"].to_numpy() - np.tile(M_TRUE, 2)) < 0.03)
    # vMF shapes log psi_k = kappa_k t are linear in each other where the bands overlap.
    r2 = np.array(f.numbers["a/shape_r2_adjacent"])
    assert np.all(r2[np.isfinite(r2)] > 0.9)


def test_cosine_laws_spreading_with_capacity_fail(tmp_path):
    f = cosine_laws.analyze(make(m=M_TRUE[::-1], families=("a",), rng=4), tmp_path)
    assert f.status == "fails"


def test_pooled_cosines_skip_inputs_without_two_valid_directions(shared):
    from sawdist.analyses._common import family_layout

    U, V0 = family_layout(shared, "a")
    V = V0.copy()
    V[0, :, 0] = False  # input 0 has no valid direction at the smallest capacity
    V[1, 1:, 1] = False  # input 1 has one valid direction at the middle capacity
    d = shared.sizes["feature"]
    cos = cosine_laws.pooled_cosines(U, V, d)
    full = cosine_laws.pooled_cosines(U, V0, d)
    lost = V0[:, :, :2].sum(axis=(1, 2))  # per capacity: every direction of the two skipped inputs
    np.testing.assert_array_equal([f.size - c.size for f, c in zip(full, cos)], lost)


def test_chunks_of_inputs_give_the_same_result(shared, tmp_path, monkeypatch):
    from sawdist.analyses import _common

    whole = cosine_laws.analyze(shared, tmp_path / "whole")

    def small_chunks(ds, n_slots, budget=None):
        return _common.input_chunks(ds, n_slots, budget=7 * n_slots * ds.sizes["seed"] * ds.sizes["feature"])

    monkeypatch.setattr(cosine_laws, "input_chunks", small_chunks)
    assert len(small_chunks(shared, 3)) == 12  # 80 inputs in chunks of 7
    chunked = cosine_laws.analyze(shared, tmp_path / "chunked")
    assert chunked.numbers == whole.numbers
