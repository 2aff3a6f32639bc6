"""Bijections between the real line (or R^n) and constrained sets, with log-Jacobians.

A transform ``t`` maps ``x`` in its domain to ``y = t(x)``; ``t.inv(y)``
maps back, and ``t.log_abs_det_jacobian(x, y)`` is log|det dy/dx| summed
over the transform's ``event_dim`` trailing axes. ``biject_to(constraint)``
returns the transform from unconstrained space onto a constraint's set:
ADVI and the autoguides live on its domain.
"""
import autograd.numpy as np
import numpy as onp
from autograd.scipy.special import expit

from . import constraints


def softplus(x):
    return np.logaddexp(0.0, x)


class Transform:
    event_dim = 0
    domain = constraints.real
    codomain = constraints.real

    def __call__(self, x):
        raise NotImplementedError

    def inv(self, y):
        raise NotImplementedError

    def log_abs_det_jacobian(self, x, y):
        raise NotImplementedError

    def forward_shape(self, shape):
        return tuple(shape)

    def inverse_shape(self, shape):
        return tuple(shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


class IdentityTransform(Transform):
    def __call__(self, x):
        return x

    def inv(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        return np.zeros(np.shape(x))


class ExpTransform(Transform):
    """y = exp(x), log|dy/dx| = x."""

    codomain = constraints.positive

    def __call__(self, x):
        return np.exp(x)

    def inv(self, y):
        return np.log(y)

    def log_abs_det_jacobian(self, x, y):
        return x


class SoftplusTransform(Transform):
    """y = log(1 + e^x), log|dy/dx| = -softplus(-x)."""

    codomain = constraints.positive

    def __call__(self, x):
        return softplus(x)

    def inv(self, y):
        return y + np.log(-np.expm1(-y))

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x)


class SigmoidTransform(Transform):
    """y = 1 / (1 + e^-x), log|dy/dx| = -softplus(-x) - softplus(x)."""

    codomain = constraints.unit_interval

    def __call__(self, x):
        return expit(x)

    def inv(self, y):
        return np.log(y) - np.log1p(-y)

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x) - softplus(x)


class AffineTransform(Transform):
    """y = loc + scale x, log|dy/dx| = log|scale|."""

    def __init__(self, loc, scale, event_dim=0):
        self.loc, self.scale, self.event_dim = loc, scale, event_dim

    def __call__(self, x):
        return self.loc + self.scale * x

    def inv(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        log_det = np.broadcast_to(np.log(np.abs(self.scale)), np.shape(x)) if np.ndim(self.scale) or np.ndim(x) \
            else np.log(np.abs(self.scale))
        return np.sum(log_det, axis=tuple(range(-self.event_dim, 0))) if self.event_dim else log_det

    def __repr__(self):
        return f"AffineTransform(loc={self.loc}, scale={self.scale})"


class ComposeTransform(Transform):
    """Apply ``parts`` left to right; log-Jacobians add (each summed to the composite's event_dim)."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.event_dim = max(p.event_dim for p in self.parts)
        self.domain, self.codomain = self.parts[0].domain, self.parts[-1].codomain

    def __call__(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def inv(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        total = 0.0
        for part in self.parts:
            y_part = part(x)
            term = part.log_abs_det_jacobian(x, y_part)
            extra = self.event_dim - part.event_dim
            if extra:
                term = np.sum(term, axis=tuple(range(-extra, 0)))
            total = total + term
            x = y_part
        return total

    def forward_shape(self, shape):
        for part in self.parts:
            shape = part.forward_shape(shape)
        return shape

    def inverse_shape(self, shape):
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return shape

    def __repr__(self):
        return f"ComposeTransform({self.parts})"


class StickBreakingTransform(Transform):
    """R^(K-1) -> the simplex of K, as in Stan: z_i = sigmoid(x_i - log(K-1-i)), y_i = z_i prod_{j<i} (1 - z_j).

    The offset maps x = 0 to the uniform simplex. log|det| is that of
    x -> y[:-1]: sum_i log z_i + log(1 - z_i) + log(remaining stick before i).
    """

    event_dim = 1
    domain = constraints.real_vector
    codomain = constraints.simplex

    def __call__(self, x):
        k1 = np.shape(x)[-1]
        t = x - np.log(onp.arange(k1, 0, -1.0))
        z = expit(t)
        remaining = np.exp(np.cumsum(-softplus(t), axis=-1))  # prod (1 - z_j); autograd has no cumprod VJP
        before = np.concatenate([np.ones(np.shape(x)[:-1] + (1,)), remaining[..., :-1]], axis=-1)
        return np.concatenate([z * before, remaining[..., -1:]], axis=-1)

    def inv(self, y):
        k1 = np.shape(y)[-1] - 1
        offset = np.log(onp.arange(k1, 0, -1.0))
        before = 1 - np.cumsum(y[..., :-1], axis=-1) + y[..., :-1]  # stick left before each piece
        z = np.clip(y[..., :-1] / before, 1e-300, 1.0)
        return np.log(z) - np.log1p(-np.minimum(z, 1 - 1e-16)) + offset

    def log_abs_det_jacobian(self, x, y):
        k1 = np.shape(x)[-1]
        t = x - np.log(onp.arange(k1, 0, -1.0))
        # log z + log(1 - z) = -softplus(-t) - softplus(t); log(stick before i) = sum_{j<i} log(1 - z_j)
        log_one_minus = -softplus(t)
        before = np.cumsum(log_one_minus, axis=-1) - log_one_minus
        return np.sum(-softplus(-t) + log_one_minus + before, axis=-1)

    def forward_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)


class LowerCholeskyTransform(Transform):
    """A vector of n(n+1)/2 reals -> a lower-triangular n x n matrix with exp on the diagonal."""

    event_dim = 2
    domain = constraints.real_vector
    codomain = constraints.lower_cholesky

    def __call__(self, x):
        m = np.shape(x)[-1]
        n = _side(m)
        rows, cols = onp.tril_indices(n)
        diag = rows == cols
        values = np.where(diag, np.exp(x), x)
        padded = np.concatenate([np.zeros(np.shape(x)[:-1] + (1,)), values], axis=-1)
        index = onp.zeros((n, n), dtype=int)
        index[rows, cols] = onp.arange(1, m + 1)  # 0 points at the zero pad: the upper triangle
        return padded[..., index]

    def inv(self, y):
        n = np.shape(y)[-1]
        rows, cols = onp.tril_indices(n)
        values = y[..., rows, cols]
        return np.where(rows == cols, np.log(np.where(rows == cols, values, 1.0)), values)

    def log_abs_det_jacobian(self, x, y):
        rows, cols = onp.tril_indices(_side(np.shape(x)[-1]))
        return np.sum(np.where(rows == cols, x, 0.0), axis=-1)

    def forward_shape(self, shape):
        n = _side(shape[-1])
        return tuple(shape[:-1]) + (n, n)

    def inverse_shape(self, shape):
        n = shape[-1]
        return tuple(shape[:-2]) + (n * (n + 1) // 2,)


def _side(m):
    n = int(round((onp.sqrt(8 * m + 1) - 1) / 2))
    if n * (n + 1) // 2 != m:
        raise ValueError(f"LowerCholeskyTransform: a vector of length {m} is no triangle's n(n+1)/2")
    return n


def biject_to(constraint):
    """The transform from unconstrained space onto ``constraint``'s set (``None`` means real)."""
    if constraint is None or constraint is constraints.real or constraint is constraints.real_vector:
        return IdentityTransform()
    if isinstance(constraint, constraints._Nonnegative):
        return ExpTransform()
    if hasattr(constraint, "base") and hasattr(constraint, "n"):  # Independent's constraint: same map
        return biject_to(constraint.base)
    if isinstance(constraint, constraints._GreaterThan):
        exp = ExpTransform()
        return exp if onp.all(constraint.lower_bound == 0) else ComposeTransform(
            [exp, AffineTransform(constraint.lower_bound, 1.0)])
    if isinstance(constraint, constraints._Interval):
        sigmoid = SigmoidTransform()
        lo, hi = constraint.lower_bound, constraint.upper_bound
        if onp.all(lo == 0) and onp.all(hi == 1):
            return sigmoid
        return ComposeTransform([sigmoid, AffineTransform(lo, hi - lo)])
    if isinstance(constraint, constraints._Simplex):
        return StickBreakingTransform()
    if isinstance(constraint, constraints._LowerCholesky):
        return LowerCholeskyTransform()
    if isinstance(constraint, (constraints._Real, constraints._RealVector)):
        return IdentityTransform()
    raise NotImplementedError(f"biject_to: no transform onto {constraint!r}")
