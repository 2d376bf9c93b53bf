"""Synthetic saliency datasets with known answers for the analysis tests (vMF directions, docs/dataset.md schema)."""

import numpy as np
import pytest

from sawdist.analyses.synthetic import synthetic_dataset

#: True mean resultant lengths m(k) of the synthetic families (capacities 2, 4, 8).
CAPACITIES = [2, 4, 8]
M_TRUE = np.array([0.4, 0.6, 0.8])


def make(shared_mean=True, m=M_TRUE, families=("a", "b"), rng=1, n_inputs=80, n_seeds=10, dim=32,
         invalid_fraction=0.02):
    return synthetic_dataset(dim=dim, capacities=CAPACITIES, m=m, n_seeds=n_seeds, n_inputs=n_inputs,
                             families=families, shared_mean=shared_mean, invalid_fraction=invalid_fraction, rng=rng)


@pytest.fixture(scope="session")
def shared():
    """H1 and H2 true: m(k) rises, one mean direction per (family, input) shared by the capacities."""
    return make(shared_mean=True)


@pytest.fixture(scope="session")
def separate():
    """H2 false: every capacity has its own, independent mean direction."""
    return make(shared_mean=False, rng=2)
