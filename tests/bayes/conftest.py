import matplotlib
import pytest

matplotlib.use("Agg")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/bayes" in str(item.fspath):
            # PyTensor warns once per process when it finds no BLAS to link (pip-installed stack); not ours to fix.
            item.add_marker(pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS:UserWarning"))
