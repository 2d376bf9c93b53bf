"""Finding 3 on synthetic data: H2 true holds, H2 false fails (moment statistics; the Bayesian part is in the slow
test of the convergence finding)."""

import numpy as np
import pandas as pd
import pytest

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


# --- one verdict from the alignment and the leave-one-input-out comparison (shared_mean.decide) ---------------------

RULE = {  # (alignment verdict, comparison outcome) -> H2's verdict: the table of the module docstring
    ("holds", "shared"): "holds", ("holds", "tie"): "holds", ("holds", "separate"): "inconclusive",
    ("holds", "unreliable (sampler)"): "unreliable (sampler)", ("holds", "approximate"): "inconclusive",
    ("holds", None): "holds",
    **{("inconclusive", c): "inconclusive" for c in shared_mean.COMPARISONS},
    **{("fails", c): "fails" for c in shared_mean.COMPARISONS},
    **{("not tested", c): "not tested" for c in shared_mean.COMPARISONS},
}


def test_the_h2_rule_covers_every_case():
    assert len(RULE) == 4 * len(shared_mean.COMPARISONS)
    for (alignment, comparison), expected in RULE.items():
        status, reason = shared_mean.decide(alignment, comparison, 0.9)
        assert status == expected, (alignment, comparison)
        assert reason and "\n" not in reason
    # The reason says what decided: the alignment alone when the comparison did not run.
    assert "alignment alone" in shared_mean.decide("holds", None)[1]
    assert "close, not shared" in shared_mean.decide("holds", "separate")[1]


def test_the_h2_rule_refuses_an_unknown_comparison():
    with pytest.raises(ValueError, match=r"^'comparison' must be one of 'shared', .*, got 'maybe'\.$"):
        shared_mean.decide("holds", "maybe")
