import pytest
import torch

from sawdist.extraction.models import FAMILIES, build_model, count_params


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 32, 32)])
def test_every_family_builds_and_counts(family, input_shape):
    model = build_model(family, 4, input_shape, n_classes=7)
    out = model(torch.randn(3, *input_shape))
    assert out.shape == (3, 7)
    assert count_params(family, 4, input_shape, 7) == sum(p.numel() for p in model.parameters())
    # no buffers and no batch-dependent layers: stacking and per-input gradients stay exact
    assert not list(model.buffers())
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm | torch.nn.Dropout) for m in model.modules())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_parameters_grow_with_capacity(family):
    counts = [count_params(family, k, (1, 8, 8), 10) for k in (2, 4, 8)]
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_inputs_do_not_interact(family):
    """The output of one input does not depend on another input of the batch (eval and train alike)."""
    torch.manual_seed(0)
    model = build_model(family, 4, (1, 8, 8), 10)
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x)[0].sum(), x)
    assert torch.all(grad[1:] == 0)


def test_vit_geometry():
    model = build_model("vit", 6, (3, 32, 32), 10)
    assert model.embed.out_channels == 24  # embedding 4k
    assert model.blocks[0].attention.heads == 3  # k/2 heads
    assert model.position.shape[1] == 64  # 8 x 8 patches of 4 x 4


def test_vit_capacity_must_be_even():
    with pytest.raises(ValueError, match=r"^'capacity' must be even for vit, got 5\.$"):
        build_model("vit", 5, (1, 8, 8), 10)


def test_unknown_family_lists_choices():
    with pytest.raises(ValueError, match=r"^'family' must be one of mlp, cnn_small, cnn_large, resnet_small, "
                                         r"resnet_large, vit, got 'lenet'\.$"):
        build_model("lenet", 4, (1, 8, 8), 10)


@pytest.mark.parametrize("capacity", [0, -3, 2.5, True])
def test_capacity_must_be_positive_integer(capacity):
    with pytest.raises(ValueError, match=r"^'capacity' must be a positive integer, got "):
        build_model("mlp", capacity, (1, 8, 8), 10)


def test_image_families_need_image_shape():
    with pytest.raises(ValueError, match=r"^'input_shape' must be \(channels, height, width\) for cnn_small, "
                                         r"got \(64,\)\.$"):
        build_model("cnn_small", 4, (64,), 10)


def test_mlp_takes_any_shape():
    assert build_model("mlp", 4, (64,), 10)(torch.randn(2, 64)).shape == (2, 10)


def test_n_classes_must_be_positive():
    with pytest.raises(ValueError, match=r"^'n_classes' must be positive, got 0\.$"):
        build_model("mlp", 4, (64,), 0)
