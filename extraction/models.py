"""The model zoo: architecture families parameterised by a capacity k.

Every family maps (capacity, input_shape, n_classes) to a ``torch.nn.Module``; the capacity k is the width multiplier
of its layers (hidden units, convolution channels, embedding dimension), as the table says. None of them has
batch-dependent layers (no BatchNorm, no dropout): normalization is GroupNorm or LayerNorm, which act on one input at
a time. So an input's gradient can never depend on another input in the batch, eval and train mode compute the same
function, and the modules have no buffers, which keeps ``torch.func.stack_module_state`` + ``vmap`` training simple.

========================  ==================================================================================
family                    architecture (capacity k)
========================  ==================================================================================
``mlp``                   flatten, two hidden layers of k ReLU units
``cnn_small``             conv(k)-pool-conv(2k)-pool, 3x3 kernels, ReLU, adaptive 2x2 average pool, linear
``cnn_large``             three stages of two 3x3 conv-GroupNorm-ReLU (k, 2k, 4k), max pooling, average pool
``resnet_small``          conv stem (k), two stages of one basic block (k, 2k), GroupNorm, global average pool
``resnet_large``          conv stem (k), four stages of two basic blocks (k, 2k, 4k, 8k): a ResNet-18 layout
``vit``                   patch embedding of dimension 4k, k/2 heads of size 8, 2 pre-norm blocks, mean pooling
========================  ==================================================================================

Examples
--------
>>> from sawdist.extraction.models import build_model, count_params
>>> model = build_model("cnn_small", 8, input_shape=(1, 8, 8), n_classes=10)
>>> count_params("cnn_small", 8, input_shape=(1, 8, 8), n_classes=10)
1898
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["FAMILIES", "Family", "build_model", "count_params"]


def _image_shape(family: str, input_shape) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"'input_shape' must be (channels, height, width) for {family}, got {tuple(input_shape)}.")
    return tuple(int(s) for s in input_shape)


def _mlp(k: int, input_shape, n_classes: int) -> nn.Module:
    d = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, k), nn.ReLU(),
        nn.Linear(k, k), nn.ReLU(),
        nn.Linear(k, n_classes),
    )


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1)


def _groups(channels: int) -> int:
    """Number of GroupNorm groups: the largest divisor of ``channels`` that is at most 8."""
    return max(g for g in range(1, 9) if channels % g == 0)


def _cnn_small(k: int, input_shape, n_classes: int) -> nn.Module:
    c, _, _ = _image_shape("cnn_small", input_shape)
    return nn.Sequential(
        _conv(c, k), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        _conv(k, 2 * k), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(8 * k, n_classes),
    )


def _cnn_large(k: int, input_shape, n_classes: int) -> nn.Module:
    c, h, w = _image_shape("cnn_large", input_shape)
    layers: list[nn.Module] = []
    for channels in (k, 2 * k, 4 * k):
        for c_in in (c, channels):
            layers += [_conv(c_in, channels), nn.GroupNorm(_groups(channels), channels), nn.ReLU()]
        if min(h, w) >= 2:  # pool while there is something to pool
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            h, w = -(-h // 2), -(-w // 2)
        c = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, n_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with GroupNorm and a projection shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = _conv(c_in, c_out, stride), nn.GroupNorm(_groups(c_out), c_out)
        self.conv2, self.norm2 = _conv(c_out, c_out), nn.GroupNorm(_groups(c_out), c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride), nn.GroupNorm(_groups(c_out), c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


def _resnet(family: str, k: int, input_shape, n_classes: int, stages: tuple[int, ...], blocks: int) -> nn.Module:
    c, _, _ = _image_shape(family, input_shape)
    layers: list[nn.Module] = [_conv(c, k), nn.GroupNorm(_groups(k), k), nn.ReLU()]
    c_in = k
    for i, multiple in enumerate(stages):
        c_out = multiple * k
        for j in range(blocks):
            layers.append(BasicBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes)]
    return nn.Sequential(*layers)


def _resnet_small(k: int, input_shape, n_classes: int) -> nn.Module:
    return _resnet("resnet_small", k, input_shape, n_classes, stages=(1, 2), blocks=1)


def _resnet_large(k: int, input_shape, n_classes: int) -> nn.Module:
    return _resnet("resnet_large", k, input_shape, n_classes, stages=(1, 2, 4, 8), blocks=2)


class _Attention(nn.Module):
    """Multi-head self-attention written out (plain matmuls and softmax, so that ``vmap`` batches it)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads), dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(n, t, dim))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _patch_size(h: int, w: int) -> int:
    """Smallest patch size (at least 2 for inputs of 8 pixels or more) that divides both sides, grid at most 8x8."""
    g = math.gcd(h, w)
    target = max(math.ceil(max(h, w) / 8), 2 if min(h, w) >= 8 else 1)
    return next((p for p in range(target, g + 1) if g % p == 0), g)


class ViT(nn.Module):
    """A small vision transformer: patch embedding of dimension 4k, ``k/2`` heads of size 8, mean-pooled tokens."""

    def __init__(self, k: int, input_shape: Sequence[int], n_classes: int, depth: int = 2) -> None:
        super().__init__()
        c, h, w = _image_shape("vit", input_shape)
        if k % 2:
            raise ValueError(f"'capacity' must be even for vit, got {k}.")
        dim, p = 4 * k, _patch_size(h, w)
        self.embed = nn.Conv2d(c, dim, kernel_size=p, stride=p)
        self.position = nn.Parameter(0.02 * torch.randn(1, (h // p) * (w // p), dim))
        self.blocks = nn.Sequential(*[_Block(dim, k // 2) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


@dataclasses.dataclass(frozen=True)
class Family:
    """A registered architecture family: ``build(capacity, input_shape, n_classes) -> nn.Module``."""

    name: str
    build: Callable[..., nn.Module]
    description: str


#: Registry of the model families, in the order they are listed to users.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("mlp", _mlp, "two hidden layers of k ReLU units"),
        Family("cnn_small", _cnn_small, "conv(k)-pool-conv(2k)-pool, linear head"),
        Family("cnn_large", _cnn_large, "three stages of two convs (k, 2k, 4k)"),
        Family("resnet_small", _resnet_small, "ResNet with stages (k, 2k) of one block"),
        Family("resnet_large", _resnet_large, "ResNet-18 layout with stages (k, 2k, 4k, 8k)"),
        Family("vit", ViT, "vision transformer, embedding 4k, k/2 heads"),
    )
}


def check_family(family: str) -> Family:
    """Return the registered :class:`Family` called ``family``; the error lists the choices."""
    if family not in FAMILIES:
        raise ValueError(f"'family' must be one of {', '.join(FAMILIES)}, got {family!r}.")
    return FAMILIES[family]


def check_capacity(capacity: float) -> int:
    """Return ``capacity`` as an int after checking that it is a positive integer."""
    if isinstance(capacity, bool) or not isinstance(capacity, int | float) or capacity != int(capacity) or capacity < 1:
        raise ValueError(f"'capacity' must be a positive integer, got {capacity!r}.")
    return int(capacity)


def build_model(family: str, capacity: int, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """Build a fresh model of ``family`` at capacity k, initialised from torch's global random state.

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES`.
    capacity : int
        The capacity k (positive; even for ``vit``): the width multiplier of the family's layers.
    input_shape : tuple of int
        Shape of one input, ``(channels, height, width)`` for the convolutional and transformer families.
    n_classes : int
        Number of output logits.
    """
    spec = check_family(family)
    capacity = check_capacity(capacity)
    if n_classes < 1:
        raise ValueError(f"'n_classes' must be positive, got {n_classes}.")
    return spec.build(capacity, tuple(input_shape), int(n_classes))


def count_params(family: str, capacity: int, input_shape: Sequence[int], n_classes: int) -> int:
    """Number of trainable parameters of ``build_model(family, capacity, input_shape, n_classes)``."""
    with torch.device("meta"):
        model = build_model(family, capacity, input_shape, n_classes)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
