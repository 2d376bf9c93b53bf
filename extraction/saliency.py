"""Input saliency: per-input gradients of a target with respect to the input, for a stack of models.

For models f_1..f_M and inputs x_1..x_N, the saliency of model m at input n is g_mn = d T(f_m(x_mn)) / d x_mn, where
x_mn is model m's own copy of x_n and T a scalar target of the logits. Because every model processes every input
independently (the zoo has no batch-dependent layers), the gradient of the *sum* of all targets with respect to the
stacked copies is exactly the stack of the per-input gradients, so one backward pass gives all M x N of them.

Targets (``y`` the true label):

==================  ===============================================================
``label_logit``     the logit of the true class, f_y(x) (default)
``pred_logit``      the logit of the predicted class, f_argmax(x)
``loss``            the cross-entropy loss -log softmax(f(x))_y
``log_softmax``     the log-probability of the true class, log softmax(f(x))_y
==================  ===============================================================

The direction is u = g / ||g||. Gradients that are zero (dead ReLU networks) or not finite are invalid: ``valid`` is
False and the direction is NaN there. Gradients are computed in float32 in eval mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import vmap

if TYPE_CHECKING:
    from .train import ModelStack

__all__ = ["TARGETS", "Saliency", "input_gradients", "normalize", "saliency", "target_values"]

TARGETS = ("label_logit", "pred_logit", "loss", "log_softmax")


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"'target' must be one of {', '.join(TARGETS)}, got {target!r}.")
    return target


@contextlib.contextmanager
def _ieee_float32(device: torch.device):
    """True float32 convolutions on CUDA: PyTorch lets cuDNN use TF32 (10-bit mantissa) for them by default."""
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        previous, conv.fp32_precision = conv.fp32_precision, "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = previous
    else:
        previous, torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.allow_tf32, False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = previous


def target_values(logits: torch.Tensor, labels: torch.Tensor, target: str = "label_logit") -> torch.Tensor:
    """Per-input target of ``logits`` (shape ``(..., n_classes)``) given integer ``labels`` (shape ``(...)``)."""
    check_target(target)
    if target == "label_logit":
        return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if target == "pred_logit":
        return logits.gather(-1, logits.argmax(-1, keepdim=True)).squeeze(-1)
    log_p = F.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return -log_p if target == "loss" else log_p


def input_gradients(stack: ModelStack, x: torch.Tensor, y: torch.Tensor,
                    target: str = "label_logit") -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``target`` w.r.t. the inputs for every model of ``stack`` on every input of ``x``.

    Parameters
    ----------
    stack : sawdist.extraction.train.ModelStack
    x : torch.Tensor
        Inputs, shape ``(n, *input_shape)``, on the models' device.
    y : torch.Tensor
        Labels, shape ``(n,)``.
    target : str
        One of :data:`TARGETS`.

    Returns
    -------
    grad : torch.Tensor
        float32, shape ``(n_models, n, *input_shape)``.
    logits : torch.Tensor
        shape ``(n_models, n, n_classes)``.
    """
    check_target(target)
    stack.base.eval()
    params = {k: v.detach().float() for k, v in stack.params.items()}
    buffers = {k: v.detach() for k, v in stack.buffers.items()}
    # Each model gets its own copy of the inputs, so its gradient lands in its own slice.
    copies = x.float().unsqueeze(0).expand(len(stack), *x.shape).clone().requires_grad_(True)
    with torch.enable_grad(), _ieee_float32(x.device):
        logits = vmap(stack.functional())(params, buffers, copies)
        total = target_values(logits, y.unsqueeze(0).expand(len(stack), -1), target).sum()
        (grad,) = torch.autograd.grad(total, copies)
    return grad, logits.detach()


@dataclasses.dataclass
class Saliency:
    """Saliency of a stack of models on a set of inputs (numpy arrays, model axis first).

    Attributes
    ----------
    direction : numpy.ndarray
        float32 ``(n_models, n, d)`` unit vectors; NaN rows where not valid.
    grad_norm : numpy.ndarray
        float32 ``(n_models, n)`` norm of the gradient before normalizing.
    valid : numpy.ndarray
        bool ``(n_models, n)``: the gradient is finite and non-zero.
    correct : numpy.ndarray
        bool ``(n_models, n)``: the model's prediction equals the label.
    """

    direction: np.ndarray
    grad_norm: np.ndarray
    valid: np.ndarray
    correct: np.ndarray


def normalize(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flatten ``grad`` (``(..., *input_shape)`` with two leading axes) to unit directions, norms and validity."""
    flat = grad.reshape(grad.shape[0], grad.shape[1], -1)
    flat64 = flat.double()
    norm = flat64.norm(dim=-1)
    valid = torch.isfinite(flat).all(dim=-1) & torch.isfinite(norm) & (norm > 0)
    direction = (flat64 / torch.where(valid, norm, 1.0).unsqueeze(-1)).float()
    direction[~valid] = float("nan")
    return direction, norm.float(), valid


def saliency(stack: ModelStack, x: torch.Tensor, y: torch.Tensor, target: str = "label_logit", *,
             batch_size: int | None = None) -> Saliency:
    """Unit saliency directions of every model of ``stack`` on the inputs ``(x, y)``.

    Samples are processed in batches of ``batch_size`` (default: about 2**24 input values per batch across the
    models on a CPU, 2**25 on a GPU), each with one backward pass; on CUDA out-of-memory the batch is halved.

    Examples
    --------
    >>> from sawdist.extraction.data import load_dataset
    >>> from sawdist.extraction.train import Recipe, train_models
    >>> data = load_dataset("digits")
    >>> stack = train_models("mlp", 8, [0, 1], data, Recipe(epochs=1))
    >>> s = saliency(stack, data.x_test[:5], data.y_test[:5])
    >>> s.direction.shape
    (2, 5, 64)
    """
    check_target(target)
    n = x.shape[0]
    d = int(np.prod(x.shape[1:]))
    if batch_size is None:
        budget = 2**25 if x.device.type == "cuda" else 2**24
        batch_size = max(1, min(n, budget // max(1, len(stack) * d)))
    out = {key: [] for key in ("direction", "grad_norm", "valid", "correct")}
    start = 0
    while start < n:
        xb, yb = x[start: start + batch_size], y[start: start + batch_size]
        try:
            grad, logits = input_gradients(stack, xb, yb, target)
        except torch.cuda.OutOfMemoryError:
            # The budget above counts inputs, not activations: wide models on a small GPU can exceed it.
            if batch_size == 1:
                raise
            batch_size = (batch_size + 1) // 2
            torch.cuda.empty_cache()
            continue
        start += xb.shape[0]
        direction, norm, valid = normalize(grad)
        out["direction"].append(direction.cpu().numpy())
        out["grad_norm"].append(norm.cpu().numpy())
        out["valid"].append(valid.cpu().numpy())
        out["correct"].append((logits.argmax(-1) == yb.unsqueeze(0)).cpu().numpy())
    return Saliency(**{key: np.concatenate(parts, axis=1) for key, parts in out.items()})
