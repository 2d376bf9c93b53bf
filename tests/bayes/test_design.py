"""sawdist.bayes.design: the checked design of a summary, and one test per message of check_summary."""

import re

import numpy as np
import pytest
import xarray as xr

from sawdist.bayes import simulate_summary
from sawdist.bayes.design import Design, check_summary


@pytest.fixture(scope="module")
def summary():
    return simulate_summary(dim=16, capacities=[4, 16], n_inputs=3, n_seeds=3, rng=0)


def two_families(summary):
    """The summary twice, as families 'x' and 'y' (their resultants, counts and Gram matrices are equal)."""
    parts = [summary.drop_vars("n_features").assign_coords(family=[f]) for f in ("x", "y")]
    two = xr.concat(parts, "family", data_vars="all")
    two["n_features"] = summary["n_features"]
    return two


def test_design_of_one_family_per_architecture(summary):
    design = check_summary(summary)
    assert isinstance(design, Design)
    assert design.dim == 16 and design.trivial_groups
    np.testing.assert_array_equal(design.capacities, [4, 16])
    np.testing.assert_array_equal(design.inputs, [0, 1, 2])
    np.testing.assert_array_equal(design.gram, summary["gram"].transpose("family", "input", "capacity",
                                                                          "capacity_b").values)
    np.testing.assert_array_equal(design.count, summary["count"].transpose("family", "input", "capacity").values)
    assert design.count.dtype == np.int64 and design.gram.dtype == np.float64
    np.testing.assert_array_equal(design.architectures, ["family0"])
    np.testing.assert_array_equal(design.slot_family, [[0, 0]])
    np.testing.assert_array_equal(design.slot_capacity, [[0, 1]])
    np.testing.assert_array_equal(design.group_gram, design.gram)
    np.testing.assert_array_equal(design.group_count, design.count)


def test_design_of_families_sharing_an_architecture(summary):
    two = two_families(summary)
    for architecture in ({"x": "arch", "y": "arch"}, ["arch", "arch"]):
        design = check_summary(two, architecture)
        assert not design.trivial_groups
        np.testing.assert_array_equal(design.architectures, ["arch"])
        np.testing.assert_array_equal(design.slot_family, [[0, 0, 1, 1]])
        np.testing.assert_array_equal(design.slot_capacity, [[0, 1, 0, 1]])
        R = summary["resultant"].values[0]  # (capacity, input, d)
        for x in range(3):
            stacked = np.concatenate([R[:, x], R[:, x]])
            np.testing.assert_allclose(design.group_gram[0, x], stacked @ stacked.T, rtol=1e-13)
            np.testing.assert_array_equal(design.group_count[0, x], [3, 3, 3, 3])
    # the dimension from a 'feature' dim when there is no n_features
    assert check_summary(summary.drop_vars("n_features")).dim == 16


def _set(summary, name, where, value):
    out = summary.copy(deep=True)
    out[name].loc[where] = value
    return out


# (id, the summary or arguments from the fixture, exception, the full message)
CASES = [
    ("not-a-dataset", lambda s: ({},), TypeError,
     "'summary' must be an xarray.Dataset from sawdist.summarize, got dict."),
    ("no-variable", lambda s: (s.drop_vars("gram"),), ValueError,
     "'summary' must have a variable 'gram' (see sawdist.summarize), got none."),
    ("variable-dims", lambda s: (s.drop_vars("count").assign(count=(("family", "capacity", "sample"),
                                                                     s["count"].values)),), ValueError,
     "'summary' variable 'count' must have dims (family, capacity, input), got (family, capacity, sample)."),
    ("dim-coordinate", lambda s: (s.drop_vars("input"),), ValueError,
     "'summary' dim 'input' must have a coordinate, got none."),
    ("capacity-numbers", lambda s: (s.assign_coords(capacity=["a", "b"], capacity_b=["a", "b"]),), ValueError,
     "'summary' capacities must be numbers, got dtype <U1."),
    ("capacity-positive", lambda s: (s.assign_coords(capacity=[0, 16], capacity_b=[0, 16]),), ValueError,
     "'summary' capacities must be > 0, got 0."),
    ("capacity-b", lambda s: (s.assign_coords(capacity_b=[4, 8]),), ValueError,
     "'summary' coordinate 'capacity_b' must equal 'capacity', got [4, 8] against [4, 16]."),
    ("n-features", lambda s: (s.assign(n_features=2.5),), ValueError,
     "'summary' n_features must be an integer >= 2, got 2.5."),
    ("no-dimension", lambda s: (s.drop_vars(["n_features", "resultant", "feature"]),), ValueError,
     "'summary' must give the dimension d by a variable 'n_features' or a dim 'feature', got neither."),
    ("gram-finite", lambda s: (_set(s, "gram", {"input": 1, "capacity": 16, "capacity_b": 4}, np.nan),),
     ValueError, ("'summary' gram must be finite, got nan or inf at family='family0', input=1, capacity=16, "
                  "capacity_b=4 (variables with mismatched coordinates leave NaN after alignment).")),
    ("count-whole", lambda s: (_set(s.assign(count=s["count"].astype(float)), "count",
                                    {"input": 2, "capacity": 16}, 2.5),), ValueError,
     ("'summary' count must be whole numbers, got a non-integer value at family='family0', input=2, capacity=16 "
      "(variables with mismatched coordinates leave NaN after alignment).")),
    ("count-integers", lambda s: (s.assign(count=s["count"].astype(str)),), ValueError,
     "'summary' count must be integers, got dtype <U21."),
    ("count-two", lambda s: (_set(s, "count", {"input": 1, "capacity": 4}, 1),), ValueError,
     ("'summary' count must be >= 2 (two valid seeds per family, capacity and input), got 1 at family='family0', "
      "input=1, capacity=4.")),
    ("gram-symmetric", lambda s: (_set(s, "gram", {"input": 0, "capacity": 4, "capacity_b": 16}, 0.0),),
     ValueError, ("'summary' gram must be symmetric in capacity and capacity_b, got an asymmetric matrix at "
                  "family='family0', input=0.")),
    ("gram-diagonal", lambda s: (_set(s, "gram", {"input": 2, "capacity": 16, "capacity_b": 16}, 10.0),),
     ValueError, ("'summary' gram[k, k] (squared resultant length) must lie in [0, count**2], got 10.0 at "
                  "family='family0', input=2, capacity=16.")),
    ("architecture-dict", lambda s: (s, {"other": "x"}), ValueError,
     "'architecture' must map every family to a label, got no label for 'family0'."),
    ("architecture-sequence", lambda s: (s, ["a", "b"]), ValueError,
     "'architecture' must give one label per family (1), got shape (2,)."),
    ("architecture-resultant", lambda s: (two_families(s).drop_vars("resultant"), ["a", "a"]), ValueError,
     "'architecture' sharing a mean across families needs the variable 'resultant' in 'summary', got none."),
]


@pytest.mark.parametrize(("make", "error", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_check_summary_messages(summary, make, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        check_summary(*make(summary))
