"""The training recipe (optimiser, schedule, epochs, ...), importable without PyTorch.

The command line builds its flags from :class:`Recipe`'s fields, so ``sawdist --help`` never imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

__all__ = ["MODES", "OPTIMIZERS", "SCHEDULES", "Recipe"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("linear", "cosine", "constant")
MODES = ("auto", "batched", "sequential")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe; every field can be set from a TOML ``[recipe]`` table or a command-line flag.

    Parameters
    ----------
    epochs : int
        Passes over the training split.
    batch_size : int
        Minibatch size of each model.
    optimizer : {"sgd", "adam", "adamw"}
    lr : float
        Peak learning rate.
    momentum : float
        SGD momentum (Nesterov when ``nesterov``).
    nesterov : bool
    weight_decay : float
        L2 penalty (SGD, Adam) or decoupled weight decay (AdamW).
    schedule : {"linear", "cosine", "constant"}
        Learning-rate decay after a linear warm-up over the first ``warmup`` fraction of the steps.
    warmup : float
        Fraction of the steps spent warming up, in [0, 1).
    label_smoothing : float
        Label smoothing of the cross-entropy, in [0, 1).
    amp : bool
        Train under bfloat16 autocast (mixed precision); saliency is always float32.
    """

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "linear"
    warmup: float = 0.1
    label_smoothing: float = 0.0
    amp: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"'{name}' must be a positive integer, got {value!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"'optimizer' must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"'schedule' must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if not (isinstance(self.lr, int | float) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"'lr' must be a positive finite number, got {self.lr!r}.")
        for name in ("momentum", "warmup", "label_smoothing"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value < 1):
                raise ValueError(f"'{name}' must lie in [0, 1), got {value!r}.")
        if not (isinstance(self.weight_decay, int | float) and self.weight_decay >= 0):
            raise ValueError(f"'weight_decay' must be non-negative, got {self.weight_decay!r}.")

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        """Build a recipe from a mapping (e.g. a TOML table); unknown keys are an error."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"'recipe' has unknown key {unknown[0]!r}; the keys are {', '.join(sorted(fields))}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of ``lr`` at optimiser step ``step`` of ``total``: linear warm-up, then the decay."""
        warm = int(self.warmup * total)
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        if self.schedule == "linear":
            return 1.0 - progress
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """The recipe's ``torch.optim`` optimiser over ``params``."""
        import torch

        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                   nesterov=self.nesterov and self.momentum > 0)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
