"""Multivariate families: MultivariateNormal, MultivariateNormalDiag, Dirichlet."""
import autograd.numpy as np
import numpy as onp
from autograd.scipy.linalg import solve_triangular
from autograd.scipy.special import digamma, gammaln
from autograd.tracer import getval

from . import constraints
from .continuous import LOG_SQRT_2PI, _noise
from .distribution import Distribution, broadcast_shapes, broadcast_to, dtype_of, promote_shapes, where


def _batch_mv(matrix, vector):
    """matrix @ vector over broadcast batch axes: (..., n, n) x (..., n) -> (..., n)."""
    return np.sum(matrix * vector[..., None, :], axis=-1)


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
        if covariance_matrix is not None:
            _check_matrix("covariance_matrix", covariance_matrix, validate_args)
            scale_tril = np.linalg.cholesky(covariance_matrix)
        elif precision_matrix is not None:
            _check_matrix("precision_matrix", precision_matrix, validate_args)
            scale_tril = _precision_to_scale_tril(precision_matrix)
        (loc,), _ = promote_shapes(loc)
        if np.ndim(loc) == 0:
            raise ValueError("MultivariateNormal: loc must have at least one dimension (the event)")
        n = np.shape(loc)[-1]
        if np.shape(scale_tril)[-2:] != (n, n):
            raise ValueError(f"MultivariateNormal: scale_tril of shape {np.shape(scale_tril)} does not match loc "
                             f"of shape {np.shape(loc)}")
        self.loc, self.scale_tril = loc, scale_tril
        batch_shape = broadcast_shapes(np.shape(loc)[:-1], np.shape(scale_tril)[:-2])
        super().__init__(batch_shape, (n,), validate_args)

    @property
    def covariance_matrix(self):
        return np.matmul(self.scale_tril, np.swapaxes(self.scale_tril, -1, -2))

    @property
    def precision_matrix(self):
        return np.linalg.inv(self.covariance_matrix)

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        eps = _noise(rng, "normal", shape, dtype_of(self.loc, self.scale_tril))
        return self.loc + _batch_mv(self.scale_tril, eps)

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        shape = broadcast_shapes(np.shape(diff)[:-1], self.batch_shape)
        n = self.event_shape[0]
        tril = broadcast_to(self.scale_tril, shape + (n, n))
        diff = broadcast_to(diff, shape + (n,))
        # One triangular solve for the whole batch: stack the batch into columns when L is shared.
        if np.ndim(self.scale_tril) == 2:
            z = solve_triangular(self.scale_tril, np.reshape(diff, (-1, n)).T, lower=True).T
            z = np.reshape(z, shape + (n,))
        else:
            z = _batched_solve(tril, diff)
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


def _batched_solve(tril, rhs):
    """L^-1 b for a batch of lower-triangular L, by forward substitution over the (small) event axis."""
    n = rhs.shape[-1]
    columns = []
    for i in range(n):  # a loop over the event dimension, not over data points
        acc = rhs[..., i]
        for j in range(i):
            acc = acc - tril[..., i, j] * columns[j]
        columns.append(acc / tril[..., i, i])
    return np.stack(columns, axis=-1)


def _precision_to_scale_tril(precision):
    # Sigma = P^-1; L = chol(Sigma), computed stably via the flipped Cholesky of P.
    return np.linalg.cholesky(np.linalg.inv(precision))


def _check_matrix(name, matrix, validate_args):
    if not validate_args:
        return
    m = onp.asarray(getval(matrix))
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"MultivariateNormal: parameter {name!r} must be square, got shape {m.shape}")
    if not onp.all(constraints.positive_definite.check(m)):
        raise ValueError(f"MultivariateNormal: parameter {name!r} must be positive definite")


class MultivariateNormalDiag(Distribution):
    """N(loc, diag(scale_diag^2)) as one event of size n: elementwise math, no matrices."""

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
        return scale[..., :, None] * np.eye(self.event_shape[0])

    @property
    def covariance_matrix(self):
        return self.scale_tril**2

    def sample(self, rng, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        return self.loc + self.scale_diag * _noise(rng, "normal", shape, dtype_of(self.loc, self.scale_diag))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        z = (value - self.loc) / self.scale_diag
        lp = np.sum(-0.5 * z * z - np.log(self.scale_diag) - LOG_SQRT_2PI, axis=-1)
        return broadcast_to(lp, broadcast_shapes(np.shape(lp), self.batch_shape))

    @property
    def mean(self):
        return broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return broadcast_to(self.scale_diag**2, self.batch_shape + self.event_shape)

    def entropy(self):
        h = np.sum(0.5 + LOG_SQRT_2PI + np.log(broadcast_to(self.scale_diag, self.batch_shape + self.event_shape)),
                   axis=-1)
        return broadcast_to(h, self.batch_shape)


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
        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        gammas = rng.standard_gamma(onp.broadcast_to(getval(self.concentration), shape), shape)
        gammas = onp.maximum(gammas, onp.finfo(float).tiny)
        return (gammas / gammas.sum(-1, keepdims=True)).astype(dtype_of(self.concentration))

    def log_prob(self, value):
        if self.validate_args:
            self._validate_sample(value)
        a = self.concentration
        lp = (np.sum((a - 1) * np.log(value), axis=-1) + gammaln(np.sum(a, axis=-1)) - np.sum(gammaln(a), axis=-1))
        return broadcast_to(lp, broadcast_shapes(np.shape(lp), self.batch_shape))

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
