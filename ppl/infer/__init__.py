"""Inference from the handlers alone: one SVI core, MAP and ADVI front-ends, predictive checks, evidence."""
from . import diagnostics
from .autoguide import AutoDelta, AutoGuide, AutoMultivariateNormal, AutoNormal
from .elbo import Trace_ELBO, TraceMeanField_ELBO
from .evidence import log_evidence
from .predictive import Predictive, predictive_check
from .svi import ADVI, MAP, SVI, ADVIResult, Laplace, MAPResult, SVIResult, SVIState

__all__ = [
    "diagnostics", "ADVI", "ADVIResult", "AutoDelta", "AutoGuide", "AutoMultivariateNormal", "AutoNormal", "Laplace", "MAP", "MAPResult",
    "Predictive", "SVI", "SVIResult", "SVIState", "TraceMeanField_ELBO", "Trace_ELBO", "log_evidence",
    "predictive_check",
]
