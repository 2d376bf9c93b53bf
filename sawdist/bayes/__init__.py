"""Bayesian models of saliency directions in PyMC (imported on first use of ``sawdist.bayes``).

* :mod:`.special_ops` — log I_nu, the Bessel ratio and the vMF normaliser as PyTensor graphs with exact gradients;
* :mod:`.distributions` — :class:`VonMisesFisher`, :class:`PowerSpherical` and their cosine laws;
* :mod:`.convergence` — the collapsed convergence model (mu(x) integrated out) and the H2 comparison;
* :mod:`.predictive` — posterior predictions of the similarity matrix, m(k) and the ensemble curve;
* :mod:`.plots` — ArviZ/matplotlib figures.
"""

from .distributions import PowerSpherical, PowerSphericalCosine, VonMisesFisher, VonMisesFisherCosine

__all__ = ["PowerSpherical", "PowerSphericalCosine", "VonMisesFisher", "VonMisesFisherCosine"]
