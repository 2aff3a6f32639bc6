"""Inference from the handlers alone: one SVI core, MAP and ADVI front-ends, predictive checks, evidence."""
from . import diagnostics
from .autoguide import AutoDelta, AutoGuide, AutoMultivariateNormal, AutoNormal
from .elbo import Trace_ELBO, TraceMeanField_ELBO
from .evidence import log_evidence
from .mcmc import HMC, NUTS, MCMCResult
from .parallel import fit_many
from .potential import Potential, potential
from .pathfinder import Pathfinder, PathfinderResult
from .predictive import Predictive, predictive_check
from .svi import ADVI, MAP, SVI, ADVIResult, Laplace, MAPResult, SVIResult, SVIState

__all__ = [
    "diagnostics", "ADVI", "HMC", "MCMCResult", "NUTS", "Potential", "potential", "ADVIResult", "AutoDelta", "AutoGuide", "AutoMultivariateNormal", "AutoNormal", "Laplace", "MAP", "MAPResult",
    "Pathfinder", "PathfinderResult", "Predictive", "SVI", "SVIResult", "SVIState", "TraceMeanField_ELBO", "Trace_ELBO", "fit_many", "log_evidence",
    "predictive_check",
]
