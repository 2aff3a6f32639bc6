"""Probability distributions with NumPy broadcasting, constraints, transforms and KL."""
from . import constraints, transforms
from .constraints import Constraint
from .delta import Delta
from .continuous import (Beta, Cauchy, Exponential, Gamma, HalfCauchy, HalfNormal, HalfStudentT, Laplace, Logistic,
                         LogNormal, Normal, StudentT, Uniform, Weibull)
from .discrete import Bernoulli, Binomial, Categorical, GammaPoisson, Multinomial, NegativeBinomial, Poisson
from .improper import ImproperUniform
from .mixture import MixtureSameFamily
from .truncated import TruncatedDistribution
from .distribution import Distribution, Expanded, Independent
from .kl import kl_divergence, register_kl
from .lkj import LKJCholesky
from .multivariate import Dirichlet, MultivariateNormal, MultivariateNormalDiag
from .transforms import biject_to

__all__ = [
    "Bernoulli", "Beta", "Delta", "Binomial", "Categorical", "Cauchy", "Constraint", "Dirichlet", "Distribution",
    "Expanded", "Exponential", "Gamma", "HalfNormal", "Independent", "Laplace", "LogNormal",
    "MultivariateNormal", "MultivariateNormalDiag", "Normal", "Poisson", "StudentT", "Uniform",
    "GammaPoisson", "HalfCauchy", "HalfStudentT", "ImproperUniform", "Logistic", "Multinomial", "NegativeBinomial",
    "Weibull", "LKJCholesky", "MixtureSameFamily", "TruncatedDistribution",
    "biject_to", "constraints", "kl_divergence", "register_kl", "transforms",
]
