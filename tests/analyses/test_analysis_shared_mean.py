"""Finding 3 on synthetic data: H2 true holds, H2 false fails (moment statistics; the Bayesian part is in the slow
test of the convergence finding)."""

import numpy as np
import pandas as pd

from sawdist.analyses import shared_mean
from sawdist.analyses.context import Context, Options


def _run(ds, path, **options):
    ctx = Context(ds, path, Options(bayes=False, **options))
    return shared_mean.analyze(ds, path, context=ctx)


def test_shared_mean_holds_when_capacities_share_mu(shared, tmp_path):
    f = _run(shared, tmp_path)
    assert f.status == "holds"
    table = pd.read_csv(tmp_path / f.tables[0])
    assert len(table) == 2 * 3  # 3 pairs of capacities per family; families are separate architectures
    assert np.all(np.abs(table.alignment - 1.0) < 4 * table.se)


def test_shared_mean_fails_when_every_capacity_has_its_own_mu(separate, tmp_path):
    f = _run(separate, tmp_path)
    assert f.status == "fails"
    assert f.numbers["alignment_min"] < 0.3


def test_shared_mean_architecture_compares_families(shared, tmp_path):
    # Families a and b have independent means: declared one architecture, H2 across them fails.
    f = _run(shared, tmp_path, architecture={"a": "net", "b": "net"})
    table = pd.read_csv(tmp_path / f.tables[0])
    assert len(table) == 15  # all pairs of the 6 (family, capacity) slots
    assert f.status == "fails"
