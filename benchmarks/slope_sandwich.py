"""What the slope's sandwich does to beta's intervals, read off a calibration study's own ranks. No sampler.

``fit_convergence`` moves beta's draws to the width of the slope's sandwich (``sawdist.bayes.sandwich``): f^2, the
scatter of the inputs' own scores over the tempered posterior's precision, and a Student-t with (inputs - 1) degrees
of freedom. The move is a function of the draws, so what it does to a study can be predicted from the study's
recorded ranks without sampling again: each dataset is simulated again from its random stream (its weight checked
against the study's), f^2 computed for it, and Phi^-1 of beta's SBC rank z (a normal posterior about its mean) taken
to z / f (``normal``: the sandwich's width alone) or to Phi^-1(t_{N-1}(z / f)) (``t``: ``fit_convergence``'s move).
Datasets fitted with input slopes are kept as they are (the move does not apply to them).

    python benchmarks/slope_sandwich.py --study benchmarks/results/calibration_study_300.json [--cells ...]
        [--json FILE]

``calibration.py`` records, for fits made since the move, the rank as sampled beside the moved one
(``beta_rank_sampled``): the check that the prediction is the fit's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from sawdist.bayes.sandwich import slope_sandwich

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import _interval, simulate  # noqa: E402  (the study's cells and datasets)

RULES = ("default", "normal", "t")


def adjusted_z(z, f2, dof, rule):
    """Phi^-1 of the truth's rank once beta's posterior is moved by ``rule`` (a normal posterior about its mean;
    docstring): ``default`` unchanged, ``normal`` scaled by f, ``t`` (fit_convergence's) to the t of scale f."""
    if rule == "default":
        return z
    if rule == "normal":
        return z / np.sqrt(f2)
    return stats.norm.ppf(stats.t.cdf(z / np.sqrt(f2), dof))


def run(path, cells, out=None):
    study = json.loads(Path(path).read_text())
    seed, kept = study["settings"]["fit"]["seed"], study["settings"]["fit"]["draws_kept"]
    rows = json.loads(Path(out).read_text())["datasets"] if out and Path(out).exists() else {}
    start = time.time()
    for key, rec in study["fits"].items():
        cell, i = key.split("/")
        if (cells and cell not in cells) or "calibrated" not in rec or key in rows:
            continue
        summary, truth, design, _ = simulate(cell, int(i), seed)
        w = rec["calibrated"]["weight"]
        sandwich = slope_sandwich(summary, w, beta_prior=tuple(study["settings"]["fit"]["priors"]["beta"]))
        f2, dof = float(sandwich.variance_ratio[0]), int(sandwich.dof[0])
        rows[key] = {"design": list(design), "w": w, "f2": f2, "dof": dof, "rank": rec["calibrated"]["ranks"]["beta"],
                     "random_slope": rec["calibrated"]["random_slope"], "sigma": truth["sigma"]}
        if out and len(rows) % 50 == 0:
            _save(out, path, rows)
            print(f"{len(rows)} datasets, {time.time() - start:.0f} s", flush=True)
    if out:
        _save(out, path, rows)

    by_cell = sorted({k.split("/")[0] for k in rows})
    _table([((cell, "all"), [v for k, v in rows.items() if k.split("/")[0] == cell]) for cell in by_cell], kept)
    print()
    designs = sorted({tuple(v["design"]) for v in rows.values()})
    _table([((cell, des), [v for v in (rows[k] for k in rows if k.split("/")[0] == cell) if tuple(v["design"]) == des])
            for cell in by_cell for des in designs], kept)


def _save(out, study, rows):
    """Write the datasets so far atomically (a rerun resumes from them)."""
    tmp = Path(str(out) + ".tmp")
    tmp.write_text(json.dumps({"study": str(study), "datasets": rows}, indent=1))
    tmp.replace(out)


def _table(groups, kept):
    """Per group: f^2's spread, and per rule the ranks' sd and beta's coverage (the goal's verdict with it)."""
    from calibration import _goal_verdict

    print("| cell | design | datasets | f^2: median [10 %, 90 %] | rule | sd of Phi^-1(rank) | beta 50 % | 90 % "
          "| 95 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in groups:
        z = stats.norm.ppf((np.array([v["rank"] for v in r]) + 0.5) / (kept + 1))
        f2 = np.array([v["f2"] for v in r])
        dof = np.maximum(np.array([v["dof"] for v in r]), 1)
        fixed = np.array([v["random_slope"] for v in r], dtype=bool) | ~np.isfinite(f2)
        for rule in RULES:
            zs = np.where(fixed, z, adjusted_z(z, np.where(fixed, 1.0, f2), dof, rule))
            line = (f"| {name[0]} | {name[1]} | {len(r)} | {np.nanmedian(f2):.2f} [{np.nanquantile(f2, 0.1):.2f}, "
                    f"{np.nanquantile(f2, 0.9):.2f}] | {rule} | {zs.std(ddof=1):.2f} |")
            for level in (0.5, 0.9, 0.95):
                est, low, high = _interval(np.abs(zs) < stats.norm.ppf((1 + level) / 2))
                line += f" {est:.0f} [{low:.0f}, {high:.0f}] {_goal_verdict(low, high, 100 * level)} |"
            print(line)


def check(path, study_path):
    """A calibration.py run made with the move (``beta_rank_sampled`` beside ``ranks``): the fitted ranks against
    the prediction from the ranks as sampled, and the ranks as sampled against the study's on the same datasets."""
    run_ = json.loads(Path(path).read_text())
    study = json.loads(Path(study_path).read_text())["fits"] if study_path else {}
    kept = run_["settings"]["fit"]["draws_kept"]
    rows, same = [], []
    for key, rec in run_["fits"].items():
        c = rec["calibrated"]
        if "beta_rank_sampled" not in c:
            continue
        z_fit = stats.norm.ppf((c["ranks"]["beta"] + 0.5) / (kept + 1))
        z_sampled = stats.norm.ppf((c["beta_rank_sampled"] + 0.5) / (kept + 1))
        N = rec["design"][0]
        rows.append((key, z_fit, float(adjusted_z(z_sampled, c["slope_variance_ratio"], N - 1, "t")), z_sampled))
        if key in study:
            same.append(study[key]["calibrated"]["ranks"]["beta"] == c["beta_rank_sampled"])
    z_fit, z_pred, z_sampled = (np.array([r[i] for r in rows]) for i in (1, 2, 3))
    print(f"{len(rows)} fits with the move; ranks as sampled equal to the study's on {sum(same)} of {len(same)}")
    print(f"Phi^-1(rank), fitted against predicted: correlation {np.corrcoef(z_fit, z_pred)[0, 1]:.4f}, "
          f"largest difference {np.max(np.abs(z_fit - z_pred)):.3f}")
    print("| cell | fits | sd of Phi^-1(rank): sampled -> moved (predicted) | beta 50 % | 90 % "
          "| 95 %: sampled -> moved (predicted) |")
    print("|---|---|---|---|---|---|")
    for cell in sorted({r[0].split("/")[0] for r in rows}):
        idx = np.array([r[0].split("/")[0] == cell for r in rows])
        line = (f"| {cell} | {idx.sum()} | {z_sampled[idx].std(ddof=1):.2f} -> {z_fit[idx].std(ddof=1):.2f} "
                f"({z_pred[idx].std(ddof=1):.2f}) |")
        for level in (0.5, 0.9, 0.95):
            q = stats.norm.ppf((1 + level) / 2)
            line += (f" {100 * np.mean(np.abs(z_sampled[idx]) < q):.0f} -> {100 * np.mean(np.abs(z_fit[idx]) < q):.0f}"
                     f" ({100 * np.mean(np.abs(z_pred[idx]) < q):.0f}) |")
        print(line)
    if study:
        # m(k) = A_d(exp(alpha + beta log k)) moves too (away from k_ref): its coverage before and after, same datasets
        print("| cell | fits | m(k) 50 % | 90 % | 95 %: as sampled (the study) -> moved |")
        print("|---|---|---|---|---|")
        for cell in sorted({r[0].split("/")[0] for r in rows}):
            keys = [r[0] for r in rows if r[0].split("/")[0] == cell and r[0] in study]
            line = f"| {cell} | {len(keys)} |"
            for level in (0.5, 0.9, 0.95):
                before = np.mean([h for k in keys for h in study[k]["calibrated"]["cover"][f"m_{level}"]])
                after = np.mean([h for k in keys for h in run_["fits"][k]["calibrated"]["cover"][f"m_{level}"]])
                line += f" {100 * before:.0f} -> {100 * after:.0f} |"
            print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="a calibration.py study (JSON)")
    parser.add_argument("--cells", default="", help="these cells only (comma-separated)")
    parser.add_argument("--json", help="save the numbers here (and resume from it)")
    parser.add_argument("--check", metavar="RUN", help="compare a calibration.py run made with the move (docstring) "
                                                        "with the prediction, and with --study on the same datasets")
    args = parser.parse_args()
    if args.check:
        check(args.check, args.study)
    else:
        run(args.study, [c for c in args.cells.split(",") if c], args.json)


if __name__ == "__main__":
    main()
