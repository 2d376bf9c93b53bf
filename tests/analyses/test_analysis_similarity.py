"""Finding 1 on synthetic data: similarity rises with capacity (holds), falls (fails)."""

import numpy as np
import pandas as pd

from sawdist.analyses import similarity

from .conftest import M_TRUE, make


def test_similarity_recovers_rank_one_and_holds(shared, tmp_path):
    f = similarity.analyze(shared, tmp_path)
    assert f.status == "holds"
    table = pd.read_csv(tmp_path / f.tables[0])
    a = table[table.family == "a"]
    expected = M_TRUE[np.searchsorted([2, 4, 8], a.capacity_1)] * M_TRUE[np.searchsorted([2, 4, 8], a.capacity_2)]
    assert np.all(np.abs(a.rho - expected) < 4 * a.se)
    assert f.numbers["a/fraction_increasing"] == 1.0
    assert f.numbers["a/rank_one_relative_residual"] < 0.05
    for path in f.figures:
        assert (tmp_path / path).stat().st_size > 0


def test_similarity_falling_with_capacity_fails(tmp_path):
    ds = make(m=M_TRUE[::-1], families=("a",), rng=3)
    f = similarity.analyze(ds, tmp_path)
    assert f.status == "fails"
    assert f.numbers["a/increase_min"] < 0
