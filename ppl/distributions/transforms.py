"""Bijections between the real line (or R^n) and constrained sets, with log-Jacobians.

A transform ``t`` maps ``x`` in its ``domain`` to ``y = t(x)`` in its
``codomain``; ``t.inv(y)`` maps back, and ``t.log_abs_det_jacobian(x, y)`` is
log|det dy/dx|, summed over the ``event_dim`` trailing axes the transform acts
on jointly, so its shape is the batch shape of ``x``. Everything is written
with ``autograd.numpy``: ADVI differentiates through forward map, inverse and
log-determinant alike. No transform loops over batch axes.

``biject_to(constraint)`` returns the transform from unconstrained space onto
a constraint's set: ADVI and the autoguides live on its domain.
"""
import math

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from ..kernels import softplus
from . import constraints
from .special import expit
from .distribution import _IndependentConstraint

__all__ = [
    "Transform", "IdentityTransform", "ExpTransform", "SoftplusTransform", "SigmoidTransform",
    "AffineTransform", "ComposeTransform", "StickBreakingTransform", "LowerCholeskyTransform",
    "OrderedTransform", "PositiveOrderedTransform", "CorrCholeskyTransform", "biject_to", "register_bijection",
]


def _float_dtype(x):
    """The floating dtype ``x`` computes in: float32 stays float32, anything else is float64."""
    dtype = onp.result_type(getval(x))
    return dtype if onp.issubdtype(dtype, onp.floating) else onp.dtype(onp.float64)


def _sum_rightmost(x, n):
    return np.sum(x, axis=tuple(range(-n, 0))) if n else x


def _need_ndim(x, ndim, who, what="x"):
    if np.ndim(x) < ndim:
        raise ValueError(f"{who}: {what} needs at least {ndim} axes (its event), got shape {np.shape(x)}")


class _RealEvent(constraints.Constraint):
    """Unconstrained arrays whose last ``event_dim`` axes form one event."""

    def __init__(self, event_dim):
        self.event_dim = event_dim

    def check(self, x):
        return onp.all(x == x, axis=tuple(range(-self.event_dim, 0)))  # False only for NaN

    def __repr__(self):
        return f"real_event({self.event_dim})"


def _real(event_dim):
    return {0: constraints.real, 1: constraints.real_vector}.get(event_dim) or _RealEvent(event_dim)


class Transform:
    """Base class. Subclasses set ``domain``, ``codomain``, ``event_dim`` and the three maps."""

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
        """The shape of ``t(x)`` for ``x`` of this shape."""
        return tuple(shape)

    def inverse_shape(self, shape):
        """The shape of ``t.inv(y)`` for ``y`` of this shape."""
        return tuple(shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


class IdentityTransform(Transform):
    """y = x; log|det| = 0 (summed over ``event_dim`` axes, so the shape still is the batch's)."""

    def __init__(self, event_dim=0):
        self.event_dim = event_dim
        self.domain = self.codomain = _real(event_dim)

    def __call__(self, x):
        return x

    def inv(self, y):
        return y

    def log_abs_det_jacobian(self, x, y):
        shape = np.shape(x)
        return np.zeros(shape[:len(shape) - self.event_dim], dtype=_float_dtype(x))


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
    """y = log(1 + e^x), log|dy/dx| = log sigmoid(x) = -softplus(-x)."""

    codomain = constraints.positive

    def __call__(self, x):
        return softplus(x)

    def inv(self, y):
        # log(e^y - 1) = y + log(1 - e^-y): no overflow for large y, no cancellation for small y
        return y + np.log(-np.expm1(-y))

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x)


class SigmoidTransform(Transform):
    """y = 1 / (1 + e^-x), log|dy/dx| = log y + log(1 - y) = -softplus(-x) - softplus(x).

    ``y`` is clipped to [tiny, 1 - eps] of its dtype, so that it stays inside
    the open unit interval where floating point would round it onto 0 or 1;
    the log-Jacobian is computed from ``x`` and is exact.
    """

    codomain = constraints.unit_interval

    def __call__(self, x):
        finfo = onp.finfo(_float_dtype(x))
        return np.clip(expit(x), float(finfo.tiny), float(1 - finfo.eps))

    def inv(self, y):
        return np.log(y) - np.log1p(-y)

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x) - softplus(x)


class AffineTransform(Transform):
    """y = loc + scale * x, log|dy/dx| = log|scale| (summed over ``event_dim`` axes).

    ``domain`` (default: the reals) lets the codomain be known: an affine map of
    (0, 1) is an interval, of (a, inf) a half line. ``biject_to`` uses this.
    """

    def __init__(self, loc, scale, event_dim=0, domain=None):
        if onp.any(onp.asarray(getval(scale)) == 0):
            raise ValueError(f"AffineTransform: scale must be nonzero to be invertible, got {scale!r}")
        self.loc, self.scale, self.event_dim = loc, scale, event_dim
        self.domain = _real(event_dim) if domain is None else domain
        self.codomain = self._image(self.domain)

    def _image(self, domain):
        loc, scale = self.loc, self.scale
        if isinstance(domain, constraints._Interval):
            ends = (loc + scale * domain.lower_bound, loc + scale * domain.upper_bound)
            return constraints._Interval(np.minimum(*ends), np.maximum(*ends), open=domain.open)
        if isinstance(domain, constraints._GreaterThan) and onp.all(getval(scale) > 0):
            return constraints.greater_than(loc + scale * domain.lower_bound)
        return _real(self.event_dim)

    def __call__(self, x):
        return self.loc + self.scale * x

    def inv(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        scale = self.scale
        # A Python scale gives a Python log, which keeps float32 inputs float32
        log_scale = math.log(abs(scale)) if type(scale) in (int, float) else np.log(np.abs(scale))
        shape = onp.broadcast_shapes(np.shape(x), np.shape(scale))
        log_det = log_scale + np.zeros(shape, dtype=_float_dtype(x))
        return _sum_rightmost(log_det, self.event_dim)

    def __repr__(self):
        return f"AffineTransform(loc={self.loc}, scale={self.scale})"


class ComposeTransform(Transform):
    """``parts`` applied left to right: y = t_n(... t_1(x)); log-Jacobians add.

    Each part's log-Jacobian is summed over the axes that belong to the
    composite's event but not to that part's own (an elementwise map followed
    by a vector map contributes the sum over the vector).
    """

    def __init__(self, parts):
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("ComposeTransform: parts must hold at least one transform")
        # Walk backwards: a part whose output has r event axes of the whole composite takes an
        # input with d_in + (r - d_out) of them (d_in, d_out: its own domain and codomain ranks)
        rank = 0
        for part in reversed(self.parts):
            rank = part.domain.event_dim + max(rank - part.codomain.event_dim, 0)
        self._domain_rank = rank
        self.event_dim = max(p.event_dim for p in self.parts)
        first = self.parts[0].domain
        self.domain = first if first.event_dim == rank else _real(rank)
        self.codomain = self.parts[-1].codomain

    def __call__(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def inv(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        batch_ndim = np.ndim(x) - self._domain_rank
        total = 0.0
        for i, part in enumerate(self.parts):
            y_part = y if i == len(self.parts) - 1 else part(x)
            term = part.log_abs_det_jacobian(x, y_part)
            total = total + _sum_rightmost(term, np.ndim(term) - batch_ndim)
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
    """R^(K-1) -> the simplex of K, as in Stan.

    With t_i = x_i - log(K-1-i) (the offset maps x = 0 to the uniform simplex)
    and z_i = sigmoid(t_i), piece i takes the fraction z_i of the stick left:
    y_i = z_i prod_{j<i} (1 - z_j), and y_K is what remains. In log space,
    with L_i = sum_{j<=i} log(1 - z_j) = -sum_{j<=i} softplus(t_j),
    log y_i = t_i + L_i and log y_K = L_{K-1}: cumulative sums, no cumprod,
    no overflow. The Jacobian of x -> y[:-1] is triangular with diagonal
    z_i (1 - z_i) prod_{j<i}(1 - z_j), so log|det| = sum_i L_i - softplus(-t_i).
    """

    event_dim = 1
    domain = constraints.real_vector
    codomain = constraints.simplex

    @staticmethod
    def _shifted(x):
        _need_ndim(x, 1, "StickBreakingTransform")
        k1 = np.shape(x)[-1]
        offset = onp.log(onp.arange(k1, 0, -1, dtype=_float_dtype(x)))
        return x - offset

    def __call__(self, x):
        t = self._shifted(x)
        if np.shape(t)[-1] == 0:  # the simplex of one point
            return np.ones(np.shape(t)[:-1] + (1,), dtype=_float_dtype(x))
        log_stick = np.cumsum(-softplus(t), axis=-1)
        return np.exp(np.concatenate([t + log_stick, log_stick[..., -1:]], axis=-1))

    def inv(self, y):
        _need_ndim(y, 1, "StickBreakingTransform.inv", "y")
        # logit z_i = log y_i - log(sum_{j>i} y_j): a reverse cumulative sum, stable near the corners
        rest = np.cumsum(y[..., :0:-1], axis=-1)[..., ::-1]
        k1 = np.shape(y)[-1] - 1
        offset = onp.log(onp.arange(k1, 0, -1, dtype=_float_dtype(y)))
        return np.log(y[..., :-1]) - np.log(rest) + offset

    def log_abs_det_jacobian(self, x, y):
        t = self._shifted(x)
        log_stick = np.cumsum(-softplus(t), axis=-1)
        return np.sum(log_stick - softplus(-t), axis=-1)

    def forward_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + 1,)

    def inverse_shape(self, shape):
        if shape[-1] < 1:
            raise ValueError(f"StickBreakingTransform: a simplex needs at least one coordinate, got shape {shape}")
        return tuple(shape[:-1]) + (shape[-1] - 1,)


class LowerCholeskyTransform(Transform):
    """A flat vector of n(n+1)/2 reals -> an n x n lower-triangular matrix with a positive diagonal.

    The vector fills the lower triangle row by row (``numpy.tril_indices``
    order), the diagonal through exp. The matrix is built by a gather (autograd
    cannot assign into arrays): a zero is prepended to the vector and an
    (n, n) index array picks from it, index 0 for the upper triangle.
    log|det| = sum of the diagonal entries of x, with the batch shape of x
    (x's shape minus its one vector axis, although ``event_dim`` = 2 counts
    the matrix axes of y).
    """

    event_dim = 2
    domain = constraints.real_vector
    codomain = constraints.lower_cholesky

    def __call__(self, x):
        _need_ndim(x, 1, "LowerCholeskyTransform")
        n = _side(np.shape(x)[-1])
        on, off = _diagonal_mask(n), ~_diagonal_mask(n)
        # Masks by multiplication: autograd's np.where gradient is float64. exp only sees the
        # diagonal (off it, exp(0) * 0), so a huge off-diagonal entry cannot overflow into NaN gradients
        values = on * np.exp(on * x) + off * x
        pad = np.zeros(np.shape(x)[:-1] + (1,), dtype=_float_dtype(x))
        return np.concatenate([pad, values], axis=-1)[..., _gather_index(n)]

    def inv(self, y):
        _need_ndim(y, 2, "LowerCholeskyTransform.inv", "y")
        n = np.shape(y)[-1]
        if np.shape(y)[-2] != n:
            raise ValueError(f"LowerCholeskyTransform.inv: y must be square in its last two axes, got shape "
                             f"{np.shape(y)}")
        rows, cols = onp.tril_indices(n)
        values = y[..., rows, cols]
        on, off = rows == cols, rows != cols
        return on * np.log(on * values + off) + off * values

    def log_abs_det_jacobian(self, x, y):
        return np.sum(_diagonal_mask(_side(np.shape(x)[-1])) * x, axis=-1)

    def forward_shape(self, shape):
        n = _side(shape[-1])
        return tuple(shape[:-1]) + (n, n)

    def inverse_shape(self, shape):
        n = shape[-1]
        return tuple(shape[:-2]) + (n * (n + 1) // 2,)


class OrderedTransform(Transform):
    """R^K -> strictly increasing vectors, as Stan's ``ordered``: y_1 = x_1, y_k = y_{k-1} + exp(x_k).

    The gaps y_k - y_{k-1} = exp(x_k) are positive, so order holds for every x;
    the Jacobian is lower triangular with diagonal (1, e^{x_2}, ..., e^{x_K}),
    so log|det| = sum_{k>=2} x_k.
    """

    event_dim = 1
    domain = constraints.real_vector
    codomain = constraints.ordered_vector

    def __call__(self, x):
        _need_ndim(x, 1, type(self).__name__)
        return np.cumsum(np.concatenate([x[..., :1], np.exp(x[..., 1:])], axis=-1), axis=-1)

    def inv(self, y):
        _need_ndim(y, 1, f"{type(self).__name__}.inv", "y")
        return np.concatenate([y[..., :1], np.log(y[..., 1:] - y[..., :-1])], axis=-1)

    def log_abs_det_jacobian(self, x, y):
        return np.sum(x[..., 1:], axis=-1)


class PositiveOrderedTransform(Transform):
    """R^K -> positive increasing vectors, as Stan's ``positive_ordered``: y = cumsum(exp(x)).

    y_1 = exp(x_1) and each gap is exp(x_k); the triangular Jacobian has
    diagonal e^{x_k}, so log|det| = sum_k x_k.
    """

    event_dim = 1
    domain = constraints.real_vector
    codomain = constraints.positive_ordered_vector

    def __call__(self, x):
        _need_ndim(x, 1, type(self).__name__)
        return np.cumsum(np.exp(x), axis=-1)

    def inv(self, y):
        _need_ndim(y, 1, f"{type(self).__name__}.inv", "y")
        return np.log(np.concatenate([y[..., :1], y[..., 1:] - y[..., :-1]], axis=-1))

    def log_abs_det_jacobian(self, x, y):
        return np.sum(x, axis=-1)


class CorrCholeskyTransform(Transform):
    """n(n-1)/2 reals -> the Cholesky factor L of an n x n correlation matrix, as Stan does it.

    The vector fills the strictly lower triangle row by row (``numpy.tril_indices(n, -1)``
    order); z = tanh(x) are canonical partial correlations in (-1, 1). Row i of
    L spends, column by column, the fraction z_ij^2 of the squared norm still
    left, r_ij = prod_{k<j} (1 - z_ik^2):
    L_ij = z_ij sqrt(r_ij) for j < i, L_ii = sqrt(r_ii), so each row has unit norm.
    sqrt(1 - tanh(x)^2) = 1 / cosh(x), so log sqrt(r_ij) = -sum_{k<j} log cosh(x_ik):
    an exclusive cumulative sum along the row, with no 1 - z^2 to round to 0.
    The Jacobian of x -> the strictly lower entries of L is triangular
    (L_ij depends on x_ik for k <= j) with diagonal sech^2(x_ij) sqrt(r_ij), so
    log|det| = sum_{j<i} (-2 log cosh(x_ij) + log sqrt(r_ij)).
    """

    event_dim = 2
    domain = constraints.real_vector
    codomain = constraints.corr_cholesky

    @staticmethod
    def _parts(x):
        """(the strictly lower mask, tanh x, and log sqrt(r)) as (..., n, n) matrices."""
        _need_ndim(x, 1, "CorrCholeskyTransform")
        n = _corr_side(np.shape(x)[-1])
        pad = np.zeros(np.shape(x)[:-1] + (1,), dtype=_float_dtype(x))
        matrix = np.concatenate([pad, x], axis=-1)[..., _gather_index(n, strict=True)]
        strict = onp.tri(n, k=-1, dtype=bool)
        log_cosh = strict * _log_cosh(matrix)  # exactly 0 off the strict lower triangle
        log_sqrt_r = log_cosh - np.cumsum(log_cosh, axis=-1)  # minus the exclusive cumulative sum
        return strict, matrix, log_cosh, log_sqrt_r

    def __call__(self, x):
        strict, matrix, _, log_sqrt_r = self._parts(x)
        # tanh(x_ij) on the strict lower triangle, 1 on the diagonal, 0 above (where exp(log_sqrt_r) is harmless)
        partial = strict * np.tanh(matrix) + onp.eye(strict.shape[-1], dtype=_float_dtype(x))
        return partial * np.exp(log_sqrt_r)

    def inv(self, y):
        _need_ndim(y, 2, "CorrCholeskyTransform.inv", "y")
        n = np.shape(y)[-1]
        if np.shape(y)[-2] != n:
            raise ValueError(f"CorrCholeskyTransform.inv: y must be square in its last two axes, got shape "
                             f"{np.shape(y)}")
        rows, cols = onp.tril_indices(n, -1)
        square = y * y
        left = 1 - (np.cumsum(square, axis=-1) - square)  # r_ij = 1 - sum_{k<j} L_ik^2
        return np.arctanh(y[..., rows, cols] / np.sqrt(left[..., rows, cols]))

    def log_abs_det_jacobian(self, x, y):
        strict, _, log_cosh, log_sqrt_r = self._parts(x)
        return np.sum(np.sum(strict * (log_sqrt_r - 2 * log_cosh), axis=-1), axis=-1)

    def forward_shape(self, shape):
        n = _corr_side(shape[-1])
        return tuple(shape[:-1]) + (n, n)

    def inverse_shape(self, shape):
        n = shape[-1]
        return tuple(shape[:-2]) + (n * (n - 1) // 2,)


def _log_cosh(x):
    """log cosh x = |x| + log(1 + e^{-2|x|}) - log 2, finite for every finite x."""
    a = np.abs(x)
    return a + softplus(-2 * a) - math.log(2.0)


def _corr_side(m):
    """n such that n(n-1)/2 = m, or a ValueError naming m."""
    n = int(round((math.sqrt(8 * m + 1) + 1) / 2))
    if n * (n - 1) // 2 != m:
        raise ValueError(f"CorrCholeskyTransform: x's last axis has length {m}, which is no number n(n-1)/2")
    return n


def _side(m):
    """n such that n(n+1)/2 = m, or a ValueError naming m."""
    n = int(round((math.sqrt(8 * m + 1) - 1) / 2))
    if n * (n + 1) // 2 != m:
        raise ValueError(f"LowerCholeskyTransform: x's last axis has length {m}, which is no triangle "
                         "number n(n+1)/2")
    return n


def _diagonal_mask(n):
    rows, cols = onp.tril_indices(n)
    return rows == cols


def _gather_index(n, strict=False):
    """(n, n) indices into [0, v_1, v_2, ...] that place v in the lower triangle row by row (the
    strictly lower one if ``strict``), 0 elsewhere."""
    index = onp.zeros((n, n), dtype=onp.intp)
    rows, cols = onp.tril_indices(n, -1 if strict else 0)
    index[rows, cols] = onp.arange(1, rows.size + 1)
    return index


# ------------------------------------------------------------------ biject_to

_BIJECTIONS = {}


def register_bijection(constraint_class):
    """Decorator: ``fn(constraint) -> Transform`` becomes ``biject_to`` for instances of the class."""
    def add(fn):
        _BIJECTIONS[constraint_class] = fn
        return fn
    return add


def biject_to(constraint):
    """The transform from unconstrained space onto ``constraint``'s set (``None`` means real)."""
    if constraint is None:
        return IdentityTransform()
    for cls in type(constraint).__mro__:  # subclasses of a registered constraint share its map
        if cls in _BIJECTIONS:
            return _BIJECTIONS[cls](constraint)
    raise NotImplementedError(f"biject_to: no transform onto the constraint {constraint!r} "
                              f"({type(constraint).__name__}); register one with register_bijection")


@register_bijection(constraints._Real)
def _to_real(constraint):
    return IdentityTransform()


@register_bijection(constraints._RealVector)
@register_bijection(_RealEvent)
def _to_real_vector(constraint):
    return IdentityTransform(constraint.event_dim)


def _weak(bound):
    """A 0-d NumPy bound as a Python float: NumPy scalars would promote float32 values to float64."""
    value = getval(bound)
    if isinstance(value, (onp.ndarray, onp.generic)) and value.ndim == 0 and value is bound:
        return float(value)
    return bound


def _is(bound, number):
    return type(bound) in (int, float) and bound == number


@register_bijection(constraints._GreaterThan)
def _to_greater_than(constraint):
    exp = ExpTransform()
    lower = _weak(constraint.lower_bound)
    if _is(lower, 0):
        return exp
    return ComposeTransform([exp, AffineTransform(lower, 1.0, domain=exp.codomain)])


@register_bijection(constraints._Nonnegative)
def _to_nonnegative(constraint):
    return ExpTransform()  # onto (0, inf): the boundary 0 has no preimage


@register_bijection(constraints._Interval)
def _to_interval(constraint):
    sigmoid = SigmoidTransform()
    lower, upper = _weak(constraint.lower_bound), _weak(constraint.upper_bound)
    if _is(lower, 0) and _is(upper, 1):
        return sigmoid
    return ComposeTransform([sigmoid, AffineTransform(lower, upper - lower, domain=sigmoid.codomain)])


@register_bijection(constraints._Simplex)
def _to_simplex(constraint):
    return StickBreakingTransform()


@register_bijection(constraints._LowerCholesky)
def _to_lower_cholesky(constraint):
    return LowerCholeskyTransform()


@register_bijection(constraints._OrderedVector)
def _to_ordered_vector(constraint):
    return OrderedTransform()


@register_bijection(constraints._PositiveOrderedVector)
def _to_positive_ordered_vector(constraint):
    return PositiveOrderedTransform()


@register_bijection(constraints._CorrCholesky)
def _to_corr_cholesky(constraint):
    return CorrCholeskyTransform()


@register_bijection(_IndependentConstraint)
def _to_independent(constraint):
    # Reinterpreting batch axes as event axes changes no value, only how log-Jacobians are summed
    return biject_to(constraint.base)
