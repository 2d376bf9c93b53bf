"""Finding 6 with a known answer: noisy linear classifiers around a true weight matrix.

Model m of capacity k has weights W* + sigma_k G_m (rows of G_m ~ N(0, I/d)); its label-logit saliency is the row
W_m[y]. The mean of several surrogates' rows is closer to W*[y] than any single row (noise variance sigma^2 / n), so
it lowers every target's label logit more per unit perturbation: the mean direction must transfer best, over a
grid of eps that takes the accuracy from 1 to 0.
"""

import numpy as np
import pytest

from sawdist.analyses import transfer
from sawdist.analyses.context import Context, Options
from sawdist.analyses.models import ModelPool

EPS = list(np.linspace(0.0, 2.0, 9))


class LinearPool(ModelPool):
    def __init__(self, sigmas, n_models=6, d=20, n_classes=4, n=120, rng=0):
        gen = np.random.default_rng(rng)
        w = gen.standard_normal((n_classes, d))
        self.w_true = w / np.linalg.norm(w, axis=1, keepdims=True)
        self.caps = sorted(sigmas)
        self.W = {k: self.w_true + sigmas[k] * gen.standard_normal((n_models, n_classes, d)) / np.sqrt(d)
                  for k in self.caps}
        self.families = ["linear"]
        self.labels = gen.integers(0, n_classes, n)
        # Margins spread over a range, so that the accuracy falls gradually with eps.
        self.x = (
            gen.uniform(1.0, 5.0, (n, 1)) * self.w_true[self.labels] + 0.3 * gen.standard_normal((n, d)) / np.sqrt(d)
        )

    def capacities(self, family):
        return self.caps

    def n_models(self, family, capacity):
        return self.W[capacity].shape[0]

    def directions(self, family, capacity):
        rows = self.W[capacity][:, self.labels]  # (M, n, d)
        return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

    def predict(self, family, capacity, model, x):
        return np.argmax(np.asarray(x).reshape(len(x), -1) @ self.W[capacity][model].T, axis=-1)

    def probabilities_of(self, family, capacity):
        z = np.einsum("nd,mcd->mnc", self.x, self.W[capacity])
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)


def test_mean_direction_transfers_best(shared, tmp_path):
    pool = LinearPool({1: 1.0, 2: 0.67})
    ctx = Context(shared, tmp_path, Options(transfer_epsilons=EPS), models=pool)
    f = transfer.analyze(shared, tmp_path, context=ctx)
    assert f.status == "holds"
    assert f.numbers["linear/single_minus_mean"] > 0
    assert f.numbers["linear/largest_minus_mean"] > 0
    assert (tmp_path / f.figures[0]).stat().st_size > 0


def test_attack_curves_start_at_clean_accuracy_one():
    pool = LinearPool({1: 1.0, 2: 0.67})
    acc, caps = transfer.attack_curves(pool, "linear", [0.0, 1.0])
    assert caps == [1, 2]
    # At eps = 0 every input the target classifies correctly is still correct (the others are NaN).
    np.testing.assert_array_equal(np.nanmin(acc[..., 0, :]), 1.0)
    # Perturbing along any surrogate direction only lowers the target's accuracy.
    assert np.nanmean(acc[..., 1, :]) < 1.0


def test_a_better_large_surrogate_beats_the_mean_of_noisy_small_ones(shared, tmp_path):
    # With a nearly noiseless largest capacity, one large surrogate transfers better: the claim fails here.
    pool = LinearPool({1: 1.0, 2: 0.05})
    ctx = Context(shared, tmp_path, Options(transfer_epsilons=EPS), models=pool)
    f = transfer.analyze(shared, tmp_path, context=ctx)
    assert f.status == "fails"
    assert f.numbers["linear/largest_minus_mean"] < 0


def test_transfer_without_models_is_not_tested(shared, tmp_path):
    f = transfer.analyze(shared, tmp_path)
    assert f.status == "not tested"
    assert "no trained models" in f.reason


@pytest.mark.slow
def test_torch_model_pool_round_trip_and_attack(shared, tmp_path):
    pytest.importorskip("torch")
    from sawdist.extraction.data import load_dataset
    from sawdist.extraction.pool import TorchModelPool
    from sawdist.extraction.train import Recipe

    from ..extraction.extraction_fixtures import one_torch_thread

    data = load_dataset("digits")
    with one_torch_thread():
        pool = TorchModelPool.train(data, ["mlp"], [4, 16], range(3), Recipe(epochs=2, batch_size=128),
                                    n_inputs=60)
    pool.save(tmp_path / "models")
    loaded = TorchModelPool.load(tmp_path / "models")
    np.testing.assert_array_equal(loaded.labels, pool.labels)
    np.testing.assert_allclose(loaded.directions("mlp", 16), pool.directions("mlp", 16), atol=1e-6)
    np.testing.assert_array_equal(loaded.predict("mlp", 4, 1, loaded.x), pool.predict("mlp", 4, 1, pool.x))
    d = pool.directions("mlp", 16)
    ok = np.all(np.isfinite(d), axis=-1)  # NaN rows: zero gradients (dead units of a briefly trained model)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(np.linalg.norm(d[ok], axis=-1), 1.0, atol=1e-6)
    ctx = Context(shared, tmp_path, Options(transfer_epsilons=[0.0, 1.0, 4.0]), models=loaded)
    f = transfer.analyze(shared, tmp_path, context=ctx)
    assert f.status in ("holds", "fails", "inconclusive")
    # Attacking along saliency directions at eps = 4 (4 standard deviations per pixel) breaks most predictions.
    assert f.numbers["mlp/accuracy_mean"] < 0.9
