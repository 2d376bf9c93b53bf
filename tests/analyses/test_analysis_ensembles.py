"""Finding 5 on synthetic data: the ensemble curve follows identity 4; no gain without a shared mean."""

import numpy as np

from sawdist.analyses import blocks, ensembles
from sawdist.analyses.context import Context, Options

from .conftest import M_TRUE


def test_ensemble_curve_follows_identity_4_and_holds(shared, tmp_path):
    ctx = Context(shared, tmp_path, Options(ensemble_subsets=32))
    f = ensembles.analyze(shared, tmp_path, context=ctx)
    assert f.status == "holds"
    curve = np.array(f.numbers["a/curve"])
    sizes = np.array(f.numbers["a/sizes"])
    assert sizes[0] == 1 and sizes[-1] >= 8
    m_s, m_l = M_TRUE[0], M_TRUE[-1]
    truth = m_s * m_l / np.sqrt(m_s**2 + (1 - m_s**2) / sizes)  # identity 4 with cos(mu_s, mu_l) = 1
    assert np.max(np.abs(curve - truth)) < 0.03
    assert np.max(np.abs(np.array(f.numbers["a/predicted"]) - curve)) < 0.03


def test_no_ensemble_gain_without_a_shared_mean(separate, tmp_path):
    f = ensembles.analyze(separate, tmp_path)
    assert f.status != "holds"
    assert abs(f.numbers["a/gain"]) < 4 * f.numbers["a/gain_se"]


def test_default_sizes():
    assert blocks.default_sizes(10) == [1, 2, 4, 8, 10]
    assert blocks.default_sizes(8) == [1, 2, 4, 8]
    assert blocks.default_sizes(1) == [1]
