"""Bayesian models of saliency directions in PyMC (imported on first use of ``sawdist.bayes``).

* :mod:`.special_ops` — log I_nu, the Bessel ratio and the vMF normaliser as PyTensor graphs with exact gradients;
* :mod:`.distributions` — :class:`VonMisesFisher`, :class:`PowerSpherical` and their cosine laws;
* :mod:`.convergence` — the collapsed convergence model (mu(x) integrated out) and the H2 comparison;
* :mod:`.predictive` — posterior predictions of the similarity matrix, m(k) and the ensemble curve;
* :mod:`.plots` — ArviZ/matplotlib figures.
"""

from .convergence import LAWS, compare_shared_mean, convergence_model, fit_convergence, mean_direction_posterior
from .distributions import PowerSpherical, PowerSphericalCosine, VonMisesFisher, VonMisesFisherCosine
from .plots import plot_capacity_law, plot_similarity, plot_trace
from .predictive import observed_mrl, observed_similarity, posterior_predictive
from .simulate import simulate_summary

__all__ = [
    "LAWS",
    "PowerSpherical",
    "PowerSphericalCosine",
    "VonMisesFisher",
    "VonMisesFisherCosine",
    "compare_shared_mean",
    "convergence_model",
    "fit_convergence",
    "mean_direction_posterior",
    "observed_mrl",
    "observed_similarity",
    "plot_capacity_law",
    "plot_similarity",
    "plot_trace",
    "posterior_predictive",
    "simulate_summary",
]
