"""The ``Distribution`` base class, ``Independent`` and ``Expanded``.

Shapes follow PyTorch and NumPyro: a draw has shape
``sample_shape + batch_shape + event_shape`` and ``log_prob`` returns an array
of shape ``sample_shape + batch_shape``. Every method is written with
``autograd.numpy`` so gradients flow through parameters, values and (for
reparameterized families) samples.
"""
import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .. import kernels
from . import constraints

_SCALARS = (float, int)


def broadcast_shapes(*shapes):
    """``np.broadcast_shapes`` with a fast path for the common cases (all equal, or scalars and one shape)."""
    first = shapes[0]
    if all(s == first for s in shapes):
        return first
    nonscalar = [s for s in shapes if s != ()]
    if all(s == nonscalar[0] for s in nonscalar):
        return nonscalar[0]
    return onp.broadcast_shapes(*shapes)


def promote_shapes(*args):
    """The parameters, ready for math, and their broadcast shape.

    Arrays and autograd boxes are kept as they are; Python ints and floats
    become Python floats, which NumPy treats as weakly typed, so a float32
    array combined with them stays float32. Anything else becomes an array.
    """
    params, shapes = [], []
    for a in args:
        kind = type(a)
        if kind is float or kind is int or kind is bool:
            params.append(float(a))
            continue
        shape = getattr(a, "shape", None)
        if shape is None:
            a = onp.asarray(a)
            if not onp.issubdtype(a.dtype, onp.floating):
                a = a.astype(float)
            shape = a.shape
        params.append(a)
        shapes.append(shape)
    return params, (broadcast_shapes(*shapes) if shapes else ())


def dtype_of(*params):
    """The floating dtype the parameters compute in (float32 stays float32)."""
    for p in params:
        if type(p) is not float:
            return onp.result_type(*(getval(p) for p in params))
    return _FLOAT64


_FLOAT64 = onp.dtype(onp.float64)


def broadcast_to(x, shape):
    """``np.broadcast_to`` that autograd can differentiate when it adds leading axes."""
    x_shape = np.shape(x)
    if x_shape == tuple(shape):
        return x
    if len(x_shape) < len(shape):
        x = np.reshape(x, (1,) * (len(shape) - len(x_shape)) + x_shape)
    return np.broadcast_to(x, shape)


def full_batch(lp, batch_shape):
    """A log-density broadcast to at least ``batch_shape`` (a value may add sample axes)."""
    shape = getattr(lp, "shape", ())
    if shape == batch_shape:
        return lp
    return broadcast_to(lp, broadcast_shapes(shape, batch_shape))


def where(condition, x, y):
    """``np.where`` whose gradient has the shape of ``x`` and ``y``: autograd's own does not sum
    over the axes it broadcast, so parameters are broadcast explicitly first."""
    shape = broadcast_shapes(np.shape(condition), np.shape(x), np.shape(y))

    def fit(a):  # Python scalars stay weakly typed (float32 stays float32) and carry no gradient
        return a if type(a) in _SCALARS else broadcast_to(a, shape)

    return np.where(condition, fit(x), fit(y))


class Distribution:
    """Base class: subclasses set ``arg_constraints``, ``support`` and the methods.

    ``validate_args=True`` checks every parameter against ``arg_constraints``
    on construction (a ``ValueError`` naming it) and every value passed to
    ``log_prob`` against ``support``.
    """

    arg_constraints = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, batch_shape=(), event_shape=(), validate_args=True):
        self.batch_shape = tuple(batch_shape)
        self.event_shape = tuple(event_shape)
        self.validate_args = validate_args
        if validate_args:
            self._validate_params()

    def _validate_params(self):
        for name, constraint in self.arg_constraints.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            if type(value) is float:  # the fast path: no arrays for a scalar check
                if not constraint.holds(value):
                    raise ValueError(f"{type(self).__name__}: parameter {name!r} must be {constraint}; "
                                     f"got {value!r}")
                continue
            value = onp.asarray(getval(value))
            if not constraint.holds(value):
                raise ValueError(
                    f"{type(self).__name__}: parameter {name!r} must be {constraint}; "
                    f"got {_describe_bad(value, constraint.check(value))}"
                )

    def _validate_sample(self, value):
        if type(value) is not float:
            value = getval(value)
        if type(value) is float:
            if not self.support.holds(value):
                raise ValueError(f"{type(self).__name__}.log_prob: value outside the support {self.support}; "
                                 f"got {value!r}")
            return
        value = onp.asarray(value)
        if not self.support.holds(value):
            raise ValueError(
                f"{type(self).__name__}.log_prob: value outside the support {self.support}; "
                f"got {_describe_bad(value, self.support.check(value))}"
            )

    def shape(self, sample_shape=()):
        return tuple(sample_shape) + self.batch_shape + self.event_shape

    @property
    def event_dim(self):
        return len(self.event_shape)

    def sample(self, rng, sample_shape=()):
        raise NotImplementedError

    def log_prob(self, value):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form variance")

    @property
    def stddev(self):
        return np.sqrt(self.variance)

    def entropy(self):
        from ..errors import NoClosedFormError

        raise NoClosedFormError(f"{type(self).__name__} has no closed-form entropy")

    def expand(self, batch_shape):
        """The same distribution with its batch broadcast to ``batch_shape``."""
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        return Expanded(self, batch_shape)

    def to_event(self, reinterpreted_batch_ndims=None):
        """Treat the rightmost ``n`` batch axes as event axes (all of them by default)."""
        n = len(self.batch_shape) if reinterpreted_batch_ndims is None else reinterpreted_batch_ndims
        return self if n == 0 else Independent(self, n)

    def __repr__(self):
        return f"{type(self).__name__}(batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def _describe_bad(value, ok):
    """The first offending entry, with its index, for an error message."""
    value, ok = onp.asarray(value), onp.asarray(ok)
    if value.ndim == 0:
        return repr(value.item())
    if value.size == 0:
        return f"an empty array of shape {value.shape}"
    bad = onp.argwhere(~ok) if ok.ndim else onp.zeros((0, 0), int)
    first = tuple(int(i) for i in bad[0]) if len(bad) else ()
    entry = value[first] if first else value.ravel()[0]
    return f"{entry!r} at index {first} (array of shape {value.shape})"


class Independent(Distribution):
    """Reinterprets batch axes of ``base`` as event axes (sums their log-probs)."""

    def __init__(self, base, reinterpreted_batch_ndims, validate_args=None):
        n = reinterpreted_batch_ndims
        if not 0 <= n <= len(base.batch_shape):
            raise ValueError(
                f"Independent: reinterpreted_batch_ndims={n} out of range for batch_shape {base.batch_shape}"
            )
        self.base, self.reinterpreted_batch_ndims = base, n
        split = len(base.batch_shape) - n
        super().__init__(base.batch_shape[:split], base.batch_shape[split:] + base.event_shape, validate_args=False)
        self.validate_args = base.validate_args

    @property
    def support(self):
        return _IndependentConstraint(self.base.support, self.reinterpreted_batch_ndims)

    @property
    def has_rsample(self):
        return self.base.has_rsample

    def sample(self, rng, sample_shape=()):
        return self.base.sample(rng, sample_shape)

    def log_prob(self, value):
        lp = self.base.log_prob(value)
        return kernels.sum(lp, tuple(range(-self.reinterpreted_batch_ndims, 0)))

    @property
    def mean(self):
        return self.base.mean

    @property
    def variance(self):
        return self.base.variance

    def entropy(self):
        h = self.base.entropy()
        return kernels.sum(h, tuple(range(-self.reinterpreted_batch_ndims, 0)))

    def expand(self, batch_shape):
        batch_shape = tuple(batch_shape)
        if batch_shape == self.batch_shape:
            return self
        inner = self.base.batch_shape[len(self.base.batch_shape) - self.reinterpreted_batch_ndims :]
        return Independent(self.base.expand(batch_shape + inner), self.reinterpreted_batch_ndims)

    def __repr__(self):
        return f"Independent({self.base!r}, {self.reinterpreted_batch_ndims})"


class _IndependentConstraint(constraints.Constraint):
    def __init__(self, base, n):
        self.base, self.n = base, n
        self.event_dim = base.event_dim + n
        self.is_discrete = base.is_discrete

    def check(self, x):
        ok = self.base.check(x)
        return np.all(ok, axis=tuple(range(-self.n, 0))) if self.n else ok

    def holds(self, x):
        return self.base.holds(x)

    def __repr__(self):
        return repr(self.base)


class Expanded(Distribution):
    """``base`` broadcast to a larger batch shape; draws are independent along new axes."""

    def __init__(self, base, batch_shape):
        batch_shape = tuple(batch_shape)
        try:
            new = broadcast_shapes(base.batch_shape, batch_shape)
        except ValueError:
            new = None
        if new != batch_shape:
            raise ValueError(f"expand: cannot expand batch_shape {base.batch_shape} of {base!r} to {batch_shape}")
        self.base = base
        super().__init__(batch_shape, base.event_shape, validate_args=False)
        self.validate_args = base.validate_args

    @property
    def support(self):
        return self.base.support

    @property
    def has_rsample(self):
        return self.base.has_rsample

    def sample(self, rng, sample_shape=()):
        # Draw with the new leading axes as sample axes, then reshape: the base
        # only knows how to draw over its own batch.
        sample_shape = tuple(sample_shape)
        extra = len(self.batch_shape) - len(self.base.batch_shape)
        lead = self.batch_shape[:extra]
        # Axes where the base has size 1 but the target is larger need fresh draws too.
        inner_target = self.batch_shape[extra:]
        grow = tuple(t if b == 1 and t != 1 else 1 for b, t in zip(self.base.batch_shape, inner_target))
        if all(g == 1 for g in grow):
            return self.base.sample(rng, sample_shape + lead)
        draws = self.base.sample(rng, sample_shape + lead + grow)
        # draws: sample + lead + grow + base_batch + event; fold grow into base_batch.
        n_s, n_l, n_g = len(sample_shape), len(lead), len(grow)
        ev = len(self.event_shape)
        head = draws.shape[: n_s + n_l]
        g_axes = list(range(n_s + n_l, n_s + n_l + n_g))
        b_axes = list(range(n_s + n_l + n_g, n_s + n_l + 2 * n_g))
        e_axes = list(range(n_s + n_l + 2 * n_g, n_s + n_l + 2 * n_g + ev))
        order = list(range(n_s + n_l)) + [a for pair in zip(g_axes, b_axes) for a in pair] + e_axes
        draws = np.transpose(draws, order)
        draws = np.reshape(draws, head + inner_target + self.event_shape)
        return draws

    def log_prob(self, value):
        return full_batch(self.base.log_prob(value), self.batch_shape)

    @property
    def mean(self):
        return broadcast_to(self.base.mean, self.batch_shape + self.event_shape)

    @property
    def variance(self):
        return broadcast_to(self.base.variance, self.batch_shape + self.event_shape)

    def entropy(self):
        return broadcast_to(self.base.entropy(), self.batch_shape)

    def expand(self, batch_shape):
        return self.base.expand(batch_shape)

    def __repr__(self):
        return f"Expanded({self.base!r}, {self.batch_shape})"
