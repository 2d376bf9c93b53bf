# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
import numpy as np
import pytest
import torch
from torch.func import grad, vmap

from sawdist.extraction.saliency import TARGETS, input_gradients, saliency, target_values
from sawdist.extraction.train import Recipe, train_models

from .extraction_fixtures import _one_torch_thread, digits  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def stack(digits):
    return train_models("cnn_small", 8, [0, 1, 2], digits, Recipe(epochs=1, batch_size=128))


@pytest.mark.parametrize("target", TARGETS)
def test_matches_vmap_grad_reference(stack, digits, target):
    x, y = digits.x_test[:64], digits.y_test[:64]
    gradients, logits = input_gradients(stack, x, y, target)
    assert gradients.shape == (3, 64, 1, 8, 8) and gradients.dtype == torch.float32
    for i in range(len(stack)):
        model = stack.module(i)

        def one(xi, yi, model=model):  # bind this iteration's model
            return target_values(model(xi.unsqueeze(0))[0], yi, target)

        reference = vmap(grad(one))(x, y)
        torch.testing.assert_close(gradients[i], reference, rtol=0, atol=1e-5)


def test_targets_definitions():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([1, 1])
    log_p = torch.log_softmax(logits, -1)
    assert target_values(logits, labels, "label_logit").tolist() == [0.0, 3.0]
    assert target_values(logits, labels, "pred_logit").tolist() == [2.0, 3.0]
    torch.testing.assert_close(target_values(logits, labels, "log_softmax"), log_p[:, 1])
    torch.testing.assert_close(target_values(logits, labels, "loss"), -log_p[:, 1])


def test_unit_directions_and_correctness(stack, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    s = saliency(stack, x, y, batch_size=37)  # several batches
    assert s.direction.shape == (3, 100, 64) and s.direction.dtype == np.float32
    assert s.valid.all()
    np.testing.assert_allclose(np.linalg.norm(s.direction.astype(np.float64), axis=-1), 1, atol=1e-6)
    raw, logits = input_gradients(stack, x, y)
    flat = raw.reshape(3, 100, -1).double()
    np.testing.assert_allclose(s.grad_norm, flat.norm(dim=-1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(s.direction, (flat / flat.norm(dim=-1, keepdim=True)).numpy(), atol=1e-6)
    assert np.array_equal(s.correct, (logits.argmax(-1) == y).numpy())
    assert abs(s.correct.mean(1) - stack.accuracy(x, y)).max() < 1e-6


def test_zero_and_nonfinite_gradients_are_invalid(digits):
    stack = train_models("mlp", 32, [0, 1, 2], digits, Recipe(epochs=1))
    with torch.no_grad():
        stack.params["1.bias"][0] = -1e6  # model 0: every first-layer ReLU dead -> zero gradient everywhere
        stack.params["1.weight"][1, 0, 0] = float("nan")  # model 1: NaN weight -> NaN logits and gradient
    s = saliency(stack, digits.x_test[:20], digits.y_test[:20])
    assert not s.valid[0].any() and np.all(s.grad_norm[0] == 0) and np.isnan(s.direction[0]).all()
    assert not s.valid[1].any() and np.isnan(s.direction[1]).all()
    assert s.valid[2].all() and np.isfinite(s.direction[2]).all()


def test_target_error(stack, digits):
    with pytest.raises(ValueError, match=r"^'target' must be one of label_logit, pred_logit, loss, log_softmax, "
                                         r"got 'logit'\.$"):
        saliency(stack, digits.x_test[:2], digits.y_test[:2], target="logit")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_saliency_matches_cpu(digits):
    cpu = train_models("cnn_small", 8, [0, 1], digits, Recipe(epochs=1, batch_size=128))
    gpu = train_models("cnn_small", 8, [0, 1], digits.to("cuda"), Recipe(epochs=1, batch_size=128))
    s_cpu = saliency(cpu, digits.x_test[:50], digits.y_test[:50])
    s_gpu = saliency(gpu, digits.x_test[:50].cuda(), digits.y_test[:50].cuda())
    assert np.nanmean(np.sum(s_cpu.direction * s_gpu.direction, axis=-1)) > 0.99


def test_out_of_memory_halves_the_batch(stack, digits, monkeypatch):
    # A GPU that holds at most 5 inputs' activations, simulated: the directions must not change.
    import sawdist.extraction.saliency as sal

    x, y = digits.x_test[:23], digits.y_test[:23]
    reference = saliency(stack, x, y)
    real, sizes = sal.input_gradients, []

    def small_gpu(stack_, xb, yb, target):
        sizes.append(xb.shape[0])
        if xb.shape[0] > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(stack_, xb, yb, target)

    monkeypatch.setattr(sal, "input_gradients", small_gpu)
    result = saliency(stack, x, y, batch_size=16)
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) <= 4
    np.testing.assert_allclose(result.direction, reference.direction, atol=1e-6)  # batch sizes may reassociate
    np.testing.assert_array_equal(result.valid, reference.valid)
