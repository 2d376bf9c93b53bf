"""Training many seeds of one (family, capacity) at once.

The batched path stacks the seeds' parameters with :func:`torch.func.stack_module_state` and trains them as one
program: ``vmap(functional_call)`` evaluates every model on its own minibatch, the sum of the models' mean losses is
differentiated once (the models share no parameters, so each model receives exactly its own gradient), and one
optimiser steps the stacked tensors — SGD, Adam and AdamW are elementwise, so this is the same update as M separate
optimisers. The sequential path trains the same models one after another with plain modules. Both paths give each
model its own initialisation and its own data order, derived from (seed, family, capacity) only, so a model does not
depend on which other seeds share its chunk, and both produce the same models up to floating-point reassociation.
:func:`choose_mode` times one step of each and picks the faster (narrow convolutions can be faster one by one); a
sweep does not use it (``--mode auto`` is a rule, :func:`sawdist.extraction.sweep.default_decision`, so that two runs
of one command train alike), but benchmarks/extraction.py reports what it picks.

Examples
--------
>>> from sawdist.extraction.data import load_dataset
>>> from sawdist.extraction.train import Recipe, train_models
>>> data = load_dataset("digits")
>>> trained = train_models("mlp", 16, [0, 1], data, Recipe(epochs=1))
>>> trained.test_accuracy.shape
(2,)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import zlib
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from .models import build_model, check_capacity, check_family
from .recipe import Recipe

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .data import Dataset

__all__ = ["Recipe", "ModelStack", "choose_mode", "init_model", "model_seed", "resolve_device", "time_steps",
           "train_models"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU, or ``"cuda:N"`` past the last GPU, is
    an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"'device' must be auto, cpu, cuda or cuda:N, got {device!r}.") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"'device' must be auto, cpu, cuda or cuda:N, got {str(device)!r}.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"'device' is {str(device)!r} but torch.cuda.is_available() is False; use --device cpu or "
                         "auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"'device' is {str(device)!r} but this machine has {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}.")
    return device


def model_seed(seed: int, family: str, capacity: int, stream: int) -> int:
    """A 63-bit seed for ``stream`` (0: initialisation, 1: data order) of model (seed, family, capacity)."""
    sequence = np.random.SeedSequence([int(seed), int(capacity), zlib.crc32(family.encode()), int(stream)])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def init_model(family: str, capacity: int, seed: int, input_shape: Sequence[int], n_classes: int) -> torch.nn.Module:
    """Build model (family, capacity) with the initialisation of ``seed``; torch's global random state is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_seed(seed, family, capacity, 0))
        return build_model(family, capacity, input_shape, n_classes)


class _Orders:
    """Per-model data orders: model i draws epoch permutations from its own generator."""

    def __init__(self, family: str, capacity: int, seeds, n: int):
        self.n = n
        self.generators = [torch.Generator().manual_seed(model_seed(s, family, capacity, 1)) for s in seeds]

    def epoch(self) -> torch.Tensor:
        return torch.stack([torch.randperm(self.n, generator=g) for g in self.generators])


@dataclasses.dataclass
class ModelStack:
    """Trained models of one (family, capacity), stacked along a leading model axis.

    Attributes
    ----------
    family, capacity : str, int
    seeds : list of int
    base : torch.nn.Module
        The architecture on the ``meta`` device (no storage); ``params`` supply the weights.
    params, buffers : dict of str to torch.Tensor
        Stacked tensors of shape ``(n_models, ...)``.
    train_accuracy, test_accuracy : numpy.ndarray
        Accuracy of each model on the full training and test splits.
    mode : str
        ``"batched"`` or ``"sequential"``: the path that trained the models.
    seconds : float
        Wall time of the training.
    """

    family: str
    capacity: int
    seeds: list
    base: torch.nn.Module
    params: dict
    buffers: dict
    train_accuracy: np.ndarray = None
    test_accuracy: np.ndarray = None
    mode: str = "batched"
    seconds: float = float("nan")

    def __len__(self) -> int:
        return len(self.seeds)

    def functional(self) -> Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor], torch.Tensor]:
        """``f(params, buffers, x) -> logits`` for one model (to be vmapped over the model axis)."""
        base = self.base

        def f(params, buffers, x):
            return functional_call(base, (params, buffers), (x,))

        return f

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Logits of every model on the shared inputs ``x``: shape ``(n_models, n, n_classes)``.

        ``batch_size`` inputs at a time (default: at most 1024, and about 2**25 input values across the models).
        """
        if batch_size is None:
            batch_size = max(1, min(1024, 2**25 // max(1, len(self) * math.prod(x.shape[1:]))))
        f = vmap(self.functional(), in_dims=(0, 0, None))
        params = {k: v.detach() for k, v in self.params.items()}
        return torch.cat([f(params, self.buffers, x[i: i + batch_size]) for i in range(0, len(x), batch_size)], 1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        """Fraction of ``x`` that each model classifies as ``y``."""
        correct = self.logits(x, batch_size).argmax(-1) == y.to(x.device)
        return correct.float().mean(1).cpu().numpy()

    def module(self, i: int) -> torch.nn.Module:
        """Model ``i`` as an ordinary module (a copy of its weights)."""
        model = copy.deepcopy(self.base).to_empty(device=next(iter(self.params.values())).device)
        state = {k: v[i].detach().clone() for k, v in {**self.params, **self.buffers}.items()}
        model.load_state_dict(state)
        return model.eval()


def _stack(models: list[torch.nn.Module]) -> tuple[torch.nn.Module, dict, dict]:
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    return base, params, buffers


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _train_batched(models, orders: _Orders, x, y, recipe: Recipe, device) -> tuple:
    base, params, buffers = _stack(models)
    base.train()
    smoothing = recipe.label_smoothing

    def loss(p, b, xb, yb):
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb, label_smoothing=smoothing)

    batched_loss = vmap(loss)
    optimizer = recipe.make_optimizer(list(params.values()))
    n, bs = x.shape[0], recipe.batch_size
    steps = math.ceil(n / bs)
    total, step = recipe.epochs * steps, 0
    for _ in range(recipe.epochs):
        order = orders.epoch().to(device)
        for s in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * recipe.lr_factor(step, total)
            idx = order[:, s * bs: (s + 1) * bs]
            with _autocast(device, recipe.amp):
                losses = batched_loss(params, buffers, x[idx], y[idx])
            losses.sum().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
    return base, {k: v.detach() for k, v in params.items()}, buffers


def _train_sequential(models, orders: _Orders, x, y, recipe: Recipe, device) -> tuple:
    n, bs = x.shape[0], recipe.batch_size
    steps = math.ceil(n / bs)
    total = recipe.epochs * steps
    epoch_orders = [orders.epoch() for _ in range(recipe.epochs)]  # same draws as the batched path
    for i, model in enumerate(models):
        model.train()
        optimizer = recipe.make_optimizer(model.parameters())
        step = 0
        for epoch in range(recipe.epochs):
            order = epoch_orders[epoch][i].to(device)
            for s in range(steps):
                for group in optimizer.param_groups:
                    group["lr"] = recipe.lr * recipe.lr_factor(step, total)
                idx = order[s * bs: (s + 1) * bs]
                with _autocast(device, recipe.amp):
                    loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=recipe.label_smoothing)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
    base, params, buffers = _stack(models)
    return base, {k: v.detach() for k, v in params.items()}, buffers


def train_models(family: str, capacity: int, seeds: Sequence[int], data: Dataset, recipe: Recipe | None = None, *,
                 mode: str = "batched", device: str | torch.device | None = None) -> ModelStack:
    """Train one model of (``family``, ``capacity``) per seed in ``seeds`` and return them stacked.

    Parameters
    ----------
    family, capacity : str, int
        Architecture (see :mod:`sawdist.extraction.models`).
    seeds : sequence of int
        One model per seed; a model's initialisation and data order depend only on (seed, family, capacity).
    data : sawdist.extraction.data.Dataset
        Moved to ``device`` if it is not there already.
    recipe : Recipe, optional
    mode : {"batched", "sequential"}
        Training path (use :func:`choose_mode` to pick the faster one).
    device : str or torch.device, optional
        Defaults to the device that holds ``data``.

    Returns
    -------
    ModelStack
        With train and test accuracy of every model.
    """
    recipe = recipe or Recipe()
    check_family(family)
    capacity = check_capacity(capacity)
    if mode not in ("batched", "sequential"):
        raise ValueError(f"'mode' must be 'batched' or 'sequential', got {mode!r}.")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("'seeds' must name at least one seed, got none.")
    device = data.x_train.device if device is None else torch.device(device)
    data = data.to(device)
    start = time.perf_counter()
    models = [init_model(family, capacity, s, data.input_shape, data.n_classes).to(device) for s in seeds]
    orders = _Orders(family, capacity, seeds, data.x_train.shape[0])
    train = _train_batched if mode == "batched" else _train_sequential
    base, params, buffers = train(models, orders, data.x_train, data.y_train, recipe, device)
    base.eval()
    stack = ModelStack(family, capacity, seeds, base, params, buffers, mode=mode)
    stack.train_accuracy = stack.accuracy(data.x_train, data.y_train)
    stack.test_accuracy = stack.accuracy(data.x_test, data.y_test)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stack.seconds = time.perf_counter() - start
    return stack


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(family: str, capacity: int, n_models: int, data: Dataset, recipe: Recipe, *,
               device: str | torch.device | None = None, repeats: int = 3) -> dict[str, float]:
    """Seconds per training step of ``n_models`` models, batched and sequential (best of ``repeats``, alternated).

    Throwaway models are used (seeds far from the run's), so timing never touches the models being trained.
    Returns ``{"batched": s, "sequential": s}``, both for all ``n_models`` models; the sequential time is measured
    on up to 4 models and scaled.
    """
    device = data.x_train.device if device is None else torch.device(device)
    data = data.to(device)
    bs = min(recipe.batch_size, data.x_train.shape[0])
    timing_recipe = dataclasses.replace(recipe, epochs=1, batch_size=bs)
    n_seq = min(n_models, 4)
    generator = torch.Generator().manual_seed(0)
    idx = torch.randint(data.x_train.shape[0], (n_models, bs), generator=generator).to(device)
    x, y = data.x_train, data.y_train

    models = [init_model(family, capacity, 10**6 + s, data.input_shape, data.n_classes).to(device)
              for s in range(n_models)]
    base, params, buffers = _stack(models)

    def loss(p, b, xb, yb):
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    batched_loss = vmap(loss)
    optimizer = timing_recipe.make_optimizer(list(params.values()))

    def batched_step():
        with _autocast(device, recipe.amp):
            losses = batched_loss(params, buffers, x[idx], y[idx])
        losses.sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    optimizers = [timing_recipe.make_optimizer(m.parameters()) for m in models[:n_seq]]

    def sequential_step():
        for i in range(n_seq):
            with _autocast(device, recipe.amp):
                loss_i = F.cross_entropy(models[i](x[idx[i]]), y[idx[i]])
            loss_i.backward()
            optimizers[i].step()
            optimizers[i].zero_grad(set_to_none=True)

    # Warm up both, then alternate the measurements so that load from other processes hits both alike.
    steps = {"batched": (batched_step, 1.0), "sequential": (sequential_step, n_models / n_seq)}
    for step, _ in steps.values():
        step()
    _sync(device)
    result = {name: float("inf") for name in steps}
    for _ in range(repeats):
        for name, (step, scale) in steps.items():
            start = time.perf_counter()
            step()
            _sync(device)
            result[name] = min(result[name], (time.perf_counter() - start) * scale)
    return result


def choose_mode(family: str, capacity: int, n_models: int, data: Dataset, recipe: Recipe, *,
                device: str | torch.device | None = None) -> tuple[str, dict[str, float]]:
    """Return the faster training path for ``n_models`` models (``"batched"`` unless sequential is faster).

    Returns the mode and the step timings of :func:`time_steps`. A single model is always trained sequentially.
    """
    if n_models == 1:
        return "sequential", {}
    timings = time_steps(family, capacity, n_models, data, recipe, device=device)
    return ("batched" if timings["batched"] <= timings["sequential"] else "sequential"), timings
