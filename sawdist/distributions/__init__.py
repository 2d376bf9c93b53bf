"""Rotationally symmetric distributions on the sphere S^{d-1}, scipy.stats style (generator + frozen)."""

from .power_spherical import power_spherical, power_spherical_gen
from .saw import saw, saw_gen, uniform_direction, uniform_direction_gen
from .vonmises_fisher import vonmises_fisher, vonmises_fisher_gen

__all__ = [
    "power_spherical",
    "power_spherical_gen",
    "saw",
    "saw_gen",
    "uniform_direction",
    "uniform_direction_gen",
    "vonmises_fisher",
    "vonmises_fisher_gen",
]
