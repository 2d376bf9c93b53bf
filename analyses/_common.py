"""What every analysis shares: the finding record, the verdict rule, the dataset layout, outputs and progress.

A *finding* is one claim of the paper, measured on a saliency dataset (docs/dataset.md). Every analysis returns a
:class:`Finding`: what was measured (numbers with a 95 % interval), the verdict, and the figures and tables it wrote.

Verdicts follow one rule (:func:`verdict`): a claim of the form "statistic > threshold" **holds** when the whole 95 %
interval lies above the threshold, **fails** when the whole interval lies below it, and is **inconclusive** otherwise.
A finding whose verdict rests on a Bayesian fit that fails the sampler rule
(:func:`sawdist.bayes.fitting.sampler_diagnostics`) is **unreliable (sampler)** instead, never "holds".

Intervals come from a delete-one-seed jackknife SE unless a finding says otherwise (seeds — independently trained
models — are the random units of the question "do models of this family agree?"):

* statistics on an unbounded scale (differences, gains, accuracies): estimate +- 1.96 SE (:func:`interval`);
* statistics on a cosine scale (similarity rho, the alignment cos(mu_k1, mu_k2), ensemble cosines): the interval is
  computed on the Fisher-z scale and mapped back, so it always lies in [-1, 1] (:func:`cosine_interval`, which states
  the rule and how estimates at or past +-1 are handled; :func:`fmt_ci` with ``cosine=True`` prints it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from pathlib import Path

import numpy as np

__all__ = ["Finding", "Progress", "cosine_interval", "family_layout", "file_stem", "jackknife_se", "save_figure",
           "save_table", "verdict"]

HOLDS, FAILS, INCONCLUSIVE, NOT_TESTED = "holds", "fails", "inconclusive", "not tested"
#: The verdict of a finding whose decisive Bayesian fit failed the sampler rule (shown "UNRELIABLE (sampler)").
UNRELIABLE = "unreliable (sampler)"
Z95 = 1.959963984540054


@dataclasses.dataclass
class Finding:
    """One measured claim.

    Attributes
    ----------
    key : str
        Short name (the analysis module), e.g. ``"similarity"``.
    title : str
    claim : str
        The paper's claim, as tested here (one sentence).
    measured : list of str
        What was measured, one line each, with 95 % intervals.
    status : {"holds", "fails", "inconclusive", "not tested", "unreliable (sampler)"}
    reason : str
        Why the verdict is what it is (the decisive numbers).
    figures, tables : list of pathlib.Path
        Files written (PNG, CSV), relative to the output directory.
    numbers : dict
        The decisive statistics as plain floats (for tests and for machines).
    """

    key: str
    title: str
    claim: str
    measured: list = dataclasses.field(default_factory=list)
    status: str = NOT_TESTED
    reason: str = ""
    figures: list = dataclasses.field(default_factory=list)
    tables: list = dataclasses.field(default_factory=list)
    numbers: dict = dataclasses.field(default_factory=dict)

    @property
    def holds(self) -> bool | None:
        """True (holds), False (fails) or None (inconclusive, not tested or unreliable)."""
        return {HOLDS: True, FAILS: False}.get(self.status)


def verdict(lower, upper, threshold=0.0) -> str:
    """"holds" if every interval lies above ``threshold``, "fails" if one lies below, else "inconclusive".

    ``lower`` and ``upper`` are arrays of interval bounds, one per sub-claim that must all hold.
    """
    lower = np.atleast_1d(np.asarray(lower, dtype=float))
    upper = np.atleast_1d(np.asarray(upper, dtype=float))
    ok = np.isfinite(lower) & np.isfinite(upper)
    if not ok.any():
        return NOT_TESTED
    lower, upper = lower[ok], upper[ok]
    if np.any(upper < threshold):
        return FAILS
    if np.all(lower > threshold):
        return HOLDS
    return INCONCLUSIVE


def apply_sampler_rule(finding: Finding, diagnostics, fit: str) -> None:
    """Make ``finding`` "unreliable (sampler)" when the Bayesian fit its verdict rests on breaks the sampler rule.

    ``diagnostics`` is the fit's :class:`sawdist.bayes.fitting.SamplerDiagnostics` and ``fit`` names the fit in the
    reason. Whatever the intervals said (holds, fails, inconclusive), a posterior that the sampler did not explore
    reliably decides nothing; the interval is still reported under "measured". Call it after the verdict is set.
    """
    finding.numbers["sampler_reliable"] = bool(diagnostics.reliable)
    if diagnostics.reliable or finding.status == NOT_TESTED:
        return
    from sawdist.bayes.fitting import ESS_BULK_MIN, RHAT_MAX  # only here: a fit exists, so PyMC is loaded

    finding.status = UNRELIABLE
    finding.reason = (f"the {fit} breaks the sampler rule ({', '.join(diagnostics.problems)}; the rule asks for "
                      f"R-hat <= {RHAT_MAX:g}, bulk ESS >= {ESS_BULK_MIN} and no divergences), so its posterior "
                      f"decides nothing; fit again with more tuning and draws")


def retry_note(attrs, fit: str) -> str | None:
    """The sentence a finding adds when the Bayesian fit it rests on was sampled again by
    :func:`sawdist.bayes.fit_convergence`'s retry (``attrs``: the fit's ``posterior.attrs``; ``fit`` names it), else
    None."""
    if attrs.get("sawdist_attempts", 1) <= 1:
        return None
    target = attrs.get("sawdist_retry_target_accept")
    at = f" at target_accept {target:g}" if target is not None else ""
    if attrs.get("sawdist_retry") == "fresh chains":
        how = f"again from another seed{at} (its chains mixed well but disagreed by chance: R-hat alone)"
    else:
        how = f"{attrs['sawdist_attempts']} times with other parametrisations of the input effects (the retries{at})"
    return (f"(The {fit} was sampled {how}; fit {attrs['sawdist_kept_attempt']} is reported; broke the sampler "
            f"rule: {attrs['sawdist_failed_attempts']}.)")


def jackknife_se(replicates, axis=0):
    """Delete-one jackknife standard error: sqrt((n-1)/n * sum (theta_(i) - mean)^2) over ``axis``.

    NaN where any replicate is not finite (the statistic is undefined without some seed).
    """
    reps = np.moveaxis(np.asarray(replicates, dtype=float), axis, 0)
    n = reps.shape[0]
    if n < 2:
        return np.full(reps.shape[1:], np.nan)[()]
    ok = np.all(np.isfinite(reps), axis=0)
    r = np.where(ok, reps, 0.0)
    mean = r.mean(axis=0)
    se = np.sqrt((n - 1) / n * np.sum((r - mean) ** 2, axis=0))
    return np.where(ok, se, np.nan)[()]


def nanmean(a, axis=None):
    """Mean of the finite values (NaN, without a warning, where there are none)."""
    a = np.asarray(a, dtype=float)
    ok = np.isfinite(a)
    count = ok.sum(axis=axis)
    total = np.where(ok, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)[()]


def mean_se(values):
    """Mean of the finite values and its standard error (NaN, without a warning, for fewer than 2 values)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float(v.mean()) if v.size else float("nan")), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def interval(estimate, se):
    """(lower, upper) = estimate -+ 1.96 se."""
    estimate, se = np.asarray(estimate, float), np.asarray(se, float)
    return estimate - Z95 * se, estimate + Z95 * se


def cosine_interval(estimate, se) -> tuple[np.ndarray, np.ndarray]:
    r"""95 % interval of a statistic on a cosine scale, inside [-1, 1]: Fisher z with the delta-method SE.

    For an estimate r in (-1, 1) with standard error s (a jackknife SE of r), z = atanh(r) has the delta-method
    SE s_z = s / (1 - r^2), and the interval is

        L(r) = tanh(z - 1.96 s_z),    U(r) = tanh(z + 1.96 s_z).

    Far from +-1 (s << 1 - |r|) this is r -+ 1.96 s to first order; near +-1 it is asymmetric and never leaves
    [-1, 1]. As r approaches 1 with s fixed, s_z grows faster than z and L(r) *falls* (to -1 as r -> 1): the
    linearisation breaks down once the interval r +- 1.96 s would reach the bound. A larger estimate must never
    earn a weaker bound, so the bounds are made monotone in the estimate: L is evaluated at min(r, r*) and U at
    max(r, -r*), where r* = sqrt(1 + (1.96 s)^2) - 1.96 s is the maximum point of L (there 1 - r*^2 = 2 (1.96 s) r*,
    about where r + 1.96 s = 1).

    **Estimates at or past +-1.** The bias-corrected alignment cos(mu_k1, mu_k2), a ratio of unbiased sums, can
    exceed 1 by noise when the true cosine is near 1 (averages of actual cosines — rho, ensemble cosines — cannot).
    Such an estimate is reported as measured; for the transform it is clipped: its lower bound is L(r*) and its
    upper bound the bound itself, 1 (for estimates <= -1: lower bound -1, upper bound U(-r*)). With s = 0 the
    interval is the estimate clipped to [-1, 1]; NaN in, NaN out.

    ``estimate`` and ``se`` broadcast; returns ``(lower, upper)`` arrays (0-d for scalars).
    """
    r, s = np.broadcast_arrays(np.asarray(estimate, float), np.asarray(se, float))
    k = Z95 * s
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r_star = np.sqrt(1.0 + k * k) - k  # in (0, 1] for s >= 0

        def bound(at, sign):
            return np.tanh(np.arctanh(at) + sign * k / (1.0 - at * at))

        lower = np.where(r <= -1.0, -1.0, bound(np.minimum(r, r_star), -1.0))
        upper = np.where(r >= 1.0, 1.0, bound(np.maximum(r, -r_star), 1.0))
        # s = 0: r* = 1 and the transform is 0/0 at the bound; the interval is the (clipped) estimate
        point = np.clip(r, -1.0, 1.0)
        lower = np.where(s == 0, point, lower)
        upper = np.where(s == 0, point, upper)
    bad = ~(np.isfinite(r) & np.isfinite(s)) | (s < 0)
    return np.where(bad, np.nan, lower)[()], np.where(bad, np.nan, upper)[()]


def fmt_ci(estimate, se, digits=3, *, cosine: bool = False) -> str:
    """'0.412 [0.398, 0.426]': the estimate and its 95 % interval (:func:`cosine_interval` when ``cosine``)."""
    lo, hi = cosine_interval(estimate, se) if cosine else interval(estimate, se)
    return f"{float(estimate):.{digits}f} [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"


def family_layout(ds, family, inputs=None, capacities=None):
    """Directions of one family as float64 ``U`` (capacity, seed, input, feature), zero where invalid, and ``V``.

    ``V`` (capacity, seed, input) is True for valid directions (``valid`` and finite). ``inputs`` and
    ``capacities`` are optional index arrays (positions along ``input`` and ``capacity``). Only the selection is
    read, so a lazily opened dataset never needs to fit in memory. What is read is checked as the statistics need it
    (:func:`sawdist.io.check_direction_values`: unit vectors where valid, NaN elsewhere), so a damaged file is refused,
    naming it, instead of giving a wrong number.
    """
    from sawdist.io import check_direction_values, source_text

    sub = ds[["direction", "valid"]].sel(family=family)
    if inputs is not None:
        sub = sub.isel(input=inputs)
    if capacities is not None:
        sub = sub.isel(capacity=capacities)
    U = np.asarray(sub["direction"].transpose("capacity", "seed", "input", "feature").values, dtype=np.float64)
    V = np.asarray(sub["valid"].transpose("capacity", "seed", "input").values, dtype=bool)
    check_direction_values(U, V, source=source_text(ds))
    U[~V] = 0.0
    return U, V


def capacities_of(ds) -> np.ndarray:
    return np.asarray(ds["capacity"].values)


def families_of(ds) -> list:
    return [str(f) for f in np.asarray(ds["family"].values).tolist()]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(name: str) -> str:
    """`name` as one file name inside the output folder: every character outside ``[A-Za-z0-9._-]`` becomes ``_``.

    Output names carry names from the data (``f"similarity_{family}"``), and a crafted dataset's family
    ``x/../../../escaped`` must not write outside ``--out``: with no separator left, the only names that could still
    leave the folder, ``.`` and ``..`` (and the empty name), are refused.
    """
    stem = _UNSAFE.sub("_", str(name))
    if stem in ("", ".", ".."):
        raise ValueError(f"'name' must make a file name inside the output folder, got {name!r}.")
    return stem


def save_table(frame, out_dir: Path, name: str) -> Path:
    """Write a pandas DataFrame to ``out_dir/tables/name.csv``; return the path relative to ``out_dir``. `name` goes
    through :func:`file_stem`, the one place where names become paths."""
    rel = Path("tables") / f"{file_stem(name)}.csv"
    path = Path(out_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6g")
    return rel


def save_figure(fig, out_dir: Path, name: str) -> Path:
    """Save a matplotlib figure to ``out_dir/figures/name.png``; return the path relative to ``out_dir``. `name` goes
    through :func:`file_stem`."""
    rel = Path("figures") / f"{file_stem(name)}.png"
    path = Path(out_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return rel


def new_figure(*args, **kwargs):
    """``(figure, axes)`` like ``pyplot.subplots``, but a bare :class:`~matplotlib.figure.Figure`.

    It is never registered with pyplot: no window opens, the caller's backend (a notebook's inline one, say) is left
    alone, and the figure is freed with its last reference, so thousands of them never trigger pyplot's
    too-many-figures warning.
    """
    from matplotlib.figure import Figure

    subplot_keys = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")
    subplot_kwargs = {key: kwargs.pop(key) for key in subplot_keys if key in kwargs}
    kwargs.setdefault("layout", "constrained")
    fig = Figure(**kwargs)
    return fig, fig.subplots(*args, **subplot_kwargs)


def capacity_label(k) -> str:
    k = float(k)
    return f"{k:g}"


class Progress:
    """Stage messages with elapsed times; records the seconds of every stage in ``timings``.

    The messages go to ``stream`` when one is given, else to the ``sawdist.analyses`` logger at level INFO (the
    ``sawdist`` command prints them on stderr; from Python, ``logging.basicConfig(level=logging.INFO)`` shows them).
    """

    def __init__(self, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()

    def say(self, message: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            line = f"[{elapsed:7.1f} s] {message}"
            if self.stream is None:
                logging.getLogger("sawdist.analyses").info(line)
            else:
                print(line, file=self.stream, flush=True)

    def stage(self, name: str):
        return _Stage(self, name)

    def bar(self, unit: str, total: int):
        """A progress callback ``update(done, total)`` for work in ``total`` steps: a tqdm bar on stderr when tqdm is
        installed and messages go to the log, else a message at every tenth of the work (none when disabled)."""
        if not self.enabled or total <= 1:
            return None
        if self.stream is None:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                bar = tqdm(total=total, unit=unit.rstrip("s") or unit, dynamic_ncols=True, leave=False)

                def update(done: int, _total: int) -> None:
                    bar.update(done - bar.n)
                    if done >= total:
                        bar.close()

                return update
        marks = {max(1, round(total * i / 10)) for i in range(1, 11)}

        def say(done: int, _total: int) -> None:
            if done in marks:
                self.say(f"  {done}/{total} {unit}")

        return say


class _Stage:
    def __init__(self, progress: Progress, name: str):
        self.progress, self.name = progress, name

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.progress.say(f"{self.name} ...")
        return self

    def __exit__(self, *exc):
        seconds = time.perf_counter() - self.t0
        self.progress.timings[self.name] = self.progress.timings.get(self.name, 0.0) + seconds
        if exc[0] is None:
            self.progress.say(f"{self.name}: done in {seconds:.1f} s")
        return False


def finite_or_nan(x) -> float:
    x = float(x)
    return x if math.isfinite(x) else float("nan")
