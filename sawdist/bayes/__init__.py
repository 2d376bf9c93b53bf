"""Bayesian models of saliency directions in PyMC (imported on first use of ``sawdist.bayes``).

* :mod:`.special_ops` — log I_nu, the Bessel ratio and the vMF normalizer as PyTensor graphs with exact gradients;
* :mod:`.distributions` — :class:`VonMisesFisher`, :class:`PowerSpherical` and their cosine laws;
* :mod:`.design` — the checked arrays of a summary (:class:`~.design.Design`, :func:`~.design.check_summary`);
* :mod:`.model` — the collapsed convergence model (mu(x) integrated out): likelihood, priors, laws;
* :mod:`.initialization` — the Laplace start of NUTS (posterior mode, mass matrix from the Hessian there);
* :mod:`.fitting` — :func:`fit_convergence`, the sampler rule (:func:`sampler_diagnostics`) and the H2
  comparison :func:`compare_shared_mean`;
* :mod:`.loo` — leave-one-input-out with each input's effects integrated out (the model comparisons);
* :mod:`.samplers` — NUTS from PyMC, nutpie, NumPyro or BlackJAX with one InferenceData layout (Numba and JAX
  implementations of the custom Ops in ``_numba_ops`` and ``_jax_ops``, registered by ``_backends`` when PyTensor
  loads those backends);
* :mod:`.collapsed_random` — summaries drawn from the model (prior and posterior predictive through PyMC);
* :mod:`.mean_direction` — the posterior of the shared mean direction mu(x);
* :mod:`.predictive` — posterior predictions of the similarity matrix, m(k) and the ensemble curve;
* :mod:`.plots` — ArviZ/matplotlib figures.
"""

from ..dependencies import ensure_installed

# One sentence naming the extra, instead of a ModuleNotFoundError from deep inside the first import below.
ensure_installed("pymc", "arviz", feature="sawdist.bayes")

from . import _backends
from .distributions import PowerSpherical, PowerSphericalCosine, VonMisesFisher, VonMisesFisherCosine
from .fitting import (
    SamplerDiagnostics,
    SamplerDiagnosticsWarning,
    compare_shared_mean,
    fit_convergence,
    sampler_diagnostics,
)
from .mean_direction import mean_direction_posterior
from .model import LAWS, convergence_model
from .plots import plot_capacity_law, plot_similarity, plot_trace
from .predictive import observed_mean_resultant_length, observed_similarity, posterior_predictive
from .simulate import simulate_summary

# Numba and JAX implementations of the custom Ops, registered when PyTensor's backend is first imported (_backends)
_backends.install()

__all__ = [
    "LAWS",
    "PowerSpherical",
    "PowerSphericalCosine",
    "SamplerDiagnostics",
    "SamplerDiagnosticsWarning",
    "VonMisesFisher",
    "VonMisesFisherCosine",
    "compare_shared_mean",
    "convergence_model",
    "fit_convergence",
    "mean_direction_posterior",
    "observed_mean_resultant_length",
    "observed_similarity",
    "plot_capacity_law",
    "plot_similarity",
    "plot_trace",
    "posterior_predictive",
    "sampler_diagnostics",
    "simulate_summary",
]
