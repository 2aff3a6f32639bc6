"""Constraints: the sets that parameters and values live in.

A constraint answers ``check(x)``: a boolean array over the batch (the last
``event_dim`` axes are reduced with ``all``). NaN is never inside a
constraint, so a NaN parameter is caught by validation, not propagated.
``biject_to`` (in ``transforms``) maps the real line onto each of them.

Bounds may be arrays or autograd boxes that depend on other latents (Stan's
``real<lower=0, upper=1 - alpha1> beta1``): ``check`` compares with their
values, and ``biject_to`` builds its transform from the bounds themselves, so
gradients flow to them. A bound with a leading axis (chains, particles)
broadcasts against the value like any parameter.
"""
import math

import numpy as np
from autograd.tracer import getval


class Constraint:
    event_dim = 0
    is_discrete = False

    def check(self, x):
        raise NotImplementedError

    def holds(self, x):
        """Whether all of the array ``x`` lies inside: what validation asks on every call, so
        subclasses answer it without the per-batch reductions of ``check``."""
        ok = self.check(x)
        return bool(ok.all()) if isinstance(ok, np.ndarray) else bool(ok)

    def __repr__(self):
        return type(self).__name__.lstrip("_").lower()


class _Real(Constraint):
    def check(self, x):
        return np.isfinite(x)  # NaN and the infinities are not real numbers

    def holds(self, x):
        if type(x) is float:
            return math.isfinite(x)
        if isinstance(x, np.ndarray) and x.size > 4096 and x.dtype.kind == "f" and x.flags.c_contiguous:
            # one BLAS dot product (inf and nan propagate through x . x), five times faster than isfinite on
            # a large array; a dot that overflows is settled by the elementwise test
            flat = x.reshape(-1)
            with np.errstate(over="ignore", invalid="ignore"):
                square_norm = float(np.dot(flat, flat))
            if math.isfinite(square_norm):
                return True
        return bool(np.isfinite(x).all())


class _RealVector(Constraint):
    event_dim = 1

    def check(self, x):
        return np.all(np.isfinite(x), axis=-1)

    holds = _Real.holds

    def __repr__(self):
        return "real_vector"


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def check(self, x):
        return getval(x) > getval(self.lower_bound)

    def __repr__(self):
        lower = getval(self.lower_bound)
        return "positive" if np.all(lower == 0) else f"greater_than({lower})"


class _Nonnegative(Constraint):
    def check(self, x):
        return x >= 0


class _Interval(Constraint):
    """The closed interval [lower, upper]; ``open=True`` for (lower, upper)."""

    def __init__(self, lower_bound, upper_bound, open=False):
        self.lower_bound, self.upper_bound, self.open = lower_bound, upper_bound, open

    def check(self, x):
        x, lower, upper = getval(x), getval(self.lower_bound), getval(self.upper_bound)
        if self.open:
            return (x > lower) & (x < upper)
        return (x >= lower) & (x <= upper)

    def __repr__(self):
        lower, upper = getval(self.lower_bound), getval(self.upper_bound)
        if self.open and np.all(lower == 0) and np.all(upper == 1):
            return "unit_interval"
        left, right = ("(", ")") if self.open else ("[", "]")
        return f"interval{left}{lower}, {upper}{right}"


class _Boolean(Constraint):
    is_discrete = True

    def check(self, x):
        return (x == 0) | (x == 1)


class _IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def check(self, x):
        return (x == np.floor(x)) & (x >= self.lower_bound) & (x <= self.upper_bound)

    def __repr__(self):
        return f"integer_interval({self.lower_bound}, {self.upper_bound})"


class _NonnegativeInteger(Constraint):
    is_discrete = True

    def check(self, x):
        return (x == np.floor(x)) & (x >= 0)

    def __repr__(self):
        return "nonnegative_integer"


class _Simplex(Constraint):
    event_dim = 1

    def check(self, x):
        return np.all(x >= 0, axis=-1) & (np.abs(np.sum(x, axis=-1) - 1) < 1e-6)


class _LowerCholesky(Constraint):
    """Lower-triangular square matrices with a positive diagonal."""

    event_dim = 2

    def check(self, x):
        x = np.asarray(getval(x))
        upper_zero = np.all(np.triu(x, 1) == 0, axis=(-2, -1))
        return upper_zero & np.all(np.diagonal(x, axis1=-1, axis2=-2) > 0, axis=-1)

    def __repr__(self):
        return "lower_cholesky"


class _CorrCholesky(Constraint):
    """Cholesky factors of correlation matrices: lower triangular, positive diagonal, rows of unit norm
    (so that L L^T has a unit diagonal), to 1e-6."""

    event_dim = 2

    def check(self, x):
        x = np.asarray(getval(x))
        unit_rows = np.all(np.abs(np.sum(x * x, axis=-1) - 1) < 1e-6, axis=-1)
        return _LowerCholesky.check(self, x) & unit_rows

    def __repr__(self):
        return "corr_cholesky"


class _PositiveDefinite(Constraint):
    event_dim = 2

    def check(self, x):
        x = np.asarray(getval(x))
        symmetric = np.all(np.abs(x - np.swapaxes(x, -1, -2)) < 1e-6 * (1 + np.abs(x)), axis=(-2, -1))
        if not np.all(np.isfinite(x)):
            return symmetric & np.all(np.isfinite(x), axis=(-2, -1))
        return symmetric & np.all(np.linalg.eigvalsh(x) > 0, axis=-1)

    def __repr__(self):
        return "positive_definite"


class _OrderedVector(Constraint):
    """Finite vectors, strictly increasing along the last axis (Stan's ``ordered``)."""

    event_dim = 1

    def check(self, x):
        x = np.asarray(getval(x))
        increasing = np.all(x[..., 1:] > x[..., :-1], axis=-1)
        return increasing & np.all(np.isfinite(x), axis=-1)

    def __repr__(self):
        return "ordered_vector"


class _PositiveOrderedVector(_OrderedVector):
    """Ordered vectors whose first (hence every) entry is positive (Stan's ``positive_ordered``)."""

    def check(self, x):
        x = np.asarray(getval(x))
        positive_first = np.all(x[..., :1] > 0, axis=-1)  # an empty vector is vacuously positive
        return super().check(x) & positive_first

    def __repr__(self):
        return "positive_ordered_vector"


real = _Real()
real_vector = _RealVector()
positive = _GreaterThan(0.0)
nonnegative = _Nonnegative()
unit_interval = _Interval(0.0, 1.0, open=True)
boolean = _Boolean()
nonnegative_integer = _NonnegativeInteger()
simplex = _Simplex()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
ordered_vector = _OrderedVector()
positive_ordered_vector = _PositiveOrderedVector()
corr_cholesky = _CorrCholesky()
greater_than = _GreaterThan
integer_interval = _IntegerInterval


def interval(lower_bound, upper_bound):
    """The open interval (lower_bound, upper_bound)."""
    return _Interval(lower_bound, upper_bound, open=True)


def closed_interval(lower_bound, upper_bound):
    return _Interval(lower_bound, upper_bound, open=False)
