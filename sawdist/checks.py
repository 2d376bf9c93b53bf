"""Argument checks that the layers above the core share with it: random generators, concentrations, unit vectors.

The implementation lives in the core's private module ``sawdist._validation``, the one validation path behind every
public entry; these are the parts that ``sawdist.bayes`` (and code built on sawdist) may rely on, with the one
unit-norm tolerance, so that a PyMC model refuses what the NumPy distributions refuse, with the same messages.
"""

from __future__ import annotations

from ._validation import as_generator, check_kappa, check_unit_vectors, unit_tolerance

__all__ = ["as_generator", "check_kappa", "check_unit_vectors", "unit_tolerance"]
