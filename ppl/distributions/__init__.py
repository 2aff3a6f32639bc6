"""Probability distributions with NumPy broadcasting, constraints, transforms and KL."""
from . import constraints, transforms
from .constraints import Constraint
from .delta import Delta
from .continuous import (Beta, Cauchy, Exponential, Gamma, HalfNormal, Laplace, LogNormal, Normal,
                         StudentT, Uniform)
from .discrete import Bernoulli, Binomial, Categorical, Poisson
from .distribution import Distribution, Expanded, Independent
from .kl import kl_divergence, register_kl
from .multivariate import Dirichlet, MultivariateNormal, MultivariateNormalDiag
from .transforms import biject_to

__all__ = [
    "Bernoulli", "Beta", "Delta", "Binomial", "Categorical", "Cauchy", "Constraint", "Dirichlet", "Distribution",
    "Expanded", "Exponential", "Gamma", "HalfNormal", "Independent", "Laplace", "LogNormal",
    "MultivariateNormal", "MultivariateNormalDiag", "Normal", "Poisson", "StudentT", "Uniform",
    "biject_to", "constraints", "kl_divergence", "register_kl", "transforms",
]
