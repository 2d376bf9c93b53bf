r"""Model quality: each model's test accuracy and valid directions, and the one rule that excludes failed models.

**The exclusion rule** (:func:`failure_reason`, the one place it is stated). A trained model *has failed* when

1. it has **no valid direction** at any input (a dead network: its input gradient is zero or not finite
   everywhere), or
2. its **test accuracy is not above chance**: accuracy <= 1/C + 3 sqrt((1/C)(1 - 1/C) / n_test), with C the number
   of classes and n_test the number of test examples the accuracy was measured on.

1/C is the expected accuracy of a classifier that ignores its input on balanced classes, and the margin is three
binomial standard errors of such a classifier's measured accuracy: a model that learned nothing passes with
probability about 0.1 %, while a model that learned a little (e.g. 0.2 against chance 0.1 on digits) is kept, since
its saliency still reflects what it learned. On the digits default (C = 10, n_test = 450) the threshold is
0.1 + 0.042 = 0.142. A model whose accuracy is unknown (NaN, e.g. synthetic data) is judged by rule 1 alone, and
rule 2 needs C >= 2.

Where C and n_test come from (:func:`class_counts`): the dataset's ``identity`` attribute, which ``sawdist extract``
writes (``{"dataset": {"n_classes": ..., "n_test": ...}}``); otherwise C = max(label) + 1 over the inputs' labels
(labels are class indices; a lower bound of C when the inputs miss the last classes) and n_test = the number of
inputs (a lower bound too: the inputs are taken from the test split, so the margin is at least the full split's).

**Where it applies.** :func:`screen` marks a failed model's directions invalid (NaN, ``valid`` false, as the schema
wants for missing directions) and drops failed models from a model pool; :func:`sawdist.analyses.run_all` screens
every dataset before any analysis sees it, so every analysis's own handling of invalid directions excludes them.
The report's "Model quality" section shows every model's accuracy and valid fraction and lists the excluded models
with the reason (table ``tables/model_quality.csv``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import xarray as xr

    from .models import ModelPool

__all__ = ["CHANCE_MARGIN_SE", "RULE", "Screening", "accuracy_threshold", "class_counts", "failure_reason",
           "model_quality", "pool_quality", "screen", "summary_rows"]

#: Rule 2's margin above chance, in binomial standard errors of a chance-level classifier's accuracy.
CHANCE_MARGIN_SE = 3.0

#: The exclusion rule in one sentence, as the report states it.
RULE = ("A model has failed, and is left out of every analysis, when it has no valid direction at any input or when "
        "its test accuracy is not above chance: accuracy <= 1/C + 3 sqrt((1/C)(1 - 1/C)/n_test), with C classes and "
        "n_test test examples (three binomial standard errors of a classifier that ignores its input).")


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name!r} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def accuracy_threshold(n_classes: int, n_test: int) -> float:
    """Rule 2's threshold: 1/C + 3 sqrt((1/C)(1 - 1/C)/n_test); a model at or below it has failed.

    >>> round(accuracy_threshold(10, 450), 4)
    0.1424
    """
    c = _check_count("n_classes", n_classes, 2)
    n = _check_count("n_test", n_test, 1)
    p = 1.0 / c
    return p + CHANCE_MARGIN_SE * math.sqrt(p * (1.0 - p) / n)


def failure_reason(test_accuracy: float, n_valid: int, *, n_classes: int | None, n_test: int | None) -> str:
    """Why a model has failed, by the exclusion rule (module docstring), or ``""`` when it has not.

    Parameters
    ----------
    test_accuracy : float
        The model's test accuracy in [0, 1]; NaN when unknown (rule 2 is then not applied).
    n_valid : int
        The number of inputs at which the model has a valid saliency direction.
    n_classes, n_test : int or None
        The number of classes C and of test examples; None (or C < 2) skips rule 2.

    Examples
    --------
    >>> failure_reason(0.102, 0, n_classes=10, n_test=450)
    'no valid direction; test accuracy 0.102 not above chance (0.142 = 1/10 + 3 SE, 450 test examples)'
    >>> failure_reason(0.2, 300, n_classes=10, n_test=450)
    ''
    """
    n_valid = _check_count("n_valid", n_valid, 0)
    accuracy = float(test_accuracy)
    if not (math.isnan(accuracy) or 0.0 <= accuracy <= 1.0):
        raise ValueError(f"'test_accuracy' must lie in [0, 1] (or be NaN), got {test_accuracy!r}.")
    reasons = []
    if n_valid == 0:
        reasons.append("no valid direction")
    if n_classes is not None and n_test is not None and not math.isnan(accuracy):
        c = _check_count("n_classes", n_classes, 1)
        if c >= 2:
            threshold = accuracy_threshold(c, n_test)
            if accuracy <= threshold:
                reasons.append(f"test accuracy {accuracy:.3f} not above chance ({threshold:.3f} = 1/{c} + "
                               f"{CHANCE_MARGIN_SE:g} SE, {int(n_test)} test examples)")
    return "; ".join(reasons)


def class_counts(ds: xr.Dataset) -> tuple[int | None, int | None]:
    """(C, n_test) of a saliency dataset for rule 2: from ``attrs["identity"]``, else from the labels (docstring)."""
    n_classes = n_test = None
    try:
        recorded = json.loads(ds.attrs.get("identity", "{}")).get("dataset", {})
    except (TypeError, ValueError, AttributeError):
        recorded = {}
    if isinstance(recorded, dict):
        n_classes, n_test = recorded.get("n_classes"), recorded.get("n_test")
    if not isinstance(n_classes, int) or n_classes < 1:
        labels = np.asarray(ds["label"].values) if "label" in ds.coords else np.empty(0)
        finite = labels[np.isfinite(labels)] if labels.dtype.kind == "f" else labels
        n_classes = int(finite.max()) + 1 if finite.size and finite.dtype.kind in "iuf" else None
    if not isinstance(n_test, int) or n_test < 1:
        n_test = int(ds.sizes["input"]) if ds.sizes.get("input") else None
    return n_classes, n_test


def model_quality(ds: xr.Dataset) -> pd.DataFrame:
    """One row per model (family, capacity, seed): test accuracy, valid directions, and the exclusion rule's verdict.

    Columns: ``family``, ``capacity``, ``seed``, ``test_accuracy``, ``n_valid``, ``n_inputs``, ``valid_fraction``,
    ``accuracy_threshold`` (NaN when rule 2 does not apply), ``failed`` and ``reason`` (:func:`failure_reason`).
    Reads ``test_accuracy`` and ``valid`` only.
    """
    import pandas as pd

    n_classes, n_test = class_counts(ds)
    threshold = accuracy_threshold(n_classes, n_test) if n_classes and n_classes >= 2 and n_test else float("nan")
    order = ("family", "capacity", "seed")
    accuracy = np.asarray(ds["test_accuracy"].transpose(*order).values, dtype=float)
    n_valid = np.asarray(ds["valid"].sum("input").transpose(*order).values, dtype=np.int64)
    n_inputs = int(ds.sizes["input"])
    rows = []
    for f, fam in enumerate(np.asarray(ds["family"].values).tolist()):
        for k, cap in enumerate(np.asarray(ds["capacity"].values).tolist()):
            for s, seed in enumerate(np.asarray(ds["seed"].values).tolist()):
                reason = failure_reason(accuracy[f, k, s], int(n_valid[f, k, s]), n_classes=n_classes,
                                        n_test=n_test)
                rows.append({"family": str(fam), "capacity": cap, "seed": seed, "test_accuracy": accuracy[f, k, s],
                             "n_valid": int(n_valid[f, k, s]), "n_inputs": n_inputs,
                             "valid_fraction": n_valid[f, k, s] / max(n_inputs, 1),
                             "accuracy_threshold": threshold, "failed": bool(reason), "reason": reason})
    return pd.DataFrame(rows)


def pool_quality(pool: ModelPool) -> pd.DataFrame:
    """The exclusion rule on a model pool: one row per (family, capacity, model), accuracy on the pool's inputs.

    C is the number of classes of the models' probabilities and n_test the number of the pool's inputs.
    Columns as :func:`model_quality`, with ``model`` (the index in the pool) for ``seed``.
    """
    import pandas as pd

    labels = np.asarray(pool.labels)
    rows = []
    for fam in pool.families:
        for cap in pool.capacities(fam):
            probabilities = np.asarray(pool.probabilities_of(fam, cap))  # (model, n, C)
            directions = np.asarray(pool.directions(fam, cap))  # (model, n, d)
            n_classes, n_test = int(probabilities.shape[-1]), int(labels.size)
            threshold = accuracy_threshold(n_classes, n_test) if n_classes >= 2 and n_test else float("nan")
            for m in range(pool.n_models(fam, cap)):
                accuracy = float(np.mean(probabilities[m].argmax(-1) == labels)) if n_test else float("nan")
                n_valid = int(np.all(np.isfinite(directions[m]), axis=-1).sum())
                reason = failure_reason(accuracy, n_valid, n_classes=n_classes, n_test=n_test)
                rows.append({"family": str(fam), "capacity": cap, "model": m, "test_accuracy": accuracy,
                             "n_valid": n_valid, "n_inputs": n_test, "valid_fraction": n_valid / max(n_test, 1),
                             "accuracy_threshold": threshold, "failed": bool(reason), "reason": reason})
    return pd.DataFrame(rows)


class _ScreenedPool:
    """A model pool without its failed models (the :class:`~sawdist.analyses.models.ModelPool` interface)."""

    def __init__(self, pool: ModelPool, keep: dict[tuple[str, object], list[int]]) -> None:
        self._pool, self._keep = pool, keep
        self.families, self.x, self.labels = pool.families, pool.x, pool.labels

    def capacities(self, family: str) -> list[int]:
        return self._pool.capacities(family)

    def n_models(self, family: str, capacity: int) -> int:
        return len(self._keep[family, capacity])

    def directions(self, family: str, capacity: int) -> np.ndarray:
        return np.asarray(self._pool.directions(family, capacity))[self._keep[family, capacity]]

    def predict(self, family: str, capacity: int, model: int, x: np.ndarray) -> np.ndarray:
        return self._pool.predict(family, capacity, self._keep[family, capacity][model], x)

    def probabilities_of(self, family: str, capacity: int) -> np.ndarray:
        return np.asarray(self._pool.probabilities_of(family, capacity))[self._keep[family, capacity]]


@dataclasses.dataclass
class Screening:
    """A dataset and model pool with the failed models excluded, and the tables that say which and why.

    Attributes
    ----------
    ds : xarray.Dataset
        The dataset with every failed model's directions NaN and ``valid`` false when it is in memory; a dataset read
        from disk is the input itself (masking it would read it whole), and :attr:`failed_models` tells the readers
        of the analyses (:class:`sawdist.analyses.context.Context`) which models to take as not valid.
    models : ModelPool or None
        The pool without its failed models (the input itself when none failed).
    table : pandas.DataFrame
        :func:`model_quality` of the input dataset.
    pool_table : pandas.DataFrame or None
        :func:`pool_quality` of the input pool.
    """

    ds: xr.Dataset
    models: ModelPool | None
    table: pd.DataFrame
    pool_table: pd.DataFrame | None = None

    @property
    def failed_models(self) -> np.ndarray:
        """(family, capacity, seed) bool: the failed models of the dataset."""
        shape = tuple(self.ds.sizes[d] for d in ("family", "capacity", "seed"))
        return self.table["failed"].to_numpy(bool).reshape(shape)

    def excluded(self) -> list[str]:
        """One line per excluded model: 'dataset: mlp k=2 seed 4: no valid direction; ...'."""
        lines = [f"dataset: {r.family} k={r.capacity:g} seed {r.seed}: {r.reason}"
                 for r in self.table.itertuples() if r.failed]
        if self.pool_table is not None:
            lines += [f"model pool: {r.family} k={r.capacity:g} model {r.model}: {r.reason}"
                      for r in self.pool_table.itertuples() if r.failed]
        return lines


def screen(ds: xr.Dataset, models: ModelPool | None = None) -> Screening:
    """Apply the exclusion rule (module docstring) to a dataset, and to a model pool when given.

    In a dataset in memory a failed model's directions become NaN and its ``valid`` flags false, exactly as the
    schema marks a missing direction, so every analysis leaves it out by its existing handling of invalid directions.
    A dataset read from disk is left as it is (masking it would read it whole): the analyses' readers take the
    models of :attr:`Screening.failed_models` as not valid.
    """
    import xarray as xr

    table = model_quality(ds)
    failed = table["failed"].to_numpy()
    if failed.any():
        shape = tuple(ds.sizes[d] for d in ("family", "capacity", "seed"))
        mask = xr.DataArray(failed.reshape(shape), dims=("family", "capacity", "seed"),
                            coords={d: ds[d] for d in ("family", "capacity", "seed")})
        if isinstance(ds["direction"].variable._data, np.ndarray):
            ds = ds.copy()
            ds["direction"] = ds["direction"].where(~mask)
            ds["valid"] = ds["valid"] & ~mask
    pool_table = None
    if models is not None:
        pool_table = pool_quality(models)
        if pool_table["failed"].any():
            keep = {(fam, cap): sub.loc[~sub["failed"], "model"].tolist()
                    for (fam, cap), sub in pool_table.groupby(["family", "capacity"], sort=False)}
            models = _ScreenedPool(models, keep)
    return Screening(ds, models, table, pool_table)


def summary_rows(table: pd.DataFrame) -> list[dict]:
    """Per (family, capacity): seeds, excluded, and the range (min, median, max) of accuracy and valid fraction."""
    rows = []
    for (fam, cap), sub in table.groupby(["family", "capacity"], sort=False):
        acc, valid = sub["test_accuracy"].to_numpy(float), sub["valid_fraction"].to_numpy(float)
        rows.append({"family": fam, "capacity": cap, "models": len(sub), "excluded": int(sub["failed"].sum()),
                     "accuracy": _range(acc), "valid_fraction": _range(valid)})
    return rows


def _range(values: Sequence[float] | np.ndarray) -> str:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "unknown"
    return f"{v.min():.3f} / {np.median(v):.3f} / {v.max():.3f}"
