"""pytest collection at the repository root: the doctests of every module run with the suite (--doctest-modules),
and importing a module is part of collecting it. The JAX implementations of the custom Ops import JAX, an optional
extra (``sawdist[jax]``): without it there is nothing of theirs to test (tests/bayes/test_numba_jax_ops.py skips
its JAX cases then too)."""

import importlib.util
import os

import pytest

collect_ignore = []
if importlib.util.find_spec("jax") is None:
    collect_ignore.append("sawdist/bayes/_jax_ops.py")
if importlib.util.find_spec("numba") is None:
    collect_ignore.append("sawdist/bayes/_numba_ops.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the option
def pytest_cmdline_main(config):
    """Run the suite on every core when pytest-xdist is installed (the ``dev`` extra): ``python3 -m pytest`` is the
    README's test command, and on two cores it takes about half the time. ``-n 0`` (or ``-p no:xdist``) runs it in
    one process; an explicit ``-n N`` (with its ``--dist``) is kept.

    Only the process the user started decides: the workers inherit ``SAWDIST_PYTEST_WORKERS`` from it (and carry
    ``PYTEST_XDIST_WORKER`` and ``workerinput``), so a worker never starts workers of its own.
    """
    if (os.environ.get("SAWDIST_PYTEST_WORKERS") or os.environ.get("PYTEST_XDIST_WORKER")
            or hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist")):
        return
    os.environ["SAWDIST_PYTEST_WORKERS"] = "1"
    if getattr(config.option, "numprocesses", 0) is None:
        config.option.numprocesses = "auto"
        # worksteal: an idle worker takes queued tests from a busy one, so a few long tests near the end of the
        # queue do not leave one core idle (pytest's default 'load' hands out fixed chunks)
        if getattr(config.option, "dist", "no") == "no":
            config.option.dist = "worksteal"


def pytest_collection_modifyitems(config, items):
    """The modules that hold slow tests run first, each kept whole (its module-scoped fixtures are built once).

    On two workers the suite ends when the last long test does: started late, a one-minute test leaves the other
    core idle for up to a minute. Started first, the long tests leave the short ones to fill the end. The order
    within a module, and of the modules within each group, is pytest's.
    """
    slow_modules = {item.module for item in items if item.get_closest_marker("slow") and hasattr(item, "module")}
    items.sort(key=lambda item: getattr(item, "module", None) not in slow_modules)
