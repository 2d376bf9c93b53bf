r"""Capacity families: one semi-parametric Saw per capacity, a shared mean direction, shapes smooth in log capacity.

For a family F(k) of models of capacity k (in the model zoo, the width multiplier of the layers), trained with several
seeds, and one input x, the saliency directions u_{k,s} follow Saw(mu, psi_k): a mean direction mu shared by the
capacities (hypothesis H2) and a shape psi_k that concentrates as k grows (H1) -- the hypotheses of
docs/architecture.md, and the estimator of docs/theory/semiparametric.md, "Capacity families". :func:`fit_family`
estimates

* **mu** — the direction of the weighted resultant S = sum_k w_k R_k, w_k = m_k / (1 - m_k^2) (the vMF
  concentration kappa ~ d m/(1 - m^2) up to the common factor d, the weight of R_k in the vMF likelihood of mu);
  m_k is the unbiased per-capacity m_hat of identity 3.
* **cosines** — leave-one-out against S (S - w_k u_i for draw i) and moment-deconvolved per capacity through m_hat_k,
  exactly as for a single fit (:mod:`sawdist.semiparametric`, step 2).
* **shapes** — log psi_k is a natural cubic spline in the capacity's standardised cosine z = (t - c_k)/s_k (c_k, s_k
  the median and standard deviation of its cosines) on *shared* knots in z (pooled quantiles), so every capacity's
  spline has its knots in its own data band and is linear outside it. The coefficient matrix Theta (capacity x knot)
  maximises

      sum_k l_k(theta_k) - lam_z/2 sum_k theta_k' P theta_k - lam_k/2 || D Theta ||_F^2,

  with P the roughness int s''(z)^2 dz and D the second divided differences in log k: the shape coefficients are
  penalised for curvature in log capacity (a shape varying linearly in log k is free). The problem is concave; joint
  Newton steps. lam_z (common to the capacities) is chosen by the summed AIC with lam_k = 0, then lam_k by the joint
  AIC (edf = tr[H^{-1} F]).
* **m(k)** = E_k[t] under the fitted shapes, with bootstrap-over-seeds uncertainty: seeds are resampled with
  replacement jointly across capacities (a seed index names one training run per capacity), the cosines are
  recomputed (leaving out every copy of a draw, m_hat from pairs of distinct draws), and the shapes refitted at the
  selected smoothing.
* **rho(k1, k2)** predicted by identity 2 with the shared mean: m(k1) m(k2); the observed cross-seed similarity
  (:func:`sawdist.stats.similarity_matrix`) is reported next to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._logspline import LAM_GRID, LogSplineProblem, SplineLogShape, default_n_knots, kappa_start, solve_psd
from ._validation import as_directions, as_generator, check_int, feature_dim_of, is_dataarray
from .results import FamilyFit
from .semiparametric import corrected_cosines

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

__all__ = ["FamilyFit", "fit_family"]

_LAM_K_GRID = np.concatenate([[0.0], 10.0 ** np.arange(-3.0, 6.01, 1.0)])


def second_differences(x: np.ndarray) -> np.ndarray:
    """(K-2, K) matrix of second divided differences on the points x (zero rows when K < 3)."""
    K = x.size
    D = np.zeros((max(K - 2, 0), K))
    for j in range(K - 2):
        h1, h2 = x[j + 1] - x[j], x[j + 2] - x[j + 1]
        D[j, j : j + 3] = np.array([1.0 / h1, -(1.0 / h1 + 1.0 / h2), 1.0 / h2]) * 2.0 / (h1 + h2)
    return D


class _Joint:
    """The coupled penalised likelihood over Gamma (capacity x basis), in the shared eigen-coordinates of P."""

    def __init__(self, problems, DtD):
        self.problems = problems
        self.K = len(problems)
        self.p = problems[0].pen.size
        self.pen = problems[0].pen
        self.DtD = DtD

    def objective(self, G, lam_z, lam_k):
        val = sum(pr.loglik(g) for pr, g in zip(self.problems, G))
        val -= 0.5 * lam_z * np.sum(self.pen * G**2)
        val -= 0.5 * lam_k * np.sum(G * (self.DtD @ G))
        return val

    def grad_hess(self, G, lam_z, lam_k):
        K, p = self.K, self.p
        g = np.empty((K, p))
        F = np.zeros((K * p, K * p))
        for k, (pr, gk) in enumerate(zip(self.problems, G)):
            _, EB, C = pr.moments(gk)
            g[k] = pr.sB - pr.n * EB
            F[k * p : (k + 1) * p, k * p : (k + 1) * p] = pr.n * C
        g -= lam_z * self.pen * G + lam_k * (self.DtD @ G)
        Pen = lam_z * np.kron(np.eye(K), np.diag(self.pen)) + lam_k * np.kron(self.DtD, np.eye(p))
        return g.ravel(), F, F + Pen

    def newton(self, G, lam_z, lam_k, max_iter=100, tol=1e-22):
        obj = self.objective(G, lam_z, lam_k)
        n = sum(pr.n for pr in self.problems)
        for _ in range(max_iter):
            g, _, H = self.grad_hess(G, lam_z, lam_k)
            step = solve_psd(H, g)
            dec = g @ step
            if not np.isfinite(dec) or dec <= tol * max(n, 1.0):
                break
            step = step.reshape(G.shape)
            a = 1.0 if dec < 1e-6 * n else None
            if a is not None:
                new = self.objective(G + step, lam_z, lam_k)
                if np.isfinite(new):
                    G, obj = G + step, new
                    continue
            a = 1.0
            while a > 1e-12:
                new = self.objective(G + a * step, lam_z, lam_k)
                if np.isfinite(new) and new >= obj + 1e-4 * a * dec:
                    break
                a *= 0.5
            if a <= 1e-12:
                break
            G, obj = G + a * step, new
        return G

    def aic(self, G, lam_z, lam_k):
        _, F, H = self.grad_hess(G, lam_z, lam_k)
        edf = float(np.trace(solve_psd(H, F)))
        ll = sum(pr.loglik(g) for pr, g in zip(self.problems, G))
        return -2.0 * ll + 2.0 * edf, edf


def _layout(directions, dim, capacities, seed_dim):
    """Directions as (K, n_seeds, d), the capacity values, a template for xarray outputs, and the input laid out as
    (capacity, seed, feature) with its seed axis, for :func:`sawdist._validation.as_directions`."""
    if is_dataarray(directions):
        if dim not in directions.dims:
            raise ValueError(f"'dim' must name a dim of 'directions' {directions.dims}, got {dim!r}.")
        feature = feature_dim_of(directions)
        rest = [d for d in directions.dims if d not in (dim, feature)]
        if seed_dim in rest:
            extra = [d for d in rest if d != seed_dim]
        else:
            seed_dim, extra = (rest[0], rest[1:]) if rest else (None, [])
        if extra or seed_dim is None:
            raise ValueError(
                f"'directions' must have exactly the dims ({dim!r}, a seed dim, {feature!r}) for one input; "
                f"got {directions.dims} (select one input, e.g. .sel(input=...))."
            )
        source, seed_axis = directions.transpose(dim, seed_dim, feature), seed_dim
        arr = source.values
        caps = np.asarray(directions[dim].values if capacities is None else capacities)
        template = directions
    else:
        arr = np.asarray(directions)
        if arr.ndim != 3:
            raise ValueError(f"'directions' must have shape (capacity, seed, feature), got shape {arr.shape}.")
        caps = np.arange(1, arr.shape[0] + 1) if capacities is None else np.asarray(capacities)
        template, source, seed_axis = None, arr, -2
    caps = np.asarray(caps, dtype=np.float64) if not np.issubdtype(np.asarray(caps).dtype, np.number) else caps
    if caps.shape != (arr.shape[0],):
        raise ValueError(f"'capacities' must have one value per capacity ({arr.shape[0]}), got shape {caps.shape}.")
    if not np.all(np.isfinite(caps.astype(float))) or np.any(caps.astype(float) <= 0):
        raise ValueError(f"'capacities' must be positive and finite (they enter as log k), got {caps!r}.")
    if np.unique(caps).size != caps.size:
        raise ValueError(f"'capacities' must be distinct, got {caps!r}.")
    return arr, caps, template, (source, seed_axis)


def fit_family(directions: ArrayLike | xr.DataArray, dim: str = "capacity", *, capacities: ArrayLike | None = None,
               seed_dim: str = "seed", n_boot: int = 200, rng: np.random.Generator | int | None = None,
               n_knots: int | None = None, random_state: np.random.Generator | int | None = None) -> FamilyFit:
    """Fit one semi-parametric Saw per capacity with a shared mean direction and shapes smooth in log capacity.

    The estimator is described in the :mod:`sawdist.capacity` module docstring.

    Parameters
    ----------
    directions : array_like (K, n_seeds, d) or xarray.DataArray
        Saliency directions of one input for K capacities and n_seeds seeds (the ``direction`` variable of a
        saliency dataset, docs/dataset.md, with one ``input`` selected). NaN rows (invalid directions) are skipped
        and counted per capacity.
    dim : str
        Name of the capacity dim of a DataArray (default ``"capacity"``); arrays have the capacity axis first.
    capacities : array_like, optional
        Capacity values k (positive; they enter as log k). Default: the ``dim`` coordinate of a DataArray,
        1..K for arrays.
    seed_dim : str
        Name of the seed dim of a DataArray (default ``"seed"``; the one remaining dim if absent).
    n_boot : int
        Bootstrap replicates over seeds for the uncertainty of m(k), an integer >= 0; 0 skips the bootstrap.
    rng : numpy.random.Generator or int, optional
        Source of the bootstrap resamples.
    n_knots : int, optional
        Number of shared knots, at least 2 (default from the smallest per-capacity count, between 3 and 12).
    random_state : numpy.random.Generator or int, optional
        scipy's name for `rng`; pass one or the other.

    Returns
    -------
    FamilyFit
        Per-capacity m(k) with bootstrap uncertainty, shapes, the shared mu, and rho predicted and observed;
        DataArrays (with the capacity coordinate) when ``directions`` is a DataArray; ``to_dataset()`` for all.

    Examples
    --------
    >>> import numpy as np
    >>> import sawdist
    >>> from sawdist.capacity import fit_family
    >>> mu = np.zeros(256); mu[0] = 1.0
    >>> x = np.stack([sawdist.vonmises_fisher(mu, k).rvs(size=30, rng=i) for i, k in enumerate([60.0, 120.0, 240.0])])
    >>> res = fit_family(x, capacities=[8, 16, 32], n_boot=20, rng=0)
    >>> bool(np.all(np.diff(res.mean_resultant_length) > 0))
    True
    """
    from . import stats
    from .distributions import saw

    n_boot = check_int(n_boot, "n_boot")
    if n_knots is not None:
        n_knots = check_int(n_knots, "n_knots", 2)
    rng = as_generator(rng, random_state)  # checked here, before the fit, not after it
    arr, caps, template, (source, seed_axis) = _layout(directions, dim, capacities, seed_dim)
    D = as_directions(source, seed_axis, min_rows=2)  # (K, n, d) in the input's order, NaN rows zeroed
    order = np.argsort(caps.astype(float))
    arr, caps = arr[order], caps[order]
    values, valid = D.values[order], D.valid[order]
    K, n_seeds, d = arr.shape
    n_k = valid.sum(axis=1)
    rows = [np.nonzero(valid[k])[0] for k in range(K)]
    X = np.concatenate([values[k, r] for k, r in enumerate(rows)])
    groups = np.concatenate([np.full(r.size, k) for k, r in enumerate(rows)])
    seed_of = np.concatenate(rows)

    def cosines(mult):
        c0 = corrected_cosines(X, d, groups=groups, mult=mult)  # m2 per capacity (weights do not enter m2)
        m_hat = np.sqrt(np.maximum(c0["m2"], 0.0))
        w = m_hat / (1.0 - np.minimum(m_hat, 1.0 - 1e-12) ** 2)
        if not np.any(w > 0):
            w = np.ones(K)
        return corrected_cosines(X, d, groups=groups, weights=w, mult=mult, m2=c0["m2"])

    ones = np.ones(X.shape[0])
    cos = cosines(ones)
    if not np.all(np.isfinite(cos["mu"])):
        raise ValueError("'directions' must have a nonzero weighted resultant, got S = 0 (no mean direction).")
    t_c = cos["t_c"]
    # Standardised cosines and shared knots in z.
    loc = np.array([np.median(t_c[groups == k]) for k in range(K)])
    scl = np.array([np.std(t_c[groups == k]) for k in range(K)])
    if np.any(scl <= 0):
        k = int(np.argmax(scl <= 0))
        raise ValueError(
            f"'directions' must give at least 2 distinct cosines per capacity, got 1 at capacity {caps[k]}."
        )
    z = (t_c - loc[groups]) / scl[groups]
    n_kn = default_n_knots(int(n_k.min())) if n_knots is None else n_knots
    knots_z = np.unique(np.quantile(z, np.linspace(0.0, 1.0, n_kn)))
    ref = int(np.argmin(np.abs(knots_z)))
    problems = []
    rotation = None
    for k in range(K):
        tk = t_c[groups == k]
        pr = LogSplineProblem(tk, d, loc[k] + scl[k] * knots_z, ref=ref, scale=scl[k], rotation=rotation)
        rotation = pr.U
        problems.append(pr)
    Dm = second_differences(np.log(caps.astype(float)))
    DtD = Dm.T @ Dm
    joint = _Joint(problems, DtD)
    # Start: straight lines, kappa_k t (vMF-like), in the shared eigen-coordinates.
    G = np.stack(
        [
            rotation.T @ (kappa_start(t_c[groups == k], d) * scl[k] * (knots_z - knots_z[ref]))[problems[k].keep]
            for k in range(K)
        ]
    )
    # lam_z by the summed AIC with lam_k = 0 (capacities separate), smooth to rough, warm-started.
    best = None
    for lam_z in LAM_GRID[::-1]:
        G = joint.newton(G, lam_z, 0.0, tol=1e-14)
        aic, edf = joint.aic(G, lam_z, 0.0)
        if best is None or aic < best[0]:
            best = (aic, lam_z, 0.0, G.copy(), edf)
    lam_z = best[1]
    G = best[3]
    if K >= 3:
        for lam_k in _LAM_K_GRID[1:]:
            G = joint.newton(G, lam_z, lam_k, tol=1e-14)
            aic, edf = joint.aic(G, lam_z, lam_k)
            if aic < best[0]:
                best = (aic, lam_z, lam_k, G.copy(), edf)
    aic, lam_z, lam_k, G, edf = best
    G = joint.newton(G, lam_z, lam_k)  # polish at the selected smoothing
    m_fit = np.array([pr.mean_t(g) for pr, g in zip(problems, G)])

    # Bootstrap over seeds (jointly across capacities), refitting at the selected smoothing.
    boot = np.full((n_boot, K), np.nan)
    for b in range(n_boot):
        counts = np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds).astype(float)
        mult = counts[seed_of]
        if np.any(np.bincount(groups, weights=(mult > 0).astype(float), minlength=K) < 2):
            continue  # fewer than 2 distinct valid draws at some capacity: no m_hat
        cb = cosines(mult)
        if not np.all(np.isfinite(cb["mu"])):
            continue
        for k, pr in enumerate(problems):
            sel = (groups == k) & (mult > 0)
            pr.set_data(cb["t_c"][sel], mult[sel])
        Gb = joint.newton(G.copy(), lam_z, lam_k, tol=1e-12)  # m(k) to ~1e-7, far below its spread
        boot[b] = [pr.mean_t(g) for pr, g in zip(problems, Gb)]
    for k, pr in enumerate(problems):  # restore the data of the fit
        pr.set_data(t_c[groups == k])
    ok = np.all(np.isfinite(boot), axis=1)
    if ok.sum() >= 2:
        m_se = boot[ok].std(axis=0, ddof=1)
        m_lower, m_upper = np.quantile(boot[ok], [0.025, 0.975], axis=0)
    else:
        m_se = m_lower = m_upper = np.full(K, np.nan)

    log_shapes = []
    for k, (pr, g) in enumerate(zip(problems, G)):
        values = np.zeros(knots_z.size)
        values[pr.keep] = rotation @ g
        log_shapes.append(SplineLogShape(loc[k] + scl[k] * knots_z, values))
    mu = cos["mu"]
    dists = [saw(mu, f) for f in log_shapes]
    rho_obs = stats.similarity_matrix(arr)
    rho_pred = np.outer(m_fit, m_fit)
    m_unb = np.sqrt(np.maximum(cos["m2"], 0.0))
    out = {
        "mu": mu,
        "mean_resultant_length": m_fit,
        "m_se": m_se,
        "m_lower": m_lower,
        "m_upper": m_upper,
        "m_unbiased": m_unb,
        "m_plugin": cos["m_plugin"],
        "rho_predicted": rho_pred,
        "rho_observed": rho_obs,
    }
    if template is not None:
        import xarray as xr

        feature = feature_dim_of(template)
        cap_coord = template[dim].values[order] if dim in template.coords else caps
        for name in ("mean_resultant_length", "m_se", "m_lower", "m_upper", "m_unbiased", "m_plugin"):
            out[name] = xr.DataArray(out[name], dims=(dim,), coords={dim: cap_coord}, name=name)
        for name in ("rho_predicted", "rho_observed"):
            out[name] = xr.DataArray(
                out[name],
                dims=(f"{dim}_1", f"{dim}_2"),
                coords={f"{dim}_1": cap_coord, f"{dim}_2": cap_coord},
                name=name,
            )
        fcoords = {c: v for c, v in template.coords.items() if v.dims == (feature,)}
        out["mu"] = xr.DataArray(mu, dims=(feature,), coords=fcoords, name="mu")
    return FamilyFit(
        capacities=caps,
        log_shapes=log_shapes,
        distributions=dists,
        n=n_k,
        n_skipped=n_seeds - n_k,
        dim=d,
        smoothing={
            "criterion": "AIC",
            "lam_z": float(lam_z),
            "lam_k": float(lam_k),
            "edf": float(edf),
            "aic": float(aic),
            "knots_z": knots_z,
            "n_boot_used": int(ok.sum()),
        },
        cosines=[t_c[groups == k] for k in range(K)],
        **out,
    )
