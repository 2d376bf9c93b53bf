"""The exclusion rule of failed models (sawdist.analyses.quality): known answers, its errors, that every analysis
leaves a failed model out, and that the report lists it with the reason."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from sawdist.analyses import run_all
from sawdist.analyses.quality import (
    accuracy_threshold,
    class_counts,
    failure_reason,
    model_quality,
    screen,
)
from sawdist.analyses.report import write_report

from .conftest import make


def test_the_chance_threshold():
    # 1/C + 3 binomial SE of a chance-level classifier: digits (10 classes, 450 test examples)
    assert accuracy_threshold(10, 450) == pytest.approx(0.1 + 3 * math.sqrt(0.1 * 0.9 / 450), rel=1e-15)
    assert accuracy_threshold(10, 450) == pytest.approx(0.14243, abs=1e-5)
    assert accuracy_threshold(2, 10_000) == pytest.approx(0.515, rel=1e-12)


@pytest.mark.parametrize(("accuracy", "n_valid", "expected"), [
    (0.102, 0, "no valid direction; test accuracy 0.102 not above chance (0.142 = 1/10 + 3 SE, 450 test examples)"),
    (0.142, 450, "test accuracy 0.142 not above chance (0.142 = 1/10 + 3 SE, 450 test examples)"),  # 0.142 <= 0.1424
    (0.143, 450, ""),  # just above: kept
    (0.2, 1, ""),  # poor but learned something, one valid direction: kept
    (0.95, 0, "no valid direction"),  # a good classifier whose saliency is zero everywhere
    (math.nan, 0, "no valid direction"),  # unknown accuracy: judged by its directions alone
    (math.nan, 7, ""),
])
def test_failure_reason_known_answers(accuracy, n_valid, expected):
    assert failure_reason(accuracy, n_valid, n_classes=10, n_test=450) == expected


def test_the_accuracy_rule_needs_two_classes_and_counts():
    assert failure_reason(0.0, 5, n_classes=1, n_test=450) == ""
    assert failure_reason(0.0, 5, n_classes=None, n_test=None) == ""
    assert failure_reason(0.5, 5, n_classes=2, n_test=100) == "test accuracy 0.500 not above chance (0.650 = 1/2 + " \
                                                                  "3 SE, 100 test examples)"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: failure_reason(0.5, -1, n_classes=10, n_test=450), "'n_valid' must be an integer >= 0, got -1."),
    (lambda: failure_reason(1.5, 3, n_classes=10, n_test=450),
     "'test_accuracy' must lie in [0, 1] (or be NaN), got 1.5."),
    (lambda: failure_reason(0.5, 3, n_classes=0, n_test=450), "'n_classes' must be an integer >= 1, got 0."),
    (lambda: accuracy_threshold(1, 450), "'n_classes' must be an integer >= 2, got 1."),
    (lambda: accuracy_threshold(10, 0), "'n_test' must be an integer >= 1, got 0."),
    (lambda: accuracy_threshold(10, 4.5), "'n_test' must be an integer >= 1, got 4.5."),
])
def test_errors_name_the_argument_and_value(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def _digits_like(failed_seed=3, accuracy=0.1):
    """The shared synthetic dataset with labels of 10 classes, accuracies 0.9, and one model at chance whose
    directions are uniform noise (still marked valid: only the rule can tell)."""
    ds = make(n_inputs=40, n_seeds=6, dim=16, invalid_fraction=0.0)
    ds = ds.assign_coords(label=("input", np.arange(ds.sizes["input"]) % 10))
    acc = np.full(ds["test_accuracy"].shape, 0.9, dtype=np.float32)
    acc[0, 0, failed_seed] = accuracy
    ds["test_accuracy"] = (ds["test_accuracy"].dims, acc)
    noise = np.random.default_rng(0).standard_normal(ds["direction"].shape[-2:])
    u = ds["direction"].values.copy()
    u[0, 0, failed_seed] = noise / np.linalg.norm(noise, axis=-1, keepdims=True)
    ds["direction"] = (ds["direction"].dims, u)
    return ds


def test_class_counts_from_the_identity_or_the_labels():
    ds = _digits_like()
    assert class_counts(ds) == (10, 40)  # from the labels and the inputs
    ds.attrs["identity"] = json.dumps({"dataset": {"n_classes": 10, "n_test": 450}})
    assert class_counts(ds) == (10, 450)


def test_model_quality_table_and_screening_mark_the_failed_model_invalid():
    ds = _digits_like()
    table = model_quality(ds)
    assert list(table.columns) == ["family", "capacity", "seed", "test_accuracy", "n_valid", "n_inputs",
                                   "valid_fraction", "accuracy_threshold", "failed", "reason"]
    assert len(table) == 2 * 3 * 6
    failed = table[table["failed"]]
    assert failed[["family", "capacity", "seed"]].values.tolist() == [["a", 2, 3]]
    # 40 inputs stand in for the test split: threshold 0.1 + 3 sqrt(0.09 / 40) = 0.2423
    assert failed["reason"].item() == "test accuracy 0.100 not above chance (0.242 = 1/10 + 3 SE, 40 test examples)"
    assert table["valid_fraction"].eq(1.0).all()
    screened = screen(ds)
    assert screened.excluded() == ["dataset: a k=2 seed 3: " + failed["reason"].item()]
    out = screened.ds
    assert not out["valid"].values[0, 0, 3].any() and np.isnan(out["direction"].values[0, 0, 3]).all()
    keep = np.ones(out["valid"].shape[:3], bool)
    keep[0, 0, 3] = False
    np.testing.assert_array_equal(out["direction"].values[keep], ds["direction"].values[keep])
    clean = make(n_inputs=12, n_seeds=4, dim=8)
    assert screen(clean).ds is clean and screen(clean).excluded() == []  # nothing to exclude: returned as is


def test_every_analysis_leaves_the_failed_model_out(tmp_path):
    from sawdist.analyses._pairs import pair_stats

    ds = _digits_like()
    by_hand = ds.copy()
    u, v = by_hand["direction"].values.copy(), by_hand["valid"].values.copy()
    u[0, 0, 3], v[0, 0, 3] = np.nan, False
    by_hand["direction"], by_hand["valid"] = (ds["direction"].dims, u), (ds["valid"].dims, v)
    findings = run_all(ds, tmp_path / "a", options={"bayes": False}, only=["similarity", "shared_mean"],
                       strict=True)
    expected = run_all(by_hand, tmp_path / "b", options={"bayes": False}, only=["similarity", "shared_mean"],
                       strict=True)
    for got, want in zip(findings, expected):
        assert got.numbers == want.numbers and got.status == want.status
    # and the noise model would have changed them: the pair sums differ with it
    assert not np.allclose(pair_stats(ds).sums[0][0], pair_stats(by_hand).sums[0][0])
    table = pd.read_csv(tmp_path / "a" / "tables" / "model_quality.csv")
    assert table["failed"].sum() == 1


def test_the_report_lists_model_quality_and_the_excluded_models(tmp_path):
    ds = _digits_like()
    screening = screen(ds)
    findings = run_all(ds, tmp_path, options={"bayes": False}, only=["similarity"], screening=screening,
                       strict=True)
    md, page = write_report(findings, tmp_path, screening=screening)
    text, html = md.read_text(), page.read_text()
    reason = "test accuracy 0.100 not above chance (0.242 = 1/10 + 3 SE, 40 test examples)"
    assert "## Model quality" in text and "**Exclusion rule.** A model has failed" in text
    assert f"**Excluded (1).**\n\n- dataset: a k=2 seed 3: {reason}" in text
    assert "| a | 2 | 6 | 1 | 0.100 / 0.900 / 0.900 | 1.000 / 1.000 / 1.000 |" in text
    assert "| b | 8 | 6 | 0 | 0.900 / 0.900 / 0.900 | 1.000 / 1.000 / 1.000 |" in text
    assert "[model_quality.csv](tables/model_quality.csv)" in text
    assert (tmp_path / "tables" / "model_quality.csv").is_file()
    assert "<h2 id='quality'>Model quality</h2>" in html and f"<li>dataset: a k=2 seed 3: {reason}</li>" in html
    # nothing failed: the section says so
    md, _ = write_report(findings, tmp_path / "none", screening=screen(make(n_inputs=12, n_seeds=4, dim=8)))
    assert "**Excluded.** None: every model passed." in md.read_text()


class _Pool:
    """Three linear 'models' per capacity on 2 classes; model 1 of capacity 4 has a zero gradient everywhere."""

    families = ["lin"]

    def __init__(self):
        gen = np.random.default_rng(0)
        self.x = gen.standard_normal((50, 3))
        self.labels = (self.x[:, 0] > 0).astype(int)
        self.w = {k: [np.array([[-1.0, 0, 0], [1.0, 0, 0]]) * (m + 1) for m in range(3)] for k in (2, 4)}

    def capacities(self, family):
        return [2, 4]

    def n_models(self, family, capacity):
        return 3

    def directions(self, family, capacity):
        d = np.stack([w[self.labels] for w in self.w[capacity]]).astype(float)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        if capacity == 4:
            d[1] = np.nan
        return d

    def predict(self, family, capacity, model, x):
        return np.argmax(x @ self.w[capacity][model].T, axis=-1)

    def probabilities_of(self, family, capacity):
        z = np.stack([self.x @ w.T for w in self.w[capacity]])
        z = np.exp(z - z.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)


def test_screening_a_model_pool_drops_its_failed_models():
    pool = _Pool()
    screened = screen(make(n_inputs=12, n_seeds=4, dim=8), pool)
    assert screened.pool_table["failed"].tolist() == [False, False, False, False, True, False]
    assert screened.excluded() == ["model pool: lin k=4 model 1: no valid direction"]
    kept = screened.models
    assert kept.n_models("lin", 2) == 3 and kept.n_models("lin", 4) == 2
    assert np.isfinite(kept.directions("lin", 4)).all()
    np.testing.assert_array_equal(kept.predict("lin", 4, 1, pool.x), pool.predict("lin", 4, 2, pool.x))
    assert kept.probabilities_of("lin", 4).shape == (2, 50, 2)
