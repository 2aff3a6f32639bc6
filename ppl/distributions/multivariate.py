"""Multivariate families: MultivariateNormal, MultivariateNormalDiag, Dirichlet."""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .. import kernels
from ..kernels import normal_log_prob, normal_rsample
from . import constraints
from .continuous import LOG_SQRT_2PI, _at_least_tiny, _noise
from .distribution import (Distribution, broadcast_shapes, broadcast_to, dtype_of, full_batch, promote_shapes,
                           where)
from .special import digamma, gammaln, solve_triangular


def _batch_mv(matrix, vector):
    """matrix @ vector over broadcast batch axes: (..., n, n) x (..., n) -> (..., n)."""
    if np.ndim(matrix) == 2:  # one shared matrix: a single GEMM over every vector
        return np.dot(vector, np.swapaxes(matrix, -1, -2))
    return np.matmul(matrix, vector[..., None])[..., 0]


class MultivariateNormal(Distribution):
    """N(loc, Sigma) on R^n, parameterized by one of covariance_matrix, scale_tril (Cholesky) or precision_matrix.

    log p(x) = -1/2 |L^-1 (x - loc)|^2 - sum log diag L - n/2 log 2 pi, with Sigma = L L'.
    """

    arg_constraints = {"loc": constraints.real_vector, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, scale_tril=None, precision_matrix=None, validate_args=True):
        given = [m is not None for m in (covariance_matrix, scale_tril, precision_matrix)]
        if sum(given) != 1:
            raise ValueError("MultivariateNormal: give exactly one of covariance_matrix, scale_tril, "
                             "precision_matrix")
        (loc,), _ = promote_shapes(loc)
        if np.ndim(loc) == 0:
            raise ValueError("MultivariateNormal: loc must have at least one dimension (the event)")
        n = np.shape(loc)[-1]
        if covariance_matrix is not None:
            covariance_matrix = _square("covariance_matrix", covariance_matrix, n, validate_args)
            scale_tril = np.linalg.cholesky(covariance_matrix)
        elif precision_matrix is not None:
            precision_matrix = _square("precision_matrix", precision_matrix, n, validate_args)
            scale_tril = _precision_to_scale_tril(precision_matrix)
        else:
            scale_tril = _square("scale_tril", scale_tril, n, False)
        self.loc, self.scale_tril = loc, scale_tril
        batch_shape = broadcast_shapes(np.shape(loc)[:-1], np.shape(scale_tril)[:-2])
        super().__init__(batch_shape, (n,), validate_args)

    @property
    def covariance_matrix(self):
        return np.matmul(self.scale_tril, np.swapaxes(self.scale_tril, -1, -2))

    @property
    def precision_matrix(self):
        # Sigma^-1 = L^-T L^-1: invert the triangular factor, not the (worse conditioned) covariance.
        inv_tril = np.linalg.inv(self.scale_tril)
        return np.matmul(np.swapaxes(inv_tril, -1, -2), inv_tril)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        eps = _noise(rng, "normal", shape, dtype_of(self.loc, self.scale_tril))
        return self.loc + _batch_mv(self.scale_tril, eps)

    def log_prob(self, value):
        _check_event("MultivariateNormal", value, self.event_shape)
        if self.validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        shape = broadcast_shapes(np.shape(diff)[:-1], self.batch_shape)
        n = self.event_shape[0]
        diff = broadcast_to(diff, shape + (n,))
        if np.ndim(self.scale_tril) == 2:
            # One triangular solve for the whole batch: every point is a column of the right-hand side.
            z = solve_triangular(self.scale_tril, np.reshape(diff, (-1, n)).T, lower=True).T
            z = np.reshape(z, shape + (n,))
        else:
            # A batch of factors: scipy's triangular solve has no batched gradient, the LU solve has.
            tril = broadcast_to(self.scale_tril, shape + (n, n))
            z = np.linalg.solve(tril, diff[..., None])[..., 0]
        half_log_det = np.sum(np.log(np.diagonal(self.scale_tril, axis1=-1, axis2=-2)), axis=-1)
        return -0.5 * np.sum(z * z, axis=-1) - half_log_det - n * LOG_SQRT_2PI

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return broadcast_to(np.sum(self.scale_tril**2, axis=-1), self.batch_shape + self.event_shape)

    def entropy(self):
        n = self.event_shape[0]
        half_log_det = np.sum(np.log(np.diagonal(self.scale_tril, axis1=-1, axis2=-2)), axis=-1)
        return broadcast_to(n * (0.5 + LOG_SQRT_2PI) + half_log_det, self.batch_shape)


def _precision_to_scale_tril(precision):
    """The lower Cholesky factor L of Sigma = P^-1, without inverting P.

    With J the flip (reversal) permutation, chol(J P J) = Lf gives P = U U' for the upper-triangular
    U = J Lf J, so P^-1 = U'^-1 U^-1 and L = (U')^-1 = (J Lf' J)^-1 is lower-triangular.
    """
    flipped = np.linalg.cholesky(precision[..., ::-1, ::-1])
    upper_t = np.swapaxes(flipped[..., ::-1, ::-1], -1, -2)
    return np.tril(np.linalg.inv(upper_t))  # tril: the inverse is triangular up to rounding


def _square(name, matrix, n, check_positive_definite):
    """``matrix`` as an array of shape (..., n, n), or a ValueError naming it."""
    if not hasattr(matrix, "shape"):
        matrix = onp.asarray(matrix, dtype=float)
    shape = np.shape(matrix)
    if len(shape) < 2 or shape[-2:] != (n, n):
        raise ValueError(f"MultivariateNormal: parameter {name!r} must have shape (..., {n}, {n}) to match loc; "
                         f"got shape {shape}")
    if check_positive_definite and not onp.all(constraints.positive_definite.check(onp.asarray(getval(matrix)))):
        raise ValueError(f"MultivariateNormal: parameter {name!r} must be positive definite")
    return matrix


def _check_event(family, value, event_shape):
    """A value whose last axes are not the event shape cannot be scored: say so instead of broadcasting."""
    shape = np.shape(value)
    if shape[len(shape) - len(event_shape):] != event_shape:
        raise ValueError(f"{family}.log_prob: value of shape {shape} does not end in the event shape {event_shape}")


class MultivariateNormalDiag(Distribution):
    """N(loc, diag(scale_diag^2)) as one event of size n: elementwise math, no matrices.

    log p(x) = sum_i [-(x_i - loc_i)^2 / (2 scale_i^2) - log scale_i - log sqrt(2 pi)].
    """

    arg_constraints = {"loc": constraints.real_vector, "scale_diag": constraints.positive}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, scale_diag, validate_args=True):
        (self.loc, self.scale_diag), shape = promote_shapes(loc, scale_diag)
        if len(shape) == 0:
            raise ValueError("MultivariateNormalDiag: loc or scale_diag must have an event dimension")
        super().__init__(shape[:-1], shape[-1:], validate_args)

    @property
    def scale_tril(self):
        scale = broadcast_to(self.scale_diag, self.batch_shape + self.event_shape)
        return scale[..., :, None] * onp.eye(self.event_shape[0], dtype=dtype_of(self.scale_diag))

    @property
    def covariance_matrix(self):
        return self.scale_tril**2

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        noise = _noise(rng, "normal", shape, dtype_of(self.loc, self.scale_diag))
        return normal_rsample(self.loc, self.scale_diag, noise)

    def log_prob(self, value):
        _check_event("MultivariateNormalDiag", value, self.event_shape)
        if self.validate_args:
            self._validate_sample(value)
        lp = kernels.sum(normal_log_prob(value, self.loc, self.scale_diag), -1)
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return broadcast_to(self.scale_diag**2, self.batch_shape + self.event_shape)

    def entropy(self):
        return kernels.sum(kernels.normal_entropy(broadcast_to(self.scale_diag, self.batch_shape + self.event_shape)), -1)


class Dirichlet(Distribution):
    """p(x) = Gamma(sum a) / prod Gamma(a_i) prod x_i^(a_i - 1) on the simplex."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.simplex

    def __init__(self, concentration, validate_args=True):
        (self.concentration,), shape = promote_shapes(concentration)
        if len(shape) == 0:
            raise ValueError("Dirichlet: concentration must have an event dimension")
        super().__init__(shape[:-1], shape[-1:], validate_args)

    def sample(self, rng, sample_shape=()):
        # x = g / sum(g) with independent g_i ~ Gamma(a_i, 1); normalized in float64, then cast.
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        dtype = dtype_of(self.concentration)
        gammas = rng.standard_gamma(onp.broadcast_to(getval(self.concentration), shape), shape)
        gammas = _at_least_tiny(gammas)  # small concentrations underflow; keep x_i > 0
        return _at_least_tiny((gammas / gammas.sum(-1, keepdims=True)).astype(dtype))

    def log_prob(self, value):
        _check_event("Dirichlet", value, self.event_shape)
        if self.validate_args:
            self._validate_sample(value)
        a = self.concentration
        positive = value > 0
        # (a - 1) log x with the limits at x = 0: 0 when a = 1, -inf when a > 1, +inf when a < 1.
        a_value = onp.asarray(getval(a))
        at_zero = onp.where(a_value > 1, -onp.inf, onp.where(a_value < 1, onp.inf, 0.0)).astype(dtype_of(a))
        log_terms = where(positive, (a - 1) * np.log(where(positive, value, 1.0)), at_zero)
        lp = np.sum(log_terms, axis=-1) + gammaln(np.sum(a, axis=-1)) - np.sum(gammaln(a), axis=-1)
        if not self.validate_args:
            lp = where(self.support.check(getval(value)), lp, -np.inf)
        return full_batch(lp, self.batch_shape)

    @property
    def mean(self):
        a = broadcast_to(self.concentration, self.batch_shape + self.event_shape)
        return a / np.sum(a, axis=-1, keepdims=True)

    @property
    def variance(self):
        a = broadcast_to(self.concentration, self.batch_shape + self.event_shape)
        total = np.sum(a, axis=-1, keepdims=True)
        return a * (total - a) / (total**2 * (total + 1))

    def entropy(self):
        a = broadcast_to(self.concentration, self.batch_shape + self.event_shape)
        total = np.sum(a, axis=-1)
        k = self.event_shape[0]
        log_beta = np.sum(gammaln(a), axis=-1) - gammaln(total)
        return log_beta + (total - k) * digamma(total) - np.sum((a - 1) * digamma(a), axis=-1)
