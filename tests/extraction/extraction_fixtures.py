"""Shared fixtures of the extraction tests: tiny digits data, a one-epoch recipe, and a reference sweep.

Test modules import the fixtures they use from here. (Not a ``conftest.py``: several test folders without
``__init__.py`` each holding a ``conftest.py`` collide under ``--doctest-modules``, which imports them all as the
module ``conftest``.)
"""

import contextlib

import pytest

torch = pytest.importorskip("torch")

from sawdist.extraction.data import load_dataset  # noqa: E402
from sawdist.extraction.train import Recipe  # noqa: E402


@contextlib.contextmanager
def one_torch_thread():
    """Run torch on one intra-op thread, then restore the caller's count.

    Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP threads waiting for each other make
    them many times slower; one thread keeps these tests fast and their timing steady, without changing the thread
    count of the other tests in the same pytest process.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield

#: A sweep small enough for the test suite: 2 families x 2 capacities x 3 seeds, chunks of 2 seeds, 1 epoch.
TINY = dict(families=["mlp", "cnn_small"], capacities=[4, 8], seeds=3, inputs=40, mode="batched", chunk_size=2,
            progress=False)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def quick_recipe():
    return Recipe(epochs=1, batch_size=128)


@pytest.fixture
def tiny():
    return dict(TINY)


@pytest.fixture(scope="session")
def reference_sweep(tmp_path_factory, quick_recipe):
    """An uninterrupted tiny sweep; tests compare interrupted and resumed runs against it."""
    from sawdist.extraction.sweep import extract

    out = tmp_path_factory.mktemp("reference") / "reference.nc"
    with one_torch_thread():  # session fixtures are set up before the autouse one of the test that asks first
        result = extract(out, recipe=quick_recipe, **TINY)
    assert result.complete
    return out
