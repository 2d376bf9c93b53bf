"""Tests of sawdist.plots: figures are produced (Agg backend), contents are the fitted quantities, lazy import."""

import subprocess
import sys

import numpy as np
import pytest

import sawdist
from sawdist import plots, stats
from sawdist.capacity import fit_family

from ._saw_reference import directions_from_cosines, draw_cosines

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot is imported)


@pytest.fixture(scope="module")
def family():
    rng = np.random.default_rng(0)
    d = 256
    mu = np.zeros(d)
    mu[0] = 1.0
    x = np.stack(
        [directions_from_cosines(draw_cosines(lambda t, k=k: k * t, d, 40, rng), mu, rng) for k in (20.0, 60.0, 150.0)]
    )
    return x, fit_family(x, capacities=[4, 16, 64], n_boot=10, rng=1)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_import_sawdist_and_plots_do_not_import_matplotlib():
    code = "import sys, sawdist, sawdist.plots, sawdist.stats; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cosine_laws_figure(family, tmp_path):
    _, fit = family
    ax = plots.plot_cosine_laws(fit)
    lines = ax.get_lines()
    assert len(lines) == 4  # three capacities and the uniform reference
    # The drawn density is the fitted cosine law; the reference is the Beta((d-1)/2, (d-1)/2) law of (1+t)/2.
    x, y = lines[1].get_data()
    np.testing.assert_allclose(y, fit.distributions[1].cosine.pdf(x), rtol=1e-12)
    xu, yu = lines[3].get_data()
    np.testing.assert_allclose(np.trapezoid(yu, xu), 1.0, rtol=1e-3)  # +-5 sd of the uniform cosine law
    ax.figure.savefig(tmp_path / "cosine_laws.png", dpi=80)
    assert (tmp_path / "cosine_laws.png").stat().st_size > 5000


def test_log_shapes_figure(family):
    _, fit = family
    ax = plots.plot_log_shapes(fit)
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(solid) == 3
    x, y = solid[2].get_data()
    f = fit.log_shapes[2]
    np.testing.assert_allclose(y, f(x) - f(np.array([np.median(fit.cosines[2])]))[0], rtol=1e-12, atol=1e-12)


def test_single_fit_figures():
    rng = np.random.default_rng(2)
    mu = np.zeros(20)
    mu[0] = 1.0
    res = sawdist.fit(directions_from_cosines(draw_cosines(lambda t: 8 * t, 20, 300, rng), mu, rng))
    assert len(plots.plot_cosine_laws(res).get_lines()) == 2
    plots.plot_log_shapes(res)


def test_similarity_figure(family):
    x, fit = family
    axes = plots.plot_similarity(fit)
    assert len(axes) == 2
    np.testing.assert_allclose(axes[0].get_images()[0].get_array(), fit.rho_observed)
    np.testing.assert_allclose(axes[1].get_images()[0].get_array(), fit.rho_predicted)
    # From a bare matrix: the default prediction is rank one from the diagonal (unbiased m_hat^2).
    rho = stats.similarity_matrix(x)
    axes = plots.plot_similarity(rho, capacities=[4, 16, 64])
    m = np.sqrt(np.maximum(np.diag(rho), 0))
    np.testing.assert_allclose(axes[1].get_images()[0].get_array(), np.outer(m, m))


def test_errors():
    with pytest.raises(ValueError, match=r"'fit' must be a FamilyFit \(sawdist.fit_family\) or a FitResult"):
        plots.plot_cosine_laws(np.eye(2))
    with pytest.raises(ValueError, match=r"'rho' must be a square \(K, K\) matrix, got shape \(2, 3\)\."):
        plots.plot_similarity(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"'predicted' must have the shape of 'rho' \(2, 2\), got \(3, 3\)\."):
        plots.plot_similarity(np.ones((2, 2)), np.ones((3, 3)))
    rng = np.random.default_rng(3)
    mu = np.array([1.0, 0.0, 0.0])
    vmf = sawdist.fit(directions_from_cosines(draw_cosines(lambda t: 3 * t, 3, 50, rng), mu, rng),
                      distribution="vonmises_fisher")
    with pytest.raises(ValueError, match=r"'fit' must carry a fitted log shape"):
        plots.plot_log_shapes(vmf)
