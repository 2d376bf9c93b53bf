"""Trained models for the findings that need them (black-box transfer, ensemble accuracy).

:class:`ModelPool` is the interface the analyses use: per (family, capacity) a number of models, their unit saliency
directions on a set of inputs, and their predictions on perturbed copies of those inputs. The analyses never build
models themselves: :class:`sawdist.extraction.pool.TorchModelPool` implements the interface with PyTorch (it trains,
saves and loads the pools of ``sawdist run`` and ``sawdist extract --save-models``), and any object with these
methods serves as well.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["ModelPool"]


@runtime_checkable
class ModelPool(Protocol):
    """A pool of trained classifiers on fixed inputs ``x`` (numpy, (n, *input_shape)) with ``labels`` (n,).

    A pool implements :meth:`capacities`, :meth:`n_models`, :meth:`directions`, :meth:`predict` and
    :meth:`probabilities_of`; ``families`` lists the families. Subclass it, or provide the same methods.
    """

    families: list[str]
    x: np.ndarray
    labels: np.ndarray

    def capacities(self, family: str) -> list[int]:
        """The capacities of ``family``, ascending."""
        ...

    def n_models(self, family: str, capacity: int) -> int:
        """The number of models of (``family``, ``capacity``)."""
        ...

    def directions(self, family: str, capacity: int) -> np.ndarray:
        """Unit saliency directions of the label logit, (model, n, d), on ``x``; NaN rows where the gradient is 0."""
        ...

    def predict(self, family: str, capacity: int, model: int, x: np.ndarray) -> np.ndarray:
        """Predicted classes of one model on inputs ``x`` (m, *input_shape)."""
        ...

    def probabilities_of(self, family: str, capacity: int) -> np.ndarray:
        """Softmax probabilities (model, n, classes) on ``x``."""
        ...
