"""Constraints: the sets that parameters and values live in.

A constraint answers ``check(x)``: a boolean array over the batch (the last
``event_dim`` axes are reduced with ``all``). NaN is never inside a
constraint, so a NaN parameter is caught by validation, not propagated.
``biject_to`` (in ``transforms``) maps the real line onto each of them.
"""
import math

import numpy as np


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
        return x > self.lower_bound

    def __repr__(self):
        return "positive" if np.all(self.lower_bound == 0) else f"greater_than({self.lower_bound})"


class _Nonnegative(Constraint):
    def check(self, x):
        return x >= 0


class _Interval(Constraint):
    """The closed interval [lower, upper]; ``open=True`` for (lower, upper)."""

    def __init__(self, lower_bound, upper_bound, open=False):
        self.lower_bound, self.upper_bound, self.open = lower_bound, upper_bound, open

    def check(self, x):
        if self.open:
            return (x > self.lower_bound) & (x < self.upper_bound)
        return (x >= self.lower_bound) & (x <= self.upper_bound)

    def __repr__(self):
        if self.open and np.all(self.lower_bound == 0) and np.all(self.upper_bound == 1):
            return "unit_interval"
        left, right = ("(", ")") if self.open else ("[", "]")
        return f"interval{left}{self.lower_bound}, {self.upper_bound}{right}"


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
        x = np.asarray(x)
        upper_zero = np.all(np.triu(x, 1) == 0, axis=(-2, -1))
        return upper_zero & np.all(np.diagonal(x, axis1=-1, axis2=-2) > 0, axis=-1)

    def __repr__(self):
        return "lower_cholesky"


class _PositiveDefinite(Constraint):
    event_dim = 2

    def check(self, x):
        x = np.asarray(x)
        symmetric = np.all(np.abs(x - np.swapaxes(x, -1, -2)) < 1e-6 * (1 + np.abs(x)), axis=(-2, -1))
        if not np.all(np.isfinite(x)):
            return symmetric & np.all(np.isfinite(x), axis=(-2, -1))
        return symmetric & np.all(np.linalg.eigvalsh(x) > 0, axis=-1)

    def __repr__(self):
        return "positive_definite"


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
greater_than = _GreaterThan
integer_interval = _IntegerInterval


def interval(lower_bound, upper_bound):
    """The open interval (lower_bound, upper_bound)."""
    return _Interval(lower_bound, upper_bound, open=True)


def closed_interval(lower_bound, upper_bound):
    return _Interval(lower_bound, upper_bound, open=False)
