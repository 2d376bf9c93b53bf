# ruff: noqa: F811  (pytest fixtures imported from extraction_fixtures are test arguments of the same name)
import dataclasses

import numpy as np
import pytest
import torch

from sawdist.extraction.data import load_dataset
from sawdist.extraction.train import Recipe, choose_mode, init_model, resolve_device, time_steps, train_models

from .extraction_fixtures import _one_torch_thread, digits, quick_recipe  # noqa: F401  (fixtures)


def _max_difference(a, b):
    return max(float((a.params[name] - b.params[name]).abs().max()) for name in a.params)


@pytest.mark.parametrize("family", ["mlp", "cnn_small"])
def test_batched_equals_sequential(digits, family):
    recipe = Recipe(epochs=1, batch_size=256)  # 6 steps: float reassociation only, no chaotic growth yet
    batched = train_models(family, 8, [0, 1, 2], digits, recipe, mode="batched")
    sequential = train_models(family, 8, [0, 1, 2], digits, recipe, mode="sequential")
    assert _max_difference(batched, sequential) < 1e-4
    np.testing.assert_allclose(batched.test_accuracy, sequential.test_accuracy, atol=1 / 450 + 1e-6)
    logits_b, logits_s = batched.logits(digits.x_test[:50]), sequential.logits(digits.x_test[:50])
    torch.testing.assert_close(logits_b, logits_s, rtol=1e-4, atol=1e-4)


def test_each_model_has_its_own_init_and_order(digits, quick_recipe):
    stack = train_models("mlp", 8, [0, 1], digits, quick_recipe)
    assert not torch.equal(stack.params["1.weight"][0], stack.params["1.weight"][1])
    first = init_model("mlp", 8, 0, (1, 8, 8), 10).state_dict()["1.weight"]
    assert torch.equal(first, init_model("mlp", 8, 0, (1, 8, 8), 10).state_dict()["1.weight"])
    assert not torch.equal(first, init_model("mlp", 16, 0, (1, 8, 8), 10).state_dict()["1.weight"][:8])


def test_a_model_does_not_depend_on_its_chunk(digits, quick_recipe):
    alone = train_models("mlp", 8, [1], digits, quick_recipe, mode="sequential")
    together = train_models("mlp", 8, [0, 1, 2], digits, quick_recipe, mode="sequential")
    for name in alone.params:
        assert torch.equal(alone.params[name][0], together.params[name][1])


def test_deterministic_on_cpu(digits, quick_recipe):
    a = train_models("cnn_small", 4, [0, 1], digits, quick_recipe)
    b = train_models("cnn_small", 4, [0, 1], digits, quick_recipe)
    assert _max_difference(a, b) == 0
    assert np.array_equal(a.test_accuracy, b.test_accuracy)


def test_training_learns(digits):
    stack = train_models("cnn_small", 8, [0, 1], digits, Recipe(epochs=3))
    assert stack.train_accuracy.min() > 0.8 and stack.test_accuracy.min() > 0.8
    assert stack.mode == "batched" and stack.seconds > 0


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_other_optimizers_and_schedules_agree_across_paths(digits, optimizer, schedule):
    recipe = Recipe(epochs=1, batch_size=512, optimizer=optimizer, lr=1e-3, schedule=schedule, label_smoothing=0.1)
    batched = train_models("mlp", 8, [0, 1], digits, recipe, mode="batched")
    sequential = train_models("mlp", 8, [0, 1], digits, recipe, mode="sequential")
    assert _max_difference(batched, sequential) < 1e-5


def test_module_view_matches_stack(digits, quick_recipe):
    stack = train_models("cnn_small", 4, [0, 1], digits, quick_recipe)
    with torch.no_grad():
        torch.testing.assert_close(stack.module(1)(digits.x_test[:20]), stack.logits(digits.x_test[:20])[1])


def test_mixed_precision_trains(digits):
    stack = train_models("mlp", 16, [0], digits, Recipe(epochs=2, amp=True))
    assert stack.test_accuracy[0] > 0.5
    assert all(p.dtype == torch.float32 for p in stack.params.values())


def test_choose_mode_and_timings(digits, quick_recipe):
    timings = time_steps("mlp", 4, 3, digits, quick_recipe, repeats=1)
    assert set(timings) == {"batched", "sequential"} and all(t > 0 for t in timings.values())
    mode, _ = choose_mode("mlp", 4, 3, digits, quick_recipe)
    assert mode in ("batched", "sequential")
    assert choose_mode("mlp", 4, 1, digits, quick_recipe) == ("sequential", {})


def test_lr_schedule():
    recipe = Recipe(warmup=0.25, schedule="linear")
    factors = [recipe.lr_factor(s, 8) for s in range(8)]
    assert factors[:2] == [0.5, 1.0] and factors[2] == 1.0 and factors[-1] == pytest.approx(1 / 6)
    cosine = Recipe(warmup=0.0, schedule="cosine")
    assert cosine.lr_factor(0, 10) == 1.0 and cosine.lr_factor(5, 10) == pytest.approx(0.5)


def test_recipe_round_trip():
    recipe = Recipe(epochs=3, optimizer="adamw", lr=1e-3)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert '"optimizer": "adamw"' in recipe.to_json()


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 0}, r"^'epochs' must be a positive integer, got 0\.$"),
    ({"batch_size": 2.5}, r"^'batch_size' must be a positive integer, got 2\.5\.$"),
    ({"optimizer": "lion"}, r"^'optimizer' must be one of sgd, adam, adamw, got 'lion'\.$"),
    ({"schedule": "step"}, r"^'schedule' must be one of linear, cosine, constant, got 'step'\.$"),
    ({"lr": -1.0}, r"^'lr' must be a positive finite number, got -1\.0\.$"),
    ({"momentum": 1.0}, r"^'momentum' must lie in \[0, 1\), got 1\.0\.$"),
    ({"warmup": -0.1}, r"^'warmup' must lie in \[0, 1\), got -0\.1\.$"),
    ({"label_smoothing": 2}, r"^'label_smoothing' must lie in \[0, 1\), got 2\.$"),
    ({"weight_decay": -1e-4}, r"^'weight_decay' must be non-negative, got -0\.0001\.$"),
])
def test_recipe_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(Recipe(), **changes)


def test_recipe_unknown_key():
    with pytest.raises(ValueError, match=r"^'recipe' has unknown key 'epoch'; the keys are amp, batch_size, "):
        Recipe.from_dict({"epoch": 3})


def test_train_errors(digits, quick_recipe):
    with pytest.raises(ValueError, match=r"^'mode' must be 'batched' or 'sequential', got 'auto'\.$"):
        train_models("mlp", 4, [0], digits, quick_recipe, mode="auto")
    with pytest.raises(ValueError, match=r"^'seeds' must name at least one seed, got none\.$"):
        train_models("mlp", 4, [], digits, quick_recipe)


def test_resolve_device():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^'device' must be auto, cpu, cuda or cuda:N, got 'meta'\.$"):
        resolve_device("meta")
    with pytest.raises(ValueError, match=r"^'device' must be auto, cpu, cuda or cuda:N, got 'gpu:x'\.$"):
        resolve_device("gpu:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match=r"^'device' is 'cuda' but torch\.cuda\.is_available\(\) is False"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"^'device' is 'cuda:1' but torch\.cuda\.is_available\(\) is False"):
        resolve_device("cuda:1")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_index_past_the_last_gpu():
    n = torch.cuda.device_count()
    assert resolve_device(f"cuda:{n - 1}") == torch.device(f"cuda:{n - 1}")
    with pytest.raises(ValueError, match=rf"^'device' is 'cuda:{n}' but this machine has {n} GPU\(s\)"):
        resolve_device(f"cuda:{n}")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_batched_equals_sequential():
    data = load_dataset("synthetic", shape=(3, 32, 32), n_train=512, n_test=128).to("cuda")
    recipe = Recipe(epochs=1, batch_size=128)
    batched = train_models("cnn_small", 8, [0, 1, 2, 3], data, recipe, mode="batched")
    sequential = train_models("cnn_small", 8, [0, 1, 2, 3], data, recipe, mode="sequential")
    assert _max_difference(batched, sequential) < 1e-2  # TF32 convolutions on recent GPUs round to ~1e-3
