"""LKJCholesky: the LKJ distribution on correlation matrices, over their Cholesky factors (Stan's
``lkj_corr_cholesky``).

The LKJ(eta) density of a d x d correlation matrix R is det(R)^(eta - 1) / c_d(eta)
(Lewandowski, Kurowicka and Joe 2009), with respect to Lebesgue measure on the
d(d-1)/2 entries below R's diagonal. Its normaliser, their integral, is

    c_d(eta) = prod_{k=1}^{d-1} [2^(2 eta - 2 + d - k) B(b_k, b_k)]^(d - k),  b_k = eta + (d - k - 1) / 2

(for d = 2: the integral of (1 - r^2)^(eta - 1) over (-1, 1), 2^(2 eta - 1) B(eta, eta)).
With R = L L^T, det R = prod_i L_ii^2, and the map from the strictly lower
entries of L to those of R has |Jacobian| prod_i L_ii^(d - 1 - i) (i from 0), so
the density of L over its strictly lower entries is

    log p(L) = sum_{i=1}^{d-1} (d - i - 1 + 2 (eta - 1)) log L_ii - log c_d(eta),

Stan's ``lkj_corr_cholesky_lpdf`` with its constant, normalised: exp(log_prob)
integrates to 1 over the strictly lower entries of L (each row inside the unit ball).
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from . import constraints
from .distribution import Distribution, dtype_of, full_batch, promote_shapes
from .special import betaln

__all__ = ["LKJCholesky"]

_LOG_2 = math.log(2.0)


class LKJCholesky(Distribution):
    """LKJ(concentration) over the Cholesky factors L of ``dimension`` x ``dimension`` correlation matrices.

    ``concentration`` eta > 0 (batched like any parameter): eta = 1 is uniform over
    correlation matrices, eta > 1 favours the identity, eta < 1 strong
    correlations. Each correlation R_ij = (L L^T)_ij has the marginal law
    2 Beta(eta - 1 + d/2, eta - 1 + d/2) - 1. Draws by the onion method,
    batched. The density is Stan's ``lkj_corr_cholesky`` with the normalising
    constant (see the module docstring). Support: ``constraints.corr_cholesky``.
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dimension, concentration=1.0, validate_args=True):
        if isinstance(dimension, bool) or not isinstance(dimension, (int, onp.integer)) or dimension < 1:
            raise ValueError(f"LKJCholesky: dimension must be an integer >= 1, got {dimension!r}")
        self.dimension = int(dimension)
        (self.concentration,), batch_shape = promote_shapes(concentration)
        super().__init__(batch_shape, (self.dimension, self.dimension), validate_args)

    def sample(self, rng, sample_shape=()):
        """The onion method in Cholesky form (LKJ 2009, section 3.2): row i >= 1 of L is
        (sqrt(y_i) u_i, sqrt(1 - y_i)) with y_i ~ Beta(i/2, eta + (d - 1 - i)/2) the squared norm of its
        off-diagonal part and u_i uniform on the sphere in R^i, all rows drawn at once."""
        d = self.dimension
        shape = tuple(sample_shape) + self.batch_shape
        dtype = dtype_of(self.concentration)
        rows = onp.arange(1, d)
        eta = onp.broadcast_to(getval(self.concentration), shape)[..., None]
        squared_norm = rng.beta(rows / 2.0, eta + (d - 1 - rows) / 2.0, size=shape + (d - 1,))
        # a squared norm rounded onto 1 would leave a zero diagonal, outside the support
        squared_norm = onp.minimum(squared_norm, 1.0 - onp.finfo(dtype).eps)
        directions = rng.standard_normal(shape + (d - 1, d)) * onp.tri(d, k=-1)[1:]
        directions /= onp.linalg.norm(directions, axis=-1, keepdims=True)
        lower = onp.zeros(shape + (d, d))
        lower[..., 0, 0] = 1.0
        lower[..., 1:, :] = onp.sqrt(squared_norm)[..., None] * directions
        diagonal = onp.arange(1, d)
        lower[..., diagonal, diagonal] = onp.sqrt(1.0 - squared_norm)
        return lower.astype(dtype)

    def log_prob(self, value):
        d = self.dimension
        shape = np.shape(value)
        if shape[-2:] != (d, d):
            raise ValueError(f"LKJCholesky.log_prob: value of shape {shape} does not end in the event shape {(d, d)}")
        if self.validate_args:
            self._validate_sample(value)
        eta = self.concentration
        if d == 1:
            return full_batch(np.zeros(shape[:-2], dtype=dtype_of(eta, value)), self.batch_shape)
        log_diagonal = np.log(np.diagonal(value, axis1=-1, axis2=-2)[..., 1:])
        eta_ = np.expand_dims(eta, -1) if np.ndim(eta) else eta
        exponents = (d - 1.0 - onp.arange(1, d)) + 2.0 * (eta_ - 1.0)
        lp = np.sum(exponents * log_diagonal, axis=-1) - _log_normalizer(d, eta)
        return full_batch(lp, self.batch_shape)

    def __repr__(self):
        return f"LKJCholesky(dimension={self.dimension}, batch_shape={self.batch_shape})"


def _log_normalizer(d, eta):
    """log c_d(eta) = sum_{k=1}^{d-1} (d - k) [(2 eta - 2 + d - k) log 2 + log B(b_k, b_k)], b_k = eta + (d-k-1)/2."""
    k = onp.arange(1, d)
    eta_ = np.expand_dims(eta, -1) if np.ndim(eta) else eta
    b = eta_ + (d - k - 1) / 2.0
    terms = (d - k) * ((2.0 * eta_ - 2.0 + d - k) * _LOG_2 + betaln(b, b))
    return np.sum(terms, axis=-1)
