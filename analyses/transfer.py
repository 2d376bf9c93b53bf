r"""Finding 6 — black-box transfer: attacking along the surrogates' mean direction transfers best.

A target model (family f, capacity k_t) is attacked without access to it: each input x it classifies correctly is
moved to x - eps sqrt(d) v, with v a unit saliency direction (gradient of the label logit) taken from surrogates
trained on the same data with other seeds:

* ``single``: one surrogate of the target's capacity;
* ``largest``: one surrogate of the largest capacity;
* ``mean``: the normalized mean direction of all other surrogates of the target's capacity;
* ``mean_smallest``: the normalized mean direction of the smallest-capacity surrogates (an ensemble of small models).

eps is the RMS change per input feature in units of the standardised input (eps = 1: one standard deviation per
feature on average). Measured: the fraction of inputs the target still classifies correctly against eps, per
strategy and target capacity; summarised by the mean over eps > 0 (lower = the attack transfers better).

Verdict: the mean direction transfers better *on average* than one surrogate's direction: accuracy(single) -
accuracy(mean) > 0 and accuracy(largest) - accuracy(mean) > 0, each averaged over the single surrogates, eps > 0,
targets and capacities, with 95 % intervals over inputs. It compares averages: it does not claim that the mean beats
every single surrogate.

Needs trained models (:class:`sawdist.analyses.models.ModelPool`); ``sawdist run`` trains and keeps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._common import (
    Z95,
    Finding,
    fmt_ci,
    mean_se,
    nanmean,
    new_figure,
    save_figure,
    save_table,
    verdict,
)

if TYPE_CHECKING:
    import os

    import xarray as xr
    from numpy.typing import ArrayLike

    from .context import Context
    from .models import ModelPool

KEY = "transfer"
TITLE = "Black-box transfer along the mean direction"
CLAIM = ("Perturbing an input along the mean saliency direction of several surrogate models lowers a black-box "
         "target's accuracy more, on average over surrogates, targets and inputs, than perturbing it along one "
         "surrogate's direction (of the target's capacity, or of the largest capacity).")
STRATEGIES = ("single", "largest", "mean", "mean_smallest")


def _unit(v):
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def attack_curves(pool: ModelPool, family: str, epsilons: ArrayLike, *,
                  max_targets: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Accuracy of every target against eps and strategy.

    Returns ``acc`` (capacity, target, strategy, eps, input) with NaN for inputs a target misclassifies unperturbed,
    and the capacities.
    """
    caps = pool.capacities(family)
    x = pool.x
    shape = x.shape[1:]
    n, d = x.shape[0], int(np.prod(shape))
    flat = x.reshape(n, d)
    eps = np.asarray(epsilons, dtype=float)
    dirs = {k: pool.directions(family, k) for k in caps}  # (M, n, d)
    M = min(pool.n_models(family, k) for k in caps)
    T = M if max_targets is None else min(M, int(max_targets))
    out = np.full((len(caps), T, len(STRATEGIES), eps.size, n), np.nan)
    small_mean = _unit(np.nan_to_num(dirs[caps[0]]).sum(axis=0))
    for c, k in enumerate(caps):
        D = np.nan_to_num(dirs[k])
        for t in range(T):
            other = (t + 1) % M
            rest = [s for s in range(pool.n_models(family, k)) if s != t]
            v = {
                "single": _unit(dirs[k][other]),
                "largest": _unit(dirs[caps[-1]][other]),
                "mean": _unit(D[rest].sum(axis=0)),
                "mean_smallest": small_mean if caps[0] != k else _unit(D[rest].sum(axis=0)),
            }
            clean = pool.predict(family, k, t, x) == pool.labels
            # A surrogate without a direction at an input (a dead network: zero gradient) gives no attack there;
            # those (strategy, input) pairs are left out rather than counted as perturbations of size 0.
            usable = np.stack([np.all(np.isfinite(v[s]), axis=-1) for s in STRATEGIES])  # (strategy, n)
            batch = np.stack([flat[None] - (eps[:, None, None] * np.sqrt(d)) * np.nan_to_num(v[s])[None]
                              for s in STRATEGIES])  # (strategy, eps, n, d)
            pred = pool.predict(family, k, t, batch.reshape(-1, *shape)).reshape(len(STRATEGIES), eps.size, n)
            ok = (pred == pool.labels[None, None]).astype(float)
            out[c, t] = np.where(clean[None, None] & usable[:, None], ok, np.nan)
    return out, caps


def analyze(ds: xr.Dataset, out_dir: str | os.PathLike[str], *, context: Context | None = None,
            models: ModelPool | None = None, **_: object) -> Finding:
    """Run the transfer attack with the context's model pool; write figures and tables; return the finding."""
    import pandas as pd

    from .context import Context

    ctx = context or Context(ds, out_dir, models=models)
    pool = models if models is not None else ctx.models
    finding = Finding(KEY, TITLE, CLAIM)
    if pool is None:
        finding.reason = ("no trained models (run `sawdist run`, or pass the models folder it wrote: "
                          "`sawdist report DATASET.nc --models DIR/models`)")
        return finding
    eps = np.asarray(ctx.options.transfer_epsilons, dtype=float)
    pos = eps > 0
    rows, lowers, uppers, plots = [], [], [], []
    for fam in pool.families:
        acc, caps = attack_curves(pool, fam, eps)
        if min(pool.n_models(fam, k) for k in caps) < 3:
            finding.measured.append(f"{fam}: fewer than 3 models per capacity; no transfer attack.")
            continue
        curve = nanmean(acc, axis=(1, 4))  # (capacity, strategy, eps)
        for c, k in enumerate(caps):
            for s, name in enumerate(STRATEGIES):
                for e, value in enumerate(eps):
                    rows.append({"family": fam, "target_capacity": k, "strategy": name, "epsilon": value,
                                 "accuracy": curve[c, s, e]})
        # Per input: mean accuracy over eps > 0, targets and capacities, per strategy.
        per_input = nanmean(acc[:, :, :, pos, :], axis=(0, 1, 3))  # (strategy, input)
        idx = {name: i for i, name in enumerate(STRATEGIES)}
        for rival in ("single", "largest"):
            diff = per_input[idx[rival]] - per_input[idx["mean"]]
            est, se = mean_se(diff)
            lowers.append(est - Z95 * se)
            uppers.append(est + Z95 * se)
            finding.numbers[f"{fam}/{rival}_minus_mean"] = est
            finding.measured.append(
                f"{fam}: target accuracy under attack (mean over eps > 0, targets, capacities {caps}) along "
                f"{rival!r} minus along 'mean': {fmt_ci(est, se)}."
            )
        means = nanmean(per_input, axis=1)
        finding.measured.append(
            f"{fam}: mean target accuracy under attack — " + ", ".join(
                f"{name} {means[i]:.3f}" for i, name in enumerate(STRATEGIES)) + "."
        )
        for i, name in enumerate(STRATEGIES):
            finding.numbers[f"{fam}/accuracy_{name}"] = float(means[i])
        plots.append((fam, caps, curve))
    finding.status = verdict(lowers, uppers, 0.0) if lowers else "not tested"
    finding.reason = {
        "holds": "on average over surrogates, targets and inputs, the mean direction lowers the target's accuracy "
                 "more than one surrogate of the target's capacity and than one of the largest capacity (95 % "
                 "intervals)",
        "fails": "on average, one surrogate's direction transfers better than the mean direction (95 % interval)",
        "inconclusive": "a 95 % interval of the accuracy difference includes 0",
    }.get(finding.status, finding.reason or "too few models")
    if rows:
        finding.tables.append(save_table(pd.DataFrame(rows), out_dir, "transfer"))
        finding.figures.append(_figure(plots, eps, out_dir))
    return finding


def _figure(plots, eps, out_dir):
    n = sum(len(caps) for _, caps, _ in plots)
    cols = min(n, 5)
    rows = -(-n // cols)
    fig, axes = new_figure(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, sharey=True)
    i = 0
    for fam, caps, curve in plots:
        for c, k in enumerate(caps):
            ax = axes.flat[i]
            for s, name in enumerate(STRATEGIES):
                ax.plot(eps, curve[c, s], "o-", ms=3, label=name)
            ax.set_title(f"{fam}, target k = {k:g}", fontsize="medium")
            ax.set_xlabel("eps (RMS per feature)")
            i += 1
    for ax in axes.flat[i:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("target accuracy")
    axes.flat[0].legend(frameon=False, fontsize="x-small")
    fig.suptitle("Black-box transfer: accuracy of the target against the perturbation size")
    return save_figure(fig, out_dir, "transfer")
