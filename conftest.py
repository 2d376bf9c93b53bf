"""pytest collection at the repository root: the doctests of every module run with the suite (--doctest-modules),
and importing a module is part of collecting it. The JAX implementations of the custom Ops import JAX, an optional
extra (``sawdist[jax]``): without it there is nothing of theirs to test (tests/bayes/test_numba_jax_ops.py skips
its JAX cases then too)."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("jax") is None:
    collect_ignore.append("sawdist/bayes/_jax_ops.py")
if importlib.util.find_spec("numba") is None:
    collect_ignore.append("sawdist/bayes/_numba_ops.py")
